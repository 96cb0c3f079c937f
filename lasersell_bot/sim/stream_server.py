"""A LaserSell-compatible Exit Intelligence Stream and wallet-registration API on loopback.

``SimStreamServer`` speaks the real wire protocol (``protocol.py`` Structs, JSON
text frames) on ``GET /v1/ws`` and ``POST /v1/wallets/register``, builds sells on
demand on ``POST /v1/sell`` (when its ``TxFactory`` is a ``SellBuilder``: the
chain-backed one), validates client
messages like the real server, runs the strategy engine of ``scenario.py`` over
positions the test or demo drives through the control API (``open_position``,
``set_price``, ``note_sold`` ...) and puts transactions from a ``TxFactory`` into its
signals. Every decoded client message is kept in ``received`` for assertions.

Run standalone with ``main_sim(["--port", "8082"])``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web
from solders.pubkey import Pubkey
from solders.signature import Signature

from lasersell_bot.logs import configure_logging, get_logger
from lasersell_bot.protocol import (
    AnyClientMessage,
    ClientMessage,
    ClosePosition,
    Configure,
    ErrorMsg,
    ExitSignalWithTx,
    HelloOk,
    Limits,
    MalformedFrame,
    MirrorBuyFailed,
    MirrorBuyResult,
    MirrorBuySignal,
    MirrorConfig,
    MirrorWalletAutoDisabled,
    Ping,
    Pong,
    RequestExitSignal,
    ServerMessage,
    Strategy,
    UnknownMessage,
    UpdatePositionStrategy,
    UpdateStrategy,
    UpdateWallets,
    UpdateWatchWallets,
    WatchWallet,
    client_decoder,
    encode,
)
from lasersell_bot.sim.scenario import (
    TOKEN_PROGRAM,
    ExitDecision,
    MemoTxFactory,
    SellBuilder,
    SellRefused,
    SimPosition,
    TxFactory,
    associated_token_account,
    evaluate,
    market_context_for,
    validate_strategy,
)

DEFAULT_LIMITS: Final = Limits(
    hi_capacity=1024, pnl_flush_ms=1000, max_positions_per_session=100,
    max_wallets_per_session=10, max_positions_per_wallet=20, max_sessions_per_api_key=5,
    max_watch_wallets_per_session=10,
)
PROOF_MAX_AGE_S: Final = 300
PROOF_MAX_SKEW_S: Final = 30
REGISTER_PREFIX: Final = "lasersell-register"
DEFAULT_TIP_LAMPORTS: Final = 1000
DEFAULT_MIRROR_SLIPPAGE_BPS: Final = 2500
LOW_PRIORITY_KINDS: Final = ("pnl_update", "liquidity_snapshot", "trade_tick")
FLOOD_HIGH_WATER: Final = 1 << 20



def _log() -> Any:
    """The module logger, resolved per call so a later ``configure_logging`` applies."""
    return get_logger("sim.stream")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def ws_text_frame(payload: bytes) -> bytes:
    """One final, unmasked websocket TEXT frame (server to client, RFC 6455 5.2)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class _SellNow(msgspec.Struct):
    """Legacy ``sell_now`` frame: the fields of ``request_exit_signal``."""

    position_id: int | None = None
    token_account: str | None = None
    slippage_bps: int | None = None


class _SellRequest(msgspec.Struct):
    """``POST /v1/sell`` body."""

    mint: str
    user_pubkey: str
    amount_tokens: int
    slippage_bps: int
    output: str = "SOL"
    send_mode: str = "rpc"
    tip_lamports: int = 0


SELL_OUTPUTS: Final = ("SOL", "USD1")


def _check_sell_request(body: bytes) -> _SellRequest:
    """The decoded request; SellRefused naming the bad field otherwise."""
    try:
        req = msgspec.json.decode(body, type=_SellRequest)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SellRefused(f"invalid_body: {exc}") from None
    if req.amount_tokens <= 0:
        raise SellRefused("invalid_amount_tokens: must be > 0")
    if not 0 <= req.slippage_bps <= 10_000:
        raise SellRefused("invalid_slippage_bps: must be within 0..10000")
    if req.tip_lamports < 0:
        raise SellRefused("invalid_tip_lamports: must be >= 0")
    if req.output not in SELL_OUTPUTS:
        raise SellRefused(f"invalid_output: must be one of {', '.join(SELL_OUTPUTS)}")
    if req.output != "SOL":
        raise SellRefused("unsupported_output: the simulator settles SOL output only")
    return req


class _RegisterRequest(msgspec.Struct):
    wallet_pubkey: str
    message: str
    signature: str
    label: str | None = None


_Decoded = AnyClientMessage | UnknownMessage | MalformedFrame


@dataclass(frozen=True)
class Received:
    """One client frame as the server decoded it, with its monotonic arrival time."""

    at: float
    session_id: int
    message: _Decoded


