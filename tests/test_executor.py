"""Executor flows with a scripted lander: real guard, real signing, real journal."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from lasersell_bot import executor as executor_module
from lasersell_bot import landing, protocol
from lasersell_bot import vet as vet_module
from lasersell_bot.config import Config
from lasersell_bot.executor import Executor
from lasersell_bot.guard.effects import AccountState
from lasersell_bot.guard.policy import SYSTEM_ID, TOKEN_ID
from lasersell_bot.guard.tables import LookupTables
from lasersell_bot.journal import Journal, JournalReader
from lasersell_bot.metrics import Metrics
from lasersell_bot.session import Position
from lasersell_bot.simulate import Simulation, Unverifiable
from lasersell_bot.wallet import Wallets
from tests.test_effects import token_data
from tests.txfactory import (
    BUY_LAMPORTS,
    TOKEN_2022,
    Scenario,
    build,
    buy_wsol_ixs,
    compute_budget,
    create_ata,
    exit_pumpfun_ixs,
    pump_buy,
    pump_sell,
    sol_transfer,
    tip,
)

S = Scenario()
WATCHED = "Watched1111111111111111111111111111111111111"


class ScriptedLander:
    """Returns the scripted outcomes in order; records every signed tx it is given."""

    def __init__(self, outcomes: list[landing.Outcome | Exception]) -> None:
        self.outcomes = outcomes
        self.landed: list[tuple[bytes, str]] = []
        self.submitted: list[str] = []
        self.submit_ok = True

    async def land(self, signed_tx: bytes, signature: str, blockhash: str,
                   on_submitted: Callable[[str, float], None] | None = None) -> landing.Outcome:
        self.landed.append((signed_tx, signature))
        if on_submitted is not None:
            on_submitted("rpc", 0.2)
        await asyncio.sleep(0)
        outcome = self.outcomes.pop(0) if self.outcomes else landing.Landed(slot=1)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def submit_once(self, signed_tx: bytes, signature: str) -> bool:
        self.submitted.append(signature)
        return self.submit_ok


class Hooks:
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.positions: dict[int, Position] = {}

    def position(self, position_id: int) -> Position | None:
        return self.positions.get(position_id)

    def exit_started(self, position_id: int) -> None:
        self.events.append(("started", position_id))

    def exit_finished(self, position_id: int, landed: bool, now_ms: int) -> None:
        self.events.append(("landed" if landed else "finished", position_id))


class Rig:
    def __init__(self, executor: Executor, lander: ScriptedLander, sent: list[Any],
                 hooks: Hooks, journal: Journal) -> None:
        self.executor, self.lander, self.sent = executor, lander, sent
        self.hooks, self.journal = hooks, journal

    def requests(self) -> list[protocol.RequestExitSignal]:
        return [m for m in self.sent if isinstance(m, protocol.RequestExitSignal)]

    def mirror_results(self) -> list[protocol.MirrorBuyResult]:
        return [m for m in self.sent if isinstance(m, protocol.MirrorBuyResult)]

    def states(self) -> list[str]:
        self.journal.flush(5)
        return [r.state for r in JournalReader(self.journal.path).recent_trades(50)]


def config(**overrides: Any) -> Config:
    raw: dict[str, Any] = {
        "send": {"max_retries": 2, "slippage_base_bps": 1000, "slippage_bump_bps": 500},
        "mirror": {"enabled": True},
        "guard": {"simulate": "never"},
        "watch_wallets": [{"pubkey": WATCHED, "auto_buy_sol": BUY_LAMPORTS / 1e9}],
    }
    for key, value in overrides.items():
        raw.setdefault(key, {}).update(value) if isinstance(value, dict) else raw.update(
            {key: value})
    return msgspec.convert(raw, Config)


@pytest.fixture
async def rig_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    tasks: list[asyncio.Task[None]] = []
    journals: list[Journal] = []

    async def make(outcomes: list[Any] | None = None, simulator: Any = None, **cfg: Any) -> Rig:
        lander = ScriptedLander(list(outcomes or []))
        sent: list[Any] = []
        hooks = Hooks()
        journal = Journal.open(tmp_path / f"j{len(journals)}.sqlite3")
        journals.append(journal)
        executor = Executor(config(**cfg), wallets=Wallets([S.wallet]), lander=lander,
                            journal=journal, send_to_stream=sent.append, session=hooks,
                            metrics=Metrics(), simulator=simulator)
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(executor.run(ready)))
        await ready.wait()
        return Rig(executor, lander, sent, hooks, journal)

    yield make
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for journal in journals:
        journal.close()


def exit_signal(tx: bytes | None = None, *, position_id: int = 1, level: int | None = None,
                age_ms: int = 0, reason: str = "stop_loss") -> protocol.ExitSignalWithTx:
    return protocol.ExitSignalWithTx(
        session_id=1, position_id=position_id, wallet_pubkey=str(S.me), mint=str(S.mint),
        position_tokens=1000, profit_units=10, reason=reason,
        triggered_at_ms=int(time.time() * 1000) - age_ms,
        unsigned_tx_b64=base64.b64encode(tx or build(S, exit_pumpfun_ixs(S))).decode(),
        level_index=level)


async def settle(rig: Rig, predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


# ----------------------------------------------------------------------------- exits


async def test_exit_is_signed_with_our_key_landed_and_journaled(rig_factory: Any) -> None:
    rig = await rig_factory()
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: rig.hooks.events[-1:] == [("landed", 1)])
    signed, signature = rig.lander.landed[0]
    tx = VersionedTransaction.from_bytes(signed)
    assert all(tx.verify_with_results())  # a real ed25519 signature over the message
    assert str(tx.signatures[0]) == signature
    assert rig.states() == ["landed"]
    assert rig.requests() == []


async def test_hostile_exit_is_refused_then_a_fresh_signal_requested(rig_factory: Any) -> None:
    rig = await rig_factory()
    drain = build(S, [*compute_budget(), pump_sell(S), sol_transfer(S.me, S.evil, 10**9)])
    rig.executor.on_exit_signal(exit_signal(drain), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.requests()))
    assert rig.lander.landed == []  # never signed, never sent
    assert rig.requests()[0].position_id == 1
    # effects verification is on by default: 1 SOL to a stranger is over any fee allowance
    assert rig.executor._metrics.guard_refusals.get("foreign_transfer") == 1  # static only


async def test_unknown_outcome_relands_the_same_bytes_never_a_new_sell(
        rig_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor_module, "UNKNOWN_RECHECK_SEC", 0.01)
    rig = await rig_factory([landing.Unknown(reason="rpc_unreachable"),
                             RuntimeError("socket blew up"), landing.Landed(slot=9)])
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: rig.hooks.events[-1:] == [("landed", 1)])
    signatures = {sig for _, sig in rig.lander.landed}
    assert len(rig.lander.landed) == 3 and len(signatures) == 1
    assert rig.requests() == []  # no replacement sell while the first might land


async def test_slippage_failure_bumps_slippage_other_failures_do_not(rig_factory: Any) -> None:
    slippage = landing.Failed(err={"InstructionError": [2, {"Custom": 6003}]}, slot=5)
    other = landing.Failed(err={"InstructionError": [2, {"Custom": 1}]}, slot=6)
    rig = await rig_factory([slippage, other])
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: len(rig.requests()) == 1)
    assert rig.requests()[0].slippage_bps == 1500
    rig.executor.on_exit_signal(exit_signal(reason="manual"), time.perf_counter_ns())
    await settle(rig, lambda: len(rig.requests()) == 2)
    assert rig.requests()[1].slippage_bps == 1500  # kept, not bumped again


async def test_a_second_signal_waits_for_the_live_sell(rig_factory: Any) -> None:
    gate = asyncio.Event()
    rig = await rig_factory()
    original = rig.lander.land

    async def slow_land(*args: Any, **kwargs: Any) -> landing.Outcome:
        await gate.wait()
        return await original(*args, **kwargs)

    rig.lander.land = slow_land  # type: ignore[method-assign]
    second_tx = build(S, [*compute_budget(price=300_000), pump_sell(S)])
    rig.executor.on_exit_signal(exit_signal(level=0), time.perf_counter_ns())
    rig.executor.on_exit_signal(exit_signal(second_tx, level=1), time.perf_counter_ns())
    await asyncio.sleep(0.05)
    assert rig.executor.in_flight == 1  # the second is queued, not signed beside the first
    gate.set()
    await settle(rig, lambda: len(rig.lander.landed) == 2 and rig.executor.in_flight == 0)


async def test_stale_signal_is_refused_and_replaced(rig_factory: Any) -> None:
    rig = await rig_factory(send={"max_signal_age_ms": 1000})
    rig.executor.on_exit_signal(exit_signal(age_ms=5000), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.requests()))
    assert rig.lander.landed == []
    assert rig.executor._metrics.guard_refusals.get("stale_signal") == 1


async def test_an_internal_error_does_not_leave_the_position_stuck(
        rig_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = await rig_factory()
    monkeypatch.setattr(vet_module, "check_transaction", _explode)
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.requests()))
    assert rig.executor._metrics.guard_refusals.get("internal_error") == 1
    assert rig.executor.is_busy(1)  # waiting for the fresh signal it asked for
    monkeypatch.undo()
    rig.executor.on_exit_signal(exit_signal(reason="manual"), time.perf_counter_ns())
    await settle(rig, lambda: rig.hooks.events[-1:] == [("landed", 1)])


def _explode(*_args: Any) -> None:
    raise ValueError("guard bug")


async def test_retries_end_with_give_up(rig_factory: Any) -> None:
    failed = landing.Failed(err={"InstructionError": [2, {"Custom": 1}]}, slot=1)
    rig = await rig_factory([failed, failed, failed])
    for n in range(3):
        rig.executor.on_exit_signal(exit_signal(reason="manual"), time.perf_counter_ns())
        await settle(rig, lambda n=n: len(rig.lander.landed) == n + 1)  # type: ignore[misc]
        await asyncio.sleep(0.02)
    await settle(rig, lambda: rig.hooks.events[-1:] == [("finished", 1)])
    assert len(rig.requests()) == 2  # max_retries = 2
    assert not rig.executor.is_busy(1)


async def test_dry_run_signs_but_never_sends(rig_factory: Any) -> None:
    rig = await rig_factory(send={"dry_run": True})
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: rig.hooks.events[-1:] == [("landed", 1)])
    assert rig.lander.landed == []
    assert rig.states() == ["dry_run"]


# ----------------------------------------------------------------------------- mirror buys


def mirror_signal(tx: bytes | None = None, *, amount: int = BUY_LAMPORTS,
                  watched: str = WATCHED, user_wallet: str = str(S.me),
                  quote_input: str = "SOL", slippage_bps: int = 2500,
                  ) -> protocol.MirrorBuySignal:
    return protocol.MirrorBuySignal(
        session_id=1, watched_wallet=watched, mint=str(S.mint), user_wallet=user_wallet,
        amount_quote_units=amount, input=quote_input, slippage_bps=slippage_bps,
        unsigned_tx_b64=base64.b64encode(tx or build(S, buy_wsol_ixs(S))).decode())


async def test_mirror_buy_is_submitted_and_reported_once(rig_factory: Any) -> None:
    rig = await rig_factory()
    rig.executor.on_mirror_signal(mirror_signal(), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.mirror_results()) and rig.executor.in_flight == 0)
    assert rig.mirror_results() == [protocol.MirrorBuyResult(mint=str(S.mint), success=True)]
    assert len(rig.lander.submitted) == 1


@pytest.mark.parametrize(
    ("signal_kwargs", "cfg", "reason"),
    [
        ({"watched": "Someone1111111111111111111111111111111111111"}, {},
         "mirror_not_configured"),
        ({"amount": BUY_LAMPORTS * 2}, {}, "buy_amount_mismatch"),
        ({}, {"mirror": {"enabled": False}}, "mirror_disabled"),
        ({"user_wallet": "Other11111111111111111111111111111111111111"}, {},
         "buy_wallet_mismatch"),
        ({"quote_input": "USD1"}, {}, "buy_input_unverifiable"),
    ],
)
async def test_refused_mirror_buys_report_failure_once(
        rig_factory: Any, signal_kwargs: dict[str, Any], cfg: dict[str, Any],
        reason: str) -> None:
    rig = await rig_factory(**cfg)
    rig.executor.on_mirror_signal(mirror_signal(**signal_kwargs), time.perf_counter_ns())
    assert rig.mirror_results() == [protocol.MirrorBuyResult(mint=str(S.mint), success=False)]
    assert rig.executor._metrics.guard_refusals.get(reason) == 1
    assert rig.lander.submitted == []


async def test_mirror_submit_failure_reports_failure(rig_factory: Any) -> None:
    rig = await rig_factory()
    rig.lander.submit_ok = False
    rig.executor.on_mirror_signal(mirror_signal(), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.mirror_results()) and rig.executor.in_flight == 0)
    assert rig.mirror_results() == [protocol.MirrorBuyResult(mint=str(S.mint), success=False)]


async def test_a_buy_may_spend_its_slippage_bound_but_not_more(rig_factory: Any) -> None:
    def pump_fun_buy(max_sol: int) -> bytes:
        return build(S, [*compute_budget(), create_ata(S, S.mint, TOKEN_2022),
                         pump_buy(S, max_sol, TOKEN_2022), tip(S)])

    rig = await rig_factory(mirror={"buy_slippage_bps": 2500})
    within = pump_fun_buy(BUY_LAMPORTS * 125 // 100)  # amount + 25 % slippage
    rig.executor.on_mirror_signal(mirror_signal(within), time.perf_counter_ns())
    await settle(rig, lambda: len(rig.mirror_results()) == 1)
    assert rig.mirror_results()[0].success
    beyond = pump_fun_buy(BUY_LAMPORTS * 2)
    rig.executor.on_mirror_signal(mirror_signal(beyond), time.perf_counter_ns())
    await settle(rig, lambda: len(rig.mirror_results()) == 2)
    assert not rig.mirror_results()[1].success


async def test_mirror_internal_error_still_reports_once(
        rig_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = await rig_factory()
    monkeypatch.setattr(vet_module, "check_transaction", _explode)
    rig.executor.on_mirror_signal(mirror_signal(), time.perf_counter_ns())
    assert rig.mirror_results() == [protocol.MirrorBuyResult(mint=str(S.mint), success=False)]
    assert rig.executor._metrics.guard_refusals.get("internal_error") == 1


async def test_during_shutdown_exits_still_run_but_buys_are_refused(rig_factory: Any) -> None:
    rig = await rig_factory()
    rig.executor.stop_accepting()
    rig.executor.on_mirror_signal(mirror_signal(), time.perf_counter_ns())
    assert rig.mirror_results() == [protocol.MirrorBuyResult(mint=str(S.mint), success=False)]
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: rig.hooks.events[-1:] == [("landed", 1)])
    assert await rig.executor.drain(1.0)


async def test_a_failed_ladder_level_is_not_turned_into_a_full_exit(rig_factory: Any) -> None:
    failed = landing.Failed(err={"InstructionError": [2, {"Custom": 6003}]}, slot=1)
    rig = await rig_factory([failed])
    rig.executor.on_exit_signal(exit_signal(level=0, reason="tp"), time.perf_counter_ns())
    await settle(rig, lambda: rig.hooks.events[-1:] == [("finished", 1)])
    assert rig.requests() == []


class EagerButBroken(ScriptedLander):
    """Its in-turn first write raises (a bug or a dead socket); landing still works."""

    def send_now(self, signed_tx: bytes) -> Any:
        raise OSError("first write failed")

    async def land(self, signed_tx: bytes, signature: str, blockhash: str,
                   on_submitted: Callable[[str, float], None] | None = None,
                   first: Any = None) -> landing.Outcome:
        return await super().land(signed_tx, signature, blockhash, on_submitted)


async def test_a_failed_first_write_is_landed_by_the_lander_not_refused(
        tmp_path: Path) -> None:
    lander = EagerButBroken([])
    sent: list[Any] = []
    hooks = Hooks()
    journal = Journal.open(tmp_path / "j.sqlite3")
    executor = Executor(config(), wallets=Wallets([S.wallet]), lander=lander, journal=journal,
                        send_to_stream=sent.append, session=hooks, metrics=Metrics())
    ready = asyncio.Event()
    task = asyncio.create_task(executor.run(ready))
    try:
        await ready.wait()
        executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
        deadline = time.monotonic() + 3
        while hooks.events[-1:] != [("landed", 1)]:
            assert time.monotonic() < deadline, "never landed"
            await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        journal.close()
    assert len(lander.landed) == 1  # the same signed bytes, through the lander
    assert not [m for m in sent if isinstance(m, protocol.RequestExitSignal)]
    assert executor._metrics.guard_refusals.get("internal_error") == 0


# ----------------------------------------------------------------------------- effects stage

ENTRY = 10**9
SOL_BEFORE = 5 * 10**9
RENT = 2_039_280
EffectFn = Callable[[Pubkey, bool], tuple[AccountState | None, AccountState | None]]


class ScriptedSimulator:
    """Stands in for simulate.Simulator: pre/post state per writable address."""

    def __init__(self, effect: EffectFn | None = None, err: Any = None,
                 fail: str | None = None) -> None:
        self.effect, self.err, self.fail = effect, err, fail
        self.tables = LookupTables()
        self.timeout_sec = 1.0
        self.runs: list[list[Pubkey]] = []

    async def fetch_tables(self, missing: Any) -> None:
        raise Unverifiable("no lookup tables in this test")

    async def run(self, tx: bytes, addresses: list[Pubkey]) -> Simulation:
        self.runs.append(list(addresses))
        if self.fail is not None:
            raise Unverifiable(self.fail)
        assert self.effect is not None
        pairs = [self.effect(a, True) for a in addresses]
        post = [] if self.err is not None else [after for _, after in pairs]
        return Simulation(list(addresses), [before for before, _ in pairs], post, self.err,
                          ["Program log: failed"] if self.err else [], 1, 0.7)


def sale(proceeds: int, *, tokens_left: int = 0, ata_owner: Pubkey = S.me,
         buy: bool = False) -> EffectFn:
    """Our wallet gains ``proceeds`` lamports and our token account falls (or, for a buy,
    rises) by the signal's tokens."""
    def effect(address: Pubkey, _: bool) -> tuple[AccountState | None, AccountState | None]:
        if address == S.me:
            return (AccountState(SOL_BEFORE, SYSTEM_ID, b""),
                    AccountState(SOL_BEFORE + proceeds, SYSTEM_ID, b""))
        if address == S.ata():
            before = 0 if buy else 1000
            after = 1000 if buy else tokens_left
            return (AccountState(RENT, TOKEN_ID, token_data(S.mint, S.me, before)),
                    AccountState(RENT, TOKEN_ID, token_data(S.mint, ata_owner, after)))
        return None, None
    return effect


