"""Hostile and malformed input: frame decoder, session, stream reader, executor, real socket.

Generated with hypothesis (structured frames, mutations of valid frames, random bytes)
plus a seeded mutation loop for volume. ``LASERSELL_FUZZ_SCALE`` multiplies every case
count (``make fuzz`` sets it; the default keeps the suite fast). Each test adds what it
generated to ``CASES``; the total is printed when the module finishes (``pytest -s``).
"""

from __future__ import annotations

import ast
import asyncio
import base64
import contextlib
import fnmatch
import itertools
import json
import os
import random
import re
import shutil
import sqlite3
import ssl
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.transaction import VersionedTransaction
from structlog.testing import capture_logs

from lasersell_bot import landing
from lasersell_bot import protocol as p
from lasersell_bot import session as s
from lasersell_bot.config import (
    Config,
    GuardConfig,
    HttpConfig,
    JournalConfig,
    MirrorConfig,
    SendConfig,
    StreamConfig,
    WatchWalletConfig,
)
from lasersell_bot.daemon import Daemon
from lasersell_bot.executor import Executor
from lasersell_bot.journal import Journal
from lasersell_bot.metrics import Metrics
from lasersell_bot.stream import StreamClient, is_low_priority
from lasersell_bot.wallet import Wallets
from tests.txfactory import Scenario, honest_variants, hostile_variants
from tools.soak import Rig, until

SCALE = max(1, int(os.environ.get("LASERSELL_FUZZ_SCALE", "1")))
CASES: Counter[str] = Counter()

SCENARIO = Scenario()
WALLET = str(SCENARIO.me)
MINT = str(SCENARIO.mint)
TOKEN_ACCOUNT = str(SCENARIO.ata())
WATCHED = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"
HONEST_EXIT = honest_variants(SCENARIO)[0].tx
HOSTILE_TXS = [v.tx for v in hostile_variants(SCENARIO)]
# Every DEX trade form, router-shaped and lookup-table transactions of the factory.
HONEST_TXS = [v.tx for v in honest_variants(SCENARIO)]
MAX_TX_BYTES = GuardConfig().max_tx_bytes
KNOWN_TAGS = frozenset(str(cls.__struct_config__.tag) for cls in p.AnyServerMessage.__args__)
RESULT_TYPES = (*p.AnyServerMessage.__args__, p.UnknownMessage, p.MalformedFrame)
DECODER = p.server_decoder()


def examples(default: int) -> int:
    return default * SCALE


@pytest.fixture(scope="module", autouse=True)
def _report_cases() -> Iterator[None]:
    yield
    print(f"\nfuzz cases (tests/test_fuzz.py): {dict(CASES)} total={sum(CASES.values())}")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# --------------------------------------------------------------------------- the corpus

def exit_signal(position_id: int = 1, tx_b64: str | None = None,
                **extra: Any) -> p.ExitSignalWithTx:
    fields: dict[str, Any] = {
        "session_id": 1, "position_id": position_id, "wallet_pubkey": WALLET, "mint": MINT,
        "position_tokens": 1_000, "profit_units": -5, "reason": "stop_loss",
        "triggered_at_ms": int(time.time() * 1000),
        "unsigned_tx_b64": b64(HONEST_EXIT) if tx_b64 is None else tx_b64,
        "token_account": TOKEN_ACCOUNT} | extra
    return p.ExitSignalWithTx(**fields)


def mirror_signal(tx_b64: str, watched: str = WATCHED) -> p.MirrorBuySignal:
    return p.MirrorBuySignal(
        session_id=1, watched_wallet=watched, mint=MINT, user_wallet=WALLET,
        amount_quote_units=50_000_000, input="SOL", unsigned_tx_b64=tx_b64, slippage_bps=2500)


