"""RPC and submission-target faults against the real daemon, the sim RPC and LiteSVM.

Every ``sendTransaction`` any sim RPC server receives goes through ``SendAudit``:
a position may get a sell under a new signature only once every earlier one is
known dead on chain (failed, or its blockhash expired unseen). Each test also
checks that the position was sold exactly once on chain and that the journal
kept every signal the server sent.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from lasersell_bot import protocol
from lasersell_bot.journal import JournalReader
from lasersell_bot.sim.chain import MAX_PROCESSING_AGE
from lasersell_bot.sim.rpc import SimRpcServer
from lasersell_bot.sim.txbuild import build_sell_tx
from lasersell_bot.sim.world import SimWorld
from lasersell_bot.wallet import sign_into_slot
from tests.faultkit import (
    TOKENS,
    FaultLog,
    Running,
    SendAudit,
    fault_world,
    free_port,
    lost_signals,
    report_figures,
    second_rpc,
    start_daemon,
    until,
)

FAST_SEND = {"rebroadcast_interval_ms": 300, "confirm_poll_ms": 50, "request_timeout_ms": 800}


async def sell_and_check(run: Running, audit: SendAudit, faults: FaultLog, test: str, *,
                         signatures: int = 1, timeout: float = 15.0) -> str:
    """Open a position, trigger its stop-loss, wait until it is sold; check one
    landed sale, ``signatures`` distinct signatures and no lost signal."""
    pid, mint = await run.open()
    await run.world.set_profit_pct(pid, -25)
    await run.sold(pid, timeout)
    key = (str(run.wallet), mint)
    assert len(audit.sells[key]) == signatures, [s.signature for s in audit.sells[key]]
    assert len(audit.landed_sells(mint)) == 1
    assert audit.violations == []
    assert audit.double_sales() == {}
    await until("the daemon journals the landing",
                lambda: run.daemon.metrics.confirmations.get("landed") == 1, timeout)
    run.daemon.journal.flush(5)
    assert lost_signals(run.world, run.daemon.cfg.journal.path) == 0
    rows = JournalReader(run.daemon.cfg.journal.path).recent_trades(10)
    assert [(r.position_id, r.state) for r in rows if r.state == "landed"] == [(pid, "landed")]
    assert run.daemon.journal.intents_pending == 0  # every intent record committed
    report_figures(test, faults=faults.fired(), lost=0, duplicates=0)
    return mint


def retry_requests(run: Running) -> list[protocol.RequestExitSignal]:
    return [r.message for r in run.world.stream.received
            if isinstance(r.message, protocol.RequestExitSignal)]


@pytest.mark.parametrize(("kind", "count", "options"), [
    ("http_429", 3, {"retry_after": 0.2}),
    ("http_500", 4, {}),
    ("reset", 4, {}),
    ("rpc_error", 4, {"code": -32005, "message": "Node is behind by 42 slots"}),
    ("timeout", 1, {"delay": 1.5}),
    ("accept_no_land", 3, {}),
], ids=["429-retry-after", "500", "reset", "rpc-error", "timeout-but-landed", "accept-no-land"])
async def test_send_faults_land_the_same_signature(
        tmp_path: Path, kind: Any, count: int, options: dict[str, Any]) -> None:
    async with start_daemon(tmp_path, send=FAST_SEND) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        faults = FaultLog()
        faults.add(run.world.rpc, "sendTransaction", kind, count, **options)
        await sell_and_check(run, audit, faults, f"send-{kind}")
        assert faults.fired() == count
        assert audit.faulted == count
        assert retry_requests(run) == []  # never asked for a new transaction


async def test_429_retry_after_is_respected(tmp_path: Path) -> None:
    async with start_daemon(tmp_path, send=dict(FAST_SEND, rebroadcast_interval_ms=2000)) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        faults = FaultLog()
        faults.add(run.world.rpc, "sendTransaction", "http_429", 2, retry_after=0.4)
        await sell_and_check(run, audit, faults, "send-429-spacing")
        sends = [r.received_at for r in run.world.rpc.received]
        assert len(sends) >= 3
        assert sends[1] - sends[0] >= 0.4 * 0.95 and sends[2] - sends[1] >= 0.4 * 0.95


async def test_status_reads_failing_do_not_cause_a_second_sale(tmp_path: Path) -> None:
    """The sell lands but getSignatureStatuses errors, resets and hangs for a while:
    the daemon keeps asking about the same signature and never signs another."""
    # reads time out like the sends (the 1.2 s hang is a timeout, not a late answer)
    async with start_daemon(tmp_path, send=FAST_SEND, rpc={"timeout_ms": 800}) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        faults = FaultLog()
        rpc = run.world.rpc
        faults.add(rpc, "getSignatureStatuses", "rpc_error", 8, code=-32603,
                   message="Internal error")
        faults.add(rpc, "getSignatureStatuses", "http_500", 8)
        faults.add(rpc, "getSignatureStatuses", "reset", 4)
        faults.add(rpc, "getSignatureStatuses", "timeout", 2, delay=1.2)
        faults.add(rpc, "getSignatureStatuses", "http_429", 4, retry_after=0.1)
        await sell_and_check(run, audit, faults, "status-errors")
        assert faults.fired() == 26
        assert retry_requests(run) == []


@pytest.mark.slow
async def test_unknown_outcome_relands_the_same_bytes(tmp_path: Path) -> None:
    """Status reads fail past confirm_timeout_sec: the outcome is unknown, so the
    daemon re-checks and re-broadcasts the very same transaction (no new signature)."""
    send = dict(FAST_SEND, confirm_timeout_sec=1.0)
    async with start_daemon(tmp_path, send=send) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        faults = FaultLog()
        faults.add(run.world.rpc, "getSignatureStatuses", "http_500", 30)
        faults.add(run.world.rpc, "isBlockhashValid", "http_500", 5)
        await sell_and_check(run, audit, faults, "status-unknown")
        assert run.daemon.metrics.confirmations.get("landed") == 1
        assert retry_requests(run) == []


async def test_accepted_but_never_landed_waits_for_expiry_before_a_new_sell(
        tmp_path: Path) -> None:
    """Every target says "accepted" but nothing lands. Only once the blockhash is
    provably expired may the daemon ask for (and send) a new transaction."""
    async with start_daemon(tmp_path, send=FAST_SEND) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        faults = FaultLog()
        rpc = run.world.rpc
        faults.add(rpc, "sendTransaction", "accept_no_land", 10_000)
        pid, mint = await run.open()
        key = (str(run.wallet), mint)
        await run.world.set_profit_pct(pid, -25)
        await until("the first sell reached the RPC", lambda: key in audit.sells)
        await asyncio.sleep(0.5)
        assert len(audit.sells[key]) == 1  # re-broadcasts only: same signature
        assert retry_requests(run) == []
        faults.add(rpc, "isBlockhashValid", "rpc_error", 1)
        run.world.chain.advance(MAX_PROCESSING_AGE + 2)
        expired_at = time.monotonic()
        await until("a retry is requested after expiry", lambda: bool(retry_requests(run)),
                    timeout=15)
        assert time.monotonic() - expired_at >= 3.5  # the expiry grace, not a guess
        faults.clear()
        await run.sold(pid, timeout=10)
        await until("the daemon journals the landing",
                    lambda: run.daemon.metrics.confirmations.get("landed") == 1)
        assert len(audit.sells[key]) == 2
        first, second = audit.sells[key]
        assert audit.state(first) == "expired" and audit.state(second) == "landed"
        assert audit.violations == [] and audit.double_sales() == {}
        run.daemon.journal.flush(5)
        states = sorted(r.state for r in JournalReader(run.daemon.cfg.journal.path)
                        .recent_trades(10))
        assert states == ["expired", "landed"]
        report_figures("accept-no-land-expiry", faults=faults.fired(), lost=0, duplicates=0)


async def test_slippage_failure_on_chain_is_retried_with_more_slippage(tmp_path: Path) -> None:
    """The price falls while the first sends are held up: the sell fails on chain
    (slippage). Only then does the daemon ask again, with bumped slippage. (Static
    guard only: with effects verification the simulation would catch the fall first.)"""
    async with start_daemon(tmp_path, send=FAST_SEND, guard={"simulate": "never"}) as run:
        run.world.tx_shape = "direct"  # the router is refused on sight without simulation
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        faults = FaultLog()
        faults.add(run.world.rpc, "sendTransaction", "http_500", 2, delay=0.3)
        pid, mint = await run.open()
        await run.world.set_profit_pct(pid, -25)
        token = run.world.chain.token_account(run.wallet, Pubkey.from_string(mint))
        price = run.world.chain.price(Pubkey.from_string(mint)) or 0.0
        run.world.chain.set_price(Pubkey.from_string(mint), price * 0.5)
        await run.sold(pid)
        first, second = audit.sells[(str(run.wallet), mint)]
        assert audit.state(first) == "failed" and audit.state(second) == "landed"
        assert [r.slippage_bps for r in retry_requests(run)] == [1500]  # 1000 + 500 bump
        assert audit.violations == [] and audit.double_sales() == {}
        assert run.world.chain.token_balance(token) == 0
        report_figures("slippage-retry", faults=faults.fired(), lost=0, duplicates=0)


async def test_slippage_caught_in_simulation_is_retried_before_anything_is_sent(
        tmp_path: Path) -> None:
    """The price falls 12 % before the exit is simulated, past the transaction's 10 %
    bound: the simulation fails on the DEX's slippage check, nothing is signed, and the
    daemon asks again with bumped slippage; that one is within bounds and lands."""
    async with start_daemon(tmp_path, send=FAST_SEND) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        pid, mint = await run.open()
        price = run.world.chain.price(Pubkey.from_string(mint)) or 0.0
        await run.world.set_profit_pct(pid, -25)
        run.world.chain.set_price(Pubkey.from_string(mint), price * 0.75 * 0.88)
        await run.sold(pid)
        sells = audit.sells[(str(run.wallet), mint)]
        assert [audit.state(s) for s in sells] == ["landed"]  # the first was never sent
        assert run.daemon.metrics.guard_refusals.get("simulation_slippage") == 1
        assert [r.slippage_bps for r in retry_requests(run)] == [1500]
        assert audit.violations == [] and audit.double_sales() == {}


async def test_ladder_levels_under_send_faults_sell_each_level_once(tmp_path: Path) -> None:
    ladder = {"target_profit_pct": 0.0, "stop_loss_pct": 20.0, "take_profit_levels": [
        {"profit_pct": 10.0, "sell_pct": 50.0}, {"profit_pct": 20.0, "sell_pct": 100.0}]}
    async with start_daemon(tmp_path, send=FAST_SEND, strategy=ladder) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        faults = FaultLog()
        faults.add(run.world.rpc, "sendTransaction", "accept_no_land", 3)
        faults.add(run.world.rpc, "getSignatureStatuses", "http_500", 5)
        pid, mint = await run.open()
        token = run.world.chain.token_account(run.wallet, Pubkey.from_string(mint))
        await run.world.set_profit_pct(pid, 12)
        await until("level 0 sold", lambda: run.world.chain.token_balance(token) < TOKENS)
        faults.add(run.world.rpc, "sendTransaction", "reset", 2)
        await run.world.set_profit_pct(pid, 25)
        await run.sold(pid)
        landed = audit.landed_sells(mint)
        settled = [run.world.chain.settlement(sig) for sig in landed]
        assert [s.tokens for s in settled if s] == [TOKENS // 2, TOKENS - TOKENS // 2]
        assert audit.violations == [] and audit.double_sales({mint: 2}) == {}
        assert run.world.chain.token_balance(token) == 0
        assert faults.fired() == 10
        report_figures("ladder-faults", faults=faults.fired(), lost=0, duplicates=0)


@pytest.mark.parametrize("down", ["dead-port", "http-500", "accept-no-land"])
async def test_one_fan_out_target_down(tmp_path: Path, down: str) -> None:
    """send.targets = [rpc, helius_sender]: the sender target is broken three ways;
    the exit lands through the RPC, once."""
    world = fault_world()
    await world.start()
    try:
        async with second_rpc(world.chain) as sender:
            url = (f"http://127.0.0.1:{free_port()}/fast" if down == "dead-port"
                   else f"{sender.url}/fast")
            send = dict(FAST_SEND, targets=["rpc", "helius_sender"], helius_sender_url=url)
            async with start_daemon(tmp_path, world, send=send) as run:
                audit = SendAudit(world.chain).watch(world.rpc, sender)
                faults = FaultLog()
                if down != "dead-port":
                    kind = "http_500" if down == "http-500" else "accept_no_land"
                    faults.add(sender, "sendTransaction", kind, 10_000)
                await sell_and_check(run, audit, faults, f"fanout-{down}")
                assert world.rpc.counts["sendTransaction"] >= 1
                if down != "dead-port":
                    assert sender.counts["sendTransaction"] >= 1  # it was tried
    finally:
        await world.stop()


async def test_rpc_send_down_lands_through_the_sender(tmp_path: Path) -> None:
    """The RPC refuses every send (500) but still answers reads: the Helius Sender
    stand-in carries the transaction; the RPC confirms it."""
    world = fault_world()
    await world.start()
    try:
        async with second_rpc(world.chain) as sender:
            send = dict(FAST_SEND, targets=["rpc", "helius_sender"],
                        helius_sender_url=f"{sender.url}/fast")
            async with start_daemon(tmp_path, world, send=send) as run:
                audit = SendAudit(world.chain).watch(world.rpc, sender)
                faults = FaultLog()
                faults.add(world.rpc, "sendTransaction", "http_500", 10_000)
                await sell_and_check(run, audit, faults, "fanout-rpc-down")
                assert [r.path for r in sender.received][:1] == ["/fast"]
                run.daemon.journal.flush(5)
                targets = _submission_targets(run)
                assert targets and set(targets) == {"helius_sender"}
    finally:
        await world.stop()


async def test_every_target_down_then_back(tmp_path: Path) -> None:
    """Both targets fail for a while (resets, 500s, a dead sender port); the same
    transaction lands once they come back, before its blockhash expires."""
    world = fault_world()
    await world.start()
    try:
        async with second_rpc(world.chain) as sender:
            send = dict(FAST_SEND, targets=["rpc", "helius_sender"],
                        helius_sender_url=f"{sender.url}/fast")
            async with start_daemon(tmp_path, world, send=send) as run:
                audit = SendAudit(world.chain).watch(world.rpc, sender)
                faults = FaultLog()
                faults.add(world.rpc, "sendTransaction", "reset", 6)
                faults.add(world.rpc, "sendTransaction", "http_500", 6)
                faults.add(sender, "sendTransaction", "http_429", 6, retry_after=0.1)
                faults.add(sender, "sendTransaction", "reset", 6)
                await sell_and_check(run, audit, faults, "fanout-all-down")
                assert retry_requests(run) == []
    finally:
        await world.stop()


async def test_audit_flags_a_second_signature_while_the_first_may_land() -> None:
    """The checker itself: two different sells of one position, the first accepted
    but not landed and its blockhash still valid, is a violation; after expiry it
    is not."""
    world = SimWorld(slot_ms=None)
    await world.start()
    try:
        audit = SendAudit(world.chain).watch(world.rpc)
        wallet = world.new_wallet()
        mint = world.new_token(0.5)
        world.chain.mint_to(wallet.pubkey(), mint, 3000)
        world.rpc.faults.add("sendTransaction", "accept_no_land", 1)
        async with aiohttp.ClientSession() as http:
            await _send(http, world.rpc, _signed_sell(world, wallet, mint, 1000))
            await _send(http, world.rpc, _signed_sell(world, wallet, mint, 999))
            assert len(audit.violations) == 1
            world.chain.advance(MAX_PROCESSING_AGE + 2)
            await _send(http, world.rpc, _signed_sell(world, wallet, mint, 998))
        assert len(audit.violations) == 1  # the first two are known now: landed, expired
        assert len(audit.landed_sells(str(mint))) == 2
        assert audit.double_sales() == {str(mint): 2}
    finally:
        await world.stop()


# --------------------------------------------------------------------------- helpers


def _submission_targets(run: Running) -> list[str]:
    conn = sqlite3.connect(f"file:{run.daemon.cfg.journal.path}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT target FROM submissions WHERE ok = 1")]
    finally:
        conn.close()


def _signed_sell(world: SimWorld, wallet: Keypair, mint: Any, tokens: int) -> bytes:
    unsigned = base64.b64decode(build_sell_tx(world.chain, wallet.pubkey(), mint, tokens, 0))
    signed, _ = sign_into_slot(unsigned, wallet)
    return signed


async def _send(http: aiohttp.ClientSession, rpc: SimRpcServer, tx: bytes) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "sendTransaction",
            "params": [base64.b64encode(tx).decode(),
                       {"encoding": "base64", "skipPreflight": True}]}
    async with http.post(rpc.url, json=body) as response:
        assert response.status == 200
