"""The simulator stream server over real loopback sockets, with aiohttp as the client.

Covers the handshake, wallet registration, configure validation, the strategy
engine's exits (TP, SL, trailing, ladder, manual), live strategy updates, close,
reconnect re-emit, mirror messages, hostile frames and the low-priority flood.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from solders.compute_budget import set_compute_unit_limit
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from lasersell_bot.protocol import (
    AutoBuy,
    BalanceUpdate,
    ClientMessage,
    ClosePosition,
    Configure,
    ErrorMsg,
    ExitSignalWithTx,
    HelloOk,
    Limits,
    LiquiditySnapshot,
    MirrorBuyFailed,
    MirrorBuyResult,
    MirrorBuySignal,
    MirrorConfig,
    MirrorWalletAutoDisabled,
    Ping,
    PnlUpdate,
    Pong,
    PositionClosed,
    PositionOpened,
    RequestExitSignal,
    ServerMessage,
    Strategy,
    TakeProfitLevel,
    TradeTick,
    UpdatePositionStrategy,
    UpdateStrategy,
    UpdateWallets,
    UpdateWatchWallets,
    WatchWallet,
    encode,
    server_decoder,
)
from lasersell_bot.sim.scenario import (
    SimPosition,
    associated_token_account,
    evaluate,
    market_context_for,
    price_path,
    share_of,
    slippage_bands,
    validate_strategy,
)
from lasersell_bot.sim.stream_server import SimStreamServer

MEMO = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
KEY = {"x-api-key": "test-key"}
TP_SL = Strategy(target_profit_pct=50, stop_loss_pct=20)
ENTRY = 100_000_000
TOKENS = 1_000_000


# --------------------------------------------------------------------------- helpers


def unsigned_v0(wallet: str, memo: str) -> str:
    """A real unsigned v0 transaction paid by ``wallet``: compute budget + memo."""
    payer = Pubkey.from_string(wallet)
    instructions = [set_compute_unit_limit(150_000),
                    Instruction(MEMO, memo.encode(), [AccountMeta(payer, True, False)])]
    message = MessageV0.try_compile(payer, instructions, [], Hash.new_unique())
    tx = VersionedTransaction.populate(message, [Signature.default()])
    return base64.b64encode(bytes(tx)).decode()


class RecordingTxFactory:
    """The test's ``TxFactory``: records every call, returns a real unsigned tx."""

    def __init__(self) -> None:
        self.exits: list[dict[str, Any]] = []
        self.buys: list[dict[str, Any]] = []

    def build_exit(self, position: SimPosition, sell_tokens: int, slippage_bps: int,
                   send_mode: str, tip_lamports: int) -> str:
        self.exits.append({"position_id": position.position_id, "sell_tokens": sell_tokens,
                           "slippage_bps": slippage_bps, "send_mode": send_mode,
                           "tip_lamports": tip_lamports})
        return unsigned_v0(position.wallet, f"sell {sell_tokens}")

    def build_mirror_buy(self, user_wallet: str, mint: str, amount_lamports: int,
                         slippage_bps: int, send_mode: str, tip_lamports: int) -> str:
        self.buys.append({"user_wallet": user_wallet, "amount": amount_lamports,
                          "slippage_bps": slippage_bps, "send_mode": send_mode})
        return unsigned_v0(user_wallet, f"buy {mint} {amount_lamports}")


def decode_tx(b64: str) -> VersionedTransaction:
    return VersionedTransaction.from_bytes(base64.b64decode(b64))


def new_wallet() -> str:
    return str(Keypair().pubkey())