CORPUS: list[p.ServerMessage] = [
    p.HelloOk(session_id=1, server_time_ms=1, limits=p.Limits(hi_capacity=8)),
    p.Pong(server_time_ms=2),
    p.ErrorMsg(code="wallet_not_registered", message="register first"),
    p.BalanceUpdate(wallet_pubkey=WALLET, mint=MINT, tokens=5, token_account=TOKEN_ACCOUNT),
    p.PositionOpened(position_id=1, wallet_pubkey=WALLET, mint=MINT,
                     token_account=TOKEN_ACCOUNT, tokens=1_000, entry_quote_units=10,
                     market_context=p.MarketContext(
                         "pump_swap", pumpswap=p.PumpSwapContext(pool=MINT))),
    p.PositionClosed(position_id=1, wallet_pubkey=WALLET, mint=MINT, reason="manual"),
    exit_signal(sell_tokens=10, level_index=0),
    mirror_signal(b64(HONEST_EXIT)),
    p.MirrorBuyFailed(watched_wallet=WATCHED, mint=MINT, reason="no_route"),
    p.MirrorWalletAutoDisabled(watched_wallet=WATCHED, reason="losses", loss_count=3),
    p.PnlUpdate(position_id=1, profit_units=-3, proceeds_units=7, server_time_ms=3),
    p.LiquiditySnapshot(position_id=1, bands=[p.SlippageBand(100, 5, 50.0)],
                        liquidity_trend="stable", server_time_ms=4),
    p.TradeTick(position_id=1, time_ms=5, side="buy", token_amount=1, quote_amount=2,
                price_quote=2),
]
CORPUS_DICTS = [msgspec.to_builtins(m) for m in CORPUS]


def check_decoded(result: object) -> None:
    """What ``decode`` may return: a valid message that round-trips, or a named rejection."""
    assert isinstance(result, RESULT_TYPES), type(result)
    if isinstance(result, p.MalformedFrame):
        assert result.error
    elif isinstance(result, p.UnknownMessage):
        assert result.type not in KNOWN_TAGS
    else:
        assert DECODER.decode(p.encode(result)) == result


# --------------------------------------------------------------------------- strategies

def any_text(max_size: int) -> st.SearchStrategy[str]:
    """Text including lone surrogates (not valid UTF-8 once encoded)."""
    return st.text(st.characters(exclude_categories=[]), max_size=max_size)


json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**130), max_value=2**130),
    st.floats(allow_nan=False, allow_infinity=False), any_text(24))
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
type_values = st.one_of(st.sampled_from(sorted(KNOWN_TAGS)), st.text(max_size=16), json_leaves)
NUMBER_LITERALS = ["1e400", "-1e400", "9" * 400, "-" + "9" * 30, "18446744073709551616",
                   "-9223372036854775809", "0.5", "-0", "1E2", "0x10", "NaN", "Infinity",
                   "01", "1.", ".5", "+1"]