def open_position(rig: Rig, entry: int = ENTRY) -> None:
    opened = protocol.PositionOpened(position_id=1, wallet_pubkey=str(S.me), mint=str(S.mint),
                                     token_account=str(S.ata()), tokens=1000,
                                     entry_quote_units=entry)
    rig.hooks.positions[1] = Position(opened=opened, opened_ms=0, tokens=1000)


async def simulating_rig(rig_factory: Any, simulator: ScriptedSimulator) -> Rig:
    rig: Rig = await rig_factory(simulator=simulator, guard={"simulate": "always"})
    open_position(rig)
    return rig


async def test_a_simulated_exit_with_honest_effects_is_signed_and_journaled(
        rig_factory: Any) -> None:
    simulator = ScriptedSimulator(sale(970_000_000))
    rig = await simulating_rig(rig_factory, simulator)
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: rig.hooks.events[-1:] == [("landed", 1)])
    assert simulator.runs and S.me in simulator.runs[0] and S.ata() in simulator.runs[0]
    assert rig.states() == ["landed"]
    metrics = rig.executor._metrics
    assert metrics.guard_verdicts.get("simulated", "accepted") == 1
    assert metrics.simulation_ms.count == 1
    rig.journal.flush(5)
    with sqlite3.connect(rig.journal.path) as db:
        (raw,) = db.execute("SELECT detail_json FROM guard_checks ORDER BY id DESC").fetchone()
    detail = json.loads(raw)
    assert detail["path"] == "simulated"
    assert detail["deltas"] == {"sol": 970_000_000, "mint": -1000, "quote": 970_000_000}


