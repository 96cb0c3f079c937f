"""Chaos: two RPC front-ends on one simulated chain, the preferred one blackholed (a
proxy that accepts and never answers) in the middle of a run of exits. Every exit must
still land through the other, none twice, and the switch must show in health and
metrics. Also: an RPC that keeps answering malformed replies cannot keep a position
stuck: the outcome turns unknown (alert, /healthz degraded), and once a healthy provider
proves the blockhash expired the position is free and sold again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from lasersell_bot import executor as executor_module
from lasersell_bot import protocol
from lasersell_bot.sim.chain import MAX_PROCESSING_AGE
from lasersell_bot.sim.rpc import SimRpcServer
from tests.faultkit import (
    FaultLog,
    SendAudit,
    fault_world,
    report_figures,
    second_rpc,
    start_daemon,
    until,
)
from tests.rpc_frontends import BlackholeProxy, MalformedRpc

FAST_SEND = {"rebroadcast_interval_ms": 300, "confirm_poll_ms": 50, "request_timeout_ms": 800}
RPC = {"timeout_ms": 600, "hedge_after_ms": 100, "probe_interval_sec": 0.3, "send_to_all": True}


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@pytest.fixture
async def world_and_second() -> AsyncIterator[tuple[Any, SimRpcServer]]:
    world = fault_world()
    await world.start()
    try:
        async with second_rpc(world.chain) as second:
            yield world, second
    finally:
        await world.stop()


async def test_preferred_rpc_blackholed_mid_run_every_exit_lands_once(
        tmp_path: Path, world_and_second: tuple[Any, SimRpcServer]) -> None:
    world, second = world_and_second
    proxy = await BlackholeProxy(port_of(world.rpc_url)).start()
    exits, hole_after = 8, 3
    try:
        async with start_daemon(tmp_path, world, send=FAST_SEND,
                                rpc=dict(RPC, urls=[proxy.url, second.url + "/"])) as run:
            audit = SendAudit(world.chain).watch(world.rpc, second)
            pool = run.daemon.rpc_pool
            preferred, other = (p.display for p in pool.providers)
            assert run.daemon.health().rpc_preferred == preferred
            holed_at = 0.0
            for index in range(exits):
                if index == hole_after:
                    proxy.blackhole()
                    holed_at = time.monotonic()
                if index == exits - 2:  # the last two exits run after the switch
                    await until("the blackholed provider is marked down",
                                lambda: pool.states()[preferred] == "down", 5)
                pid, _ = await run.open()
                await run.world.set_profit_pct(pid, -25)
                await run.sold(pid, timeout=20)
            down_since = pool.providers[0].health.down_since
            assert down_since is not None
            switched_in = down_since - holed_at
            await until("every exit journaled as landed",
                        lambda: run.daemon.metrics.confirmations.get("landed") == exits, 20)
            assert audit.violations == []
            assert audit.double_sales() == {}
            assert sum(len(v) for v in audit.sells.values()) == exits  # one signature each
            health = run.daemon.health()
            assert health.rpc_providers == {preferred: "down", other: "up"}
            assert health.rpc_preferred == other
            assert health.status == "degraded" and f"rpc provider {preferred} down" in \
                health.reasons
            metrics = run.daemon.metrics
            assert metrics.rpc_provider_up.get(preferred) == 0
            assert metrics.rpc_provider_up.get(other) == 1
            assert metrics.rpc_switches.get() >= 1
            # rpc.send_to_all: the second provider was a send target too, and took them
            assert metrics.submissions.get("rpc_2", "accepted") >= exits - hole_after
            text = metrics.render()
            assert f'lasersell_bot_rpc_provider_up{{provider="{preferred}"}} 0' in text
            assert 0 < switched_in < 0.6 + 0.5  # one rpc.timeout_ms, plus scheduling slack
            report_figures("rpc-blackhole", faults=1, lost=0, duplicates=0, exits=exits,
                           switch_s=round(switched_in, 3))
    finally:
        await proxy.stop()


@pytest.mark.parametrize("server_forgets", [False, True], ids=["tracked", "forgotten"])
async def test_malformed_rpc_ends_in_unknown_then_expired_and_a_free_position(
        tmp_path: Path, world_and_second: tuple[Any, SimRpcServer],
        monkeypatch: pytest.MonkeyPatch, server_forgets: bool) -> None:
    """The only reachable provider answers every status and blockhash read with
    ``result: null``: past confirm_timeout_sec the sale is unknown (alerted, health
    degraded). A healthy provider comes back; it proves the blockhash expired, the
    outcome becomes expired, the position is free, and a fresh sell lands. Or, when the
    server stopped mentioning the position meanwhile (dropped after a reconnect), the
    position is released without a new sale."""
    world, second = world_and_second
    monkeypatch.setattr(executor_module, "UNKNOWN_RECHECK_SEC", 0.2)
    bad = await MalformedRpc(world.rpc_url, {"getSignatureStatuses", "isBlockhashValid"}).start()
    hole = await BlackholeProxy(port_of(second.url)).start()
    hole.blackhole()  # the healthy provider is unreachable at first
    # a landing pass must outlast the expiry proof (checks every 2 s from 2 s in, the
    # blockhash invalid for 4 s: proven at 6 s) for the re-check to end in expired
    send = dict(FAST_SEND, confirm_timeout_sec=7.5)
    try:
        async with start_daemon(tmp_path, world, send=send,
                                rpc=dict(RPC, send_to_all=False,
                                         urls=[bad.url, hole.url])) as run:
            alerts: list[tuple[str, str]] = []
            monkeypatch.setattr(run.daemon.notifier, "notify",
                                lambda kind, text: alerts.append((kind, text)) or True)
            audit = SendAudit(world.chain).watch(world.rpc, second)
            faults = FaultLog()
            faults.add(world.rpc, "sendTransaction", "accept_no_land", 10_000)
            pid, mint = await run.open()
            await run.world.set_profit_pct(pid, -25)
            key = (str(run.wallet), mint)
            await until("the sale is reported unknown",
                        lambda: bool(run.daemon.executor.unknown_outcomes), 20)
            health = run.daemon.health()
            assert health.status == "degraded" and health.unknown_outcomes == 1
            assert any("sale outcome(s) unknown" in r for r in health.reasons)
            assert [kind for kind, _ in alerts].count("tx_unknown") == 1
            assert run.daemon.executor.is_busy(pid)
            assert len(audit.sells[key]) == 1
            if server_forgets:
                world.stream.forget_position(pid)
                assert await world.stream.drop_connections(None) == 1
                await until("the daemon drops the position the server forgot",
                            lambda: pid not in run.tracked_ids(), 10)
                assert run.daemon.executor.is_busy(pid)  # the sale may still land
            run.world.chain.advance(MAX_PROCESSING_AGE + 2)  # the blockhash is now dead
            hole.restore()  # a healthy provider is back: it can prove that
            await until("the outcome turns expired and the position is free",
                        lambda: not run.daemon.executor.unknown_outcomes, 20)
            faults.clear()
            if server_forgets:
                await until("the position is released",
                            lambda: not run.daemon.executor.is_busy(pid), 5)
                await asyncio.sleep(0.5)
                assert len(audit.sells[key]) == 1  # nothing new for a position gone
                assert run.daemon.health().unknown_outcomes == 0
                return
            await run.sold(pid, timeout=20)
            assert len(audit.sells[key]) == 2  # a new signature only after proven expiry
            assert audit.violations == [] and audit.double_sales() == {}
            assert any(isinstance(r.message, protocol.RequestExitSignal)
                       for r in world.stream.received)
            assert bad.bad > 0
            assert run.daemon.health().unknown_outcomes == 0
    finally:
        await bad.stop()
        await hole.stop()