class SimError(Exception):
    """A client message the real server would answer with an ``error`` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class _Session:
    """One websocket connection and what its client configured."""

    session_id: int
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    api_key: str
    configured_at: float = 0.0
    wallets: list[str] = field(default_factory=list)
    strategy: Strategy | None = None
    deadline_timeout_sec: int = 0
    send_mode: str = "rpc"
    tip_lamports: int = DEFAULT_TIP_LAMPORTS
    watch_wallets: list[WatchWallet] = field(default_factory=list)
    mirror_config: MirrorConfig = field(default_factory=MirrorConfig)
    positions: set[int] = field(default_factory=set)
    greeted: bool = False
    mirror_mints: set[str] = field(default_factory=set)

    @property
    def configured(self) -> bool:
        return self.strategy is not None

    def watches(self, wallet: str) -> bool:
        return any(w.pubkey == wallet for w in self.watch_wallets)


def check_registration(body: bytes, now_s: int) -> tuple[str, str | None]:
    """Verify a registration proof: ``(wallet, None)`` if valid, else ``(wallet, reason)``."""
    try:
        req = msgspec.json.decode(body, type=_RegisterRequest)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return "", f"invalid_body: {exc}"
    try:
        pubkey = Pubkey.from_string(req.wallet_pubkey)
    except ValueError:
        return req.wallet_pubkey, "invalid_wallet_pubkey"
    reason = _check_proof_message(req.message, req.wallet_pubkey, now_s)
    if reason is None:
        reason = _check_signature(req.signature, pubkey, req.message)
    return req.wallet_pubkey, reason


def _check_proof_message(message: str, wallet: str, now_s: int) -> str | None:
    parts = message.split(":")
    if len(parts) != 3 or parts[0] != REGISTER_PREFIX or not parts[2].isdigit():
        return "invalid_message: expected lasersell-register:<pubkey>:<unix_seconds>"
    if parts[1] != wallet:
        return "pubkey_mismatch: message names another wallet"
    issued = int(parts[2])
    if now_s - issued > PROOF_MAX_AGE_S:
        return "proof_expired: older than 5 minutes"
    if issued - now_s > PROOF_MAX_SKEW_S:
        return "proof_from_future"
    return None


def _check_signature(signature: str, pubkey: Pubkey, message: str) -> str | None:
    try:
        sig = Signature.from_string(signature)
    except ValueError:
        return "invalid_signature: not a base58 ed25519 signature"
    return None if sig.verify(pubkey, message.encode()) else "invalid_signature"


def _check_wallet_list(wallets: Sequence[str], limits: Limits,
                       is_registered: Callable[[str], bool]) -> None:
    if not wallets:
        raise SimError("invalid_wallets", "wallet_pubkeys must not be empty")
    if limits.max_wallets_per_session and len(wallets) > limits.max_wallets_per_session:
        raise SimError("too_many_wallets",
                       f"{len(wallets)} wallets > max_wallets_per_session "
                       f"{limits.max_wallets_per_session}")
    for wallet in wallets:
        try:
            Pubkey.from_string(wallet)
        except ValueError:
            raise SimError("invalid_wallet", f"{wallet!r} is not a base58 public key") from None
        if not is_registered(wallet):
            raise SimError("wallet_not_registered", f"wallet {wallet} is not registered")


def _check_watch_list(watch: Sequence[WatchWallet], limits: Limits,
                      is_registered: Callable[[str], bool]) -> None:
    cap = limits.max_watch_wallets_per_session
    if cap and len(watch) > cap:
        raise SimError("too_many_watch_wallets",
                       f"{len(watch)} watch wallets > max_watch_wallets_per_session {cap}")
    for entry in watch:
        if entry.auto_buy is not None and not is_registered(entry.auto_buy.wallet_pubkey):
            raise SimError("wallet_not_registered",
                           f"wallet {entry.auto_buy.wallet_pubkey} is not registered")


def _check_strategy(strategy: Strategy, deadline_timeout_sec: float) -> None:
    problem = validate_strategy(strategy, deadline_timeout_sec)
    if problem is not None:
        raise SimError("invalid_strategy", problem)


class SimStreamServer:
    """The simulated LaserSell stream + REST API, and the scenario control API."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tx_factory: TxFactory | None = None,
        api_keys: Collection[str] | None = None,
        registered_wallets: Iterable[str] = (),
        require_registration: bool = True,
        limits: Limits = DEFAULT_LIMITS,
        exit_slippage_bps: int = 1000,
        liquidity_every: int = 4,
        trade_ticks: bool = True,
        resignal_after_s: float | None = None,
        hello_after_configure: bool = False,
    ) -> None:
        """``hello_after_configure``: the handshake order of the vendor SDKs (wait for
        ``configure``, answer ``hello_ok``, or an ``error`` in its place); by default
        ``hello_ok`` goes out on open, as the vendor docs describe. Either way a
        refused first ``configure`` closes the socket (code 1008)."""
        self.host = host
        self.port = port
        self.limits = limits
        self.received: list[Received] = []
        self.mirror_results: list[tuple[int, MirrorBuyResult]] = []
        self.unexpected_mirror_results: list[tuple[int, MirrorBuyResult]] = []
        self.hello_after_configure = hello_after_configure
        self.api_port: int | None = None
        """Set before ``start`` to serve the REST API on this port too (the vendor
        SDKs' local mode looks at 8080); the stream port keeps serving it."""
        self.sent_exits: list[ExitSignalWithTx] = []
        self._factory: TxFactory = tx_factory or MemoTxFactory()
        self._api_keys = frozenset(api_keys) if api_keys is not None else None
        self._registered: set[str] = set(registered_wallets)
        self._require_registration = require_registration
        self._exit_slippage_bps = exit_slippage_bps
        self._liquidity_every = max(1, liquidity_every)
        self._trade_ticks = trade_ticks
        self._resignal_after_s = resignal_after_s
        self._sessions: dict[int, _Session] = {}
        self._positions: dict[int, SimPosition] = {}
        self._session_ids = itertools.count(1)
        self._position_ids = itertools.count(1)
        self._slot = itertools.count(300_000_000)
        self._answering = True
        self._decoder = client_decoder()
        self._sell_now = msgspec.json.Decoder(_SellNow)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._handlers: dict[type[ClientMessage], Callable[[_Session, Any], Awaitable[None]]] = {
            Ping: self._on_ping,
            Configure: self._on_configure,
            UpdateStrategy: self._on_update_strategy,
            UpdateWallets: self._on_update_wallets,
            UpdateWatchWallets: self._on_update_watch_wallets,
            UpdatePositionStrategy: self._on_update_position_strategy,
            ClosePosition: self._on_close_position,
            RequestExitSignal: self._on_request_exit,
            MirrorBuyResult: self._on_mirror_buy_result,
        }

    # ------------------------------------------------------------------ lifecycle

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host()}:{self.port}/v1/ws"

    @property
    def api_url(self) -> str:
        port = self.port if self.api_port is None else self.api_port
        return f"http://{self._url_host()}:{port}"

    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    async def start(self) -> str:
        """Bind and serve; returns the websocket URL (the port is known from here on)."""
        app = web.Application()
        app.router.add_get("/v1/ws", self._ws_handler)
        app.router.add_post("/v1/wallets/register", self._register_handler)
        app.router.add_post("/v1/sell", self._sell_handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = self._listen(self.port)
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        if self.api_port is not None:
            api_sock = self._listen(self.api_port)
            self.api_port = api_sock.getsockname()[1]
            await web.SockSite(self._runner, api_sock).start()
        _log().info("sim_stream_started", ws_url=self.ws_url, api_url=self.api_url)
        return self.ws_url

    def _listen(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            raise
        return sock

    async def stop(self) -> None:
        for session in list(self._sessions.values()):
            if session.transport is not None:
                session.transport.abort()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimStreamServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ HTTP

    def _key_ok(self, key: str) -> bool:
        # Open (no api_keys): any key, even none, as config allows for a loopback url.
        return self._api_keys is None or key in self._api_keys

    async def _register_handler(self, request: web.Request) -> web.Response:
        if not self._key_ok(request.headers.get("x-api-key", "")):
            return _json_error("invalid_api_key", 401)
        wallet, failure = check_registration(await request.read(), int(time.time()))
        if failure is not None:
            return _json_error(failure, 401 if failure.startswith("invalid_signature") else 400)
        self._registered.add(wallet)
        _log().info("sim_wallet_registered", wallet=wallet)
        return web.json_response({"status": "ok", "wallet_pubkey": wallet})

    async def _sell_handler(self, request: web.Request) -> web.Response:
        """``POST /v1/sell``: the unsigned sell the factory builds, with its route."""
        if not self._key_ok(request.headers.get("x-api-key", "")):
            return _json_error("invalid_api_key", 401)
        if not isinstance(self._factory, SellBuilder):
            return _json_error("not_supported: this simulator has no chain to build on", 501)
        try:
            req = _check_sell_request(await request.read())
            quote = self._factory.build_sell(req.user_pubkey, req.mint, req.amount_tokens,
                                             req.slippage_bps, req.send_mode, req.tip_lamports)
        except SellRefused as exc:
            return _json_error(exc.reason, exc.status)
        _log().info("sim_sell_built", wallet=req.user_pubkey, mint=req.mint,
                    tokens=req.amount_tokens)
        return web.json_response({
            "status": "ok", "tx": quote.tx_b64,
            "route": {"market_type": quote.market_type, "pool_id": quote.pool_id},
        })

    def is_registered(self, wallet: str) -> bool:
        return not self._require_registration or wallet in self._registered

    def register_wallet(self, wallet: str) -> None:
        """Register ``wallet`` without a proof (tests and the demo)."""
        self._registered.add(wallet)

    # ------------------------------------------------------------------ websocket

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("x-api-key", "")
        if not self._key_ok(key):
            return _json_error("invalid_api_key", 401)
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        transport = request.transport
        session = _Session(next(self._session_ids), ws, transport, key)
        if not self._answering and transport is not None:
            transport.pause_reading()
        try:
            if await self._admit(session):
                await self._receive_loop(session)
        finally:
            self._sessions.pop(session.session_id, None)
            self._changed.set()
            _log().debug("sim_session_closed", session_id=session.session_id)
        return ws

    async def _admit(self, session: _Session) -> bool:
        same_key = sum(1 for s in self._sessions.values() if s.api_key == session.api_key)
        cap = self.limits.max_sessions_per_api_key
        if cap and same_key >= cap:
            await self._send_error(session, "too_many_sessions",
                                   f"max_sessions_per_api_key {cap} reached")
            await session.ws.close(code=1008, message=b"too many sessions")
            return False
        self._sessions[session.session_id] = session
        self._changed.set()
        if not self.hello_after_configure:
            await self._greet(session)
        return True

    async def _greet(self, session: _Session) -> None:
        session.greeted = True
        hello = HelloOk(session_id=session.session_id, server_time_ms=_now_ms(),
                        limits=self.limits)
        await self._send(session, encode(hello))

    async def _receive_loop(self, session: _Session) -> None:
        async for frame in session.ws:
            if frame.type is WSMsgType.TEXT:
                await self._on_frame(session, frame.data)
            elif frame.type is WSMsgType.BINARY:
                await self._send_error(session, "invalid_message", "binary frames are not "
                                       "supported; send JSON text")

    async def _on_frame(self, session: _Session, data: str) -> None:
        message, legacy = self._decode(data)
        self.received.append(Received(time.monotonic(), session.session_id, message))
        self._changed.set()
        try:
            if legacy and isinstance(message, RequestExitSignal):
                await self._on_request_exit(session, message, reason="sell_now")
            else:
                await self._dispatch(session, message)
        except SimError as exc:
            await self._send_error(session, exc.code, exc.message)
            if isinstance(message, Configure) and not session.configured:
                await self._close_refused(session, exc.code)

    async def _close_refused(self, session: _Session, code: str) -> None:
        """A refused first ``configure`` ends the session, as the real server does."""
        _log().info("sim_session_refused", session_id=session.session_id, code=code)
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            await asyncio.wait_for(
                session.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=code.encode()), 2.0)

    def _decode(self, data: str) -> tuple[_Decoded, bool]:
        """The decoded frame, and whether it was the legacy ``sell_now`` alias."""
        message = self._decoder.decode(data)
        if not (isinstance(message, UnknownMessage) and message.type == "sell_now"):
            return message, False  # type: ignore[return-value]
        try:
            legacy = self._sell_now.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return MalformedFrame(error=str(exc), type="sell_now"), False
        request = RequestExitSignal(legacy.position_id, legacy.token_account,
                                    legacy.slippage_bps)
        return request, True

    async def _dispatch(self, session: _Session, message: _Decoded) -> None:
        if isinstance(message, UnknownMessage):
            raise SimError("unknown_message_type", f"unknown message type {message.type!r}")
        if isinstance(message, MalformedFrame):
            raise SimError("invalid_message", f"{message.type or 'frame'}: {message.error}")
        if not session.configured and not isinstance(message, Ping | Configure):
            raise SimError("not_configured", f"send configure before {_tag(message)}")
        await self._handlers[type(message)](session, message)

    # ------------------------------------------------------------------ client messages

    async def _on_ping(self, session: _Session, _msg: Ping) -> None:
        await self._send(session, encode(Pong(server_time_ms=_now_ms())))

    async def _on_configure(self, session: _Session, msg: Configure) -> None:
        deadline = msg.deadline_timeout_sec or 0
        _check_wallet_list(msg.wallet_pubkeys, self.limits, self.is_registered)
        _check_watch_list(msg.watch_wallets, self.limits, self.is_registered)
        _check_strategy(msg.strategy, deadline)
        session.wallets = list(msg.wallet_pubkeys)
        session.strategy = msg.strategy
        session.deadline_timeout_sec = deadline
        session.send_mode = msg.send_mode or "rpc"
        session.tip_lamports = (msg.tip_lamports if msg.tip_lamports is not None
                                else DEFAULT_TIP_LAMPORTS)
        session.watch_wallets = list(msg.watch_wallets)
        session.mirror_config = msg.mirror_config or MirrorConfig()
        session.configured_at = time.monotonic()
        session.positions.clear()
        if not session.greeted:
            await self._greet(session)
        await self._announce_wallets(session, session.wallets)
        self._changed.set()
        await self._evaluate_session(session)

    async def _on_update_strategy(self, session: _Session, msg: UpdateStrategy) -> None:
        _check_strategy(msg.strategy, session.deadline_timeout_sec)
        session.strategy = msg.strategy
        await self._evaluate_session(session)

    async def _on_update_wallets(self, session: _Session, msg: UpdateWallets) -> None:
        _check_wallet_list(msg.wallet_pubkeys, self.limits, self.is_registered)
        added = [w for w in msg.wallet_pubkeys if w not in session.wallets]
        session.wallets = list(msg.wallet_pubkeys)
        session.positions = {pid for pid in session.positions
                             if pid in self._positions
                             and self._positions[pid].wallet in session.wallets}
        await self._announce_wallets(session, added)
        await self._evaluate_session(session)

    async def _on_update_watch_wallets(self, session: _Session, msg: UpdateWatchWallets) -> None:
        _check_watch_list(msg.watch_wallets, self.limits, self.is_registered)
        session.watch_wallets = list(msg.watch_wallets)

    async def _on_update_position_strategy(
        self, session: _Session, msg: UpdatePositionStrategy
    ) -> None:
        position = self._session_position(session, msg.position_id, None)
        _check_strategy(msg.strategy, session.deadline_timeout_sec)
        position.strategy_override = msg.strategy
        await self._run_engine(position)

    async def _on_close_position(self, session: _Session, msg: ClosePosition) -> None:
        position = self._session_position(session, msg.position_id, msg.token_account)
        await self.close_position(position.position_id, reason="manual")

    async def _on_request_exit(
        self, session: _Session, msg: RequestExitSignal, reason: str = "manual"
    ) -> None:
        position = self._session_position(session, msg.position_id, msg.token_account)
        slippage = msg.slippage_bps if msg.slippage_bps is not None else self._exit_slippage_bps
        await self._emit_exit(position, ExitDecision(reason), [session], slippage)

    async def _on_mirror_buy_result(self, session: _Session, msg: MirrorBuyResult) -> None:
        """Kept when it answers a ``mirror_buy_signal`` this session got (once per
        signal); otherwise logged and counted in ``unexpected_mirror_results``."""
        if msg.mint not in session.mirror_mints:
            self.unexpected_mirror_results.append((session.session_id, msg))
            _log().warning("sim_mirror_result_unexpected", session_id=session.session_id,
                           mint=msg.mint, success=msg.success,
                           count=len(self.unexpected_mirror_results))
            return
        session.mirror_mints.discard(msg.mint)
        self.mirror_results.append((session.session_id, msg))
        _log().info("sim_mirror_buy_result", session_id=session.session_id, mint=msg.mint,
                    success=msg.success)

    def _session_position(
        self, session: _Session, position_id: int | None, token_account: str | None
    ) -> SimPosition:
        if position_id is None and token_account is None:
            raise SimError("invalid_message", "position_id or token_account is required")
        for pid in session.positions:
            position = self._positions.get(pid)
            if position is not None and (pid == position_id
                                         or position.token_account == token_account):
                return position
        target = position_id if position_id is not None else token_account
        raise SimError("position_not_found", f"no tracked position {target}")

    # ------------------------------------------------------------------ positions and engine

    async def _announce_wallets(self, session: _Session, wallets: Iterable[str]) -> None:
        wanted = set(wallets)
        for position in list(self._positions.values()):
            if position.wallet in wanted:
                await self._announce(session, position)

    async def _announce(self, session: _Session, position: SimPosition) -> None:
        """``balance_update`` + ``position_opened`` of ``position`` to ``session``."""
        problem = self._position_limit(session, position)
        if problem is not None:
            await self._send_error(session, "position_limit_reached", problem)
            return
        session.positions.add(position.position_id)
        await self._send(session, encode(position.balance_message()))
        await self._send(session, encode(position.opened_message()))

    def _position_limit(self, session: _Session, position: SimPosition) -> str | None:
        cap = self.limits.max_positions_per_session
        if cap and len(session.positions) >= cap:
            return f"max_positions_per_session {cap} reached"
        cap = self.limits.max_positions_per_wallet
        held = [self._positions.get(pid) for pid in session.positions]
        same_wallet = sum(1 for p in held if p is not None and p.wallet == position.wallet)
        if cap and same_wallet >= cap:
            return f"max_positions_per_wallet {cap} reached for {position.wallet}"
        return None

    def _watchers(self, position: SimPosition) -> list[_Session]:
        return [s for s in self._sessions.values() if position.position_id in s.positions]

    def _strategy_for(self, position: SimPosition) -> Strategy | None:
        if position.strategy_override is not None:
            return position.strategy_override
        owners = [s for s in self._watchers(position) if s.strategy is not None]
        return max(owners, key=lambda s: s.configured_at).strategy if owners else None

    def _exit_outstanding(self, position: SimPosition) -> bool:
        pending = position.pending
        if pending is None:
            return False
        return (self._resignal_after_s is None
                or time.monotonic() - pending.sent_at < self._resignal_after_s)

    async def _evaluate_session(self, session: _Session) -> None:
        for pid in list(session.positions):
            position = self._positions.get(pid)
            if position is not None:
                await self._run_engine(position)

    async def _run_engine(self, position: SimPosition, *, chained: bool = False) -> None:
        if self._exit_outstanding(position):
            return
        strategy = self._strategy_for(position)
        decision = None if strategy is None else evaluate(position, strategy, chained=chained)
        if decision is not None:
            await self._emit_exit(position, decision, self._watchers(position),
                                  self._exit_slippage_bps)

    async def _emit_exit(self, position: SimPosition, decision: ExitDecision,
                         sessions: list[_Session], slippage_bps: int) -> None:
        sell_tokens = decision.sell_tokens if decision.sell_tokens is not None else position.tokens
        for session in sessions:
            try:
                tx = self._factory.build_exit(position, sell_tokens, slippage_bps,
                                              session.send_mode, session.tip_lamports)
            except Exception as exc:
                _log().error("sim_tx_build_failed", position_id=position.position_id,
                           error=repr(exc))
                await self._send_error(session, "tx_build_failed", str(exc))
                continue
            position.mark_signalled(decision, time.monotonic())
            message = position.exit_message(session.session_id, decision, tx, _now_ms())
            self.sent_exits.append(message)
            await self._send(session, encode(message))

    async def _tick(self, position: SimPosition, proceeds_units: int) -> None:
        position.observe(proceeds_units)
        sessions = self._watchers(position)
        now = _now_ms()
        await self._broadcast(sessions, position.pnl_message(now))
        if (position.ticks - 1) % self._liquidity_every == 0:
            await self._broadcast(sessions, position.liquidity_message(now))
        if self._trade_ticks:
            await self._broadcast(sessions, position.trade_message(now))
        await self._run_engine(position)

    # ------------------------------------------------------------------ scenario control API

    def position(self, position_id: int) -> SimPosition:
        """The tracked position ``position_id`` (KeyError when closed or forgotten)."""
        try:
            return self._positions[position_id]
        except KeyError:
            raise KeyError(f"no tracked position {position_id}") from None

    def tracks(self, position_id: int) -> bool:
        return position_id in self._positions

    def _resolve(self, target: int | str) -> list[SimPosition]:
        if isinstance(target, int):
            return [self.position(target)]
        found = [p for p in self._positions.values() if p.mint == target]
        if not found:
            raise KeyError(f"no tracked position for mint {target}")
        return found

    async def open_position(
        self, wallet: str, mint: str, tokens: int, entry_quote_units: int, *,
        token_account: str | None = None, market_type: str = "pump_swap",
        token_program: str = TOKEN_PROGRAM, mirror_source: str | None = None,
        pool_depth: float = 10.0,
    ) -> int:
        """Track a new holding; sessions configured for ``wallet`` get balance + opened."""
        position = SimPosition(
            position_id=next(self._position_ids), wallet=wallet, mint=mint,
            token_account=token_account or associated_token_account(wallet, mint, token_program),
            tokens=tokens, entry_quote_units=entry_quote_units,
            market_context=market_context_for(market_type, mint, wallet),
            opened_at_ms=_now_ms(), slot=next(self._slot), token_program=token_program,
            mirror_source=mirror_source, pool_depth=pool_depth,
        )
        self._positions[position.position_id] = position
        for session in list(self._sessions.values()):
            if session.configured and wallet in session.wallets:
                await self._announce(session, position)
        return position.position_id

    async def set_price(self, target: int | str, proceeds_units: int) -> None:
        """New proceeds (value of all tokens held) for a position id or every position
        of a mint: ``pnl_update`` (+ periodic ``liquidity_snapshot``, ``trade_tick``),
        then the strategy engine."""
        for position in self._resolve(target):
            await self._tick(position, proceeds_units)

    async def set_profit_pct(self, target: int | str, profit_pct: float) -> None:
        """Like ``set_price`` with proceeds at ``profit_pct`` over the cost basis."""
        for position in self._resolve(target):
            await self._tick(position, int(position.basis_units() * (100.0 + profit_pct) / 100))

    async def play_path(self, target: int | str, proceeds: Iterable[int],
                        interval_s: float = 0.0) -> None:
        """``set_price`` for each value of a price path, ``interval_s`` apart."""
        for value in proceeds:
            await self.set_price(target, value)
            if interval_s:
                await asyncio.sleep(interval_s)

    async def set_balance(self, position_id: int, tokens: int) -> None:
        """The chain says the position now holds ``tokens`` (the balance callback).

        Emits ``balance_update``; resolves an outstanding exit (a ladder level counts
        as done); closes the position at 0 with the last exit's reason; otherwise
        re-runs the engine (a ladder level ready right away fires as ``chained_tp``).
        """
        position = self.position(position_id)
        resolved = position.apply_balance(tokens)
        position.slot = next(self._slot)
        await self._broadcast(self._watchers(position), position.balance_message())
        if position.tokens == 0:
            await self.close_position(position_id, reason=position.last_exit_reason or "manual")
            return
        ladder_step = resolved is not None and resolved.decision.level_index is not None
        await self._run_engine(position, chained=ladder_step)

    async def note_sold(self, position_id: int, tokens_sold: int) -> None:
        """The client's sell of ``tokens_sold`` landed."""
        position = self.position(position_id)
        await self.set_balance(position_id, max(0, position.tokens - tokens_sold))

    async def graduate(self, position_id: int) -> None:
        """The token left its bonding curve: fires ``sell_on_graduation`` strategies."""
        position = self.position(position_id)
        position.graduated = True
        await self._run_engine(position)

    async def close_position(self, position_id: int, reason: str = "manual") -> None:
        """Stop tracking with ``position_closed`` to every session that tracked it."""
        position = self._positions.pop(position_id, None)
        if position is None:
            raise KeyError(f"no tracked position {position_id}")
        sessions = self._watchers(position)
        for session in sessions:
            session.positions.discard(position_id)
        await self._broadcast(sessions, position.closed_message(reason))

    def forget_position(self, position_id: int) -> None:
        """Stop tracking silently: no frame now, no re-emit after a reconnect."""
        self._positions.pop(position_id, None)
        for session in self._sessions.values():
            session.positions.discard(position_id)

    def _watching(self, watched_wallet: str) -> list[_Session]:
        return [s for s in self._sessions.values() if s.configured and s.watches(watched_wallet)]

    async def emit_mirror_buy(
        self, watched_wallet: str, mint: str, user_wallet: str, amount_lamports: int, *,
        market_type: str = "pump_swap",
    ) -> int:
        """``mirror_buy_signal`` to every session watching ``watched_wallet``; returns count."""
        sessions = self._watching(watched_wallet)
        for session in sessions:
            slippage = session.mirror_config.buy_slippage_bps or DEFAULT_MIRROR_SLIPPAGE_BPS
            tx = self._factory.build_mirror_buy(user_wallet, mint, amount_lamports, slippage,
                                                session.send_mode, session.tip_lamports)
            session.mirror_mints.add(mint)
            await self._send(session, encode(MirrorBuySignal(
                session_id=session.session_id, watched_wallet=watched_wallet, mint=mint,
                user_wallet=user_wallet, amount_quote_units=amount_lamports, input="SOL",
                unsigned_tx_b64=tx, slippage_bps=slippage, send_mode=session.send_mode,
                tip_lamports=session.tip_lamports,
                market_context=market_context_for(market_type, mint, user_wallet),
            )))
        return len(sessions)

    async def emit_mirror_buy_failed(self, watched_wallet: str, mint: str,
                                     reason: str = "no_route") -> int:
        message = MirrorBuyFailed(watched_wallet=watched_wallet, mint=mint, reason=reason)
        return await self._broadcast(self._watching(watched_wallet), message)

    async def emit_mirror_wallet_auto_disabled(
        self, watched_wallet: str, reason: str = "consecutive_loss_limit_reached",
        loss_count: int = 3,
    ) -> int:
        message = MirrorWalletAutoDisabled(watched_wallet=watched_wallet, reason=reason,
                                           loss_count=loss_count)
        return await self._broadcast(self._watching(watched_wallet), message)

    async def emit_raw(self, frame: bytes | str, *, binary: bool = False,
                       session_id: int | None = None) -> int:
        """Send ``frame`` unchanged (hostile-frame tests); invalid UTF-8 is allowed."""
        data = frame.encode() if isinstance(frame, str) else frame
        opcode = WSMsgType.BINARY if binary else WSMsgType.TEXT
        sessions = self._targets(session_id)
        for session in sessions:
            await self._send(session, data, opcode)
        return len(sessions)

    async def flood_low_priority(
        self, n: int, kinds: Sequence[str] = LOW_PRIORITY_KINDS, *,
        position_id: int | None = None, session_id: int | None = None,
    ) -> float:
        """Write ``n`` low-priority frames to each target session as fast as the
        socket takes them; returns the write rate in frames per second.

        Frames are encoded and framed once, then written a cycle at a time
        (one ``transport.write`` per ``len(cycle)`` frames) with flow control.
        """
        framed = [ws_text_frame(f) for f in self._flood_frames(kinds, position_id)]
        cycle = b"".join(framed)
        full, rest = divmod(n, len(framed))
        sessions = self._targets(session_id)
        started = time.perf_counter()
        for chunk in itertools.chain(itertools.repeat(cycle, full), [b"".join(framed[:rest])]):
            for session in sessions:
                await self._write_framed(session, chunk)
        elapsed = time.perf_counter() - started
        return n * len(sessions) / elapsed if elapsed > 0 else float("inf")

    async def _write_framed(self, session: _Session, data: bytes) -> None:
        """Already-framed websocket bytes straight to the socket; waits while the
        write buffer is above ``FLOOD_HIGH_WATER`` (the client is slower)."""
        transport = session.transport
        if not data or not self._answering or transport is None or transport.is_closing():
            return
        transport.write(data)
        await asyncio.sleep(0)
        while transport.get_write_buffer_size() > FLOOD_HIGH_WATER:
            if transport.is_closing():
                return
            await asyncio.sleep(0.001)

    def _flood_frames(self, kinds: Sequence[str], position_id: int | None,
                      variants: int = 64) -> list[bytes]:
        unknown = set(kinds) - set(LOW_PRIORITY_KINDS)
        if unknown or not kinds:
            raise ValueError(f"kinds must be among {LOW_PRIORITY_KINDS}, got {list(kinds)}")
        base = self._positions.get(position_id) if position_id is not None else None
        if base is None:
            base = SimPosition(position_id or 0, "", "", "", 1_000_000_000, 100_000_000,
                               market_context_for("pump_fun", "", ""), _now_ms())
        sample = SimPosition(base.position_id, base.wallet, base.mint, base.token_account,
                             base.tokens, base.entry_quote_units, base.market_context,
                             base.opened_at_ms)
        builders: dict[str, Callable[[int], ServerMessage]] = {
            "pnl_update": sample.pnl_message,
            "liquidity_snapshot": sample.liquidity_message,
            "trade_tick": sample.trade_message,
        }
        frames: list[bytes] = []
        for i in range(variants):
            sample.observe(base.entry_quote_units * (1000 + i) // 1000)
            frames.extend(encode(builders[kind](_now_ms())) for kind in kinds)
        return frames

    def _targets(self, session_id: int | None) -> list[_Session]:
        if session_id is None:
            return list(self._sessions.values())
        return [self._sessions[session_id]] if session_id in self._sessions else []

    async def drop_connections(self, code: int | None = None) -> int:
        """Close every session: abruptly (TCP abort) or with close ``code``."""
        sessions = list(self._sessions.values())
        for session in sessions:
            if code is None and session.transport is not None:
                session.transport.abort()
                continue
            try:
                await asyncio.wait_for(
                    session.ws.close(code=code or 1000, message=b"sim drop"), 2.0)
            except TimeoutError:
                if session.transport is not None:
                    session.transport.abort()
        return len(sessions)

    def set_half_open(self, enabled: bool) -> None:
        """Stop (or resume) answering: no reads (so no pongs) and no writes, sockets open."""
        self._answering = not enabled
        for session in self._sessions.values():
            if session.transport is None:
                continue
            if enabled:
                session.transport.pause_reading()
            else:
                session.transport.resume_reading()

    # ------------------------------------------------------------------ waiting (tests, demo)

    def session_ids(self) -> list[int]:
        return list(self._sessions)

    def configured_session_ids(self) -> list[int]:
        return [sid for sid, s in self._sessions.items() if s.configured]

    def auto_buys(self) -> set[tuple[str, str, int]]:
        """``(watched wallet, buying wallet, lamports)`` of every configured session's
        watch entries with ``auto_buy``."""
        return {(w.pubkey, w.auto_buy.wallet_pubkey, w.auto_buy.amount_quote_units)
                for s in self._sessions.values() if s.configured
                for w in s.watch_wallets if w.auto_buy is not None}

    def configured_wallets(self) -> set[str]:
        """Every wallet some configured session currently watches."""
        return {w for s in self._sessions.values() if s.configured for w in s.wallets}

    def positions_of(self, wallet: str) -> list[int]:
        """Ids of the tracked positions held by ``wallet``."""
        return [pid for pid, p in self._positions.items() if p.wallet == wallet]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds after some server event; TimeoutError if not."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_configured(self, count: int = 1, timeout: float = 5.0) -> list[int]:
        """Wait for ``count`` connected, configured sessions; returns their ids."""
        await self.wait_until(lambda: len(self.configured_session_ids()) >= count, timeout)
        return self.configured_session_ids()

    async def wait_received(self, kind: type[ClientMessage], count: int = 1,
                            timeout: float = 5.0) -> list[Received]:
        """Wait until ``count`` client messages of ``kind`` have arrived in total."""
        def matches() -> list[Received]:
            return [r for r in self.received if isinstance(r.message, kind)]
        await self.wait_until(lambda: len(matches()) >= count, timeout)
        return matches()

    # ------------------------------------------------------------------ sending

    async def _send(self, session: _Session, data: bytes,
                    opcode: WSMsgType = WSMsgType.TEXT) -> None:
        if not self._answering or session.ws.closed:
            return
        try:
            await session.ws.send_frame(data, opcode)
        except ConnectionResetError:
            _log().debug("sim_send_on_closed", session_id=session.session_id)

    async def _broadcast(self, sessions: Sequence[_Session], message: ServerMessage) -> int:
        data = encode(message)
        for session in sessions:
            await self._send(session, data)
        return len(sessions)

    async def _send_error(self, session: _Session, code: str, message: str) -> None:
        _log().info("sim_error_sent", session_id=session.session_id, code=code, detail=message)
        await self._send(session, encode(ErrorMsg(code=code, message=message)))


def _tag(message: ClientMessage) -> str:
    return str(type(message).__struct_config__.tag)


def _json_error(reason: str, status: int) -> web.Response:
    return web.json_response({"status": "error", "reason": reason}, status=status)


# --------------------------------------------------------------------------- standalone


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8082,
    *,
    tx_factory: TxFactory | None = None,
    api_keys: Collection[str] | None = None,
    registered_wallets: Iterable[str] = (),
    require_registration: bool = True,
    on_ready: Callable[[SimStreamServer], Awaitable[None] | None] | None = None,
) -> None:
    """Run a ``SimStreamServer`` until cancelled; ``on_ready`` gets it once bound."""
    server = SimStreamServer(host, port, tx_factory=tx_factory, api_keys=api_keys,
                             registered_wallets=registered_wallets,
                             require_registration=require_registration)
    await server.start()
    try:
        if on_ready is not None:
            result = on_ready(server)
            if result is not None:
                await result
        await asyncio.Event().wait()
    finally:
        await server.stop()


def _sim_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lasersell-bot sim",
        description="Run a local LaserSell-compatible stream and registration API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082, help="0 picks a free port")
    parser.add_argument("--api-key", action="append", dest="api_keys",
                        help="accepted x-api-key (repeatable; default: any non-empty key)")
    parser.add_argument("--wallet", action="append", dest="wallets", default=[],
                        help="wallet registered without a proof (repeatable)")
    parser.add_argument("--open-registration", action="store_true",
                        help="accept every wallet without registration")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"))
    return parser


def main_sim(argv: Sequence[str] | None = None) -> int:
    """``lasersell-bot sim``: serve until Ctrl-C; URLs on stdout, logs on stderr."""
    args = _sim_arg_parser().parse_args(argv)
    configure_logging(args.log_level, stream=sys.stderr)

    def announce(server: SimStreamServer) -> None:
        print(f"ws_url: {server.ws_url}", flush=True)
        print(f"api_url: {server.api_url}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(
            args.host, args.port, api_keys=args.api_keys, registered_wallets=args.wallets,
            require_registration=not args.open_registration, on_ready=announce))
    return 0