@pytest.mark.parametrize(("effect", "reason"), [
    (sale(0), "effects_proceeds_too_low"),
    (sale(970_000_000, ata_owner=S.evil), "effects_owner_changed"),
    (sale(970_000_000, tokens_left=1000), "effects_sells_nothing"),
])
async def test_an_exit_whose_effects_steal_is_never_signed(
        rig_factory: Any, effect: EffectFn, reason: str) -> None:
    rig = await simulating_rig(rig_factory, ScriptedSimulator(effect))
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.requests()))
    assert rig.lander.landed == []
    assert rig.executor._metrics.guard_refusals.get(reason) == 1


async def test_a_simulated_slippage_failure_asks_again_with_more_slippage(
        rig_factory: Any) -> None:
    failing = ScriptedSimulator(sale(0), err={"InstructionError": [1, {"Custom": 6003}]})
    rig = await simulating_rig(rig_factory, failing)
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.requests()))
    assert rig.lander.landed == []
    assert rig.requests()[0].slippage_bps == 1500  # base 1000 + bump 500
    assert rig.executor._metrics.guard_refusals.get("simulation_slippage") == 1


async def test_a_failing_simulation_is_refused_with_its_error(rig_factory: Any) -> None:
    failing = ScriptedSimulator(sale(0), err={"InstructionError": [1, "InvalidAccountData"]})
    rig = await simulating_rig(rig_factory, failing)
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.requests()))
    assert rig.requests()[0].slippage_bps is None  # not a slippage retry
    assert rig.executor._metrics.guard_refusals.get("simulation_failed") == 1


