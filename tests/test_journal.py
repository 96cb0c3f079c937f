"""Journal: round trips, id allocation, crash recovery, tables, and disk failures."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from structlog.testing import capture_logs

from lasersell_bot import journal as journal_mod
from lasersell_bot.journal import (
    SCHEMA_VERSION,
    Journal,
    JournalError,
    JournalReader,
    PendingAttempt,
    migrate,
    realized_profit,
    render_table,
    rows_to_json,
)
from lasersell_bot.metrics import Metrics
from lasersell_bot.protocol import ExitSignalWithTx, MirrorBuySignal

MINT = "So1anaMint111111111111111111111111111111pump"
WALLET = "WaLLet11111111111111111111111111111111111111"
WATCHED = "WatchedWa11et1111111111111111111111111111111"
SIGNATURE = "5xLo" + "n" * 80 + "abcd"
T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
DISK_FULL = sqlite3.OperationalError("database or disk is full")


def exit_signal(**fields: Any) -> ExitSignalWithTx:
    values: dict[str, Any] = {
        "session_id": 42, "position_id": 7, "wallet_pubkey": WALLET, "mint": MINT,
        "position_tokens": 1_000_000, "profit_units": 50_000_000, "reason": "target_profit",
        "triggered_at_ms": T0 - 5, "unsigned_tx_b64": "AQID",
    }
    return ExitSignalWithTx(**(values | fields))


def mirror_signal() -> MirrorBuySignal:
    return MirrorBuySignal(
        session_id=42, watched_wallet=WATCHED, mint=MINT, user_wallet=WALLET,
        amount_quote_units=250_000_000, input="SOL", unsigned_tx_b64="BAUG", slippage_bps=2500,
    )


def query(path: Path, sql: str, *args: object) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def count(path: Path, table: str) -> int:
    return int(query(path, f"SELECT COUNT(*) FROM {table}")[0][0])


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def attempt(j: Journal, signal_id: int, no: int = 1, *, dry_run: bool = False,
            signature: str = SIGNATURE) -> int:
    return j.record_attempt(signal_id, no, signature=signature, slippage_bps=300,
                            signed_tx_b64="SIGNED", dry_run=dry_run)


def landed_exit(j: Journal, received_at_ms: int = T0, **fields: Any) -> int:
    signal_id = j.record_signal("exit", exit_signal(**fields), received_at_ms)
    j.record_outcome(attempt(j, signal_id), "landed")
    return signal_id


class FlakyConnection(sqlite3.Connection):
    """A write connection whose COMMIT can stall (slow disk) or fail (full disk)."""

    fault: ClassVar[Exception | None] = None
    gate: ClassVar[threading.Event | None] = None
    statements: ClassVar[list[str]] = []

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        FlakyConnection.statements.append(sql)
        if sql == "COMMIT":
            if self.gate is not None:
                self.gate.wait(10)
            if self.fault is not None:
                raise self.fault
        return super().execute(sql, *args)


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FlakyConnection]]:
    real_connect = journal_mod._connect
    FlakyConnection.fault, FlakyConnection.gate = None, None
    FlakyConnection.statements = []
    monkeypatch.setattr(journal_mod, "_connect",
                        lambda path, **kw: real_connect(path, factory=FlakyConnection, **kw))
    yield FlakyConnection
    if FlakyConnection.gate is not None:
        FlakyConnection.gate.set()
    FlakyConnection.fault, FlakyConnection.gate = None, None


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.db"


# --------------------------------------------------------------------------- round trip


def test_every_record_kind_round_trips(path: Path) -> None:
    with Journal.open(path) as j:
        sid = j.record_signal(
            "exit", exit_signal(level_index=1, sell_tokens=250_000, mirror_source=WATCHED), T0)
        mid = j.record_signal("mirror_buy", mirror_signal(), T0 + 1)
        j.record_guard(sid, True, "ok", {"programs": ["pump"], "fee": 5000})
        j.record_guard(mid, False, "unknown_program", None)
        aid = attempt(j, sid)
        j.record_submission(aid, "helius_sender", True, None, 12.5)
        j.record_submission(aid, "rpc", False, "timeout", 1000.0)
        j.record_outcome(aid, "unknown", err={"InstructionError": [2, "Custom"]})
        j.record_outcome(aid, "landed", slot=280_000_001, proceeds_lamports=1_250_000_000)

    exit_row, mirror_row = query(
        path, "SELECT kind, position_id, wallet, mint, reason, source_wallet, level_index,"
        " sell_tokens, position_tokens, profit_units, amount_quote_units, slippage_bps,"
        " triggered_at_ms, received_at_ms, unsigned_tx_b64 FROM signals ORDER BY id")
    assert exit_row == ("exit", 7, WALLET, MINT, "target_profit", WATCHED, 1, 250_000,
                        1_000_000, 50_000_000, None, None, T0 - 5, T0, "AQID")
    assert mirror_row == ("mirror_buy", None, WALLET, MINT, "mirror", WATCHED, None, None,
                          None, None, 250_000_000, 2500, None, T0 + 1, "BAUG")
    raw = json.loads(query(path, "SELECT raw_json FROM signals WHERE id = ?", sid)[0][0])
    assert raw["type"] == "exit_signal_with_tx" and raw["sell_tokens"] == 250_000
    assert "unsigned_tx_b64" not in raw
    assert query(path, "SELECT signal_id, ok, reason, detail_json FROM guard_checks") == [
        (sid, 1, "ok", '{"programs":["pump"],"fee":5000}'), (mid, 0, "unknown_program", None)]
    assert query(path, "SELECT id, signal_id, attempt_no, signature, slippage_bps, dry_run,"
                 " state, err_json, slot, proceeds_lamports, signed_tx_b64 FROM attempts") == [
        (aid, sid, 1, SIGNATURE, 300, 0, "landed", '{"InstructionError":[2,"Custom"]}',
         280_000_001, 1_250_000_000, "SIGNED")]
    assert query(path, "SELECT attempt_id, target, ok, error, elapsed_ms FROM submissions") == [
        (aid, "helius_sender", 1, None, 12.5), (aid, "rpc", 0, "timeout", 1000.0)]
    assert query(path, "SELECT state, slot FROM outcomes ORDER BY id") == [
        ("unknown", None), ("landed", 280_000_001)]


def test_u64_beyond_sqlite_range_is_kept_in_raw_json(path: Path) -> None:
    metrics = Metrics()
    with Journal.open(path, metrics) as j:
        sid = j.record_signal("exit", exit_signal(position_tokens=2**64 - 1), T0)
    (column, raw), = query(path, "SELECT position_tokens, raw_json FROM signals WHERE id = ?", sid)
    assert column is None
    assert '"position_tokens":18446744073709551615' in raw
    assert metrics.journal_errors.get() == 0


def test_kind_and_state_are_checked(path: Path) -> None:
    with Journal.open(path) as j:
        with pytest.raises(ValueError, match="does not match"):
            j.record_signal("mirror_buy", exit_signal(), T0)
        with pytest.raises(ValueError, match="unknown attempt state"):
            j.record_outcome(1, "bogus")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- ids and files


def test_ids_are_returned_before_the_rows_exist(path: Path, flaky: type[FlakyConnection]) -> None:
    with Journal.open(path) as j:
        flaky.gate = threading.Event()
        sid = j.record_signal("exit", exit_signal(), T0)
        aid = attempt(j, sid)
        assert aid == sid + 1
        assert j.pending_writes == 2
        assert count(path, "signals") == 0 and count(path, "attempts") == 0
        flaky.gate.set()
        assert j.flush()
        assert j.pending_writes == 0
        assert query(path, "SELECT id FROM signals") == [(sid,)]
        assert query(path, "SELECT id, signal_id FROM attempts") == [(aid, sid)]


def test_ids_stay_unique_across_reopen(path: Path) -> None:
    with Journal.open(path) as first:
        before = [first.record_signal("exit", exit_signal(), T0)]
        before += [attempt(first, before[0]), first.record_signal("exit", exit_signal(), T0)]
    with Journal.open(path) as second:
        after = [second.record_signal("exit", exit_signal(), T0)]
        after.append(attempt(second, after[0]))
    assert min(after) > max(before)
    assert len(set(before + after)) == 5
    assert {row[0] for row in query(path, "SELECT id FROM signals")} == {
        before[0], before[2], after[0]}


def test_wal_synchronous_full_and_private_files(path: Path,
                                                  flaky: type[FlakyConnection]) -> None:
    with Journal.open(path) as j:
        j.record_signal("exit", exit_signal(), T0)
        assert j.flush()
        assert query(path, "PRAGMA journal_mode") == [("wal",)]
        assert "PRAGMA synchronous = FULL" in flaky.statements
        for name in ("journal.db", "journal.db-wal"):
            assert os.stat(path.parent / name).st_mode & 0o777 == 0o600, name


def test_existing_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    Journal.open(path).close()
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_migrate_sets_version_and_is_idempotent() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    assert migrate(conn) == SCHEMA_VERSION
    assert migrate(conn) == SCHEMA_VERSION
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"signals", "guard_checks", "attempts", "submissions", "outcomes"}


def test_newer_schema_is_left_alone(path: Path) -> None:
    path.parent.mkdir(parents=True)
    sqlite3.connect(path).execute("PRAGMA user_version = 99").connection.close()
    j = Journal.open(path)
    assert not j.healthy
    j.record_signal("exit", exit_signal(), T0)
    assert not j.flush(timeout=0.2)
    j.close(timeout=0.1)
    assert query(path, "PRAGMA user_version") == [(99,)]
    assert query(path, "SELECT name FROM sqlite_master") == []


# --------------------------------------------------------------------------- recovery


def test_pending_attempts_after_a_crash(path: Path) -> None:
    crashed = Journal.open(path)
    sid = crashed.record_signal("exit", exit_signal(position_id=9, level_index=2), T0)
    pending_id = crashed.record_attempt(sid, 1, signature="SigPending", slippage_bps=500,
                                        signed_tx_b64="TX1", dry_run=False)
    unknown_id = attempt(crashed, sid, 2, signature="SigUnknown")
    crashed.record_outcome(unknown_id, "unknown")
    crashed.record_outcome(attempt(crashed, sid, 3), "landed")
    attempt(crashed, sid, 4, dry_run=True)
    mirror_attempt = attempt(crashed, crashed.record_signal("mirror_buy", mirror_signal(), T0))
    crashed.record_outcome(mirror_attempt, "failed")
    assert crashed.flush()

    restarted = Journal.open(path)
    pending = restarted.pending_attempts()
    assert [p.attempt_id for p in pending] == [pending_id, unknown_id]
    assert pending[0] == PendingAttempt(
        attempt_id=pending_id, signal_id=sid, attempt_no=1, kind="exit", state="pending",
        signature="SigPending", signed_tx_b64="TX1", position_id=9, wallet=WALLET, mint=MINT,
        level_index=2, slippage_bps=500, created_at_ms=pending[0].created_at_ms)
    assert (pending[1].state, pending[1].signature) == ("unknown", "SigUnknown")
    assert restarted.record_signal("exit", exit_signal(), T0) > mirror_attempt
    restarted.close()
    crashed.close()


def test_reads_of_a_missing_journal_are_empty(tmp_path: Path) -> None:
    reader = JournalReader(tmp_path / "none.db")
    assert reader.pending_attempts() == []
    assert reader.recent_trades() == []
    assert reader.realized_pnl() == 0
    assert not (tmp_path / "none.db").exists()


def test_garbage_file_gives_unhealthy_journal_and_read_error(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database, just bytes" * 200)
    j = Journal.open(path)
    assert not j.healthy
    with pytest.raises(JournalError, match="cannot read journal"):
        j.recent_trades()
    j.close(timeout=0.1)


# --------------------------------------------------------------------------- trades and pnl


def three_trades(j: Journal) -> tuple[int, int, int]:
    """A stop loss landed on retry, a refused mirror buy, a landed ladder level."""
    stop = j.record_signal("exit", exit_signal(reason="stop_loss", profit_units=-30_000_000), T0)
    j.record_outcome(attempt(j, stop, 1, signature="FirstTry1111"), "failed", err="slippage")
    j.record_outcome(attempt(j, stop, 2), "landed")
    mirror = j.record_signal("mirror_buy", mirror_signal(), T0 + 1000)
    j.record_guard(mirror, False, "unknown_program", {"program": "Evil111"})
    ladder = j.record_signal("exit", exit_signal(level_index=1, sell_tokens=500_000,
                                                 profit_units=100_000_000), T0 + 2000)
    j.record_outcome(attempt(j, ladder), "landed", proceeds_lamports=260_000_000)
    return stop, mirror, ladder


def test_recent_trades_newest_first_and_limited(path: Path) -> None:
    with Journal.open(path) as j:
        stop, mirror, ladder = three_trades(j)
        assert j.flush()
        trades = j.recent_trades()
        assert [t.signal_id for t in trades] == [ladder, mirror, stop]
        assert [t.signal_id for t in j.recent_trades(limit=2)] == [ladder, mirror]
    assert (trades[2].state, trades[2].attempts, trades[2].signature) == ("landed", 2, SIGNATURE)
    assert (trades[1].state, trades[1].guard_reason, trades[1].attempts) == (
        "refused", "unknown_program", 0)
    assert (trades[0].pnl_lamports, trades[0].proceeds_lamports) == (50_000_000, 260_000_000)


def test_render_table_cells(path: Path) -> None:
    with Journal.open(path) as j:
        three_trades(j)
    lines = render_table(JournalReader(path).recent_trades()).splitlines()
    cells = [re.split(r"\s{2,}", line.strip()) for line in lines]
    assert cells[0] == ["time (UTC)", "kind", "position", "mint", "reason", "level", "state",
                        "signature", "attempts", "pnl SOL"]
    assert cells[2] == ["2023-11-14 22:13:22", "exit", "7", "So1a..pump", "target_profit", "1",
                        "landed", "5xLo..abcd", "1", "+0.050000"]
    assert cells[3] == ["2023-11-14 22:13:21", "mirror_buy", "-", "So1a..pump", "mirror", "-",
                        "refused", "-", "0", "-"]
    assert cells[4][-4:] == ["landed", "5xLo..abcd", "2", "-0.030000"]
    assert len({len(line) for line in lines}) == 1
    assert lines[0].index("state") == lines[2].index("landed")


def test_render_table_marks_dry_runs_and_handles_no_rows(path: Path) -> None:
    with Journal.open(path) as j:
        sid = j.record_signal("exit", exit_signal(), T0)
        attempt(j, sid, dry_run=True)
    assert "pending (dry run)" in render_table(JournalReader(path).recent_trades())
    assert render_table([]).splitlines()[0].startswith("time (UTC)  kind")


def test_rows_to_json_keeps_full_values(path: Path) -> None:
    with Journal.open(path) as j:
        three_trades(j)
    rows = json.loads(rows_to_json(JournalReader(path).recent_trades()))
    assert [r["kind"] for r in rows] == ["exit", "mirror_buy", "exit"]
    assert rows[0]["mint"] == MINT and rows[0]["signature"] == SIGNATURE
    assert rows[0]["pnl_lamports"] == 50_000_000 and rows[2]["pnl_lamports"] == -30_000_000
    assert rows[1]["pnl_lamports"] is None


def test_realized_pnl_counts_landed_exits_pro_rata(path: Path) -> None:
    with Journal.open(path) as j:
        landed_exit(j, profit_units=100_000_000)
        landed_exit(j, level_index=0, sell_tokens=250_000, profit_units=40_000_001)
        landed_exit(j, reason="stop_loss", position_tokens=3, sell_tokens=1,
                    profit_units=-30_000_000)
        failed = j.record_signal("exit", exit_signal(profit_units=999), T0)
        j.record_outcome(attempt(j, failed), "failed")
        retried = j.record_signal("exit", exit_signal(profit_units=7), T0)
        j.record_outcome(attempt(j, retried, 1), "expired")
        j.record_outcome(attempt(j, retried, 2), "landed")
        dry = j.record_signal("exit", exit_signal(profit_units=5_000), T0)
        j.record_outcome(attempt(j, dry, dry_run=True), "landed")
        j.record_outcome(attempt(j, j.record_signal("mirror_buy", mirror_signal(), T0)), "landed")
        assert j.flush()
        assert j.realized_pnl() == 100_000_000 + 10_000_000 - 10_000_000 + 7
    assert JournalReader(path).realized_pnl() == 100_000_007


def test_realized_profit_truncates_toward_zero() -> None:
    assert realized_profit(-10, 1, 3) == -3
    assert realized_profit(10, 1, 3) == 3
    assert realized_profit(10, None, 3) == 10
    assert realized_profit(10, 5, 3) == 10


# --------------------------------------------------------------------------- failures


def test_disk_full_is_counted_retried_with_backoff_and_recovers(
    path: Path, flaky: type[FlakyConnection]
) -> None:
    metrics = Metrics()
    j = Journal.open(path, metrics)
    with capture_logs() as logs:
        flaky.fault = DISK_FULL
        sid = j.record_signal("exit", exit_signal(), T0)
        aid = attempt(j, sid)
        j.record_outcome(aid, "landed")
        wait_for(lambda: not j.healthy)
        time.sleep(0.4)
        assert 2 <= metrics.journal_errors.get() <= 5  # 50, 100, 200 ms apart: no hammering
        assert j.pending_writes == 4
        assert count(path, "signals") == 0

        flaky.fault = None
        wait_for(lambda: j.healthy and j.pending_writes == 0)
    failed = [e for e in logs if e["event"] == "journal_write_failed"]
    assert failed[0]["log_level"] == "error" and "disk is full" in failed[0]["error"]
    assert [e["event"] for e in logs][-1] == "journal_write_recovered"
    assert query(path, "SELECT id FROM signals") == [(sid,)]
    assert query(path, "SELECT id, state FROM attempts") == [(aid, "landed")]
    assert count(path, "outcomes") == 1
    j.close()


def test_flush_retries_at_once(path: Path, flaky: type[FlakyConnection],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_mod, "_RETRY_MIN_S", 60.0)
    j = Journal.open(path)
    flaky.fault = DISK_FULL
    j.record_signal("exit", exit_signal(), T0)
    assert not j.flush(timeout=0.2)
    flaky.fault = None
    assert j.flush(timeout=2)
    assert count(path, "signals") == 1
    j.close()


def test_unopenable_path_reports_unhealthy_then_recovers(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the journal directory should be")
    path = blocker / "journal.db"
    metrics = Metrics()
    j = Journal.open(path, metrics)
    assert not j.healthy
    sid = j.record_signal("exit", exit_signal(), T0)
    assert not j.flush(timeout=0.2)
    assert metrics.journal_errors.get() >= 2

    blocker.unlink()
    assert j.flush(timeout=5)
    assert j.healthy
    assert query(path, "SELECT id FROM signals") == [(sid,)]
    j.close()


def test_backlog_is_bounded(path: Path, flaky: type[FlakyConnection],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_mod, "_MAX_BACKLOG", 10)
    metrics = Metrics()
    j = Journal.open(path, metrics)
    flaky.fault = DISK_FULL
    ids = [j.record_signal("exit", exit_signal(), T0) for _ in range(25)]
    wait_for(lambda: j.pending_writes == 10)
    assert metrics.journal_errors.get() >= 15
    flaky.fault = None
    assert j.flush()
    assert [row[0] for row in query(path, "SELECT id FROM signals ORDER BY id")] == ids[-10:]
    j.close()


def test_a_bad_write_is_dropped_alone(path: Path) -> None:
    first, metrics = Journal.open(path), Metrics()
    second = Journal.open(path, metrics)  # misuse: two writers hand out the same ids
    clash = first.record_signal("exit", exit_signal(), T0)
    assert first.flush()
    assert second.record_signal("exit", exit_signal(), T0 + 1) == clash
    later = second.record_signal("exit", exit_signal(), T0 + 2)
    assert second.flush()
    assert second.healthy
    assert metrics.journal_errors.get() == 1
    assert query(path, "SELECT id, received_at_ms FROM signals ORDER BY id") == [
        (clash, T0), (later, T0 + 2)]
    first.close()
    second.close()


def test_concurrent_records_keep_every_row(path: Path) -> None:
    threads, per_thread = 8, 200
    ids: list[int] = []
    start = threading.Barrier(threads)

    def worker(j: Journal) -> None:
        start.wait()
        for _ in range(per_thread):
            sid = j.record_signal("exit", exit_signal(), T0)
            aid = attempt(j, sid)
            j.record_submission(aid, "rpc", True, None, 1.0)
            ids.extend((sid, aid))

    with Journal.open(path) as j:
        pool = [threading.Thread(target=worker, args=(j,)) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    total = threads * per_thread
    assert len(set(ids)) == 2 * total
    assert (count(path, "signals"), count(path, "attempts"), count(path, "submissions")) == (
        total, total, total)
    orphans = "SELECT COUNT(*) FROM attempts WHERE signal_id NOT IN (SELECT id FROM signals)"
    assert query(path, orphans) == [(0,)]


def test_close_flushes_everything(path: Path, flaky: type[FlakyConnection],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_mod, "_RETRY_MIN_S", 60.0)  # only close() will retry
    metrics = Metrics()
    j = Journal.open(path, metrics)
    flaky.fault = DISK_FULL
    for _ in range(300):
        j.record_signal("exit", exit_signal(), T0)
    wait_for(lambda: not j.healthy)
    flaky.fault = None
    assert j.pending_writes == 300
    j.close()
    assert count(path, "signals") == 300
    assert j.pending_writes == 0 and j.flush()
    errors = metrics.journal_errors.get()
    j.record_signal("exit", exit_signal(), T0)  # after close: counted, not raised
    assert metrics.journal_errors.get() == errors + 1


def test_close_waits_for_a_slow_disk(path: Path, flaky: type[FlakyConnection]) -> None:
    j = Journal.open(path)
    flaky.gate = threading.Event()
    for _ in range(50):
        j.record_signal("exit", exit_signal(), T0)
    threading.Timer(0.1, flaky.gate.set).start()
    j.close()
    assert count(path, "signals") == 50


def test_close_is_bounded_when_the_disk_stays_full(path: Path,
                                                   flaky: type[FlakyConnection]) -> None:
    metrics = Metrics()
    j = Journal.open(path, metrics)
    flaky.fault = DISK_FULL
    for _ in range(3):
        j.record_signal("exit", exit_signal(), T0)
    started = time.monotonic()
    j.close(timeout=0.3)
    assert time.monotonic() - started < 2.0
    assert metrics.journal_errors.get() >= 1 + 3  # failed commits, then 3 writes lost
    assert not j.healthy
    assert count(path, "signals") == 0
