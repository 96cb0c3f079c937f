"""Websocket I/O for the Exit Intelligence Stream: connect, lanes, ping, reconnect.

This layer only moves frames. It does not decide anything about positions: every
decoded high-priority message goes to ``on_high`` on the reader task, every
low-priority frame is parked, undecoded, in a coalescing lane (the newest frame per
type and position replaces the one still waiting: PnL is state, not a queue) and
handed to ``on_low`` by a separate consumer task, so a PnL flood never queues in
front of an exit signal and costs memory bounded by the number of positions. What
to send after (re)connecting comes from ``configure_messages()``, called at each
connect, so runtime updates survive.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import aiohttp

from lasersell_bot import protocol
from lasersell_bot.config import StreamConfig
from lasersell_bot.logs import get_logger
from lasersell_bot.metrics import Metrics

log = get_logger("stream")

BACKOFF_START_MS: Final = 100
BACKOFF_CAP_MS: Final = 2000
_TYPE_MARK: Final = b'"type":"'
_LEADING_TAG: Final = b"{" + _TYPE_MARK
_LOW_TAGS: Final = frozenset(t.encode() for t in protocol.LOW_PRIORITY_TYPES)
_TAG_START: Final = len(_LEADING_TAG)
_POSITION_KEY: Final = b'"position_id":'
_ID_VALUE: Final = re.compile(rb"\s*(\d{1,19})\s*[,}]")
LANE_TYPE_CODES: Final = {tag: code for code, tag in enumerate(sorted(_LOW_TAGS))}
_TYPES: Final = len(LANE_TYPE_CODES)
# The compact form every server writes: tag, then the id as the second key.
_FAST_PREFIXES: Final = {
    _LEADING_TAG + tag + b'",' + _POSITION_KEY: code for tag, code in LANE_TYPE_CODES.items()}
_FAST_LENGTHS: Final = sorted({len(prefix) for prefix in _FAST_PREFIXES})
_OUTBOX_LIMIT: Final = 1024
# Wallet registrations in flight at once (an Advanced-tier session has 200 wallets).
REGISTER_CONCURRENCY: Final = 8
# Low-priority frames decoded per loop turn. A high-priority frame that arrives meanwhile
# waits for the rest of the batch (~15-25 us a frame), so keep it small.
_LOW_BATCH: Final = 8
# ``error`` codes by which the server refuses our configure (or strategy): the
# session then carries no signals for us, whatever the socket says.
CONFIGURE_REFUSALS: Final = frozenset({
    "wallet_not_registered", "invalid_strategy", "invalid_wallet", "invalid_wallets",
    "too_many_wallets", "too_many_watch_wallets", "not_configured",
})
# Refusals a new session can cure (after registering the wallets again).
_RECONNECT_REFUSALS: Final = frozenset({"wallet_not_registered"})

_WS = aiohttp.ClientWebSocketResponse[Literal[False]]
HighHandler = Callable[[Any, int], None]
LowHandler = Callable[[Any], None]
# position_id x types + type code (an int: hashed for free), or a negative serial number
# for a frame whose id the byte scan cannot read: it is queued without being coalesced.
LaneKey = int


# --------------------------------------------------------------------------- pure parts


class Backoff:
    """Reconnect delays: 100 ms doubling to 2000 ms, +-10 % jitter, reset on success."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._attempt = 0
        self._rng = rng or random.Random()

    def next_delay_ms(self) -> float:
        base = min(BACKOFF_START_MS << self._attempt, BACKOFF_CAP_MS)
        self._attempt = min(self._attempt + 1, 16)
        return base * self._rng.uniform(0.9, 1.1)

    def reset(self) -> None:
        self._attempt = 0


def peek_type(frame: bytes) -> bytes | None:
    """The ``type`` tag of a compact JSON frame without decoding it, or None."""
    start = frame.find(_TYPE_MARK)
    if start < 0:
        return None
    start += len(_TYPE_MARK)
    end = frame.find(b'"', start)
    return frame[start:end] if end > 0 else None


def is_low_priority(frame: bytes) -> bool:
    """True only for a frame that opens with a low-priority tag (``{"type":"pnl_update"``).

    ``peek_type`` finds the first ``"type":"`` anywhere, which can be a nested key: such a
    frame (or one written with spaces) is decoded on the high lane, so nothing high can
    end up in the coalescing lane, whose handler only updates state.
    """
    return low_lane_key(frame) is not None