async def test_an_unreachable_rpc_makes_the_exit_unverifiable_not_signed(
        rig_factory: Any) -> None:
    rig = await simulating_rig(rig_factory, ScriptedSimulator(fail="simulation: timeout"))
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.requests()))
    assert rig.lander.landed == []
    assert rig.executor._metrics.guard_refusals.get("unverifiable") == 1
    assert rig.executor._metrics.guard_verdicts.get("simulated", "unverifiable") == 1


async def test_an_exit_for_a_position_we_never_saw_opened_is_unverifiable(
        rig_factory: Any) -> None:
    simulator = ScriptedSimulator(sale(970_000_000))
    rig = await rig_factory(simulator=simulator, guard={"simulate": "always"})
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.requests()))
    assert rig.lander.landed == []
    assert rig.executor._metrics.guard_refusals.get("unverifiable") == 1


async def test_unvouched_mode_still_simulates_a_dex_trade(rig_factory: Any) -> None:
    """A DEX pays whatever output account it is given: even a trade the static rules
    accept is simulated in "unvouched" mode, and a theft in it is refused."""
    simulator = ScriptedSimulator(sale(0))
    rig = await rig_factory(simulator=simulator, guard={"simulate": "unvouched"})
    open_position(rig)
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.requests()))
    assert simulator.runs and rig.lander.landed == []
    assert rig.executor._metrics.guard_refusals.get("effects_proceeds_too_low") == 1


