"""Journal durability: the intent record is synced before ``record_attempt`` returns (in
a preallocated file, so the sync flushes no size change), commits are synced
(``synchronous=FULL``), zeroed records and preallocated zeros replay cleanly, and
``durable = false`` skips the syncs."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from lasersell_bot import journal as journal_mod
from lasersell_bot.journal import INTENT_PREALLOC, INTENT_SUFFIX, Journal
from lasersell_bot.metrics import Metrics
from lasersell_bot.protocol import ExitSignalWithTx

WALLET = "WaLLet11111111111111111111111111111111111111"
MINT = "So1anaMint111111111111111111111111111111pump"


def exit_signal(position_id: int = 7) -> ExitSignalWithTx:
    return ExitSignalWithTx(
        session_id=42, position_id=position_id, wallet_pubkey=WALLET, mint=MINT,
        position_tokens=1_000_000, profit_units=5, reason="target_profit",
        triggered_at_ms=1, unsigned_tx_b64="AQID")


def inflight(path: Path) -> Path:
    return path.with_name(path.name + INTENT_SUFFIX)


class SyncSpy:
    """Records every fdatasync/fsync on the intent log's file descriptor, in order with
    the writes, through the module's ``os``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[str] = []
        real_fdatasync, real_pwrite = os.fdatasync, os.pwrite

        def fdatasync(fd: int) -> None:
            self.events.append("fdatasync")
            real_fdatasync(fd)

        def pwrite(fd: int, data: bytes, offset: int) -> int:
            self.events.append("record")
            return real_pwrite(fd, data, offset)

        monkeypatch.setattr(journal_mod.os, "fdatasync", fdatasync)
        monkeypatch.setattr(journal_mod.os, "pwrite", pwrite)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


def test_intent_record_is_synced_before_record_attempt_returns(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = Metrics()
    j = Journal.open(path, metrics)
    assert inflight(path).stat().st_size >= INTENT_PREALLOC  # preallocated at open
    spy = SyncSpy(monkeypatch)
    sid = j.record_signal("exit", exit_signal(), 1)
    j.record_attempt(sid, 1, signature="Sig1", slippage_bps=1, signed_tx_b64="U0lHTkVE",
                     dry_run=False)
    # the record, then its sync, both before record_attempt returned
    assert spy.events == ["record", "fdatasync"]
    assert metrics.intent_sync_seconds.count == 1
    assert b"U0lHTkVE" in inflight(path).read_bytes()
    # the file did not grow: the sync flushes data only
    assert inflight(path).stat().st_size == INTENT_PREALLOC
    # dry runs and unsigned attempts are not synced
    j.record_attempt(sid, 2, signature="Sig2", slippage_bps=1, signed_tx_b64="X",
                     dry_run=True)
    assert spy.events == ["record", "fdatasync"]
    j.close()


def test_commits_are_synced_full_when_durable(path: Path) -> None:
    for durable, level in ((True, 2), (False, 1)):  # PRAGMA synchronous: 2 FULL, 1 NORMAL
        conn = journal_mod._connect(path, durable=durable)
        try:
            assert conn.execute("PRAGMA synchronous").fetchone() == (level,)
        finally:
            conn.close()


def test_not_durable_skips_the_sync(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal.open(path, durable=False)
    spy = SyncSpy(monkeypatch)
    sid = j.record_signal("exit", exit_signal(), 1)
    j.record_attempt(sid, 1, signature="Sig1", slippage_bps=1, signed_tx_b64="U0lH",
                     dry_run=False)
    assert spy.events == ["record"]
    assert j.flush()
    j.close()


def test_once_committed_the_log_starts_over_and_stale_records_replay_as_nothing(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal.open(path)
    spy = SyncSpy(monkeypatch)
    sid = j.record_signal("exit", exit_signal(), 1)
    j.record_attempt(sid, 1, signature="Sig1", slippage_bps=1, signed_tx_b64="Rmlyc3Q=",
                     dry_run=False)
    assert j.flush()
    assert j.intents_pending == 0
    j.record_attempt(sid, 2, signature="Sig2", slippage_bps=1, signed_tx_b64="U2Vjb25k",
                     dry_run=False)
    data = inflight(path).read_bytes()
    assert b"U2Vjb25k" in data and b"Rmlyc3Q=" not in data  # written over, at offset 0
    assert spy.events == ["record", "fdatasync"] * 2  # no zero-filling, no extra sync
    assert inflight(path).stat().st_size == INTENT_PREALLOC
    assert j.flush()
    j.close()
    with Journal.open(path) as again:  # the stale record replays as nothing new
        assert [p.attempt_no for p in again.pending_attempts()] == [1, 2]
    assert count_rows(path) == 2


def test_a_crash_leaves_a_preallocated_log_that_replays(path: Path) -> None:
    """kill -9 after the sync: the record sits among preallocated zeros, beside the
    zeroed remains of committed records and a torn record; replay finds exactly it."""
    crashed = Journal.open(path)
    sid = crashed.record_signal("exit", exit_signal(position_id=9), 1)
    crashed.record_attempt(sid, 1, signature="SigOld", slippage_bps=1,
                           signed_tx_b64="T2xk", dry_run=False)
    assert crashed.flush()
    crashed._writer.queue.put(journal_mod._Stop(0.0))  # writer gone: nothing commits now
    crashed._thread.join(5)
    attempt_id = crashed.record_attempt(sid, 2, signature="SigLost", slippage_bps=1,
                                        signed_tx_b64="TG9zdA==", dry_run=False)
    with open(inflight(path), "r+b") as raw:  # a torn third record after the second
        data = raw.read()
        end = len(data.rstrip(b"\0"))
        raw.seek(end)
        raw.write(b'{"signal":null,"attempt":[99')
    restarted = Journal.open(path)
    pending = restarted.pending_attempts()
    assert [(p.attempt_id, p.signature, p.state) for p in pending] == [
        (attempt_id - 1, "SigOld", "pending"), (attempt_id, "SigLost", "pending")]
    assert not inflight(path).read_bytes().strip(b"\0")
    restarted.close()


def count_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0])


def test_the_log_grows_when_uncommitted_records_fill_it(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_mod, "INTENT_PREALLOC", 4096)
    j = Journal.open(path)
    j._writer.queue.put(journal_mod._Stop(0.0))  # nothing commits: records pile up
    j._thread.join(5)
    sid = j.record_signal("exit", exit_signal(), 1)
    for n in range(8):
        j.record_attempt(sid, n, signature=f"Sig{n}", slippage_bps=1,
                         signed_tx_b64="A" * 1000, dry_run=False)
    data = inflight(path).read_bytes()
    assert len(data) >= 8 * 1000
    assert sum(1 for line in data.split(b"\n") if line.strip(b"\0")) == 8
    j._closed = True
    j._intents.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM attempts").fetchone() == (0,)
