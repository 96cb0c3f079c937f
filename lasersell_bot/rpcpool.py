"""Several JSON-RPC providers behind one ``call``: health scoring, hedged reads,
failover, background probes, and a fan-out read for signature statuses.

The decisions are pure and live in ``ProviderHealth`` (what a reply or a failure does
to a provider's score and state) and ``rank`` (the order to ask providers in); the
``RpcPool`` only moves requests:

- a read goes to the best-ranked provider that is up; if it fails, the next one is
  asked at once; if it has not answered after ``hedge_after`` seconds, the next one is
  asked too, and the first usable answer wins;
- a request is never cancelled because another provider answered first: it runs to
  its own timeout in the background, so a provider that hangs is marked down after
  one timeout even when hedging hides it from the caller;
- a provider that times out, refuses the connection or keeps giving malformed replies
  is marked down; down providers are asked only when none is up; a background probe
  of every provider (``probe``, by default ``getHealth``) brings them back, and finds
  a provider that hangs while no read is going on;
- ``call_many`` asks the ``n`` best providers at once (for ``getSignatureStatuses``,
  where one lagging provider must not hold a confirmation back).

A reply is "usable" when ``parse`` accepts it: the caller's parser raising
``ValueError``/``TypeError``/``KeyError`` (``result: null``, wrong types) counts
against the provider like a transport error, and the next one is asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import aiohttp
import msgspec

from lasersell_bot.logs import REDACTOR, get_logger
from lasersell_bot.metrics import Metrics
from lasersell_bot.neterrors import describe_connection_error

T = TypeVar("T")
ProviderState = Literal["up", "down"]
_PARSE_FAULTS = (ValueError, TypeError, KeyError, IndexError, AttributeError)
_TRANSIENT_RPC_CODES = frozenset({-32005, -32603, -32004, -32007, 429})
_MALFORMED_TO_DOWN = 3
_LATENCY_WEIGHT = 0.3
_ERROR_DECAY = 0.8
_PREFERENCE_MS = 5.0  # score bias per position in rpc.urls: the first is preferred
_ERROR_PENALTY_MS = 1000.0
_SWITCH_MARGIN_MS = 20.0  # a better score must beat the current first by this much


def _log() -> Any:
    return get_logger("rpc")


_NO_BATCHES = "batches unsupported"


class RpcError(Exception):
    """An RPC read failed (transport, HTTP status or JSON-RPC error); message has no secrets."""


class BatchUnsupported(RpcError):
    """The provider answered a JSON-RPC batch with a single object: it takes no batches."""


class _Unusable(Exception):
    """A provider's reply that cannot be used; ``down``: mark the provider down at once."""

    def __init__(self, message: str, *, down: bool = False, penalize: bool = True) -> None:
        super().__init__(message)
        self.down, self.penalize = down, penalize


# --------------------------------------------------------------------------- pure health


@dataclass
class ProviderHealth:
    """Score and state of one provider; fed replies and failures, read by ``rank``."""

    index: int
    state: ProviderState = "up"
    latency_ms: float | None = None
    error_rate: float = 0.0
    consecutive_errors: int = 0
    down_since: float | None = None
    last_error: str = ""

    def on_success(self, latency_ms: float) -> bool:
        """A usable answer; True when this brought the provider back up (with a clean
        record: the first listed provider is preferred again at once)."""
        if self.state == "down" or self.latency_ms is None:
            self.latency_ms, self.error_rate = latency_ms, 0.0
        else:
            self.latency_ms = ((1 - _LATENCY_WEIGHT) * self.latency_ms
                               + _LATENCY_WEIGHT * latency_ms)
            self.error_rate *= _ERROR_DECAY
        self.consecutive_errors = 0
        return self._set("up", None)

    def on_failure(self, error: str, now: float, *, down: bool) -> bool:
        """An error, timeout or unusable reply; True when this took the provider down."""
        self.error_rate = self.error_rate * _ERROR_DECAY + (1 - _ERROR_DECAY)
        self.consecutive_errors += 1
        self.last_error = error
        if down or self.consecutive_errors >= _MALFORMED_TO_DOWN:
            return self._set("down", now)
        return False

    def _set(self, state: ProviderState, now: float | None) -> bool:
        changed = state != self.state
        if changed:
            self.state = state
            self.down_since = now
        return changed

    @property
    def score(self) -> float:
        """Lower is better: recent latency, recent errors, and the configured order."""
        return ((self.latency_ms or 0.0) + _ERROR_PENALTY_MS * self.error_rate
                + _PREFERENCE_MS * self.index)


