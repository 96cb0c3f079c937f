"""End to end: the real daemon over real sockets against the simulator and LiteSVM."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lasersell_bot import protocol
from lasersell_bot.demo import run_demo
from lasersell_bot.journal import JournalReader
from tests.e2ekit import until


async def test_demo_exits_zero_only_after_every_flow(capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_demo() == 0
    out = capsys.readouterr().out
    for needle in ("target_profit", "stop_loss", "fee_too_large", "guard_passed",
                   "refused on its simulated effects: proceeds_elsewhere",
                   "refused on its simulated effects: output_not_ours",
                   "LaserSe11Router", "mirror_buy_result_sent",
                   "DEMO OK"):
        assert needle in out


async def test_exit_is_signed_landed_and_journaled(harness_factory: Any) -> None:
    h = await harness_factory()
    start_sol = h.world.chain.balance(h.wallet)
    pid = await h.open()
    for pct in (10, 25, 31):
        await h.world.set_profit_pct(pid, pct)
    await h.closed(pid)
    assert h.world.chain.balance(h.wallet) > start_sol  # the sale paid out on chain
    await until("the daemon confirms it", lambda: h.daemon.metrics.confirmations.get("landed") == 1)
    h.daemon.journal.flush(5)
    rows = JournalReader(h.daemon.cfg.journal.path).recent_trades(10)
    assert [(r.reason, r.state) for r in rows] == [("target_profit", "landed")]


async def test_reconnect_resends_current_config_and_reconciles_positions(
        harness_factory: Any) -> None:
    h = await harness_factory()
    kept, forgotten = await h.open(), await h.open()
    h.edit_config("strategy", stop_loss_pct=12.5)
    h.daemon.reload()  # what SIGHUP does
    await until("update_strategy reached the server", lambda: any(
        isinstance(r.message, protocol.UpdateStrategy) for r in h.world.stream.received))
    h.world.stream.forget_position(forgotten)
    await h.world.stream.drop_connections()
    await until("a second configure", lambda: len(h.configures()) >= 2)
    assert h.configures()[-1].strategy.stop_loss_pct == 12.5  # not the initial 20
    await until("the forgotten position is dropped",
                lambda: h.daemon.session.position(forgotten) is None, timeout=5)
    assert h.daemon.session.position(kept) is not None
    await h.world.set_profit_pct(kept, -13)  # the new stop-loss fires after reconnect
    await h.closed(kept)


async def test_deadline_requests_an_exit_that_lands(harness_factory: Any) -> None:
    h = await harness_factory(strategy={"deadline_timeout_sec": 0.5})
    pid = await h.open()
    await h.closed(pid, timeout=10)
    requests = [r.message for r in h.world.stream.received
                if isinstance(r.message, protocol.RequestExitSignal)]
    assert [m.position_id for m in requests] == [pid]  # fired once, not twice


async def test_exit_lands_during_a_low_priority_flood(harness_factory: Any) -> None:
    h = await harness_factory()
    pid = await h.open()
    flood = asyncio.create_task(h.world.stream.flood_low_priority(10_000))
    await h.world.set_profit_pct(pid, -25)
    await flood
    await h.closed(pid)
    assert h.daemon.metrics.signal_to_submit_ms.count == 1