def compact(value: object) -> str:
    """JSON the way servers write it (no spaces), so the low-lane peek sees the tag."""
    return json.dumps(value, separators=(",", ":"))


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A valid frame with one field broken, retagged, duplicated, or cut short."""
    doc = dict(draw(st.sampled_from(CORPUS_DICTS)))
    key = draw(st.sampled_from(sorted(doc)))
    op = draw(st.sampled_from(["value", "delete", "extra", "retag", "number", "dupkey",
                               "nested_type"]))
    text = ""
    if op == "value":
        doc[key] = draw(json_values)
    elif op == "delete":
        del doc[key]
    elif op == "extra":
        doc[draw(st.text(max_size=10))] = draw(json_values)
    elif op == "retag":
        doc["type"] = draw(type_values)
    elif op == "number":
        literal = draw(st.sampled_from(NUMBER_LITERALS))
        doc[key] = "\x00NUM\x00"
        text = compact(doc).replace('"\\u0000NUM\\u0000"', literal)
    elif op == "dupkey":
        text = compact(doc)[:-1] + f',"type":{compact(draw(type_values))}}}'
    else:
        text = '{"meta":{"type":"pnl_update"},' + compact(doc)[1:]
    if not text:
        text = compact(doc) if draw(st.booleans()) else json.dumps(doc, ensure_ascii=False)
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 4)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


frames = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: compact(v).encode("utf-8", "surrogatepass")),
    st.fixed_dictionaries({"type": type_values}, optional={"x": json_values}).map(
        lambda d: compact(d).encode("utf-8", "surrogatepass")),
    mutated_frames(),
    any_text(200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


# --------------------------------------------------------------------------- decoder

@settings(max_examples=examples(1500), deadline=None)
@given(frames)
def test_decoder_never_raises_and_names_every_rejection(frame: bytes) -> None:
    CASES["decoder_hypothesis"] += 1
    check_decoded(DECODER.decode(frame))


@settings(max_examples=examples(300), deadline=None)
@given(any_text(80))
def test_decoder_accepts_str_frames_even_with_lone_surrogates(text: str) -> None:
    CASES["decoder_str"] += 1
    check_decoded(DECODER.decode(text))
    check_decoded(DECODER.decode('{"type":"' + text + '"}'))


def mutate(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 6)):
        roll = rng.random()
        if roll < 0.4 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif roll < 0.55:
            del data[rng.randrange(len(data) + 1):]
        elif roll < 0.75:
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.choice([b"{", b"[", b'"', b",", b":", b"\\", b"\xff",
                                      b'"type":"', b"null", b"1e999", b"-"])
        elif data:
            del data[rng.randrange(len(data))]
    return bytes(data)


def test_seeded_mutation_loop_never_raises() -> None:
    rng = random.Random(20240601)
    seeds = [p.encode(m) for m in CORPUS]
    outcomes: Counter[str] = Counter()
    for _ in range(examples(20_000)):
        result = DECODER.decode(mutate(rng.choice(seeds), rng))
        check_decoded(result)
        outcomes[type(result).__name__] += 1
    CASES["decoder_mutation_loop"] += sum(outcomes.values())
    assert outcomes["MalformedFrame"] > 0 and outcomes["UnknownMessage"] > 0
    assert sum(outcomes.values()) - outcomes["MalformedFrame"] - outcomes["UnknownMessage"] > 0


@pytest.mark.parametrize("depth", [10, 500, 5_000, 200_000])
@pytest.mark.parametrize("shape", ["array_in_known", "object", "array_top", "in_unknown"])
def test_deep_nesting_is_a_malformed_frame(depth: int, shape: str) -> None:
    nested = b"[" * depth + b"]" * depth
    frame = {
        "array_in_known": b'{"type":"pnl_update","position_id":' + nested + b"}",
        "object": b'{"a":' * depth + b"1" + b"}" * depth,
        "array_top": nested,
        "in_unknown": b'{"type":"brand_new","x":' + nested + b"}",
    }[shape]
    result = DECODER.decode(frame)
    CASES["decoder_deep"] += 1
    check_decoded(result)
    assert isinstance(result, p.MalformedFrame | p.UnknownMessage)


def test_ten_megabyte_frames_decode_without_raising() -> None:
    padding = "x" * (10 * 1024 * 1024)
    valid = json.dumps(CORPUS_DICTS[10] | {"padding": padding}).encode()
    assert isinstance(DECODER.decode(valid), p.PnlUpdate)  # unknown keys are ignored
    garbage = random.Random(1).randbytes(10 * 1024 * 1024)
    assert isinstance(DECODER.decode(garbage), p.MalformedFrame)
    huge_tx = exit_signal(tx_b64=b64(bytes(7 * 1024 * 1024)))
    decoded = DECODER.decode(p.encode(huge_tx))
    assert isinstance(decoded, p.ExitSignalWithTx)  # the guard refuses it (tx_too_large)
    CASES["decoder_10mb"] += 3


def test_integers_keep_their_exact_value() -> None:
    u64_max = 2**64 - 1
    decoded = DECODER.decode(p.encode(exit_signal(position_tokens=u64_max, profit_units=-(2**63))))
    assert isinstance(decoded, p.ExitSignalWithTx)
    assert (decoded.position_tokens, decoded.profit_units) == (u64_max, -(2**63))
    beyond = DECODER.decode(b'{"type":"pong","server_time_ms":' + b"9" * 400 + b"}")
    assert isinstance(beyond, p.Pong) and beyond.server_time_ms == int("9" * 400)
    too_long = DECODER.decode(b'{"type":"pong","server_time_ms":' + b"9" * 5000 + b"}")
    assert isinstance(too_long, p.MalformedFrame) and too_long.type == "pong"
    assert "$.server_time_ms" in too_long.error


class LandingLander:
    """Every transaction lands at once."""

    async def land(self, signed_tx: bytes, signature: str, blockhash: str,
                   on_submitted: Any = None) -> landing.Outcome:
        if on_submitted is not None:
            on_submitted("rpc", 0.1)
        return landing.Landed(slot=1)

    async def submit_once(self, signed_tx: bytes, signature: str) -> bool:
        return True


class Hooks:
    def position(self, position_id: int) -> None:
        return None

    def exit_started(self, position_id: int) -> None:
        pass

    def exit_finished(self, position_id: int, landed: bool, now_ms: int) -> None:
        pass


@pytest.mark.parametrize("numbers", [
    {"profit_units": 10**400},
    {"profit_units": -(10**400), "sell_tokens": 1, "position_tokens": 1},
    {"profit_units": 10**300, "sell_tokens": 10**300, "position_tokens": 1},
])
async def test_absurd_integers_do_not_wedge_a_landed_exit(
        tmp_path: Path, numbers: dict[str, int]) -> None:
    """The decoder keeps any integer exactly (Python ints); one past float range in a
    landed exit used to raise in the PnL metric and leave the position busy forever."""
    cfg = msgspec.structs.replace(pipeline_config(tmp_path),
                                  send=SendConfig(max_signal_age_ms=0, targets=["rpc"]))
    journal = Journal.open(tmp_path / "j.sqlite3")
    executor = Executor(cfg, wallets=Wallets([SCENARIO.wallet]), lander=LandingLander(),
                        journal=journal, send_to_stream=lambda _m: None, session=Hooks(),
                        metrics=Metrics())
    ready = asyncio.Event()
    task = asyncio.create_task(executor.run(ready))
    await ready.wait()
    signal = DECODER.decode(p.encode(exit_signal(42, **numbers)))
    assert isinstance(signal, p.ExitSignalWithTx)
    with capture_logs() as logs:
        executor.on_exit_signal(signal, time.perf_counter_ns())
        for _ in range(100):
            await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    journal.close()
    assert not events(logs, "flow_crashed")
    assert [e["state"] for e in events(logs, "tx_confirmed")] == ["landed"]
    assert not executor.is_busy(42)
    CASES["executor_absurd_ints"] += 1


# --------------------------------------------------------------------------- session


pids = st.integers(0, 4)
token_accounts = st.sampled_from([TOKEN_ACCOUNT, "acct-b", "acct-c"])
u64s = st.integers(0, 2**64 - 1)
session_messages = st.one_of(
    st.builds(p.HelloOk, session_id=u64s, server_time_ms=u64s),
    st.builds(p.PositionOpened, position_id=pids, wallet_pubkey=st.just(WALLET),
              mint=st.just(MINT), token_account=token_accounts, tokens=u64s,
              entry_quote_units=u64s, opened_at_ms=st.none() | st.integers(0, 10_000),
              watched=st.booleans()),
    st.builds(p.PositionClosed, position_id=pids, wallet_pubkey=st.just(WALLET),
              mint=st.just(MINT)),
    st.builds(p.BalanceUpdate, wallet_pubkey=st.just(WALLET), mint=st.just(MINT), tokens=u64s,
              token_account=st.none() | token_accounts),
    st.builds(p.PnlUpdate, position_id=pids, profit_units=st.integers(-(2**63), 2**63 - 1),
              proceeds_units=u64s, server_time_ms=u64s),
    st.builds(p.LiquiditySnapshot, position_id=pids,
              bands=st.lists(st.builds(p.SlippageBand, slippage_bps=st.integers(0, 10_000),
                                       max_tokens=u64s, coverage_pct=st.floats(0, 100)),
                             max_size=3),
              liquidity_trend=st.sampled_from(["growing", "stable", "draining", "?"]),
              server_time_ms=u64s),
    st.builds(p.TradeTick, position_id=pids, time_ms=u64s, side=st.text(max_size=4),
              token_amount=u64s, quote_amount=u64s, price_quote=u64s),
    st.builds(exit_signal, position_id=pids, tx_b64=st.text(max_size=20)),
    st.builds(mirror_signal, tx_b64=st.text(max_size=20)),
    st.builds(p.ErrorMsg, code=st.text(max_size=10), message=st.text(max_size=10)),
    st.builds(p.MirrorBuyFailed, watched_wallet=st.just(WATCHED), mint=st.just(MINT)),
    st.builds(p.Pong, server_time_ms=u64s),
    frames.map(DECODER.decode),
)
controls = st.one_of(
    st.tuples(st.just("tick"), st.integers(0, 3_000)),
    st.tuples(st.just("opened"), st.just(0)),
    st.tuples(st.just("lost"), st.just(0)),
    st.tuples(st.just("exit_started"), pids),
    st.tuples(st.just("exit_finished"), pids),
)


class SessionModel:
    """What the fuzz test knows independently of the session: frames fed, exits in flight."""

    def __init__(self) -> None:
        self.known = 0
        self.malformed = 0
        self.unknown = 0
        self.in_flight: Counter[int] = Counter()
        self.ready = False
        self.link_open = False


def _control(session: s.Session, model: SessionModel, op: str, arg: int, now: int,
             ) -> list[s.Action]:
    if op == "tick":
        return session.on_tick(now)
    if op == "opened":
        session.on_connection_opened(now)
        model.link_open, model.ready = True, False
    elif op == "lost":
        session.on_connection_lost(now)
        model.link_open = model.ready = False
    elif op == "exit_started":
        if session.position(arg) is not None:
            model.in_flight[arg] += 1
        session.exit_started(arg)
    elif model.in_flight[arg] > 0:
        model.in_flight[arg] -= 1
        session.exit_finished(arg, landed=bool(now % 2), now_ms=now)
    else:
        session.exit_finished(arg, landed=True, now_ms=now)
    return []


def _feed(session: s.Session, model: SessionModel, message: Any, now: int) -> list[s.Action]:
    actions = session.on_message(message, now)
    if isinstance(message, p.MalformedFrame):
        model.malformed += 1
    elif isinstance(message, p.UnknownMessage):
        model.unknown += 1
    else:
        model.known += 1
    if isinstance(message, p.HelloOk):
        model.link_open = model.ready = True
    if isinstance(message, p.ExitSignalWithTx):
        assert actions == [s.ExecuteExit(signal=message)]  # never lost, never doubled
    if isinstance(message, p.MirrorBuySignal):
        assert actions == [s.ExecuteMirrorBuy(signal=message)]
    return actions


def _check_actions(session: s.Session, model: SessionModel, actions: list[s.Action]) -> None:
    for action in actions:
        if isinstance(action, s.PositionClosedEvent | s.PositionDropped):
            pid = action.closed.position_id if isinstance(action, s.PositionClosedEvent) else (
                action.position_id)
            model.in_flight.pop(pid, None)
        if isinstance(action, s.Send) and isinstance(action.message, p.RequestExitSignal):
            pid = action.message.position_id
            assert pid is not None and model.ready
            position = session.position(pid)
            assert position is not None and not position.opened.watched
            assert model.in_flight[pid] == 0, "deadline fired while an exit was in flight"


def _check_state(session: s.Session, model: SessionModel) -> None:
    stats = session.stats()
    assert (stats.malformed_frames, stats.unknown_frames) == (model.malformed, model.unknown)
    assert sum(stats.frames_by_type.values()) == model.known
    for position in session.positions():
        assert session.position(position.position_id) is position
        by_account = session.position_by_token_account(position.token_account)
        assert by_account is None or by_account.token_account == position.token_account
    wake = session.next_wakeup_ms()
    assert wake is None or isinstance(wake, int)


@settings(max_examples=examples(600), deadline=None)
@given(st.lists(st.one_of(session_messages, controls), max_size=40),
       st.sampled_from([0.0, 0.5, 2.0]))
def test_session_survives_any_message_sequence(events: list[Any], deadline_sec: float) -> None:
    session = s.Session(s.DesiredConfig(
        wallet_pubkeys=(WALLET,), strategy=p.Strategy(target_profit_pct=10, stop_loss_pct=5),
        deadline_timeout_sec=deadline_sec, deadline_retry_sec=1.0), reconcile_sec=1.0)
    model = SessionModel()
    now = 0
    for event in events:
        CASES["session_events"] += 1
        if isinstance(event, tuple):
            now += event[1] if event[0] == "tick" else 0
            actions = _control(session, model, event[0], event[1], now)
        else:
            actions = _feed(session, model, event, now)
        _check_actions(session, model, actions)
        _check_state(session, model)


# ------------------------------------------------ stream -> session -> executor

POSITION_IDS = itertools.count(1_000)


def pipeline_config(tmp: Path) -> Config:
    return Config(
        stream=StreamConfig(url="ws://127.0.0.1:9/v1/ws", api_key="fuzz-api-key"),
        send=SendConfig(dry_run=True, max_signal_age_ms=0, targets=["rpc"]),
        mirror=MirrorConfig(enabled=True),
        watch_wallets=[WatchWalletConfig(pubkey=WATCHED, auto_buy_sol=0.1)],
        journal=JournalConfig(path=str(tmp / "journal.sqlite3")),
        http=HttpConfig(listen="off"),
        guard=GuardConfig(simulate="never"),
    )


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Daemon]:
    """The real daemon's routing (stream reader, session, executor, journal) without sockets."""
    structlog.reset_defaults()
    daemon = Daemon(pipeline_config(tmp_path), Wallets([SCENARIO.wallet]))
    ready = asyncio.Event()
    tasks = [asyncio.create_task(daemon.executor.run(ready)),
             asyncio.create_task(daemon.stream._consume_low_lane())]
    await ready.wait()
    yield daemon
    for task in tasks:
        assert not task.done(), "a daemon task died"
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    daemon.journal.close()


