"""End to end: the real daemon over real sockets against the simulator and LiteSVM."""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from solders.keypair import Keypair

from lasersell_bot import protocol
from lasersell_bot.config import load_config
from lasersell_bot.daemon import Daemon
from lasersell_bot.demo import run_demo
from lasersell_bot.journal import JournalReader
from lasersell_bot.sim.world import LAMPORTS_PER_SOL, SimWorld
from lasersell_bot.wallet import Wallets
from tests.faultkit import write_config

TOKENS = 1_000_000_000
ENTRY = LAMPORTS_PER_SOL // 2


async def until(what: str, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Harness:
    def __init__(self, world: SimWorld, daemon: Daemon, keypair: Keypair,
                 config_path: Path) -> None:
        self.world, self.daemon, self.keypair = world, daemon, keypair
        self.config_path = config_path

    def edit_config(self, section: str, **values: Any) -> None:
        data = tomllib.loads(self.config_path.read_text())
        data[section].update(values)
        self.config_path.write_text(tomli_w.dumps(data))

    @property
    def wallet(self) -> Any:
        return self.keypair.pubkey()

    async def open(self) -> int:
        opened = await self.world.open_position(self.wallet, TOKENS, ENTRY)
        await until("daemon tracks the position",
                    lambda: self.daemon.session.position(opened.position_id) is not None)
        return opened.position_id

    async def closed(self, position_id: int, timeout: float = 10.0) -> None:
        await until(f"position {position_id} sold and closed",
                    lambda: not self.world.is_tracked(position_id), timeout)

    def configures(self) -> list[protocol.Configure]:
        return [r.message for r in self.world.stream.received
                if isinstance(r.message, protocol.Configure)]


@pytest.fixture
async def harness_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[SimWorld, Daemon, asyncio.Task[int]]] = []

    async def start(**sections: Any) -> Harness:
        world = SimWorld(slot_ms=20)
        await world.start()
        keypair = world.new_wallet(sol=10)
        config_path = write_config(tmp_path, world, keypair, **sections)
        cfg = load_config(config_path)
        daemon = Daemon(cfg, Wallets.load(cfg.wallets), config_path=str(config_path))
        task = asyncio.create_task(daemon.run(install_signal_handlers=False))
        started.append((world, daemon, task))
        await until("daemon configured", lambda: daemon.stream.state.configured
                    and daemon.stream.state.connected)
        return Harness(world, daemon, keypair, config_path)

    yield start
    for world, daemon, task in started:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 20) == 0
        await world.stop()


async def test_demo_exits_zero_only_after_every_flow(capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_demo() == 0
    out = capsys.readouterr().out
    for needle in ("target_profit", "stop_loss", "fee_too_large", "mirror_buy_result_sent",
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