def rank(health: Sequence[ProviderHealth], current: int | None = None) -> list[int]:
    """Indexes in the order to ask: providers that are up by score, then the down ones
    (asked only after every provider that is up failed), by how long they have been down.

    ``current`` (the provider asked first so far) keeps its place while it is up and
    within ``_SWITCH_MARGIN_MS`` of the best score, so two healthy providers with
    similar latency do not trade places on every read."""
    up = sorted((h for h in health if h.state == "up"), key=lambda h: (h.score, h.index))
    down = sorted((h for h in health if h.state == "down"),
                  key=lambda h: (h.down_since or 0.0, h.index))
    if current is not None and up and up[0].index != current:
        kept = next((h for h in up if h.index == current), None)
        if kept is not None and kept.score <= up[0].score + _SWITCH_MARGIN_MS:
            up.remove(kept)
            up.insert(0, kept)
    return [h.index for h in up] + [h.index for h in down]


# --------------------------------------------------------------------------- I/O


class _Reply(msgspec.Struct):
    result: Any = None
    error: Any = None


class _BatchReply(msgspec.Struct):
    id: int | None = None
    result: Any = None
    error: Any = None


_decode_reply = msgspec.json.Decoder(_Reply).decode
_decode_batch = msgspec.json.Decoder(list[_BatchReply]).decode
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Probe:
    """The read that tells a provider that is down it may come back: it must answer it
    in time and in the right shape (a provider that gives malformed reads, but says
    ``ok`` to ``getHealth``, stays down)."""

    method: str
    params: Sequence[Any]
    parse: Callable[[Any], Any]


@dataclass
class Provider:
    """One RPC endpoint: where to post, on which session, and its health."""

    url: str = field(repr=False)
    display: str
    session: Callable[[], aiohttp.ClientSession] = field(repr=False)
    health: ProviderHealth = field(default_factory=lambda: ProviderHealth(0))