def expected_tx_refusal(tx_b64: str) -> str | None:
    """The guard reason a transaction must get if it is garbage; None if it decodes."""
    try:
        raw = base64.b64decode(tx_b64, validate=True)
    except ValueError:
        return "undecodable"
    if len(raw) > MAX_TX_BYTES:
        return "tx_too_large"
    try:
        VersionedTransaction.from_bytes(raw)
    except ValueError:
        return "undecodable"
    return None


def garbage_txs() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=60),
        st.binary(max_size=400).map(b64),
        st.binary(max_size=40).map(lambda b: b64(b)[:-1] + "!"),
        st.integers(0, len(HONEST_EXIT)).map(lambda n: b64(HONEST_EXIT[:n])),
        st.tuples(st.sampled_from([*HONEST_TXS, *HOSTILE_TXS]), st.randoms()).map(
            lambda pair: b64(mutate(pair[0], pair[1]))),
        st.sampled_from(HOSTILE_TXS).map(b64),
        st.sampled_from(HONEST_TXS).map(b64),
        st.just(b64(bytes(2000))),
    )


pipeline_frames = st.one_of(
    frames,
    st.builds(lambda tx: p.encode(exit_signal(next(POSITION_IDS), tx)), garbage_txs()),
    st.builds(lambda tx: p.encode(mirror_signal(tx)), garbage_txs()),
    st.builds(lambda tx: p.encode(mirror_signal(tx, watched=WALLET)), garbage_txs()),
    st.builds(lambda: p.encode(exit_signal(next(POSITION_IDS)))),
    st.builds(lambda: b'{"meta":{"type":"pnl_update"},'
              + p.encode(exit_signal(next(POSITION_IDS)))[1:]),
)


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def settle(daemon: Daemon) -> None:
    """Let the low lane and any dry-run flow finish."""
    for _ in range(200):
        await asyncio.sleep(0)
        if not len(daemon.stream.lane) and daemon.executor.in_flight == 0:
            return
    raise AssertionError("pipeline did not settle")