class Client:
    """A websocket client that decodes server frames and waits for a given type."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.backlog: list[Any] = []
        self._decoder = server_decoder()

    async def send(self, message: ClientMessage) -> None:
        await self.ws.send_str(encode(message).decode())

    async def _next(self, timeout: float) -> Any:
        frame = await self.ws.receive(timeout=timeout)
        assert frame.type is aiohttp.WSMsgType.TEXT, f"not a text frame: {frame}"
        return self._decoder.decode(frame.data)

    async def expect(self, kind: type[ServerMessage], timeout: float = 3.0,
                     where: Callable[[Any], bool] = lambda m: True) -> Any:
        """The first message of ``kind`` (matching ``where``); others stay in the backlog."""
        for i, message in enumerate(self.backlog):
            if isinstance(message, kind) and where(message):
                return self.backlog.pop(i)
        async with asyncio.timeout(timeout):
            while True:
                message = await self._next(timeout)
                if isinstance(message, kind) and where(message):
                    return message
                self.backlog.append(message)

    async def expect_none(self, kind: type[ServerMessage], within: float = 0.2) -> None:
        with pytest.raises(TimeoutError):
            got = await self.expect(kind, timeout=within)
            pytest.fail(f"unexpected {got}")

    async def configure(self, wallets: list[str], strategy: Strategy = TP_SL,
                        **extra: Any) -> HelloOk:
        """Send configure, then wait until the server has processed it (ping/pong)."""
        await self.send(Configure(wallet_pubkeys=wallets, strategy=strategy, **extra))
        hello = await self.expect(HelloOk)
        await self.sync()
        return hello

    async def refused(self, wallets: list[str], strategy: Strategy = TP_SL,
                      **extra: Any) -> ErrorMsg:
        """Send a configure the server refuses: its error, then the socket closes."""
        await self.send(Configure(wallet_pubkeys=wallets, strategy=strategy, **extra))
        error: ErrorMsg = await self.expect(ErrorMsg)
        await self.expect(HelloOk)
        closing = await self.ws.receive(timeout=3)
        assert closing.type is aiohttp.WSMsgType.CLOSE, closing
        return error

    async def sync(self) -> None:
        """Messages sent so far have been handled once the next pong arrives."""
        await self.send(Ping(client_time_ms=0))
        await self.expect(Pong)


@pytest.fixture
def factory() -> RecordingTxFactory:
    return RecordingTxFactory()


@pytest.fixture
def wallet() -> str:
    return new_wallet()


@pytest.fixture
async def server(factory: RecordingTxFactory, wallet: str) -> AsyncIterator[SimStreamServer]:
    sim = SimStreamServer(tx_factory=factory, registered_wallets=[wallet])
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def connect(
    server: SimStreamServer, http: aiohttp.ClientSession
) -> AsyncIterator[Callable[[], Any]]:
    sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def open_client() -> Client:
        ws = await http.ws_connect(server.ws_url, headers=KEY)
        sockets.append(ws)
        return Client(ws)

    yield open_client
    for ws in sockets:
        await ws.close()


async def configured(connect: Callable[[], Any], wallet: str,
                     strategy: Strategy = TP_SL, **extra: Any) -> Client:
    client: Client = await connect()
    await client.configure([wallet], strategy, **extra)
    return client


async def opened(server: SimStreamServer, client: Client, wallet: str,
                 tokens: int = TOKENS) -> int:
    pid = await server.open_position(wallet, new_wallet(), tokens, ENTRY)
    await client.expect(PositionOpened, where=lambda m: m.position_id == pid)
    return pid


# --------------------------------------------------------------------------- handshake


async def test_missing_or_unknown_api_key_gets_401(http: aiohttp.ClientSession) -> None:
    async with SimStreamServer(api_keys={"good"}) as sim:
        for headers in ({}, {"x-api-key": "bad"}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(sim.ws_url, headers=headers)
            assert info.value.status == 401
        async with http.post(sim.api_url + "/v1/wallets/register", json={}) as resp:
            assert resp.status == 401
        ws = await http.ws_connect(sim.ws_url, headers={"x-api-key": "good"})
        assert isinstance(await Client(ws).expect(HelloOk), HelloOk)
        await ws.close()


async def test_hello_ok_on_open_with_increasing_session_ids(connect: Any) -> None:
    first = await (await connect()).expect(HelloOk)
    second = await (await connect()).expect(HelloOk)
    assert second.session_id == first.session_id + 1
    assert first.limits.max_wallets_per_session == 10
    assert first.limits.max_watch_wallets_per_session == 10
    assert abs(first.server_time_ms - time.time() * 1000) < 5000


async def test_configure_sent_before_reading_hello_ok(
    server: SimStreamServer, connect: Any, wallet: str
) -> None:
    pid = await server.open_position(wallet, new_wallet(), TOKENS, ENTRY)
    client = await connect()
    await client.send(Configure(wallet_pubkeys=[wallet], strategy=TP_SL))
    first = await client._next(3)
    assert isinstance(first, HelloOk)
    balance = await client.expect(BalanceUpdate)
    assert (balance.wallet_pubkey, balance.tokens) == (wallet, TOKENS)
    assert (await client.expect(PositionOpened)).position_id == pid


async def test_too_many_sessions_per_api_key(http: aiohttp.ClientSession) -> None:
    async with SimStreamServer(limits=Limits(max_sessions_per_api_key=1)) as sim:
        first = await http.ws_connect(sim.ws_url, headers=KEY)
        second = Client(await http.ws_connect(sim.ws_url, headers=KEY))
        error = await second.expect(ErrorMsg)
        assert error.code == "too_many_sessions"
        await first.close()
        await second.ws.close()


# --------------------------------------------------------------------------- registration


def proof(signer: Keypair, *, age_s: int = 0, named: str | None = None) -> dict[str, str]:
    wallet = str(signer.pubkey())
    message = f"lasersell-register:{named or wallet}:{int(time.time()) - age_s}"
    return {"wallet_pubkey": wallet, "message": message,
            "signature": str(signer.sign_message(message.encode()))}


async def register(server: SimStreamServer, http: aiohttp.ClientSession,
                   body: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with http.post(server.api_url + "/v1/wallets/register", json=body,
                         headers=KEY) as resp:
        return resp.status, await resp.json()


async def test_valid_registration_allows_configure(
    server: SimStreamServer, http: aiohttp.ClientSession, connect: Any
) -> None:
    signer = Keypair()
    status, body = await register(server, http, proof(signer))
    assert (status, body["status"]) == (200, "ok")
    client = await connect()
    await client.configure([str(signer.pubkey())])
    await client.send(Ping(client_time_ms=1))
    await client.expect(Pong)
    assert not [m for m in client.backlog if isinstance(m, ErrorMsg)]


def _stale(k: Keypair) -> dict[str, str]:
    return proof(k, age_s=301)


def _future(k: Keypair) -> dict[str, str]:
    return proof(k, age_s=-600)


def _bad_signature(k: Keypair) -> dict[str, str]:
    return {**proof(k), "signature": str(Keypair().sign_message(b"other"))}


def _wrong_key(k: Keypair) -> dict[str, str]:
    return proof(k, named=new_wallet())


def _other_signer(k: Keypair) -> dict[str, str]:
    return {**proof(Keypair()), "wallet_pubkey": str(k.pubkey())}


def _garbage_pubkey(k: Keypair) -> dict[str, str]:
    return {**proof(k), "wallet_pubkey": "not-a-key"}


@pytest.mark.parametrize(("make", "reason", "status"), [
    (_stale, "proof_expired", 400),
    (_future, "proof_from_future", 400),
    (_bad_signature, "invalid_signature", 401),
    (_wrong_key, "pubkey_mismatch", 400),
    (_other_signer, "pubkey_mismatch", 400),
    (_garbage_pubkey, "invalid_wallet_pubkey", 400),
])
async def test_bad_registration_proofs_are_rejected(
    server: SimStreamServer, http: aiohttp.ClientSession, connect: Any,
    make: Callable[[Keypair], dict[str, str]], reason: str, status: int,
) -> None:
    signer = Keypair()
    got_status, body = await register(server, http, make(signer))
    assert got_status == status
    assert body["status"] == "error" and body["reason"].startswith(reason)
    client = await connect()
    assert (await client.refused([str(signer.pubkey())])).code == "wallet_not_registered"


async def test_malformed_registration_body(
    server: SimStreamServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(server.api_url + "/v1/wallets/register", data=b"{",
                         headers=KEY) as resp:
        assert resp.status == 400
        assert (await resp.json())["reason"].startswith("invalid_body")


async def test_hello_after_configure_order_and_error_in_its_place(
    http: aiohttp.ClientSession, wallet: str
) -> None:
    """The vendor SDKs' order: nothing until configure, then hello_ok; a refused
    configure gets the error where hello_ok would be, and the socket is closed."""
    async with SimStreamServer(registered_wallets=[wallet], hello_after_configure=True) as sim:
        ws = await http.ws_connect(sim.ws_url, headers=KEY)
        client = Client(ws)
        with pytest.raises(TimeoutError):
            await client._next(0.2)
        await client.send(Configure(wallet_pubkeys=[wallet], strategy=TP_SL))
        assert isinstance(await client._next(3), HelloOk)
        await ws.close()
        ws = await http.ws_connect(sim.ws_url, headers=KEY)
        client = Client(ws)
        await client.send(Configure(wallet_pubkeys=[new_wallet()], strategy=TP_SL))
        first = await client._next(3)
        assert isinstance(first, ErrorMsg) and first.code == "wallet_not_registered"
        closing = await ws.receive(timeout=3)
        assert closing.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 1008


async def test_refused_first_configure_closes_the_socket_in_either_order(
    server: SimStreamServer, connect: Any
) -> None:
    client = await connect()
    await client.expect(HelloOk)
    await client.send(Configure(wallet_pubkeys=[new_wallet()], strategy=TP_SL))
    assert (await client.expect(ErrorMsg)).code == "wallet_not_registered"
    closing = await client.ws.receive(timeout=3)
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert client.ws.close_code == 1008
    await server.wait_until(lambda: not server.session_ids())


async def test_refused_update_on_a_configured_session_keeps_it_open(
    connect: Any, wallet: str
) -> None:
    client = await configured(connect, wallet)
    await client.send(UpdateStrategy(strategy=Strategy(0, 0)))
    assert (await client.expect(ErrorMsg)).code == "invalid_strategy"
    await client.sync()


# --------------------------------------------------------------------------- configure validation


async def test_unregistered_wallet_is_named_in_error(connect: Any, wallet: str) -> None:
    stranger = new_wallet()
    client = await connect()
    error = await client.refused([wallet, stranger])
    assert error.code == "wallet_not_registered" and stranger in error.message


@pytest.mark.parametrize(("strategy", "message"), [
    (Strategy(target_profit_pct=0, stop_loss_pct=0), "at least one exit"),
    (Strategy(target_profit_pct=10, stop_loss_pct=-1), "stop_loss_pct must be >= 0"),
    (Strategy(target_profit_pct=-5, stop_loss_pct=1), "target_profit_pct must be >= 0"),
    (Strategy(0, 0, take_profit_levels=[TakeProfitLevel(10, 150)]), "sell_pct"),
    (Strategy(0, 0, take_profit_levels=[TakeProfitLevel(20, 50), TakeProfitLevel(10, 50)]),
     "previous level"),
])
async def test_invalid_strategy_errors(
    connect: Any, wallet: str, strategy: Strategy, message: str
) -> None:
    client = await connect()
    error = await client.refused([wallet], strategy)
    assert error.code == "invalid_strategy" and message in error.message
    client = await connect()
    await client.send(UpdateStrategy(strategy=TP_SL))
    assert (await client.expect(ErrorMsg)).code == "not_configured"


async def test_ladder_only_and_deadline_only_strategies_are_accepted(
    server: SimStreamServer, connect: Any, wallet: str
) -> None:
    ladder = Strategy(0, 0, take_profit_levels=[TakeProfitLevel(10, 50)])
    client = await configured(connect, wallet, ladder)
    await opened(server, client, wallet)
    other = await configured(connect, wallet, Strategy(0, 0), deadline_timeout_sec=30)
    await opened(server, other, wallet)
    assert not [m for m in client.backlog + other.backlog if isinstance(m, ErrorMsg)]


async def test_wallet_and_watch_limits(http: aiohttp.ClientSession) -> None:
    wallets = [new_wallet() for _ in range(3)]
    limits = Limits(max_wallets_per_session=2, max_watch_wallets_per_session=1,
                    max_positions_per_session=1)
    async with SimStreamServer(registered_wallets=wallets, limits=limits) as sim:
        client = Client(await http.ws_connect(sim.ws_url, headers=KEY))
        assert (await client.refused(wallets)).code == "too_many_wallets"
        watch = [WatchWallet(pubkey=new_wallet()) for _ in range(2)]
        client = Client(await http.ws_connect(sim.ws_url, headers=KEY))
        refusal = await client.refused(wallets[:1], watch_wallets=watch)
        assert refusal.code == "too_many_watch_wallets"
        client = Client(await http.ws_connect(sim.ws_url, headers=KEY))
        await client.send(Configure(wallets[:1], TP_SL))
        await sim.wait_configured()
        await sim.open_position(wallets[0], new_wallet(), TOKENS, ENTRY)
        await sim.open_position(wallets[0], new_wallet(), TOKENS, ENTRY)
        assert (await client.expect(ErrorMsg)).code == "position_limit_reached"
        await client.ws.close()


async def test_malformed_configure_names_the_field(connect: Any) -> None:
    client = await connect()
    await client.ws.send_str('{"type":"configure","wallet_pubkeys":["x"],'
                             '"strategy":{"target_profit_pct":"high","stop_loss_pct":1}}')
    error = await client.expect(ErrorMsg)
    assert error.code == "invalid_message" and "$.strategy.target_profit_pct" in error.message


# --------------------------------------------------------------------------- positions and exits


async def test_open_position_emits_balance_and_opened(
    server: SimStreamServer, connect: Any, wallet: str
) -> None:
    client = await configured(connect, wallet)
    mint = new_wallet()
    pid = await server.open_position(wallet, mint, TOKENS, ENTRY, market_type="raydium_cpmm")
    balance = await client.expect(BalanceUpdate)
    opened_msg = await client.expect(PositionOpened)
    ata = associated_token_account(wallet, mint)
    assert (balance.mint, balance.tokens, balance.token_account) == (mint, TOKENS, ata)
    assert (opened_msg.position_id, opened_msg.entry_quote_units) == (pid, ENTRY)
    assert opened_msg.token_account == ata
    context = opened_msg.market_context
    assert context.market_type == "raydium_cpmm" and context.raydium_cpmm is not None


async def test_take_profit_exit_with_decodable_tx_then_close(
    server: SimStreamServer, connect: Any, wallet: str, factory: RecordingTxFactory
) -> None:
    client = await configured(connect, wallet, send_mode="helius_sender", tip_lamports=5000)
    pid = await opened(server, client, wallet)
    await server.set_profit_pct(pid, 10)
    pnl = await client.expect(PnlUpdate)
    assert (pnl.proceeds_units, pnl.profit_units) == (ENTRY * 110 // 100, ENTRY // 10)
    assert len((await client.expect(LiquiditySnapshot)).bands) == 4
    assert (await client.expect(TradeTick)).position_id == pid
    await server.set_profit_pct(pid, 55)
    signal = await client.expect(ExitSignalWithTx)
    assert (signal.reason, signal.position_id, signal.position_tokens) == (
        "target_profit", pid, TOKENS)
    assert signal.profit_units == ENTRY * 55 // 100
    tx = decode_tx(signal.unsigned_tx_b64)
    assert str(tx.message.account_keys[0]) == wallet
    assert tx.signatures == [Signature.default()]
    assert factory.exits[-1] == {"position_id": pid, "sell_tokens": TOKENS,
                                 "slippage_bps": 1000, "send_mode": "helius_sender",
                                 "tip_lamports": 5000}
    await server.set_profit_pct(pid, 60)
    await client.expect_none(ExitSignalWithTx)
    await server.note_sold(pid, TOKENS)
    assert (await client.expect(BalanceUpdate, where=lambda m: m.tokens == 0)).mint
    closed = await client.expect(PositionClosed)
    assert (closed.position_id, closed.reason) == (pid, "target_profit")


@pytest.mark.parametrize(("strategy", "quiet_path", "trigger_pct", "reason"), [
    (TP_SL, [10, -19], -21, "stop_loss"),
    (Strategy(100, 50, trailing_stop_pct=5), [10, 30, 26], 24.5, "trailing_stop"),
    (Strategy(0, 0, breakeven_trail_pct=20), [25, 5], -0.5, "breakeven"),
])
async def test_exit_fires_only_once_the_threshold_is_crossed(
    server: SimStreamServer, connect: Any, wallet: str,
    strategy: Strategy, quiet_path: list[float], trigger_pct: float, reason: str,
) -> None:
    client = await configured(connect, wallet, strategy)
    pid = await opened(server, client, wallet)
    await server.play_path(pid, price_path(ENTRY, quiet_path))
    await client.expect_none(ExitSignalWithTx)
    await server.set_profit_pct(pid, trigger_pct)
    signal = await client.expect(ExitSignalWithTx)
    assert (signal.reason, signal.sell_tokens, signal.level_index) == (reason, None, None)


LADDER = Strategy(0, 0, take_profit_levels=[
    TakeProfitLevel(10, 50), TakeProfitLevel(20, 50), TakeProfitLevel(30, 100)])


async def test_ladder_levels_fire_in_order_on_remaining_tokens(
    server: SimStreamServer, connect: Any, wallet: str
) -> None:
    client = await configured(connect, wallet, LADDER)
    pid = await opened(server, client, wallet, tokens=1000)
    expected = [(15, 0, 500), (25, 1, 250), (35, 2, 250)]
    for profit, level, sell in expected:
        await server.set_profit_pct(pid, profit)
        signal = await client.expect(ExitSignalWithTx)
        assert (signal.reason, signal.level_index, signal.sell_tokens) == ("tp", level, sell)
        await server.set_profit_pct(pid, profit + 1)
        await client.expect_none(ExitSignalWithTx, within=0.1)
        await server.note_sold(pid, sell)
    closed = await client.expect(PositionClosed)
    assert closed.reason == "tp"


async def test_ladder_level_ready_after_a_sell_fires_chained(
    server: SimStreamServer, connect: Any, wallet: str
) -> None:
    client = await configured(connect, wallet, LADDER)
    pid = await opened(server, client, wallet, tokens=1000)
    await server.set_profit_pct(pid, 40)
    first = await client.expect(ExitSignalWithTx)
    await server.note_sold(pid, first.sell_tokens)
    second = await client.expect(ExitSignalWithTx)
    assert (first.reason, second.reason) == ("tp", "chained_tp")
    assert (second.level_index, second.sell_tokens) == (1, 250)


async def test_outstanding_exit_is_resignalled_only_after_the_timeout(
    factory: RecordingTxFactory, wallet: str, http: aiohttp.ClientSession
) -> None:
    async with SimStreamServer(tx_factory=factory, registered_wallets=[wallet],
                               resignal_after_s=0.2) as sim:
        client = Client(await http.ws_connect(sim.ws_url, headers=KEY))
        await client.configure([wallet])
        pid = await opened(sim, client, wallet)
        await sim.set_profit_pct(pid, 60)
        await client.expect(ExitSignalWithTx)
        await sim.set_profit_pct(pid, 61)
        await client.expect_none(ExitSignalWithTx, within=0.1)
        await asyncio.sleep(0.15)
        await sim.set_profit_pct(pid, 62)
        assert (await client.expect(ExitSignalWithTx)).reason == "target_profit"
        await client.ws.close()


async def test_request_exit_signal_by_id_token_account_and_legacy_alias(
    server: SimStreamServer, connect: Any, wallet: str, factory: RecordingTxFactory
) -> None:
    client = await configured(connect, wallet)
    pid = await opened(server, client, wallet)
    await client.send(RequestExitSignal(position_id=pid, slippage_bps=3000))
    by_id = await client.expect(ExitSignalWithTx)
    account = server.position(pid).token_account
    await client.send(RequestExitSignal(token_account=account))
    by_account = await client.expect(ExitSignalWithTx)
    await client.ws.send_str(f'{{"type":"sell_now","position_id":{pid},"slippage_bps":4000}}')
    legacy = await client.expect(ExitSignalWithTx)
    assert [s.reason for s in (by_id, by_account, legacy)] == ["manual", "manual", "sell_now"]
    assert [c["slippage_bps"] for c in factory.exits] == [3000, 1000, 4000]
    await client.send(RequestExitSignal(position_id=999))
    assert (await client.expect(ErrorMsg)).code == "position_not_found"


async def test_update_strategy_changes_thresholds_live(
    server: SimStreamServer, connect: Any, wallet: str
) -> None:
    client = await configured(connect, wallet)
    pid = await opened(server, client, wallet)
    await server.set_profit_pct(pid, 30)
    await client.expect_none(ExitSignalWithTx)
    await client.send(UpdateStrategy(strategy=Strategy(target_profit_pct=25, stop_loss_pct=10)))
    assert (await client.expect(ExitSignalWithTx)).reason == "target_profit"


async def test_update_position_strategy_overrides_one_position(
    server: SimStreamServer, connect: Any, wallet: str
) -> None:
    client = await configured(connect, wallet)
    first = await opened(server, client, wallet)
    second = await opened(server, client, wallet)
    await client.send(UpdatePositionStrategy(position_id=first,
                                             strategy=Strategy(target_profit_pct=10,
                                                               stop_loss_pct=5)))
    await server.wait_received(UpdatePositionStrategy)
    for pid in (first, second):
        await server.set_profit_pct(pid, 15)
    signal = await client.expect(ExitSignalWithTx)
    assert signal.position_id == first
    await client.expect_none(ExitSignalWithTx)


async def test_close_position_stops_signals(
    server: SimStreamServer, connect: Any, wallet: str
) -> None:
    client = await configured(connect, wallet)
    pid = await opened(server, client, wallet)
    await client.send(ClosePosition(token_account=server.position(pid).token_account))
    closed = await client.expect(PositionClosed)
    assert (closed.position_id, closed.reason) == (pid, "manual")
    with pytest.raises(KeyError):
        await server.set_profit_pct(pid, 80)
    await client.send(RequestExitSignal(position_id=pid))
    assert (await client.expect(ErrorMsg)).code == "position_not_found"


async def test_graduation_exit(server: SimStreamServer, connect: Any, wallet: str) -> None:
    client = await configured(connect, wallet, Strategy(0, 0, sell_on_graduation=True))
    pid = await opened(server, client, wallet)
    await server.set_profit_pct(pid, 300)
    await client.expect_none(ExitSignalWithTx, within=0.1)
    await server.graduate(pid)
    assert (await client.expect(ExitSignalWithTx)).reason == "graduation"


async def test_update_wallets_announces_added_and_drops_removed(
    server: SimStreamServer, connect: Any, wallet: str
) -> None:
    other = new_wallet()
    server.register_wallet(other)
    client = await configured(connect, wallet)
    pid = await server.open_position(other, new_wallet(), TOKENS, ENTRY)
    await client.send(UpdateWallets(wallet_pubkeys=[wallet, other]))
    assert (await client.expect(PositionOpened)).position_id == pid
    await client.send(UpdateWallets(wallet_pubkeys=[wallet]))
    await server.wait_received(UpdateWallets, count=2)
    await server.set_profit_pct(pid, 5)
    await client.expect_none(PnlUpdate)


# --------------------------------------------------------------------------- connections


async def test_reconnect_reemits_tracked_positions_not_forgotten_ones(
    server: SimStreamServer, connect: Any, wallet: str
) -> None:
    client = await configured(connect, wallet)
    kept = await opened(server, client, wallet)
    forgotten = await opened(server, client, wallet)
    server.forget_position(forgotten)
    assert await server.drop_connections() == 1
    closed = await client.ws.receive(timeout=3)
    assert closed.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE,
                           aiohttp.WSMsgType.ERROR)
    again = await configured(connect, wallet)
    assert (await again.expect(PositionOpened)).position_id == kept
    await again.expect_none(PositionOpened)


async def test_drop_with_close_code(server: SimStreamServer, connect: Any) -> None:
    client = await connect()
    await client.expect(HelloOk)
    await server.drop_connections(code=4000)
    frame = await client.ws.receive(timeout=3)
    assert frame.type is aiohttp.WSMsgType.CLOSE and frame.data == 4000


async def test_ping_pong_and_half_open(server: SimStreamServer, connect: Any) -> None:
    client = await connect()
    await client.send(Ping(client_time_ms=123))
    assert abs((await client.expect(Pong)).server_time_ms - time.time() * 1000) < 5000
    server.set_half_open(True)
    await client.send(Ping(client_time_ms=124))
    await client.expect_none(Pong, within=0.3)
    server.set_half_open(False)
    assert isinstance(await client.expect(Pong), Pong)
    assert [r.message.client_time_ms for r in await server.wait_received(Ping, 2)] == [123, 124]


async def test_unknown_type_gets_error_and_connection_stays(
    server: SimStreamServer, connect: Any
) -> None:
    client = await connect()
    await client.ws.send_str('{"type":"teleport","to":"moon"}')
    error = await client.expect(ErrorMsg)
    assert error.code == "unknown_message_type" and "teleport" in error.message
    await client.ws.send_str("not json")
    assert (await client.expect(ErrorMsg)).code == "invalid_message"
    await client.send(Ping(client_time_ms=1))
    assert isinstance(await client.expect(Pong), Pong)
    assert server.received[0].at <= server.received[-1].at


async def test_emit_raw_reaches_client_unchanged(server: SimStreamServer, connect: Any) -> None:
    client = await connect()
    await client.expect(HelloOk)
    assert await server.emit_raw('{"type":"from_the_future","x":1}') == 1
    frame = await client.ws.receive(timeout=3)
    assert frame.data == '{"type":"from_the_future","x":1}'


async def test_mirror_signals_and_results(
    server: SimStreamServer, connect: Any, wallet: str, factory: RecordingTxFactory
) -> None:
    watched = new_wallet()
    entry = WatchWallet(pubkey=watched, auto_buy=AutoBuy(wallet, 50_000_000))
    client = await configured(connect, wallet, watch_wallets=[entry],
                              mirror_config=MirrorConfig(buy_slippage_bps=1500))
    mint = new_wallet()
    assert await server.emit_mirror_buy(watched, mint, wallet, 50_000_000) == 1
    signal = await client.expect(MirrorBuySignal)
    assert (signal.watched_wallet, signal.slippage_bps, signal.input) == (watched, 1500, "SOL")
    assert str(decode_tx(signal.unsigned_tx_b64).message.account_keys[0]) == wallet
    assert factory.buys[-1]["amount"] == 50_000_000
    await client.send(MirrorBuyResult(mint=mint, success=True))
    await server.wait_received(MirrorBuyResult)
    assert server.mirror_results[-1][1] == MirrorBuyResult(mint=mint, success=True)
    await server.emit_mirror_buy_failed(watched, mint, "no_route")
    assert (await client.expect(MirrorBuyFailed)).reason == "no_route"
    await server.emit_mirror_wallet_auto_disabled(watched, loss_count=4)
    assert (await client.expect(MirrorWalletAutoDisabled)).loss_count == 4
    await client.send(UpdateWatchWallets(watch_wallets=[]))
    await server.wait_received(UpdateWatchWallets)
    assert await server.emit_mirror_buy(watched, mint, wallet, 1) == 0


async def test_mirror_result_for_a_mint_never_signalled_is_logged_and_counted(
    server: SimStreamServer, connect: Any, wallet: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from lasersell_bot.logs import configure_logging

    configure_logging("info", stream=sys.stdout)
    watched = new_wallet()
    client = await configured(connect, wallet, watch_wallets=[
        WatchWallet(pubkey=watched, auto_buy=AutoBuy(wallet, 1_000))])
    signalled, stranger = new_wallet(), new_wallet()
    await server.emit_mirror_buy(watched, signalled, wallet, 1_000)
    await client.expect(MirrorBuySignal)
    for mint in (stranger, signalled, signalled):
        await client.send(MirrorBuyResult(mint=mint, success=True))
    await server.wait_received(MirrorBuyResult, 3)
    assert [m.mint for _, m in server.mirror_results] == [signalled]
    assert [m.mint for _, m in server.unexpected_mirror_results] == [stranger, signalled]
    logged = capsys.readouterr().out
    assert logged.count("sim_mirror_result_unexpected") == 2 and stranger in logged


async def test_quote_fields_are_sent_as_integers(
    server: SimStreamServer, connect: Any, wallet: str
) -> None:
    """The vendor SDK skips a frame whose price is a JSON float: all integers."""
    client = await configured(connect, wallet)
    pid = await server.open_position(wallet, new_wallet(), 3 * TOKENS, ENTRY)
    await server.set_profit_pct(pid, 7.3)
    raw: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(3):
        while len(raw) < 3:
            frame = json.loads((await client.ws.receive()).data)
            if frame["type"] in ("position_opened", "pnl_update", "trade_tick"):
                raw[frame["type"]] = frame
    fields = [("position_opened", "token_price_quote"), ("position_opened", "market_cap_quote"),
              ("position_opened", "pool_liquidity_quote"), ("pnl_update", "token_price_quote"),
              ("pnl_update", "market_cap_quote"), ("trade_tick", "price_quote"),
              ("trade_tick", "quote_amount")]
    for kind, name in fields:
        assert type(raw[kind][name]) is int, (kind, name, raw[kind][name])
    # quote atomic units per whole token (10**6 base units): 0.1 SOL for 3 tokens
    assert raw["position_opened"]["token_price_quote"] == ENTRY * 10**6 // (3 * TOKENS)


async def test_flood_of_10k_low_priority_frames_is_delivered(
    server: SimStreamServer, connect: Any
) -> None:
    client = await connect()
    await client.expect(HelloOk)
    n = 10_000
    kinds: dict[str, int] = {}

    async def read_all() -> None:
        for _ in range(n):
            frame = await client.ws.receive(timeout=5)
            kind = type(client._decoder.decode(frame.data)).__name__
            kinds[kind] = kinds.get(kind, 0) + 1

    started = time.perf_counter()
    reader = asyncio.create_task(read_all())
    write_rate = await server.flood_low_priority(n)
    await reader
    delivered = n / (time.perf_counter() - started)
    print(f"\nflood: write {write_rate:,.0f} frames/s, delivered+decoded {delivered:,.0f}/s")
    assert kinds == {"PnlUpdate": n // 3 + 1, "LiquiditySnapshot": n // 3, "TradeTick": n // 3}


# --------------------------------------------------------------------------- standalone


async def test_serve_forever_serves_until_cancelled(http: aiohttp.ClientSession) -> None:
    from lasersell_bot.sim.stream_server import serve_forever

    ready: asyncio.Queue[SimStreamServer] = asyncio.Queue()
    task = asyncio.create_task(serve_forever(port=0, on_ready=ready.put_nowait))
    sim = await asyncio.wait_for(ready.get(), 5)
    ws = await http.ws_connect(sim.ws_url, headers=KEY)
    assert isinstance(await Client(ws).expect(HelloOk), HelloOk)
    await ws.close()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_main_sim_prints_its_urls() -> None:
    code = "from lasersell_bot.sim.stream_server import main_sim; main_sim(['--port', '0'])"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(2)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert lines[0].startswith("ws_url: ws://127.0.0.1:") and lines[0].endswith("/v1/ws")
    assert lines[1].startswith("api_url: http://127.0.0.1:")


# --------------------------------------------------------------------------- engine (pure)


def make_position(tokens: int = 1000) -> SimPosition:
    wallet, mint = new_wallet(), new_wallet()
    return SimPosition(1, wallet, mint, associated_token_account(wallet, mint), tokens, 1000,
                       market_context_for("pump_fun", mint, wallet), 0)


def test_engine_uses_cost_basis_of_remaining_tokens() -> None:
    position = make_position()
    position.observe(1200)
    assert position.profit_pct() == pytest.approx(20)
    position.apply_balance(500)
    assert (position.proceeds_units, position.basis_units()) == (600, 500)
    assert evaluate(position, Strategy(target_profit_pct=25, stop_loss_pct=0)) is None
    position.observe(700)
    decision = evaluate(position, Strategy(target_profit_pct=25, stop_loss_pct=0))
    assert decision is not None and decision.reason == "target_profit"


def test_stop_loss_wins_over_trailing_and_ladder_replaces_target() -> None:
    position = make_position()
    position.observe(1300)
    position.observe(700)
    both = Strategy(target_profit_pct=5, stop_loss_pct=25, trailing_stop_pct=5)
    assert evaluate(position, both).reason == "stop_loss"  # type: ignore[union-attr]
    position.observe(1100)
    ladder = Strategy(5, 0, take_profit_levels=[TakeProfitLevel(50, 10)])
    assert evaluate(position, ladder) is None


def test_ladder_level_with_its_own_trailing_waits_for_the_pullback() -> None:
    position = make_position()
    strategy = Strategy(0, 0, take_profit_levels=[TakeProfitLevel(10, 40, trailing_stop_pct=5)])
    position.observe(1200)
    assert evaluate(position, strategy) is None
    position.observe(1140)
    decision = evaluate(position, strategy)
    assert decision is not None and (decision.level_index, decision.sell_tokens) == (0, 400)


def test_share_of_is_exact_for_u64_amounts() -> None:
    big = 18_446_744_073_709_551_615
    assert share_of(big, 50) == big // 2
    assert share_of(big, 100) == big
    assert share_of(3, 10) == 1


def test_slippage_bands_grow_with_slippage_and_cap_at_position() -> None:
    bands = slippage_bands(1_000_000, 10.0)
    assert [b.slippage_bps for b in bands] == [100, 200, 500, 1000]
    assert [b.max_tokens for b in bands] == sorted(b.max_tokens for b in bands)
    assert bands[-1].max_tokens == 1_000_000 and bands[-1].coverage_pct == 100.0


def test_validate_strategy_accepts_valid_strategies() -> None:
    assert validate_strategy(TP_SL) is None
    assert validate_strategy(LADDER) is None
    assert validate_strategy(Strategy(0, 0), deadline_timeout_sec=45) is None
    assert validate_strategy(Strategy(0, 0, breakeven_trail_pct=-1)) == (
        "breakeven_trail_pct must be >= 0")