class RpcPool:
    """Reads over several providers (a single provider works the same, without probes)."""

    def __init__(self, providers: Sequence[Provider], *, timeout: float = 2.0,
                 hedge_after: float = 0.25, probe_interval: float = 5.0,
                 status_fanout: int = 2, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 probe: Probe | None = None) -> None:
        if not providers:
            raise ValueError("at least one RPC provider is required")
        self.providers = list(providers)
        for index, provider in enumerate(self.providers):
            provider.health.index = index
        self.timeout = timeout
        self.hedge_after = hedge_after
        self.probe_interval = probe_interval
        self.status_fanout = status_fanout
        self.metrics = metrics
        self.clock = clock
        self.probe = probe or Probe("getHealth", (), _health_ok)
        self.switches = 0
        self._best = 0
        self._background: set[asyncio.Task[Any]] = set()
        self._prober: asyncio.Task[None] | None = None
        self._publish()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the background probe of the providers (when there are several)."""
        if len(self.providers) > 1 and self._prober is None:
            self._prober = asyncio.get_running_loop().create_task(self._probe_loop())

    async def close(self) -> None:
        tasks = [*self._background, *([self._prober] if self._prober else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._prober = None

    # ----------------------------------------------------------------- reads

    async def call(self, method: str, params: Sequence[Any] = (),
                   parse: Callable[[Any], T] | None = None) -> T:
        """One read; the parsed result of the first provider that gives a usable one."""
        return await self._first(method, _request(method, params), _single_result, parse)

    async def call_batch(self, calls: Sequence[tuple[str, Sequence[Any]]],
                         parse: Callable[[list[Any]], T] | None = None) -> T:
        """One JSON-RPC batch (several calls in one request, answered together by one
        provider, so they see the same state): the results in the order of ``calls``,
        through ``parse``; hedged and failed over like ``call``."""
        body = _encode([{"jsonrpc": "2.0", "id": index, "method": method,
                         "params": list(params)} for index, (method, params) in enumerate(calls)])
        label = "+".join(method for method, _ in calls)
        return await self._first(label, body,
                                 lambda payload: _batch_results(payload, len(calls)), parse)

    async def _first(self, method: str, body: bytes, decode: Callable[[bytes], Any],
                     parse: Callable[[Any], T] | None) -> T:
        order = rank([p.health for p in self.providers], self._best)
        self._note_best(order[0])
        pending: dict[asyncio.Task[Any], int] = {}
        errors: list[str] = []
        queue = list(order)
        hedge_at = self.clock() + self.hedge_after if self.hedge_after > 0 else None
        while True:
            if queue and (not pending or (hedge_at is not None and self.clock() >= hedge_at)):
                index = queue.pop(0)
                pending[self._spawn(self._ask(index, method, body, parse, decode))] = index
                if hedge_at is not None and self.clock() >= hedge_at:
                    hedge_at = self.clock() + self.hedge_after
                continue
            if not pending:
                raise RpcError(_failure(method, errors))
            wait = None if hedge_at is None or not queue else max(0.0, hedge_at - self.clock())
            done, _ = await asyncio.wait(pending, timeout=wait,
                                         return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                index = pending.pop(task)
                error = _error_of(task)
                if error is None:
                    value: T = task.result()
                    return value
                errors.append(error if len(self.providers) == 1
                              else f"{self.providers[index].display}: {error}")
                if error.startswith("rpc "):  # the provider answered: a real JSON-RPC error
                    raise RpcError(f"{method}: {error}")
                if error.startswith(_NO_BATCHES):
                    raise BatchUnsupported(f"{method}: {error}")

    async def call_many(self, method: str, params: Sequence[Any],
                        parse: Callable[[Any], T], count: int | None = None) -> list[T]:
        """Ask the ``count`` best providers that are up at once; every usable answer that
        came within ``hedge_after`` of the first (at least one), or ``RpcError``."""
        order = rank([p.health for p in self.providers], self._best)
        up = [i for i in order if self.providers[i].health.state == "up"]
        chosen = (up or order)[:max(1, count or self.status_fanout)]
        if len(chosen) == 1:
            return [await self.call(method, params, parse)]
        body = _request(method, params)
        tasks = [self._spawn(self._ask(i, method, body, parse)) for i in chosen]
        answers: list[T] = []
        deadline: float | None = None
        pending = set(tasks)
        while pending:
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            done, pending = await asyncio.wait(pending, timeout=timeout,
                                               return_when=asyncio.FIRST_COMPLETED)
            if not done:
                break
            for task in done:
                if _error_of(task) is None:
                    answers.append(task.result())
                    if deadline is None:
                        deadline = self.clock() + max(self.hedge_after, 0.05)
        if answers:
            return answers
        return [await self.call(method, params, parse)]  # all failed: fail over in order

    # ----------------------------------------------------------------- one request

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._settled)
        return task

    def _settled(self, task: asyncio.Task[Any]) -> None:
        """A request finished (its health is recorded); nobody may be waiting for it."""
        self._background.discard(task)
        if not task.cancelled():
            task.exception()

    async def _ask(self, index: int, method: str, body: bytes,
                   parse: Callable[[Any], Any] | None,
                   decode: Callable[[bytes], Any] | None = None) -> Any:
        provider = self.providers[index]
        started = self.clock()
        try:
            result = (decode or _single_result)(await self._post(provider, body))
            value = result if parse is None else _parsed(method, parse, result)
        except _Unusable as exc:
            if exc.penalize:
                self._failed(provider, str(exc), down=exc.down)
            raise
        self._succeeded(provider, (self.clock() - started) * 1000)
        return value

    async def _post(self, provider: Provider, body: bytes) -> bytes:
        """The body of a 200 answer, or ``_Unusable``."""
        try:
            async with provider.session().post(
                    provider.url, data=body,
                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                payload = await response.read()
                status = response.status
        except TimeoutError:
            raise _Unusable(f"timeout after {self.timeout:g} s", down=True) from None
        except aiohttp.ClientError as exc:
            raise _Unusable(describe_connection_error(exc), down=True) from None
        if status != 200:
            raise _Unusable(f"http {status}")
        return payload

    # ----------------------------------------------------------------- health

    def _succeeded(self, provider: Provider, latency_ms: float) -> None:
        if provider.health.on_success(latency_ms):
            _log().warning("rpc_provider_up", provider=provider.display)
        self._count(provider, "ok")
        self._publish()

    def _failed(self, provider: Provider, error: str, *, down: bool) -> None:
        if provider.health.on_failure(error, self.clock(), down=down):
            _log().error("rpc_provider_down", provider=provider.display, error=error)
        self._count(provider, "error")
        self._publish()

    def _note_best(self, index: int) -> None:
        if index != self._best:
            _log().warning("rpc_provider_switched", provider=self.providers[index].display,
                           previous=self.providers[self._best].display)
            self._best = index
            self.switches += 1
            if self.metrics is not None:
                self.metrics.rpc_switches.inc()

    def _count(self, provider: Provider, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.rpc_requests.inc(provider.display, outcome)

    def _publish(self) -> None:
        if self.metrics is None:
            return
        for provider in self.providers:
            health = provider.health
            self.metrics.rpc_provider_up.set(1.0 if health.state == "up" else 0.0,
                                             provider.display)
            if health.latency_ms is not None:
                self.metrics.rpc_latency_ms.set(round(health.latency_ms, 3), provider.display)

    def states(self) -> dict[str, ProviderState]:
        """Each provider's state by display name, in the configured order."""
        return {p.display: p.health.state for p in self.providers}

    @property
    def preferred(self) -> str:
        """The provider reads go to first right now."""
        return self.providers[rank([p.health for p in self.providers], self._best)[0]].display

    async def _probe_loop(self) -> None:
        """Every ``probe_interval``: probe each provider, so one that is down comes back,
        and one that hangs is marked down even while no read is going on."""
        while True:
            await asyncio.sleep(self.probe_interval)
            await asyncio.gather(*(self._probe(i) for i in range(len(self.providers))),
                                 return_exceptions=True)

    async def _probe(self, index: int) -> None:
        probe = self.probe
        body = _encode({"jsonrpc": "2.0", "id": 1, "method": probe.method,
                        "params": list(probe.params)})
        with contextlib.suppress(_Unusable):
            await self._ask(index, probe.method, body, probe.parse)