def check_exit_logs(signal: p.ExitSignalWithTx, logs: list[dict[str, Any]]) -> None:
    """One disposition per exit signal: refused with a reason, superseded, or signed."""
    refusals = [e["reason"] for e in events(logs, "guard_refused")]
    if signal.wallet_pubkey != WALLET:
        assert refusals == ["unknown_wallet"]
        return
    assert len(events(logs, "exit_signal")) == 1
    superseded = [e["reason"] for e in events(logs, "exit_signal_superseded")]
    signed = events(logs, "tx_confirmed")  # dry run: signed, journaled, not sent
    assert len(refusals) + len(superseded) + len(signed) == 1, (refusals, superseded, signed)
    assert all(superseded) and all(refusals)
    garbage = expected_tx_refusal(signal.unsigned_tx_b64)
    if garbage is not None and not superseded:
        assert refusals == [garbage]


def check_frame_logs(frame: bytes, logs: list[dict[str, Any]]) -> None:
    expected = p.server_decoder().decode(frame)
    if isinstance(expected, p.MalformedFrame):
        assert [e["error"] for e in events(logs, "frame_malformed")] == [expected.error]
    elif isinstance(expected, p.UnknownMessage):
        assert [e["type"] for e in events(logs, "frame_unknown_type")] == [expected.type]
    elif isinstance(expected, p.ExitSignalWithTx):
        check_exit_logs(expected, logs)
    elif isinstance(expected, p.MirrorBuySignal):
        assert len(events(logs, "mirror_buy_result_sent")) == 1  # always reported
        refusals = events(logs, "guard_refused")
        assert all(e["reason"] for e in refusals)