_serials = itertools.count()


def low_lane_key(frame: bytes) -> LaneKey | None:
    """The coalescing key of a low-priority frame, read from its bytes; None if the frame
    belongs to the high lane.

    The tag must open the frame (``{"type":"pnl_update"``); the id is the first
    ``"position_id":`` key with no object opened before it, so it is a top-level key (a
    JSON string cannot hold it unescaped). A frame without a readable id gets a key of
    its own and is never coalesced.
    """
    if not frame.startswith(_LEADING_TAG):
        return None
    for length in _FAST_LENGTHS:  # ~0.3 us instead of ~1 us for the general scan
        code = _FAST_PREFIXES.get(frame[:length])
        if code is not None:
            stop = frame.find(b",", length, length + 21)
            digits = frame[length:stop]
            if stop > 0 and digits.isdigit():
                return int(digits) * _TYPES + code
            break
    end = frame.find(b'"', _TAG_START)
    code = LANE_TYPE_CODES.get(frame[_TAG_START:end])
    if end < 0 or code is None:
        return None
    at = frame.find(_POSITION_KEY, end)
    if at > 0 and frame.find(b"{", 1, at) < 0:
        value = _ID_VALUE.match(frame, at + len(_POSITION_KEY))
        if value is not None:
            return int(value.group(1)) * _TYPES + code
    return -1 - next(_serials)


class LowLane:
    """The newest raw low-priority frame per (type, position), oldest key first.

    A frame whose key is still waiting replaces it in place (counted as coalesced), so
    what waits is bounded by types x positions and the latest state of every position
    is delivered. ``capacity`` bounds the keys waiting; a new key beyond it drops the
    oldest key (counted as dropped).
    """

    def __init__(self, capacity: int, metrics: Metrics) -> None:
        self._latest: dict[LaneKey, bytes] = {}
        self._order: deque[LaneKey] = deque()
        self._capacity = capacity
        self._metrics = metrics
        self._ready = asyncio.Event()
        self._coalesced = 0  # added to the metric in drain(): one dict update, not one a frame

    def push(self, key: LaneKey, frame: bytes) -> None:
        latest = self._latest
        if key in latest:
            latest[key] = frame
            self._coalesced += 1
            return
        if len(latest) >= self._capacity:
            del latest[self._order.popleft()]
            self._metrics.low_lane_dropped.inc()
        latest[key] = frame
        self._order.append(key)
        self._ready.set()

    def drain(self, limit: int) -> list[bytes]:
        if self._coalesced:
            self._metrics.low_lane_coalesced.inc(amount=self._coalesced)
            self._coalesced = 0
        order, latest = self._order, self._latest
        batch = [latest.pop(order.popleft()) for _ in range(min(limit, len(order)))]
        if not order:
            self._ready.clear()
        return batch

    async def wait(self) -> None:
        await self._ready.wait()

    def __len__(self) -> int:
        return len(self._order)


# --------------------------------------------------------------------------- registration


