"""Process crashes and a failing journal disk.

``kill -9`` of the daemon (a real ``python -m lasersell_bot run`` subprocess) at
random points of exit flows, while the simulator and its LiteSVM chain live on in
this process; then a restart. Afterwards every position must have been sold
exactly once on chain, no sell may have gone out under a new signature while an
earlier one could still land (``SendAudit``), and the journal must agree with the
chain. ``LASERSELL_CRASH_FLOWS`` sets the number of flows (default 20, in batches
of 10; each batch is killed once), ``LASERSELL_CRASH_SEED`` the random seed.

The journal-disk tests mount a small tmpfs (we run as root): filled up, or
read-only. The daemon must keep trading, log ``journal_write_failed`` and report
``degraded`` on /healthz.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import os
import random
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from lasersell_bot.journal import INTENT_SUFFIX
from tests.faultkit import (
    STAGES,
    CrashRig,
    Flow,
    SendAudit,
    free_port,
    get_health,
    journal_attempts,
    journal_rows,
    report_figures,
    start_daemon,
    until,
)

CRASH_FLOWS = int(os.environ.get("LASERSELL_CRASH_FLOWS", "20"))
CRASH_SEED = int(os.environ.get("LASERSELL_CRASH_SEED", str(random.randrange(1 << 30))))
BATCH = 10


def check_chain_and_journal(rig: CrashRig, flows: list[Flow]) -> None:
    """Sold once each; sells only after the previous one was dead; journal == chain."""
    chain = rig.world.chain
    assert rig.audit.violations == []
    assert rig.audit.double_sales() == {}
    for flow in flows:
        assert chain.token_balance(flow.token_account) == 0, flow
        assert len(rig.audit.landed_sells(flow.mint)) == 1, flow
    attempts = journal_attempts(rig.journal_path)
    by_position = collections.defaultdict(list)
    for position_id, signature, state, _ in attempts:
        by_position[position_id].append((signature, state))
        status = chain.signature_statuses([signature])[0] if signature else None
        if state == "landed":
            assert status is not None and status["err"] is None, (position_id, signature)
        elif state == "failed":
            assert status is not None and status["err"] is not None, (position_id, signature)
        elif state == "expired":
            assert status is None, (position_id, signature)
        else:
            raise AssertionError(f"attempt {signature} of {position_id} left {state}")
    for flow in flows:
        landed = [sig for sig, state in by_position[flow.position_id] if state == "landed"]
        assert landed == rig.audit.landed_sells(flow.mint), (flow, by_position[flow.position_id])


async def crash_flows(tmp_path: Path, flows: int, seed: int) -> None:
    rng = random.Random(seed)
    rig = await CrashRig.create(tmp_path, rng)
    started = time.monotonic()
    try:
        for number in range((flows + BATCH - 1) // BATCH):
            mode = ("race", "no_land", "blind_confirm", "hung_send")[number % 4]
            batch = await rig.open_batch(min(BATCH, flows - number * BATCH), mode)
            await asyncio.sleep(0.05)  # the positions reach the daemon
            await rig.run_batch(batch)
        assert await rig.process.terminate() == 0
        check_chain_and_journal(rig, rig.flows)
    except AssertionError as exc:
        raise AssertionError(f"LASERSELL_CRASH_SEED={seed}: {exc}") from exc
    finally:
        await rig.close()
    stages = collections.Counter(f.stage for f in rig.flows)
    recovered = sum(int(e.get("count", 0))
                    for e in rig.process.events("recovering_pending_sells"))
    print(f"crash flows={len(rig.flows)} seed={seed} kills={rig.process.kills} "
          f"stages={dict(stages)} recovered_attempts={recovered} "
          f"rpc_faults={rig.faults.fired()} sends={rig.audit.sends} "
          f"seconds={time.monotonic() - started:.1f}")
    assert rig.process.kills == rig.restarts == (flows + BATCH - 1) // BATCH
    assert set(stages) <= set(STAGES)
    if flows >= 2 * BATCH:
        assert recovered >= 1  # the pending_attempts path really ran
    report_figures(f"crash-{flows}", faults=rig.process.kills + rig.faults.fired(),
                   lost=0, duplicates=0, stages=dict(stages), seed=seed)


async def test_kill9_while_sells_are_accepted_but_not_landed(tmp_path: Path) -> None:
    """Fixed point: the signed sells are out but not landed when the daemon dies.
    The restarted daemon re-lands the stored bytes before any new sell."""
    rig = await CrashRig.create(tmp_path, random.Random(1))
    try:
        batch = await rig.open_batch(3, "no_land")
        rig.faults.add(rig.world.rpc, "sendTransaction", "accept_no_land", 100_000)
        for flow in batch:
            await rig.trigger(flow)
        await until("all three sells are out", lambda: all(map(rig.sent, batch)))
        await until("journaled as pending", lambda: len(journal_attempts(rig.journal_path)) == 3)
        await rig.process.kill9()
        rig.faults.clear()
        rig.classify(batch)
        assert {f.stage for f in batch} == {"sent"}
        signatures = {f.mint: rig.audit.sells[(rig.wallet, f.mint)][0].signature for f in batch}
        await rig.start_daemon()
        await rig.finish(batch)
        assert await rig.process.terminate() == 0
        check_chain_and_journal(rig, batch)
        for flow in batch:  # the very bytes signed before the crash landed
            assert rig.audit.landed_sells(flow.mint) == [signatures[flow.mint]]
        assert rig.process.events("recovering_pending_sells")[0]["count"] == 3
        report_figures("crash-accepted-not-landed", faults=1 + rig.faults.fired(), lost=0,
                       duplicates=0)
    finally:
        await rig.close()


async def test_kill9_after_send_before_the_journal_commit(tmp_path: Path) -> None:
    """The journal's disk stalls (another connection holds the write lock), so the
    attempt rows are not committed when the sells go out; then kill -9. The restarted
    daemon must still know the in-flight transactions: re-land those bytes, never a
    new signature beside them (the server re-signals after a second)."""
    rig = await CrashRig.create(tmp_path, random.Random(2))
    try:
        batch = await rig.open_batch(3, "stalled_journal")
        await until("the journal exists", lambda: bool(journal_rows(
            rig.journal_path, "SELECT 1 FROM sqlite_master WHERE name = 'attempts'")))
        blocker = sqlite3.connect(rig.journal_path, timeout=5, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # the daemon's writer now waits
            rig.faults.add(rig.world.rpc, "sendTransaction", "accept_no_land", 100_000)
            for flow in batch:
                await rig.trigger(flow)
            await until("all three sells are out", lambda: all(map(rig.sent, batch)))
            await rig.process.kill9()
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        rig.faults.clear()
        assert journal_attempts(rig.journal_path) == []  # nothing reached SQLite
        signatures = {f.mint: rig.audit.sells[(rig.wallet, f.mint)][0].signature for f in batch}
        await rig.start_daemon()
        await rig.finish(batch)
        assert await rig.process.terminate() == 0
        check_chain_and_journal(rig, batch)
        for flow in batch:
            assert rig.audit.landed_sells(flow.mint) == [signatures[flow.mint]]
        report_figures("crash-before-journal-commit", faults=2 + rig.faults.fired(), lost=0,
                       duplicates=0)
    finally:
        await rig.close()


async def test_signed_sell_is_on_disk_before_the_first_byte_is_sent(tmp_path: Path) -> None:
    """The invariant behind crash recovery, checked at the moment of every send (the
    regular submit and any fast first-send path): the transaction being sent is
    already in the journal's intent log, or committed."""
    async with start_daemon(tmp_path) as run:
        submitter = run.daemon.submitter
        journal_path = Path(run.daemon.cfg.journal.path)
        inflight = journal_path.with_name(journal_path.name + INTENT_SUFFIX)
        seen: list[tuple[str, bool]] = []

        def on_disk(signed_tx: bytes) -> None:
            b64 = base64.b64encode(signed_tx).decode()
            logged = inflight.exists() and b64.encode() in inflight.read_bytes()
            committed = bool(journal_rows(
                journal_path, "SELECT 1 FROM attempts WHERE signed_tx_b64 = ?", (b64,)))
            seen.append((b64[:16], logged or committed))

        for name in ("submit", "send_now"):
            original = getattr(submitter, name, None)
            if original is None:
                continue

            def checked(signed_tx: bytes, *args: Any, _original: Any = original,
                        **kwargs: Any) -> Any:
                on_disk(signed_tx)
                return _original(signed_tx, *args, **kwargs)

            setattr(submitter, name, checked)
        pid, _ = await run.open()
        await run.world.set_profit_pct(pid, -25)
        await run.sold(pid)
        assert seen and all(ok for _, ok in seen), seen