@settings(max_examples=examples(600), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frame=pipeline_frames)
async def test_every_frame_through_the_daemon_is_handled_and_logged(
        pipeline: Daemon, frame: bytes) -> None:
    CASES["pipeline_frames"] += 1
    with capture_logs() as logs:
        pipeline.stream._on_frame(frame)
        await settle(pipeline)
    assert not events(logs, "high_lane_handler_failed")
    assert not events(logs, "low_lane_handler_failed")
    assert not events(logs, "flow_crashed")
    check_frame_logs(frame, logs)


async def test_exit_signal_with_a_nested_type_key_is_executed_not_parked(
        pipeline: Daemon) -> None:
    """peek_type finds the first ``"type":"``: a nested one must not send an exit
    signal down the drop-oldest low lane, where its actions were discarded."""
    frame = b'{"meta":{"type":"pnl_update"},' + p.encode(exit_signal(7))[1:]
    assert not is_low_priority(frame)
    with capture_logs() as logs:
        pipeline.stream._on_frame(frame)
        await settle(pipeline)
    assert [e["position_id"] for e in events(logs, "exit_signal")] == [7]
    assert len(events(logs, "tx_confirmed")) == 1


async def test_garbage_exit_transactions_are_refused_journaled_and_logged(
        pipeline: Daemon) -> None:
    rng = random.Random(7)
    garbage = ["not base64!", "", "AAAA", b64(b"\x00"), b64(HONEST_EXIT[:-1]),
               b64(HONEST_EXIT + b"\x00"), b64(rng.randbytes(300)), b64(bytes(64)) + "="]
    garbage += [b64(mutate(HONEST_EXIT, rng)) for _ in range(examples(200))]
    garbage = [g for g in garbage if expected_tx_refusal(g) == "undecodable"]
    assert len(garbage) > 100
    with capture_logs() as logs:
        for tx in garbage:
            pipeline.stream._on_frame(p.encode(exit_signal(next(POSITION_IDS), tx)))
        await settle(pipeline)
    CASES["executor_garbage_tx"] += len(garbage)
    signal_ids = [e["signal_id"] for e in events(logs, "exit_signal")]
    refusals = events(logs, "guard_refused")
    assert len(signal_ids) == len(garbage) == len(refusals)
    assert {e["reason"] for e in refusals} == {"undecodable"}
    assert all(e["detail"] for e in refusals)
    assert pipeline.journal.flush(10)
    with sqlite3.connect(pipeline.journal.path) as db:
        rows = dict(db.execute("SELECT signal_id, reason FROM guard_checks WHERE ok = 0"))
        signals = {row[0] for row in db.execute("SELECT id FROM signals WHERE kind = 'exit'")}
    assert set(signal_ids) <= signals
    assert {rows[i] for i in signal_ids} == {"undecodable"}