def _request(method: str, params: Sequence[Any]) -> bytes:
    return _encode({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})


def _single_result(payload: bytes) -> Any:
    try:
        reply = _decode_reply(payload)
    except msgspec.DecodeError:
        raise _Unusable("malformed response") from None
    return _result_of(reply)


def _batch_results(payload: bytes, count: int) -> list[Any]:
    """The results of a batch answer in request order (the answer may be in any order).
    A single object in answer is a provider that does not take batches: not its fault."""
    try:
        replies = _decode_batch(payload)
    except msgspec.DecodeError:
        if payload.lstrip().startswith(b"{"):
            raise _Unusable(f"{_NO_BATCHES}: answered a batch with one object",
                            penalize=False) from None
        raise _Unusable("malformed batch response") from None
    by_id = {reply.id: reply for reply in replies if reply.id is not None}
    if len(replies) != count or set(by_id) != set(range(count)):
        raise _Unusable(f"batch answer does not have the ids 0..{count - 1}")
    return [_result_of(by_id[index]) for index in range(count)]


def _result_of(reply: _Reply | _BatchReply) -> Any:
    if reply.error is not None:
        code, message = _error_fields(reply.error)
        text = f"rpc {code}: {REDACTOR.clean(message)[:200]}"
        if code in _TRANSIENT_RPC_CODES:
            raise _Unusable(f"transient {text}")
        raise _Unusable(text, penalize=False)
    return reply.result


def _failure(method: str, errors: Sequence[str]) -> str:
    if len(errors) == 1:
        return f"{method}: {errors[0]}"
    return f"{method}: every provider failed: {'; '.join(errors)}"


def _health_ok(result: Any) -> str:
    if result != "ok":
        raise ValueError(f"getHealth answered {result!r}")
    return "ok"


def _parsed(method: str, parse: Callable[[Any], T], result: Any) -> T:
    try:
        return parse(result)
    except _PARSE_FAULTS as exc:
        raise _Unusable(f"unusable {method} result: {type(exc).__name__}") from None


def _error_fields(error: Any) -> tuple[int, str]:
    if isinstance(error, dict):
        code = error.get("code")
        return (code if isinstance(code, int) else 0), str(error.get("message", ""))
    return 0, str(error)


def _error_of(task: asyncio.Task[Any]) -> str | None:
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    if exc is None:
        return None
    if isinstance(exc, _Unusable):
        return str(exc)
    return f"internal error: {type(exc).__name__}"