class RegistrationError(RuntimeError):
    """The LaserSell API refused (``permanent``) or never accepted a registration."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


async def register_wallets(
    http: aiohttp.ClientSession,
    api_url: str,
    api_key: str,
    proofs: Iterable[dict[str, str]],
    attempts: int = 4,
    *,
    concurrency: int = REGISTER_CONCURRENCY,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """POST a fresh signed proof per wallet, at most ``concurrency`` at a time; transient
    failures are retried. Every wallet gets its attempts; then the first refusal (or,
    without one, the first failure) is raised. ``on_progress(done, total)`` follows each
    wallet that ended."""
    url = api_url.rstrip("/") + "/v1/wallets/register"
    todo = list(proofs)
    gate = asyncio.Semaphore(max(1, concurrency))
    failures: list[RegistrationError] = []
    done = 0

    async def register(proof: dict[str, str]) -> None:
        nonlocal done
        async with gate:
            try:
                await _register_one(http, url, api_key, proof, attempts)
            except RegistrationError as exc:
                failures.append(exc)
        done += 1
        if on_progress is not None:
            on_progress(done, len(todo))

    async with asyncio.TaskGroup() as tasks:
        for proof in todo:
            tasks.create_task(register(proof))
    if failures:
        raise next((f for f in failures if f.permanent), failures[0])


async def _register_one(
    http: aiohttp.ClientSession, url: str, api_key: str, proof: dict[str, str], attempts: int
) -> None:
    wallet = proof["wallet_pubkey"]
    last_error = "no attempt made"
    for attempt in range(attempts):
        try:
            async with http.post(url, json=proof, headers={"x-api-key": api_key}) as resp:
                body = await resp.json(content_type=None)
                if resp.status < 300 and body.get("status", "ok") == "ok":
                    log.info("wallet_registered", wallet=wallet)
                    return
                reason = body.get("reason") or body.get("message") or f"HTTP {resp.status}"
                if resp.status < 500 and resp.status != 429:
                    raise RegistrationError(f"wallet {wallet}: registration refused: {reason}",
                                            permanent=True)
                last_error = reason
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(0.2 * 2**attempt)
    raise RegistrationError(f"wallet {wallet}: registration failed: {last_error}",
                            permanent=False)


# --------------------------------------------------------------------------- connection


@dataclass
class StreamState:
    connected: bool = False
    configured: bool = False
    session_id: int | None = None
    reconnects: int = 0
    last_frame_monotonic: float = 0.0
    last_error: str = ""
    rtt_ms: float | None = None
    down_since_monotonic: float | None = field(default_factory=time.monotonic)

    def down_for(self, now: float) -> float:
        """Seconds without a configured session (0 while connected)."""
        return 0.0 if self.down_since_monotonic is None else now - self.down_since_monotonic


class StreamClient:
    """One logical session to the stream, kept open across reconnects."""

    def __init__(
        self,
        cfg: StreamConfig,
        *,
        configure_messages: Callable[[], list[protocol.ClientMessage]],
        on_high: HighHandler,
        on_low: LowHandler,
        metrics: Metrics,
        on_connection_change: Callable[[bool], None] | None = None,
        http: aiohttp.ClientSession | None = None,
        reregister: Callable[[], Awaitable[None]] | None = None,
        http_factory: Callable[[], aiohttp.ClientSession] | None = None,
    ) -> None:
        """``http``: a session to use (not closed here); ``http_factory``: where to get
        one when ``run`` starts (for example pinned to ``tls.pins``; not closed here
        either); neither: a plain session of our own."""
        self._cfg = cfg
        self._http_factory = http_factory
        self._configure_messages = configure_messages
        self._on_high = on_high
        self._on_low = on_low
        self._on_connection_change = on_connection_change or (lambda _up: None)
        self._metrics = metrics
        self._http = http
        self._reregister = reregister
        self._decoder = protocol.server_decoder()
        self.lane = LowLane(cfg.low_priority_capacity, metrics)
        self.state = StreamState()
        self._ws: _WS | None = None
        self._outbox: deque[protocol.ClientMessage] = deque(maxlen=_OUTBOX_LIMIT)
        self._outbox_ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._backoff = Backoff()
        self._reached_hello = False
        self._refusal: str | None = None
        self._drop_session = asyncio.Event()
        self._ping_sent: dict[int, float] = {}

    # ----------------------------------------------------------- public API

    def send(self, message: protocol.ClientMessage) -> None:
        """Queue a client message; it is written now, or after the next configure."""
        self._outbox.append(message)
        self._outbox_ready.set()

    async def stop(self) -> None:
        """Close the socket with a close frame; ``run`` then returns."""
        self._stopping.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            await ws.close(code=aiohttp.WSCloseCode.OK, message=b"shutdown")

    async def run(self) -> None:
        """Connect, and reconnect with backoff, until ``stop``."""
        own_http = self._http is None and self._http_factory is None
        if self._http is not None:
            http = self._http
        else:
            http = self._http_factory() if self._http_factory else aiohttp.ClientSession()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._consume_low_lane())
                await self._connect_loop(http)
                raise _Stopped
        except* _Stopped:
            pass
        finally:
            if own_http:
                await http.close()

    # ----------------------------------------------------------- reconnect loop

    async def _connect_loop(self, http: aiohttp.ClientSession) -> None:
        while not self._stopping.is_set():
            try:
                await self._one_connection(http)
            except* (aiohttp.ClientError, TimeoutError, ConnectionError) as group:
                self._note_failure(group.exceptions[0])
            if self._stopping.is_set():
                return
            await self._after_session()
            delay_ms = self._backoff.next_delay_ms()
            self.state.reconnects += 1
            self._metrics.reconnects.inc()
            log.info("reconnect", delay_ms=round(delay_ms), attempt=self.state.reconnects)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay_ms / 1000)

    async def _after_session(self) -> None:
        """Reset the backoff after a session that reached ``hello_ok`` and was not
        refused; after a ``wallet_not_registered`` refusal, register again first."""
        refusal, self._refusal = self._refusal, None
        if self._reached_hello and refusal is None:
            self._backoff.reset()
        if refusal in _RECONNECT_REFUSALS and self._reregister is not None:
            try:
                await self._reregister()
            except Exception as exc:
                log.error("reregister_failed", error=f"{type(exc).__name__}: {exc}")

    def _note_failure(self, exc: BaseException) -> None:
        self.state.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("stream_connect_failed", error=self.state.last_error)

    async def _one_connection(self, http: aiohttp.ClientSession) -> None:
        self._reached_hello = False
        self._drop_session.clear()
        timeout = aiohttp.ClientWSTimeout(ws_close=2.0)
        # A server that accepts TCP but never answers the upgrade must not hold us
        # (aiohttp's own default would wait 5 minutes).
        async with asyncio.timeout(self._cfg.connect_timeout_sec):
            ws = await http.ws_connect(
                self._cfg.url,
                headers={"x-api-key": self._cfg.api_key},
                timeout=timeout,
                autoping=True,
                decode_text=False,
                max_msg_size=4 * 1024 * 1024,
            )
        self._ws = ws
        self.state.last_frame_monotonic = time.monotonic()
        log.info("stream_connected", url=_display_url(self._cfg.url))
        try:
            await self._send_configure(ws)
            async with asyncio.TaskGroup() as tasks:
                writer = tasks.create_task(self._write_outbox(ws))
                pinger = tasks.create_task(self._ping_and_watch(ws))
                hello = tasks.create_task(self._expect_hello(ws))
                dropper = tasks.create_task(self._close_when_dropped(ws))
                await self._read_frames(ws)
                writer.cancel()
                pinger.cancel()
                hello.cancel()
                dropper.cancel()
        finally:
            self._ws = None
            self._mark_disconnected(ws)
            if not ws.closed:
                await ws.close()

    async def _send_configure(self, ws: _WS) -> None:
        for message in self._configure_messages():
            await ws.send_str(protocol.encode(message).decode())
        self.state.configured = True
        log.info("configure_sent")

    def _mark_disconnected(self, ws: _WS) -> None:
        was_up = self.state.connected
        self.state.connected = False
        self.state.configured = False
        if self.state.down_since_monotonic is None:
            self.state.down_since_monotonic = time.monotonic()
        self._metrics.stream_connected.set(0)
        report = log.info if self._stopping.is_set() else log.warning
        report("stream_disconnected", close_code=ws.close_code, error=self.state.last_error)
        if was_up:
            self._on_connection_change(False)

    # ----------------------------------------------------------- reading

    async def _read_frames(self, ws: _WS) -> None:
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT or msg.type is aiohttp.WSMsgType.BINARY:
                self._on_frame(msg.data if isinstance(msg.data, bytes) else msg.data.encode())
            elif msg.type is aiohttp.WSMsgType.ERROR:
                self.state.last_error = f"websocket error: {ws.exception()}"
                return
            elif msg.type in _CLOSED_TYPES:
                self.state.last_error = self.state.last_error or f"closed ({ws.close_code})"
                return

    def _on_frame(self, frame: bytes) -> None:
        self.state.last_frame_monotonic = time.monotonic()
        key = low_lane_key(frame)
        if key is not None:
            self.lane.push(key, frame)
            return
        received_ns = time.perf_counter_ns()  # after the lane check (< 1 us)
        message = self._decoder.decode(frame)
        self._count(message)
        if isinstance(message, protocol.HelloOk):
            self._on_hello(message)
        elif isinstance(message, protocol.Pong):
            self._on_pong()
        elif isinstance(message, protocol.ErrorMsg):
            self._on_error(message)
        try:
            self._on_high(message, received_ns)
        except Exception:
            log.exception("high_lane_handler_failed", type=type(message).__name__)

    def _count(self, message: object) -> None:
        if isinstance(message, protocol.MalformedFrame):
            self._metrics.frames_malformed.inc()
            log.warning("frame_malformed", error=message.error, type=message.type)
        elif isinstance(message, protocol.UnknownMessage):
            self._metrics.frames_unknown.inc()
            log.debug("frame_unknown_type", type=message.type)
        else:
            self._metrics.frames.inc(type(message).__struct_config__.tag)  # type: ignore[attr-defined]

    def _on_hello(self, hello: protocol.HelloOk) -> None:
        self.state.connected = True
        self.state.session_id = hello.session_id
        self.state.last_error = ""
        self.state.down_since_monotonic = None
        self._reached_hello = True
        self._metrics.stream_connected.set(1)
        log.info("hello_ok", session_id=hello.session_id, hi_capacity=hello.limits.hi_capacity)
        self._on_connection_change(True)
        self._outbox_ready.set()

    def _on_error(self, error: protocol.ErrorMsg) -> None:
        log.error("stream_error", code=error.code, message=error.message)
        if error.code not in CONFIGURE_REFUSALS:
            return
        # Not configured as we asked: /healthz must not say ok.
        self.state.configured = False
        self.state.last_error = f"server refused the session: {error.code}: {error.message}"
        self._refusal = error.code
        log.error("configure_refused", code=error.code,
                  detail="no signals on this session until it is fixed")
        if error.code in _RECONNECT_REFUSALS:
            self._drop_session.set()

    def _on_pong(self) -> None:
        if self._ping_sent:
            sent = self._ping_sent.pop(max(self._ping_sent))
            self._ping_sent.clear()
            self.state.rtt_ms = (time.monotonic() - sent) * 1000
            self._metrics.stream_rtt_ms.set(round(self.state.rtt_ms, 3))

    async def _consume_low_lane(self) -> None:
        """Decode and hand over parked PnL traffic, yielding to the reader often."""
        while True:
            await self.lane.wait()
            for frame in self.lane.drain(_LOW_BATCH):
                message = self._decoder.decode(frame)
                self._count(message)
                try:
                    self._on_low(message)
                except Exception:
                    log.exception("low_lane_handler_failed", type=type(message).__name__)
            await asyncio.sleep(0)

    # ----------------------------------------------------------- writing

    async def _write_outbox(self, ws: _WS) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox and self.state.connected:
                await ws.send_str(protocol.encode(self._outbox[0]).decode())
                self._outbox.popleft()

    async def _expect_hello(self, ws: _WS) -> None:
        """No ``hello_ok`` within the connect timeout: the socket may answer pings but
        will never carry signals, so close it and let the loop back off and retry."""
        await asyncio.sleep(self._cfg.connect_timeout_sec)
        if not self.state.connected:
            self.state.last_error = f"no hello_ok within {self._cfg.connect_timeout_sec}s"
            log.warning("hello_timeout", seconds=self._cfg.connect_timeout_sec)
            await _close_quietly(ws)

    async def _close_when_dropped(self, ws: _WS) -> None:
        await self._drop_session.wait()
        await _close_quietly(ws)

    async def _ping_and_watch(self, ws: _WS) -> None:
        """Application ping each interval; no frame for two intervals means dead."""
        interval = self._cfg.ping_interval_sec
        while True:
            await asyncio.sleep(interval)
            silent_for = time.monotonic() - self.state.last_frame_monotonic
            if silent_for > 2 * interval:
                self.state.last_error = f"no frame for {silent_for:.1f}s"
                log.warning("stream_silent", seconds=round(silent_for, 1))
                await _close_quietly(ws)
                return
            now_ms = int(time.time() * 1000)
            self._ping_sent[now_ms] = time.monotonic()
            await ws.send_str(protocol.encode(protocol.Ping(client_time_ms=now_ms)).decode())


class _Stopped(Exception):
    """Ends the task group once the connect loop returns."""


_CLOSED_TYPES: Final = frozenset(
    {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED}
)


async def _close_quietly(ws: _WS) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code=aiohttp.WSCloseCode.GOING_AWAY), 1.0)


def _display_url(url: str) -> str:
    return url.split("?", 1)[0]