# ------------------------------------------------ real socket: SimWorld and the running daemon

SOCKET_FRAMES = [
    b"\x00\xff garbage", b"{", b"[]", b'{"type":"brand_new_type","x":1}',
    b'{"type":"exit_signal_with_tx"}', b'{"type":"pnl_update","position_id":"x"}',
    b'{"type":"x","a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"a":' * 100_000, b'{"type":"pong","server_time_ms":1}\xff\xfe',
    json.dumps({"type": "hello_ok", "session_id": -1, "server_time_ms": "soon"}).encode(),
]


async def test_hostile_frames_over_a_real_socket_then_a_normal_exit(tmp_path: Path) -> None:
    """Garbage, deep nesting, invalid UTF-8, binary frames, a garbage exit transaction and
    a 10 MB frame (past aiohttp's 4 MB max_msg_size: closed with 1009) reach the running
    daemon over loopback; it reconnects and still executes a normal exit afterwards."""
    rig = Rig(tmp_path)
    daemon = await rig.start()
    try:
        with capture_logs() as logs:
            pid = await rig.open()
            assert await until(lambda: daemon.session.position(pid) is not None, 5)
            for frame in SOCKET_FRAMES:
                await rig.world.stream.emit_raw(frame)
                await rig.world.stream.emit_raw(frame, binary=True)
            garbage_exit = p.encode(exit_signal(pid, "bm90IGEgdHJhbnNhY3Rpb24=")
                                    ).replace(MINT.encode(), rig.world.stream.position(
                                        pid).mint.encode()).replace(
                                            WALLET.encode(), str(rig.wallet).encode())
            await rig.world.stream.emit_raw(garbage_exit)
            # Refused as undecodable, the daemon asks for a fresh signal, which lands.
            assert await until(lambda: not rig.world.is_tracked(pid), 15)
            second = await rig.open()
            assert await until(lambda: daemon.session.position(second) is not None, 5)
            reconnects = daemon.stream.state.reconnects
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(rig.world.stream.emit_raw(b"x" * (10 * 1024 * 1024)), 10)
            assert await until(lambda: daemon.stream.state.reconnects > reconnects
                               and rig.connected(), 15)
            await rig.world.set_profit_pct(second, -25.0)
            assert await until(lambda: not rig.world.is_tracked(second), 15)
            assert await until(lambda: daemon.metrics.confirmations.get("landed") == 2, 5)
        landed = [(e["position_id"], e["reason"]) for e in events(logs, "tx_confirmed")]
        assert landed == [(pid, "manual"), (second, "stop_loss")]
        CASES["socket_frames"] += 2 * len(SOCKET_FRAMES) + 2
        assert [e["close_code"] for e in events(logs, "stream_disconnected")] == [1009]
        assert len(events(logs, "frame_malformed")) >= 2 * (len(SOCKET_FRAMES) - 1)
        assert all(e["error"] for e in events(logs, "frame_malformed"))
        assert [e["type"] for e in events(logs, "frame_unknown_type")] == ["brand_new_type"] * 2
        refused = [e["reason"] for e in events(logs, "guard_refused")]
        assert refused == ["undecodable"]
        assert daemon.metrics.frames_malformed.get() >= 2 * (len(SOCKET_FRAMES) - 1)
    finally:
        assert await rig.stop() == 0


