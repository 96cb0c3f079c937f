"""Submission, confirmation and ``land`` against a real local HTTP server (tests/fake_rpc.py)."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from lasersell_bot.config import RpcConfig, SendConfig
from lasersell_bot.landing import Failed, Landed, LandingParams, Unknown
from lasersell_bot.logs import configure_logging
from lasersell_bot.metrics import Metrics
from lasersell_bot.send import (
    Confirmer,
    RpcError,
    Submitter,
    Target,
    land,
    make_target,
    targets_from_config,
)
from tests.fake_rpc import FakeRpc, Hang, Http, Reset, RpcFailure, fake_tx

PATHS = {"rpc": "/", "helius_sender": "/fast", "astralane": "/iris"}
SEND_CFG = {"encoding": "base64", "skipPreflight": True, "maxRetries": 0}
BLOCKHASH = "EkSnNWid2cvwEVnVx9aBqawnmiCNiDgp3gUdkDPTKN1N"
FAST = LandingParams(poll_interval=0.02, rebroadcast_interval=0.1, confirm_timeout=5.0,
                     blockhash_check_interval=0.05, expiry_grace=0.1)


@pytest.fixture
async def fake() -> AsyncIterator[FakeRpc]:
    server = FakeRpc()
    await server.start()
    yield server
    await server.close()


def targets(fake: FakeRpc, *names: str, api_key: str = "astra-key-123456") -> list[Target]:
    return [make_target(n, fake.url(PATHS[n]), api_key if n == "astralane" else "")  # type: ignore[arg-type]
            for n in names]


def submitter(fake: FakeRpc, *names: str, **kwargs: Any) -> Submitter:
    kwargs.setdefault("request_timeout", 2.0)
    return Submitter(targets(fake, *names), make_target("rpc", fake.url("/")), **kwargs)


async def settle(sub: Submitter, timeout: float = 5.0) -> None:
    """Wait until the sends left running by ``submit`` have finished."""
    end = time.monotonic() + timeout
    while sub.in_flight and time.monotonic() < end:
        await asyncio.sleep(0.005)
    assert sub.in_flight == 0


def confirmed(slot: int, err: Any = None) -> dict[str, Any]:
    return {"slot": slot, "confirmations": 1, "err": err, "status": {"Ok": None},
            "confirmationStatus": "confirmed"}


# --- targets and request bodies -------------------------------------------------

def test_targets_from_config_dedupes_and_names() -> None:
    send = SendConfig(mode="rpc", targets=["helius_sender", "rpc", "astralane", "rpc"],
                      astralane_api_key="k-abcdefgh")
    built = targets_from_config(send, RpcConfig(url="https://mainnet.helius-rpc.com/?api-key=s3cr3tkey"))
    assert [t.name for t in built] == ["helius_sender", "rpc", "astralane"]
    assert [t.display for t in built] == ["helius_sender(sender.helius-rpc.com)",
                                          "rpc(mainnet.helius-rpc.com)",
                                          "astralane(fr.gateway.astralane.io)"]
    assert built[0].ping_url == "https://sender.helius-rpc.com/ping"
    assert built[2].headers["x-api-key"] == "k-abcdefgh"
    assert [t.name for t in targets_from_config(SendConfig(mode="astralane"), RpcConfig())] == [
        "astralane"]


async def test_request_bodies_and_headers_per_target(fake: FakeRpc) -> None:
    tx, sig = fake_tx(1)
    async with submitter(fake, "rpc", "helius_sender", "astralane") as sub:
        outcome = await sub.submit(tx, sig)
        await settle(sub)
    assert outcome.ok
    b64 = base64.b64encode(tx).decode()
    for name, path in PATHS.items():
        [request] = fake.on(path, "sendTransaction")
        cfg = dict(SEND_CFG, preflightCommitment="processed") if name == "rpc" else SEND_CFG
        assert request.json == {"jsonrpc": "2.0", "id": 1, "method": "sendTransaction",
                                "params": [b64, cfg]}
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers.get("x-api-key") == (
            "astra-key-123456" if name == "astralane" else None)


def test_body_is_prebuilt_concatenation() -> None:
    target = make_target("helius_sender", "https://sender.helius-rpc.com/fast")
    assert target.body(b"QUJD") == (
        b'{"jsonrpc":"2.0","id":1,"method":"sendTransaction","params":["QUJD",'
        b'{"encoding":"base64","skipPreflight":true,"maxRetries":0}]}')


# --- retries ------------------------------------------------------------------

async def test_429_retry_after_is_honoured(fake: FakeRpc) -> None:
    fake.script("/", "sendTransaction", Http(429, retry_after="0.3"))
    tx, sig = fake_tx(2)
    async with submitter(fake, "rpc") as sub:
        outcome = await sub.submit(tx, sig, deadline=time.monotonic() + 5)
    first, second = fake.on("/", "sendTransaction")
    assert outcome.ok
    assert 0.25 <= second.time - first.time < 2.0


async def test_retry_after_is_capped(fake: FakeRpc) -> None:
    fake.script("/", "sendTransaction", Http(429, retry_after="30"))
    tx, sig = fake_tx(3)
    async with submitter(fake, "rpc", retry_after_cap=0.2) as sub:
        outcome = await sub.submit(tx, sig, deadline=time.monotonic() + 5)
    first, second = fake.on("/", "sendTransaction")
    assert outcome.ok and second.time - first.time < 1.5


async def test_5xx_reset_and_timeout_are_retried(fake: FakeRpc) -> None:
    fake.script("/", "sendTransaction", Http(503), Reset(), Hang(1.0))
    tx, sig = fake_tx(4)
    metrics = Metrics()
    async with submitter(fake, "rpc", request_timeout=0.2, metrics=metrics) as sub:
        outcome = await sub.submit(tx, sig, deadline=time.monotonic() + 5)
    assert outcome.ok and outcome.target == "rpc"
    assert len(fake.on("/", "sendTransaction")) == 4
    assert metrics.submissions.get("rpc", "accepted") == 1


async def test_retries_stop_at_deadline(fake: FakeRpc) -> None:
    fake.script("/", "sendTransaction", *[Http(500)] * 100)
    tx, sig = fake_tx(5)
    metrics = Metrics()
    async with submitter(fake, "rpc", metrics=metrics) as sub:
        started = time.monotonic()
        outcome = await sub.submit(tx, sig, deadline=started + 0.3)
        elapsed = time.monotonic() - started
    assert not outcome.ok and outcome.errors == {"rpc": "http 500"}
    assert elapsed < 1.5 and 2 <= len(fake.on("/", "sendTransaction")) < 20
    assert metrics.submissions.get("rpc", "failed") == 1


async def test_final_rpc_errors_are_not_retried(fake: FakeRpc) -> None:
    fake.script("/", "sendTransaction",
                RpcFailure(-32002, "Transaction simulation failed: Blockhash not found"))
    tx, sig = fake_tx(6)
    async with submitter(fake, "rpc") as sub:
        outcome = await sub.submit(tx, sig, deadline=time.monotonic() + 5)
    assert not outcome.ok
    assert "-32002" in outcome.errors["rpc"] and "Blockhash not found" in outcome.errors["rpc"]
    assert len(fake.on("/", "sendTransaction")) == 1


async def test_already_processed_counts_as_success(fake: FakeRpc) -> None:
    fake.script("/", "sendTransaction", RpcFailure(
        -32002, "Transaction simulation failed: This transaction has already been processed"))
    tx, sig = fake_tx(7)
    async with submitter(fake, "rpc") as sub:
        outcome = await sub.submit(tx, sig)
    assert outcome.ok and len(fake.on("/", "sendTransaction")) == 1


# --- fan-out ------------------------------------------------------------------

async def test_fan_out_returns_on_first_success_and_close_leaves_no_task(fake: FakeRpc) -> None:
    fake.script("/fast", "sendTransaction", Hang(30))
    tx, sig = fake_tx(8)
    sub = submitter(fake, "helius_sender", "rpc", request_timeout=20)
    await sub.start()
    started = time.monotonic()
    outcome = await sub.submit(tx, sig)
    assert outcome.ok and outcome.target == "rpc"
    assert time.monotonic() - started < 1.0
    assert sub.in_flight == 1, "the hanging send keeps running in the background"
    closing = time.monotonic()
    await sub.close(grace=0.1)
    assert time.monotonic() - closing < 2.0, "close cancels what outlives the grace period"
    assert sub.in_flight == 0
    leftovers = [t for t in asyncio.all_tasks()
                 if not t.done() and "_deliver" in t.get_coro().__qualname__]  # type: ignore[union-attr]
    assert leftovers == []


async def test_all_fail_returns_each_error(fake: FakeRpc) -> None:
    fake.script("/", "sendTransaction", Http(401))
    fake.script("/fast", "sendTransaction",
                RpcFailure(-32003, "Transaction signature verification failure"))
    fake.script("/iris", "sendTransaction", *[Http(502)] * 100)
    tx, sig = fake_tx(9)
    async with submitter(fake, "rpc", "helius_sender", "astralane") as sub:
        outcome = await sub.submit(tx, sig, deadline=time.monotonic() + 0.2)
    assert not outcome.ok and outcome.target is None
    assert outcome.errors == {
        "rpc": "http 401",
        "helius_sender": "rpc -32003: Transaction signature verification failure",
        "astralane": "http 502",
    }


# --- connections ----------------------------------------------------------------

async def test_connections_are_reused_one_per_target(fake: FakeRpc) -> None:
    async with submitter(fake, "rpc", "helius_sender", "astralane") as sub:
        for seed in range(20):
            tx, sig = fake_tx(100 + seed)
            assert (await sub.submit(tx, sig)).ok
            await settle(sub)
        await Confirmer(sub).signature_status(sig)
    assert len(fake.on("/", "sendTransaction")) == 20
    assert len(fake.connections("/")) == 1
    assert len(fake.connections("/fast", "/ping")) == 1
    assert len(fake.connections("/iris")) == 1
    assert len(fake.connections()) == 3


async def test_warm_and_keep_warm_pings(fake: FakeRpc) -> None:
    sub = submitter(fake, "helius_sender", "astralane", keepalive_interval=0.1)
    await sub.start()
    assert len(fake.on("/fast")) == 0 and len(fake.on("/ping")) == 1, "warm before any signal"
    assert len(fake.on("/", "getHealth")) == 1, "the RPC used for confirmation is warmed too"
    await asyncio.sleep(0.45)
    await sub.close()
    assert len(fake.on("/ping")) >= 4
    assert len(fake.on("/iris", "getHealth")) >= 4
    assert len(fake.on("/", "getHealth")) >= 4
    assert len(fake.connections()) == 3


# --- secrets ----------------------------------------------------------------------

async def test_secrets_never_reach_errors_or_logs(fake: FakeRpc) -> None:
    secrets = ["rpcQuerySecret123", "userInfoPass456", "astralaneKey789", "senderKey000111"]
    stream = io.StringIO()
    configure_logging(level="debug", fmt="json", syslog_prefix=False, stream=stream)
    rpc = make_target("rpc", fake.url("/", "alice:userInfoPass456@", "api-key=rpcQuerySecret123"))
    helius = make_target("helius_sender", fake.url("/fast", query="api-key=senderKey000111"))
    astra = make_target("astralane", fake.url("/iris"), "astralaneKey789")
    fake.script("/", "sendTransaction", Http(401))
    fake.script("/fast", "sendTransaction", *[Reset()] * 50)
    fake.script("/iris", "sendTransaction", RpcFailure(-32602, "invalid params"))
    tx, sig = fake_tx(10)
    async with Submitter([rpc, helius, astra], rpc, request_timeout=0.5) as sub:
        outcome = await sub.submit(tx, sig, deadline=time.monotonic() + 0.2)
        fake.script("/", "getSignatureStatuses", Http(403))
        with pytest.raises(RpcError) as raised:
            await Confirmer(sub).signature_status(sig)
    text = " ".join([stream.getvalue(), repr(outcome), str(raised.value), repr(rpc), repr(astra),
                     rpc.display, helius.display])
    assert not outcome.ok and set(outcome.errors) == {"rpc", "helius_sender", "astralane"}
    assert f"rpc(127.0.0.1:{fake.url().split(':')[2].rstrip('/')})" in stream.getvalue()
    for secret in secrets:
        assert secret not in text
    assert fake.on("/iris")[0].headers["x-api-key"] == "astralaneKey789"


# --- confirmer ----------------------------------------------------------------------

async def test_confirmer_requests_and_answers(fake: FakeRpc) -> None:
    _, sig = fake_tx(11)
    fake.statuses[sig] = confirmed(42)
    fake.blockhash_valid = lambda blockhash: blockhash == BLOCKHASH
    async with submitter(fake, "helius_sender") as sub:
        confirmer = Confirmer(sub)
        status = await confirmer.signature_status(sig)
        other = await confirmer.signature_status(fake_tx(12)[1])
        valid = await confirmer.is_blockhash_valid(BLOCKHASH)
        stale = await confirmer.is_blockhash_valid("11111111111111111111111111111111")
        latest = await confirmer.latest_blockhash()
        height, healthy = await confirmer.block_height(), await confirmer.health()
        fake.script("/", "getSignatureStatuses", Http(503))
        with pytest.raises(RpcError, match="http 503"):
            await confirmer.signature_status(sig)
    assert status is not None and status.slot == 42 and status.settled and other is None
    assert (valid, stale, latest, height, healthy) == (True, False, (BLOCKHASH, 1150), 1000, True)
    assert fake.on("/", "getSignatureStatuses")[0].json["params"] == [
        [sig], {"searchTransactionHistory": True}]
    assert fake.on("/", "isBlockhashValid")[0].json["params"] == [
        BLOCKHASH, {"commitment": "processed"}]


# --- land end to end ----------------------------------------------------------------

def land_after(fake: FakeRpc, sends: int, status: Callable[[], dict[str, Any]]) -> None:
    def on_send(sig: str, count: int) -> None:
        if count >= sends:
            fake.statuses[sig] = status()
    fake.on_send = on_send


async def test_land_landed_and_journal_callback(fake: FakeRpc) -> None:
    land_after(fake, 1, lambda: confirmed(55))
    tx, sig = fake_tx(20)
    calls: list[tuple[str, float]] = []
    async with submitter(fake, "rpc", "helius_sender") as sub:
        result = await land(tx, sig, BLOCKHASH, sub, Confirmer(sub), FAST,
                            on_submitted=lambda target, s: calls.append((target, s)))
    assert result.outcome == Landed(slot=55) and result.kind == "landed"
    assert len(calls) == 1 and calls[0][0] == result.first_target
    assert result.elapsed < 2.0


async def test_land_failed_on_chain(fake: FakeRpc) -> None:
    err = {"InstructionError": [3, {"Custom": 6003}]}
    land_after(fake, 1, lambda: confirmed(56, err))
    tx, sig = fake_tx(21)
    async with submitter(fake, "rpc") as sub:
        result = await land(tx, sig, BLOCKHASH, sub, Confirmer(sub), FAST)
    assert result.outcome == Failed(err=err, slot=56)


async def test_land_expired_only_on_invalid_blockhash(fake: FakeRpc) -> None:
    fake.blockhash_valid = lambda blockhash: False
    tx, sig = fake_tx(22)
    async with submitter(fake, "rpc") as sub:
        result = await land(tx, sig, BLOCKHASH, sub, Confirmer(sub), FAST)
    assert result.kind == "expired"
    checks = fake.on("/", "isBlockhashValid")
    polls = fake.on("/", "getSignatureStatuses")
    assert len(checks) >= 3 and polls[-1].time > checks[-1].time


async def test_land_rebroadcasts_identical_bytes_until_landed(fake: FakeRpc) -> None:
    land_after(fake, 6, lambda: confirmed(57))
    tx, sig = fake_tx(23)
    async with submitter(fake, "rpc", "astralane") as sub:
        result = await land(tx, sig, BLOCKHASH, sub, Confirmer(sub), FAST)
        await settle(sub)
    sends = fake.on("/", "sendTransaction") + fake.on("/iris", "sendTransaction")
    assert result.outcome == Landed(slot=57)
    assert result.rebroadcasts >= 2 and len(sends) >= 6
    assert {r.json["params"][0] for r in sends} == {base64.b64encode(tx).decode()}


async def test_land_unknown_when_rpc_unreachable(fake: FakeRpc) -> None:
    fake.blockhash_valid = lambda blockhash: False
    fake.script("/", "getSignatureStatuses", *[Http(503)] * 1000)
    fake.script("/", "isBlockhashValid", *[Http(503)] * 1000)
    tx, sig = fake_tx(24)
    params = LandingParams(poll_interval=0.02, rebroadcast_interval=0.1, confirm_timeout=0.6,
                           blockhash_check_interval=0.05, expiry_grace=0.1)
    async with submitter(fake, "rpc") as sub:
        result = await land(tx, sig, BLOCKHASH, sub, Confirmer(sub), params)
    assert result.outcome == Unknown(reason="rpc_unreachable")
    assert result.rpc_errors > 5 and 0.5 <= result.elapsed < 3.0

