"""Stream I/O over real loopback sockets against a scripted websocket server."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from lasersell_bot import protocol as p
from lasersell_bot.config import StreamConfig
from lasersell_bot.metrics import Metrics
from lasersell_bot.stream import (
    LANE_TYPE_CODES,
    Backoff,
    RegistrationError,
    StreamClient,
    low_lane_key,
    peek_type,
    register_wallets,
)

Script = Callable[[web.WebSocketResponse, "Server"], Awaitable[None]]

HELLO = p.encode(p.HelloOk(session_id=7, server_time_ms=1)).decode()
STRATEGY = p.Strategy(target_profit_pct=10.0, stop_loss_pct=5.0)


class Server:
    """A websocket endpoint that runs one scripted coroutine per connection."""

    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = scripts
        self.connections = 0
        self.received: list[list[dict[str, Any]]] = []
        self.connect_times: list[float] = []
        self.close_codes: list[int | None] = []
        self.api_keys: list[str | None] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.api_keys.append(request.headers.get("x-api-key"))
        self.connect_times.append(time.monotonic())
        self.received.append([])
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        await script(ws, self)
        self.close_codes.append(ws.close_code)
        return ws

    async def next_client_message(self, ws: web.WebSocketResponse) -> dict[str, Any] | None:
        msg = await ws.receive()
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return None
        decoded: dict[str, Any] = json.loads(msg.data)
        self.received[-1].append(decoded)
        return decoded

    async def collect_until_closed(self, ws: web.WebSocketResponse) -> None:
        while await self.next_client_message(ws) is not None:
            pass


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[list[Script]], Awaitable[Server]]]:
    runners: list[web.AppRunner] = []

    async def start(scripts: list[Script]) -> Server:
        server = Server(scripts)
        app = web.Application()
        app.router.add_get("/v1/ws", server.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        server.url = f"ws://127.0.0.1:{port}/v1/ws"
        runners.append(runner)
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


class Recorder:
    """Collects what the client hands to the daemon."""

    def __init__(self) -> None:
        self.high: list[tuple[Any, int]] = []
        self.low: list[Any] = []
        self.changes: list[bool] = []
        self.high_event = asyncio.Event()

    def on_high(self, message: Any, received_ns: int) -> None:
        self.high.append((message, received_ns))
        self.high_event.set()

    def on_low(self, message: Any) -> None:
        self.low.append(message)

    def of_type(self, cls: type) -> list[Any]:
        return [m for m, _ in self.high if isinstance(m, cls)]


def make_client(
    server: Server,
    recorder: Recorder,
    configure: Callable[[], list[p.ClientMessage]] | None = None,
    **cfg: Any,
) -> StreamClient:
    config = StreamConfig(url=server.url, api_key="test-key-123456", **cfg)
    return StreamClient(
        config,
        configure_messages=configure or (lambda: [p.Configure(wallet_pubkeys=["W1"],
                                                              strategy=STRATEGY)]),
        on_high=recorder.on_high,
        on_low=recorder.on_low,
        metrics=Metrics(),
        on_connection_change=recorder.changes.append,
    )


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def run_until(client: StreamClient, predicate: Callable[[], bool],
                    timeout: float = 5.0) -> None:
    task = asyncio.create_task(client.run())
    try:
        await wait_for(predicate, timeout)
    finally:
        await client.stop()
        await asyncio.wait_for(task, 5)


# ----------------------------------------------------------------------------- pure parts


def test_backoff_doubles_to_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(random.Random(1))
    delays = [backoff.next_delay_ms() for _ in range(8)]
    for delay, base in zip(delays, [100, 200, 400, 800, 1600, 2000, 2000, 2000], strict=True):
        assert base * 0.9 <= delay <= base * 1.1
    backoff.reset()
    assert 90 <= backoff.next_delay_ms() <= 110


def test_peek_type_reads_the_tag_without_decoding() -> None:
    assert peek_type(b'{"type":"pnl_update","position_id":1}') == b"pnl_update"
    assert peek_type(b'{"position_id":1,"type":"trade_tick"}') == b"trade_tick"
    assert peek_type(b'{"market_type":"pump_swap"}') is None
    assert peek_type(b"garbage") is None


# ----------------------------------------------------------------------------- handshake


async def test_configure_is_sent_before_hello_ok_is_read(serve: Any) -> None:
    async def configure_first(ws: web.WebSocketResponse, server: Server) -> None:
        first = await server.next_client_message(ws)
        assert first is not None and first["type"] == "configure"
        await ws.send_str(HELLO)
        await server.collect_until_closed(ws)

    server = await serve([configure_first])
    recorder = Recorder()
    client = make_client(server, recorder)
    await run_until(client, lambda: bool(recorder.of_type(p.HelloOk)))
    assert server.received[0][0]["wallet_pubkeys"] == ["W1"]
    assert server.api_keys == ["test-key-123456"]
    assert recorder.changes[0] is True


async def test_hello_ok_before_configure_also_works(serve: Any) -> None:
    async def hello_first(ws: web.WebSocketResponse, server: Server) -> None:
        await ws.send_str(HELLO)
        await server.collect_until_closed(ws)

    server = await serve([hello_first])
    recorder = Recorder()
    client = make_client(server, recorder)
    await run_until(client, lambda: bool(server.received and server.received[0]))
    assert server.received[0][0]["type"] == "configure"
    assert client.state.session_id == 7


async def test_error_frame_reaches_the_handler_with_code_and_message(serve: Any) -> None:
    async def refuse(ws: web.WebSocketResponse, server: Server) -> None:
        await server.next_client_message(ws)
        await ws.send_str(json.dumps({"type": "error", "code": "wallet_not_registered",
                                      "message": "wallet W1 is not registered"}))
        await server.collect_until_closed(ws)

    server = await serve([refuse])
    recorder = Recorder()
    client = make_client(server, recorder)
    await run_until(client, lambda: bool(recorder.of_type(p.ErrorMsg)))
    error = recorder.of_type(p.ErrorMsg)[0]
    assert (error.code, error.message) == ("wallet_not_registered", "wallet W1 is not registered")


async def test_stop_sends_a_close_frame(serve: Any) -> None:
    async def hello(ws: web.WebSocketResponse, server: Server) -> None:
        await ws.send_str(HELLO)
        await server.collect_until_closed(ws)

    server = await serve([hello])
    recorder = Recorder()
    client = make_client(server, recorder)
    await run_until(client, lambda: client.state.connected)
    await wait_for(lambda: bool(server.close_codes))
    assert server.close_codes == [1000]


# ----------------------------------------------------------------------------- lanes


async def test_exit_signal_overtakes_a_pnl_flood(serve: Any) -> None:
    flood = 10_000
    pnls = [p.encode(p.PnlUpdate(position_id=i, profit_units=-5, proceeds_units=10,
                                 server_time_ms=1)).decode() for i in range(flood)]
    exit_frame = json.dumps({
        "type": "exit_signal_with_tx", "session_id": 7, "position_id": 1, "wallet_pubkey": "W1",
        "mint": "M", "position_tokens": 5, "profit_units": 1, "reason": "stop_loss",
        "triggered_at_ms": 1, "unsigned_tx_b64": "AA=="})

    async def flood_then_exit(ws: web.WebSocketResponse, server: Server) -> None:
        await ws.send_str(HELLO)
        for pnl in pnls:  # one per position: nothing to coalesce
            await ws.send_str(pnl)
        await ws.send_str(exit_frame)
        await server.collect_until_closed(ws)

    server = await serve([flood_then_exit])
    recorder = Recorder()
    low_seen_at_exit: list[int] = []

    def on_high(message: Any, received_ns: int) -> None:
        if isinstance(message, p.ExitSignalWithTx):
            low_seen_at_exit.append(len(recorder.low))
        recorder.on_high(message, received_ns)

    client = make_client(server, recorder, low_priority_capacity=20_000)
    client._on_high = on_high
    await run_until(client, lambda: len(recorder.low) == flood and bool(low_seen_at_exit),
                    timeout=20)
    # The exit was handed over before the consumer had worked through the flood.
    assert low_seen_at_exit[0] < flood // 2
    assert all(isinstance(m, p.PnlUpdate) for m in recorder.low)


async def test_low_lane_drops_oldest_key_when_full_and_counts(serve: Any) -> None:
    async def burst(ws: web.WebSocketResponse, server: Server) -> None:
        await ws.send_str(HELLO)
        for i in range(500):
            await ws.send_str(p.encode(p.PnlUpdate(position_id=i, profit_units=0,
                                                   proceeds_units=0, server_time_ms=i)).decode())
        await server.collect_until_closed(ws)

    server = await serve([burst])
    recorder = Recorder()
    client = make_client(server, recorder, low_priority_capacity=8)
    client._consume_low_lane = _never_consume  # type: ignore[method-assign]
    await run_until(client, lambda: client._metrics.low_lane_dropped.get() == 492)
    assert len(client.lane) == 8
    newest = [p.server_decoder().decode(f) for f in client.lane.drain(8)]
    assert [m.position_id for m in newest] == list(range(492, 500))  # type: ignore[union-attr]


async def _never_consume() -> None:
    await asyncio.Event().wait()


async def test_flood_keeps_every_positions_latest_state(serve: Any) -> None:
    """PnL is state: a flood far beyond what the consumer reads (it is held back, then
    released) still leaves every position's pnl, liquidity and trade equal to the last
    frame sent for it, and what waits is bounded by types x positions."""
    positions, rounds = 300, 40
    last: dict[tuple[str, int], dict[str, Any]] = {}
    frames: list[str] = []
    for r in range(rounds):
        for pid in range(positions):
            pnl = {"type": "pnl_update", "position_id": pid, "profit_units": r * 1000 + pid,
                   "proceeds_units": r, "server_time_ms": r}
            liquidity = {"type": "liquidity_snapshot", "position_id": pid, "bands": [
                {"slippage_bps": 100, "max_tokens": r, "coverage_pct": 1.0}],
                "liquidity_trend": ("growing", "stable", "draining")[(r + pid) % 3],
                "server_time_ms": r}
            for body in (pnl, liquidity) if r % 7 or pid % 2 else (pnl,):
                frames.append(json.dumps(body, separators=(",", ":")))
                last[(body["type"], pid)] = body
        if r % 5 == 0:
            tick = {"type": "trade_tick", "position_id": r, "time_ms": r, "side": "buy",
                    "token_amount": r, "quote_amount": r, "price_quote": 150}
            compact = json.dumps(tick, separators=(",", ":"))
            frames.append(compact.replace('"position_id":', '"position_id": '))  # still keyed
            last[("trade_tick", r)] = tick

    async def flood(ws: web.WebSocketResponse, server: Server) -> None:
        await ws.send_str(HELLO)
        for text in frames:
            await ws.send_str(text)
        await ws.send_str('{"type":"pong","server_time_ms":1}')
        await server.collect_until_closed(ws)

    release = asyncio.Event()
    server = await serve([flood])
    recorder = Recorder()
    client = make_client(server, recorder, low_priority_capacity=2 * positions + 64)
    consume = client._consume_low_lane

    async def held_back() -> None:
        await release.wait()
        await consume()

    client._consume_low_lane = held_back  # type: ignore[method-assign]
    task = asyncio.create_task(client.run())
    try:
        await wait_for(lambda: bool(recorder.of_type(p.Pong)), timeout=20)
        assert len(client.lane) <= 2 * positions + rounds // 5 + 1
        release.set()
        await wait_for(lambda: len(client.lane) == 0, timeout=20)
    finally:
        await client.stop()
        await asyncio.wait_for(task, 5)
    seen: dict[tuple[str, int], Any] = {}
    for message in recorder.low:
        seen[(type(message).__struct_config__.tag, message.position_id)] = message
    assert set(seen) == set(last)
    for key, body in last.items():
        assert p.encode(seen[key]) == p.encode(p.server_decoder().decode(json.dumps(body)))
    metrics = client._metrics
    assert metrics.low_lane_dropped.get() == 0
    assert metrics.low_lane_coalesced.get() == len(frames) - len(recorder.low)


def test_lane_keys_read_type_and_top_level_position_id() -> None:
    types = len(LANE_TYPE_CODES)
    pnl, trade = LANE_TYPE_CODES[b"pnl_update"], LANE_TYPE_CODES[b"trade_tick"]
    assert low_lane_key(b'{"type":"pnl_update","position_id":42,"x":1}') == 42 * types + pnl
    assert low_lane_key(b'{"type":"trade_tick","a":[1],"position_id": 9 }') == (
        9 * types + trade)
    assert low_lane_key(b'{"type":"pnl_update","position_id":42}') == 42 * types + pnl
    assert len({low_lane_key(b'{"type":"%s","position_id":7}' % tag)
                for tag in LANE_TYPE_CODES}) == types
    nested = low_lane_key(b'{"type":"pnl_update","meta":{"position_id":1},"position_id":2}')
    unread = low_lane_key(b'{"type":"pnl_update","position_id":"x"}')
    assert nested is not None and nested < 0  # a key of its own: never coalesced
    assert unread is not None and unread < 0 and unread != nested
    assert low_lane_key(b'{"type":"exit_signal_with_tx","position_id":1}') is None
    assert low_lane_key(b'{"meta":{"type":"pnl_update"},"position_id":1}') is None


async def test_malformed_and_unknown_frames_do_not_break_the_connection(serve: Any) -> None:
    async def hostile(ws: web.WebSocketResponse, server: Server) -> None:
        await ws.send_str(HELLO)
        for frame in ['{"type":"pong","server_time_ms":"x"}', "not json", '{"type":"future"}',
                      '{"type":"pnl_update","position_id":"x"}',
                      '{"type":"pong","server_time_ms":5}']:
            await ws.send_str(frame)
        await server.collect_until_closed(ws)

    server = await serve([hostile])
    recorder = Recorder()
    client = make_client(server, recorder)
    await run_until(client, lambda: bool(recorder.of_type(p.Pong)))
    assert client._metrics.frames_malformed.get() == 3
    assert client._metrics.frames_unknown.get() == 1
    assert server.connections == 1


async def test_a_failing_handler_does_not_drop_the_connection(serve: Any) -> None:
    async def two_pongs(ws: web.WebSocketResponse, server: Server) -> None:
        await ws.send_str(HELLO)
        await ws.send_str('{"type":"pong","server_time_ms":1}')
        await ws.send_str('{"type":"pong","server_time_ms":2}')
        await server.collect_until_closed(ws)

    server = await serve([two_pongs])
    recorder = Recorder()

    def explode_on_first_pong(message: Any, received_ns: int) -> None:
        if isinstance(message, p.Pong) and message.server_time_ms == 1:
            raise RuntimeError("handler bug")
        recorder.on_high(message, received_ns)

    client = make_client(server, recorder)
    client._on_high = explode_on_first_pong
    await run_until(client, lambda: bool(recorder.of_type(p.Pong)))
    assert recorder.of_type(p.Pong)[0].server_time_ms == 2
    assert server.connections == 1


# ----------------------------------------------------------------------------- reconnect


async def test_reconnect_resends_the_current_configure_within_backoff(serve: Any) -> None:
    async def hello_then_drop(ws: web.WebSocketResponse, server: Server) -> None:
        await ws.send_str(HELLO)
        await server.next_client_message(ws)
        await ws.close(code=1011)

    async def hello_and_stay(ws: web.WebSocketResponse, server: Server) -> None:
        await ws.send_str(HELLO)
        await server.collect_until_closed(ws)

    server = await serve([hello_then_drop, hello_then_drop, hello_and_stay])
    recorder = Recorder()
    strategies = iter([5.0, 7.5, 9.0])

    def configure() -> list[p.ClientMessage]:
        sl = next(strategies)
        return [p.Configure(wallet_pubkeys=["W1"],
                            strategy=p.Strategy(target_profit_pct=10.0, stop_loss_pct=sl))]

    client = make_client(server, recorder, configure=configure)
    await run_until(client, lambda: server.connections == 3 and len(server.received[2]) > 0)
    sent = [conn[0]["strategy"]["stop_loss_pct"] for conn in server.received]
    assert sent == [5.0, 7.5, 9.0]
    gaps = [b - a for a, b in zip(server.connect_times, server.connect_times[1:], strict=False)]
    # Backoff resets after each hello_ok, so each gap is the first step: ~100 ms.
    assert all(0.085 <= gap < 1.0 for gap in gaps), gaps
    assert client.state.reconnects == 2
    assert recorder.changes[:3] == [True, False, True]


async def test_refused_connections_back_off_exponentially(serve: Any) -> None:
    async def refuse(ws: web.WebSocketResponse, server: Server) -> None:
        await ws.close(code=1008)

    server = await serve([refuse])
    recorder = Recorder()
    client = make_client(server, recorder)
    await run_until(client, lambda: server.connections >= 5, timeout=10)
    gaps = [b - a for a, b in zip(server.connect_times, server.connect_times[1:], strict=False)]
    for gap, base in zip(gaps, [0.1, 0.2, 0.4, 0.8], strict=False):
        assert base * 0.85 <= gap <= base * 1.1 + 0.25, gaps
    assert not recorder.changes


async def test_messages_sent_while_down_are_delivered_after_hello(serve: Any) -> None:
    async def hello_later(ws: web.WebSocketResponse, server: Server) -> None:
        await server.next_client_message(ws)
        await asyncio.sleep(0.1)
        await ws.send_str(HELLO)
        await server.collect_until_closed(ws)

    server = await serve([hello_later])
    recorder = Recorder()
    client = make_client(server, recorder)
    client.send(p.MirrorBuyResult(mint="M1", success=True))
    await run_until(client, lambda: len(server.received[0]) >= 2 if server.received else False)
    assert server.received[0][1] == {"type": "mirror_buy_result", "mint": "M1", "success": True}


# ----------------------------------------------------------------------------- keepalive


async def test_ping_measures_round_trip(serve: Any) -> None:
    async def answer_pings(ws: web.WebSocketResponse, server: Server) -> None:
        await ws.send_str(HELLO)
        while (msg := await server.next_client_message(ws)) is not None:
            if msg["type"] == "ping":
                await ws.send_str(p.encode(p.Pong(server_time_ms=msg["client_time_ms"])).decode())

    server = await serve([answer_pings])
    recorder = Recorder()
    client = make_client(server, recorder, ping_interval_sec=0.05)
    await run_until(client, lambda: client.state.rtt_ms is not None)
    assert 0 <= (client.state.rtt_ms or -1) < 1000
    assert any(m["type"] == "ping" for m in server.received[0])


async def test_silent_connection_is_declared_dead_and_replaced(serve: Any) -> None:
    async def go_silent(ws: web.WebSocketResponse, server: Server) -> None:
        await ws.send_str(HELLO)
        await server.collect_until_closed(ws)  # reads pings, never answers

    server = await serve([go_silent])
    recorder = Recorder()
    client = make_client(server, recorder, ping_interval_sec=0.1)
    started = time.monotonic()
    await run_until(client, lambda: server.connections >= 2, timeout=5)
    assert time.monotonic() - started >= 0.2  # not before two silent intervals


# ----------------------------------------------------------------------------- registration


async def _registration_app(statuses: list[tuple[int, dict[str, Any]]]) -> tuple[
        web.AppRunner, str, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    async def register(request: web.Request) -> web.Response:
        seen.append({"body": await request.json(), "key": request.headers.get("x-api-key")})
        status, body = statuses[min(len(seen) - 1, len(statuses) - 1)]
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post("/v1/wallets/register", register)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}", seen


PROOF = {"wallet_pubkey": "WalletA", "message": "lasersell-register:WalletA:1", "signature": "s"}


async def test_registration_posts_each_proof_with_the_api_key() -> None:
    runner, url, seen = await _registration_app([(200, {"status": "ok"})])
    try:
        async with aiohttp.ClientSession() as http:
            await register_wallets(http, url, "key-abcdef", [PROOF, dict(PROOF, wallet_pubkey="B")])
    finally:
        await runner.cleanup()
    assert sorted(s["body"]["wallet_pubkey"] for s in seen) == ["B", "WalletA"]
    assert {s["key"] for s in seen} == {"key-abcdef"}


async def test_registration_refusal_names_the_wallet_and_reason() -> None:
    runner, url, seen = await _registration_app(
        [(400, {"status": "error", "reason": "proof expired"})])
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(RegistrationError, match=r"WalletA.*proof expired") as caught:
                await register_wallets(http, url, "key-abcdef", [PROOF])
    finally:
        await runner.cleanup()
    assert len(seen) == 1  # a refusal is final, not retried
    assert caught.value.permanent


async def test_registration_that_never_succeeds_is_transient() -> None:
    runner, url, seen = await _registration_app([(503, {"status": "error"})])
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(RegistrationError, match="registration failed") as caught:
                await register_wallets(http, url, "key-abcdef", [PROOF], attempts=2)
    finally:
        await runner.cleanup()
    assert len(seen) == 2
    assert not caught.value.permanent  # exit 1: systemd restarts us later


async def test_registration_retries_server_errors() -> None:
    runner, url, seen = await _registration_app(
        [(503, {"status": "error"}), (500, {}), (200, {"status": "ok"})])
    try:
        async with aiohttp.ClientSession() as http:
            await register_wallets(http, url, "key-abcdef", [PROOF])
    finally:
        await runner.cleanup()
    assert len(seen) == 3


# ------------------------------------------------------------------------ against the simulator


@pytest.mark.parametrize("hello_after_configure", [False, True], ids=["docs", "sdk"])
async def test_refusal_then_registration_in_both_handshake_orders(
    hello_after_configure: bool,
) -> None:
    """Docs order (hello_ok on open, error after configure) and SDK order (the error
    in place of hello_ok): either way the daemon sees the refusal, the server closes
    the socket, the daemon registers again and the next session is configured."""
    from solders.keypair import Keypair

    from lasersell_bot.sim.stream_server import SimStreamServer

    wallet = str(Keypair().pubkey())
    async with SimStreamServer(hello_after_configure=hello_after_configure) as sim:
        recorder = Recorder()
        registrations: list[str] = []

        async def reregister() -> None:
            registrations.append(wallet)
            sim.register_wallet(wallet)

        client = StreamClient(
            StreamConfig(url=sim.ws_url, api_key="test-key-123456"),
            configure_messages=lambda: [p.Configure(wallet_pubkeys=[wallet], strategy=STRATEGY)],
            on_high=recorder.on_high, on_low=recorder.on_low, metrics=Metrics(),
            on_connection_change=recorder.changes.append, reregister=reregister)
        task = asyncio.create_task(client.run())
        try:
            await wait_for(lambda: bool(sim.configured_session_ids()))
            pid = await sim.open_position(wallet, str(Keypair().pubkey()), 1_000, 10_000)
            await wait_for(lambda: any(m.position_id == pid
                                       for m in recorder.of_type(p.PositionOpened)))
        finally:
            await client.stop()
            await asyncio.wait_for(task, 5)
    errors = recorder.of_type(p.ErrorMsg)
    assert [e.code for e in errors] == ["wallet_not_registered"]
    assert registrations == [wallet]
    assert client.state.reconnects >= 1
    hellos = recorder.of_type(p.HelloOk)
    assert len(hellos) == (1 if hello_after_configure else 2)