# ------------------------------------------------ man in the middle: TLS is verified

PACKAGE = Path(__file__).resolve().parents[1] / "lasersell_bot"
TLS_OFF = ("ssl=False", "verify_ssl", "CERT_NONE", "check_hostname", "_create_unverified_context")


def test_nothing_in_the_package_disables_tls_verification() -> None:
    offenders = [f"{path.name}: {needle}" for path in PACKAGE.rglob("*.py")
                 for needle in TLS_OFF if needle in path.read_text()]
    assert offenders == []


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return key, cert


async def test_a_stream_server_with_an_untrusted_certificate_is_never_spoken_to(
        self_signed: tuple[Path, Path]) -> None:
    """A man in the middle with a certificate the system does not trust gets no
    configure and no API key: aiohttp verifies certificates and nothing turns it off."""
    upgrades: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        upgrades.append(request.headers.get("x-api-key", ""))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        return ws

    app = web.Application()
    app.router.add_get("/v1/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(self_signed[1], self_signed[0])
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    client = StreamClient(StreamConfig(url=f"wss://127.0.0.1:{port}/v1/ws",
                                       api_key="secret-api-key-123", connect_timeout_sec=2),
                          configure_messages=list, on_high=lambda *_: None,
                          on_low=lambda *_: None, metrics=Metrics())
    task = asyncio.create_task(client.run())
    try:
        assert await until(lambda: "certificate verify failed" in client.state.last_error, 10)
    finally:
        await client.stop()
        await asyncio.wait_for(task, 10)
        await runner.cleanup()
    assert upgrades == [] and not client.state.connected


# ------------------------------------------------ SECURITY.md names only real tests and cases

SECURITY = Path(__file__).resolve().parents[1] / "SECURITY.md"


def test_every_test_named_in_security_md_exists() -> None:
    text = SECURITY.read_text()
    cited = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text))
    assert len(cited) >= 40
    root = SECURITY.parent
    for file, name in sorted(cited):
        tree = ast.parse((root / file).read_text())
        defined = {node.name for node in ast.walk(tree)
                   if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
        assert name in defined, f"SECURITY.md cites {file}::{name}, which does not exist"


def test_every_guard_case_named_in_security_md_exists() -> None:
    from tests.test_guard_properties import HOSTILE

    names = [v.name for v in HOSTILE]
    clauses = re.findall(r"cases? ((?:`[\w*]+`[,;]?\s*(?:and\s+)?)+)", SECURITY.read_text())
    patterns = [p for clause in clauses for p in re.findall(r"`([\w*]+)`", clause)]
    assert len(patterns) >= 30
    missing = [p for p in patterns if not fnmatch.filter(names, p)]
    assert missing == []