async def test_kill9_at_random_points_of_exit_flows(tmp_path: Path) -> None:
    await crash_flows(tmp_path, min(CRASH_FLOWS, 20), CRASH_SEED)


@pytest.mark.slow
async def test_kill9_at_random_points_of_many_exit_flows(tmp_path: Path) -> None:
    """Run with LASERSELL_CRASH_FLOWS=100 for the long version."""
    await crash_flows(tmp_path, max(CRASH_FLOWS, 40), CRASH_SEED)


# --------------------------------------------------------------------------- journal disk


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at ``path`` (root only); skips the test where mounting fails."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_disk_full_journal_keeps_trading_and_reports_degraded(tmp_path: Path) -> None:
    port = free_port()
    with tmpfs(tmp_path / "disk", "512k") as disk, capture_logs() as logs:
        journal = disk / "journal.sqlite3"
        async with start_daemon(tmp_path, journal={"path": str(journal)},
                                http={"listen": f"127.0.0.1:{port}"}) as run:
            audit = SendAudit(run.world.chain).watch(run.world.rpc)
            first, first_mint = await run.open()
            filler = disk / "filler"
            with contextlib.suppress(OSError), filler.open("wb") as out:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            await run.world.set_profit_pct(first, -25)
            await run.sold(first)  # traded with a full disk
            await until("journal writes fail", lambda: not run.daemon.journal.healthy)
            status, body = await get_health(port)
            assert status == 503 and body["status"] == "degraded"
            assert "journal writes failing" in body["reasons"]
            assert any(e["event"] == "journal_write_failed" and e["log_level"] == "error"
                       for e in logs)
            assert audit.landed_sells(first_mint) and audit.violations == []

            filler.unlink()  # space again: the backlog is written, health recovers
            await until("journal healthy again", lambda: run.daemon.journal.healthy, timeout=10)
            assert run.daemon.journal.flush(5)
            status, body = await get_health(port)
            assert status == 200 and body["status"] == "ok"
            second, _ = await run.open()
            await run.world.set_profit_pct(second, -25)
            await run.sold(second)
            await until("second landing journaled", lambda: sorted(
                pid for pid, _, state, _ in journal_attempts(journal) if state == "landed")
                == sorted([first, second]))
            rows = journal_rows(journal, "SELECT position_id FROM signals WHERE kind='exit'")
            assert {r[0] for r in rows} == {first, second}  # nothing lost while full
        report_figures("journal-disk-full", faults=1, lost=0, duplicates=0)


async def test_read_only_journal_keeps_trading_and_reports_degraded(tmp_path: Path) -> None:
    port = free_port()
    with tmpfs(tmp_path / "ro", "256k") as disk, capture_logs() as logs:
        (disk / "journal").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        journal = disk / "journal" / "journal.sqlite3"
        async with start_daemon(tmp_path, journal={"path": str(journal)},
                                http={"listen": f"127.0.0.1:{port}"}) as run:
            audit = SendAudit(run.world.chain).watch(run.world.rpc)
            assert not run.daemon.journal.healthy
            status, body = await get_health(port)
            assert status == 503 and body["status"] == "degraded"
            pid, mint = await run.open()
            await run.world.set_profit_pct(pid, -25)
            await run.sold(pid)
            await until("the sale is confirmed",
                        lambda: run.daemon.metrics.confirmations.get("landed") == 1)
            assert audit.landed_sells(mint) and audit.violations == []
            events = {e["event"] for e in logs if e["log_level"] == "error"}
            assert {"journal_open_failed", "journal_write_failed"} <= events
            assert run.daemon.metrics.journal_errors.get() >= 2
        assert not journal.exists()
        report_figures("journal-read-only", faults=1, lost=0, duplicates=0)
