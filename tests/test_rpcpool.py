"""RpcPool: scoring and ranking (pure), then hedged reads, failover, a hung provider
dropped within one timeout, malformed replies, background probes and the status fan-out,
against the simulator's RPC behind the front-ends of ``tests/rpc_frontends.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from lasersell_bot.metrics import Metrics
from lasersell_bot.rpcpool import Probe, Provider, ProviderHealth, RpcError, RpcPool, rank
from lasersell_bot.send import STATUS_PROBE, _parse_statuses, _parse_valid
from lasersell_bot.sim.world import SimWorld
from tests.rpc_frontends import BlackholeProxy, MalformedRpc

# --------------------------------------------------------------------------- pure


def test_first_provider_is_preferred_until_it_is_slower_or_failing() -> None:
    a, b = ProviderHealth(0), ProviderHealth(1)
    assert rank([a, b]) == [0, 1]
    a.on_success(40.0)
    b.on_success(2.0)
    assert rank([a, b]) == [1, 0]  # 40 ms against 2 ms + the 5 ms preference
    a.on_success(1.0)
    a.on_success(1.0)
    a.on_success(1.0)
    a.on_success(1.0)
    a.on_success(1.0)
    a.on_success(1.0)
    a.on_success(1.0)
    assert rank([a, b]) == [0, 1]
    assert not a.on_failure("http 500", 1.0, down=False)  # one error: still up, demoted
    assert rank([a, b]) == [1, 0]


def test_the_current_first_keeps_its_place_within_the_margin() -> None:
    a, b = ProviderHealth(0), ProviderHealth(1)
    a.on_success(12.0)
    b.on_success(1.0)
    assert rank([a, b]) == [1, 0]  # 12 ms against 1 + 5 ms
    assert rank([a, b], current=0) == [0, 1]  # but not worth a switch: within 20 ms
    a.on_success(80.0)
    assert rank([a, b], current=0) == [1, 0]  # now it is
    b.on_success(500.0)
    assert a.on_failure("timeout", 1.0, down=True)
    assert rank([a, b], current=0) == [1, 0]  # down: never kept first


def test_a_timeout_takes_a_provider_down_and_three_bad_replies_do_too() -> None:
    a, b = ProviderHealth(0), ProviderHealth(1)
    assert a.on_failure("timeout", 5.0, down=True)
    assert (a.state, a.down_since) == ("down", 5.0)
    assert rank([a, b]) == [1, 0]  # down providers last, still asked when all else fails
    for n in range(3):
        changed = b.on_failure("unusable result", 6.0 + n, down=False)
        assert changed == (n == 2)
    assert b.state == "down"
    assert rank([a, b]) == [0, 1]  # the longest down first
    assert b.on_success(3.0) and b.state == "up" and b.consecutive_errors == 0


# --------------------------------------------------------------------------- I/O


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def pool_of(http: aiohttp.ClientSession, *urls: str, **options: Any) -> RpcPool:
    providers = [Provider(url, f"p{index}", lambda: http) for index, url in enumerate(urls)]
    return RpcPool(providers, **options)


async def test_a_hung_provider_is_hedged_and_dropped_within_one_timeout(
        world: SimWorld, http: aiohttp.ClientSession) -> None:
    hole = await BlackholeProxy(port_of(world.rpc_url)).start()
    hole.blackhole()
    metrics = Metrics()
    pool = pool_of(http, hole.url, world.rpc_url, timeout=0.6, hedge_after=0.1,
                   metrics=metrics)
    try:
        started = time.monotonic()
        assert await pool.call("getHealth") == "ok"  # answered by p1 after the hedge
        assert 0.1 <= time.monotonic() - started < 0.5
        assert pool.states()["p0"] == "up"  # not judged yet: its request still runs
        await asyncio.sleep(0.7)  # ... until its own timeout
        assert pool.states() == {"p0": "down", "p1": "up"}
        assert pool.preferred == "p1"
        started = time.monotonic()
        assert await pool.call("getHealth") == "ok"
        assert time.monotonic() - started < 0.1  # no hedge wait: p1 is asked first
        assert metrics.rpc_provider_up.get("p0") == 0 and metrics.rpc_provider_up.get("p1") == 1
        assert metrics.rpc_switches.get() == 1
        assert hole.held >= 1
    finally:
        await pool.close()
        await hole.stop()


async def test_malformed_replies_fail_over_and_take_the_provider_down(
        world: SimWorld, http: aiohttp.ClientSession) -> None:
    bad = await MalformedRpc(world.rpc_url, {"isBlockhashValid"}).start()
    pool = pool_of(http, bad.url, world.rpc_url, hedge_after=0.0)
    blockhash = str(world.chain.latest_blockhash()[0])
    try:
        for _ in range(3):
            assert await pool.call("isBlockhashValid", [blockhash, {}], _parse_valid) is True
        # the first malformed reply was retried on p1 at once and demoted p0
        assert bad.bad == 1 and pool.preferred == "p1"
        assert pool.providers[0].health.last_error.startswith("unusable isBlockhashValid")
    finally:
        await pool.close()
        await bad.stop()


async def test_every_provider_failing_is_an_rpc_error_naming_each(
        http: aiohttp.ClientSession) -> None:
    pool = pool_of(http, "http://127.0.0.1:1/", "http://127.0.0.1:2/", timeout=0.5)
    with pytest.raises(RpcError, match=r"^getHealth: every provider failed: p0: connection "
                                       r"refused \(nothing listens on that port\); p1: "
                                       r"connection refused"):
        await pool.call("getHealth")
    assert set(pool.states().values()) == {"down"}
    await pool.close()


@pytest.mark.parametrize("probe", [None, STATUS_PROBE], ids=["getHealth", "statuses"])
async def test_the_probe_brings_a_provider_back(world: SimWorld, http: aiohttp.ClientSession,
                                                probe: Probe | None) -> None:
    hole = await BlackholeProxy(port_of(world.rpc_url)).start()
    pool = pool_of(http, hole.url, world.rpc_url, timeout=0.3, hedge_after=0.05,
                   probe_interval=0.1, probe=probe)
    pool.start()
    try:
        hole.blackhole()
        await pool.call("getHealth")
        await asyncio.sleep(0.45)
        assert pool.states()["p0"] == "down"
        hole.restore()
        deadline = time.monotonic() + 3
        while pool.states()["p0"] != "up":
            assert time.monotonic() < deadline, "the probe did not bring p0 back"
            await asyncio.sleep(0.05)
        assert pool.preferred == "p0"
    finally:
        await pool.close()
        await hole.stop()


async def test_status_fanout_takes_the_most_advanced_answer(
        world: SimWorld, http: aiohttp.ClientSession) -> None:
    """The preferred provider lags (it has not seen the signature); the second has it."""
    lagging = await MalformedRpc(world.rpc_url, {"getSignatureStatuses"},
                                 reply={"context": {"slot": 1}, "value": [None]}).start()
    landed = {"slot": 7, "confirmations": None, "err": None, "confirmationStatus": "finalized"}
    ahead = await MalformedRpc(world.rpc_url, {"getSignatureStatuses"},
                               reply={"context": {"slot": 9}, "value": [landed]}).start()
    pool = pool_of(http, lagging.url, ahead.url, status_fanout=2)
    try:
        answers = await pool.call_many("getSignatureStatuses", [["sig"], {}],
                                       lambda result: _parse_statuses(result, 1))
        assert sorted(str(a[0]) for a in answers) == sorted(
            ["None", str(_parse_statuses({"value": [landed]}, 1)[0])])
        assert lagging.bad == 1 and ahead.bad == 1
    finally:
        await pool.close()
        await lagging.stop()
        await ahead.stop()


@pytest.fixture
async def batch_rpc() -> AsyncIterator[str]:
    """A JSON-RPC server that answers batches, in reverse order (ids tell them apart)."""
    async def handle(request: web.Request) -> web.Response:
        calls = await request.json()
        answers = [{"jsonrpc": "2.0", "id": c["id"], "result": f"{c['method']}-answer"}
                   if c["method"] != "nope" else
                   {"jsonrpc": "2.0", "id": c["id"],
                    "error": {"code": -32601, "message": "Method not found"}}
                   for c in calls]
        return web.json_response(answers[::-1])

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


async def test_a_batch_is_answered_by_one_provider_in_request_order(
        world: SimWorld, http: aiohttp.ClientSession, batch_rpc: str) -> None:
    hole = await BlackholeProxy(port_of(world.rpc_url)).start()
    hole.blackhole()
    pool = pool_of(http, hole.url, batch_rpc, timeout=0.5, hedge_after=0.05)
    try:
        answers = await pool.call_batch([("getHealth", []), ("simulateTransaction", ["tx"])])
        assert answers == ["getHealth-answer", "simulateTransaction-answer"]
        with pytest.raises(RpcError, match=r"^getHealth\+nope: rpc -32601: Method not found"):
            await pool.call_batch([("getHealth", []), ("nope", [])])
    finally:
        await pool.close()
        await hole.stop()