async def test_never_mode_signs_on_the_static_rules_alone(rig_factory: Any) -> None:
    simulator = ScriptedSimulator(sale(0))  # would be refused if it were asked
    rig = await rig_factory(simulator=simulator, guard={"simulate": "never"})
    open_position(rig)
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: rig.hooks.events[-1:] == [("landed", 1)])
    assert simulator.runs == []
    assert rig.executor._metrics.guard_verdicts.get("static", "accepted") == 1


async def test_a_simulated_mirror_buy_is_bounded_by_its_effects(rig_factory: Any) -> None:
    honest = ScriptedSimulator(sale(-BUY_LAMPORTS - 30_000_000, buy=True))
    rig = await rig_factory(simulator=honest, guard={"simulate": "always"})
    rig.executor.on_mirror_signal(mirror_signal(), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.mirror_results()) and rig.executor.in_flight == 0)
    assert rig.mirror_results()[-1].success is True
    greedy = ScriptedSimulator(sale(-3 * BUY_LAMPORTS, buy=True))
    rig = await rig_factory(simulator=greedy, guard={"simulate": "always"})
    rig.executor.on_mirror_signal(mirror_signal(), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.mirror_results()) and rig.executor.in_flight == 0)
    assert rig.mirror_results() == [protocol.MirrorBuyResult(mint=str(S.mint), success=False)]
    assert rig.lander.submitted == []
    assert rig.executor._metrics.guard_refusals.get("effects_spend_too_high") == 1


class BrokenSimulator(ScriptedSimulator):
    async def run(self, tx: bytes, addresses: list[Pubkey]) -> Simulation:
        raise ZeroDivisionError("simulator bug")


async def test_a_bug_in_the_simulated_path_refuses_and_never_sticks(rig_factory: Any) -> None:
    rig = await simulating_rig(rig_factory, BrokenSimulator())
    rig.executor.on_exit_signal(exit_signal(), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.requests()))
    assert rig.lander.landed == []
    assert rig.executor._metrics.guard_refusals.get("internal_error") == 1
    assert rig.executor.in_flight == 0
    rig.executor.on_mirror_signal(mirror_signal(), time.perf_counter_ns())
    await settle(rig, lambda: bool(rig.mirror_results()) and rig.executor.in_flight == 0)
    assert rig.mirror_results() == [protocol.MirrorBuyResult(mint=str(S.mint), success=False)]
