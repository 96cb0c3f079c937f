"""Durable record of every signal, guard verdict, attempt, submission and outcome.

The journal owns one SQLite file (WAL mode, ``synchronous=FULL``, mode 0600) and
the thread that writes it. Every ``record_*`` call only allocates an id and puts a
write on a ``queue.SimpleQueue``: the asyncio loop never waits on the disk. The
writer thread commits whatever is queued in one transaction.

Ids of signals and attempts come from one in-memory sequence started after the
largest id on disk, so callers get them before the row exists. One process writes
a journal file at a time.

Exception: ``record_attempt`` of a signed transaction also writes the attempt (and
its signal) to ``<path>-inflight`` and, when the journal is durable (the default),
``fdatasync``s it before it returns, so a transaction is on disk before it can be
sent. After a ``kill -9`` or a power cut between the send and the commit,
``Journal.open`` replays that file into SQLite as ``pending`` attempts, and recovery
re-lands the very same bytes instead of letting a new sell go out beside them. The
writer forgets the records whenever every logged attempt is committed, and each commit
is synced too (``synchronous=FULL``). See ``_IntentLog`` for the file's layout.

Failures never reach the caller. A batch that cannot be committed (disk full,
read-only or missing directory, I/O error, locked or unreadable file) stays in a
bounded in-memory backlog and is retried with backoff; meanwhile ``healthy`` is
False, ``metrics.journal_errors`` counts each failed attempt and each dropped write,
and ``journal_write_failed`` is logged. A path that cannot be opened at all still
gives a ``Journal`` (unhealthy, retrying) so the daemon keeps trading; its ids then
start from the current time in microseconds so they cannot collide with rows already
in the file. A single write that is wrong in itself (say a duplicate id from a second
process) is rolled back alone, logged as ``journal_write_rejected`` and dropped.

Reads (``recent_trades``, ``pending_attempts``, ``realized_pnl``) open their own
read-only connection, see committed rows only, and may block: call them at startup,
from the CLI or through ``asyncio.to_thread``. ``JournalReader`` offers them without
starting a writer.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal, Protocol, get_args

import msgspec

from lasersell_bot.logs import get_logger
from lasersell_bot.metrics import Metrics
from lasersell_bot.protocol import ExitSignalWithTx, MirrorBuySignal

SignalKind = Literal["exit", "mirror_buy"]
AttemptState = Literal[
    "pending", "landed", "failed", "expired", "unknown", "refused", "error", "dry_run"
]
SignalMessage = ExitSignalWithTx | MirrorBuySignal

STATES: Final = frozenset(get_args(AttemptState))
OPEN_STATES: Final = ("pending", "unknown")
_KIND_OF: Final[dict[type, str]] = {ExitSignalWithTx: "exit", MirrorBuySignal: "mirror_buy"}

_MAX_BATCH = 512
_MAX_BACKLOG = 20_000
_RECENT_SIGNALS = 4096  # signal writes kept to put beside their attempts in the intent log
_RETRY_MIN_S = 0.05
_RETRY_MAX_S = 5.0
_BUSY_TIMEOUT_S = 5.0
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_LAMPORTS_PER_SOL = Decimal(10**9)

# Errors caused by one write itself: that write is rolled back and dropped. Anything
# else (sqlite3.OperationalError, OSError, ...) is about the disk and is retried.
_WRITE_FAULTS = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    msgspec.MsgspecError,
    OverflowError,
    TypeError,
    ValueError,
)


class JournalError(Exception):
    """The journal file exists but cannot be read, or has a newer schema."""


# --------------------------------------------------------------------------- schema

_SCHEMA_V1: Final = (
    """CREATE TABLE signals (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        received_at_ms INTEGER NOT NULL,
        session_id INTEGER,
        position_id INTEGER,
        wallet TEXT NOT NULL,
        mint TEXT NOT NULL,
        reason TEXT NOT NULL,
        source_wallet TEXT,
        level_index INTEGER,
        sell_tokens INTEGER,
        position_tokens INTEGER,
        profit_units INTEGER,
        amount_quote_units INTEGER,
        slippage_bps INTEGER,
        triggered_at_ms INTEGER,
        unsigned_tx_b64 TEXT NOT NULL,
        raw_json TEXT NOT NULL)""",
    "CREATE INDEX signals_received ON signals (received_at_ms)",
    "CREATE INDEX signals_position ON signals (position_id)",
    """CREATE TABLE guard_checks (
        id INTEGER PRIMARY KEY,
        signal_id INTEGER NOT NULL REFERENCES signals (id),
        ok INTEGER NOT NULL,
        reason TEXT NOT NULL,
        detail_json TEXT,
        checked_at_ms INTEGER NOT NULL)""",
    "CREATE INDEX guard_checks_signal ON guard_checks (signal_id)",
    """CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        signal_id INTEGER NOT NULL REFERENCES signals (id),
        attempt_no INTEGER NOT NULL,
        signature TEXT,
        slippage_bps INTEGER,
        dry_run INTEGER NOT NULL,
        state TEXT NOT NULL,
        err_json TEXT,
        slot INTEGER,
        proceeds_lamports INTEGER,
        signed_tx_b64 TEXT,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL)""",
    "CREATE INDEX attempts_signal ON attempts (signal_id)",
    "CREATE INDEX attempts_state ON attempts (state)",
    """CREATE TABLE submissions (
        id INTEGER PRIMARY KEY,
        attempt_id INTEGER NOT NULL REFERENCES attempts (id),
        target TEXT NOT NULL,
        ok INTEGER NOT NULL,
        error TEXT,
        elapsed_ms REAL NOT NULL,
        at_ms INTEGER NOT NULL)""",
    "CREATE INDEX submissions_attempt ON submissions (attempt_id)",
    """CREATE TABLE outcomes (
        id INTEGER PRIMARY KEY,
        attempt_id INTEGER NOT NULL REFERENCES attempts (id),
        state TEXT NOT NULL,
        err_json TEXT,
        slot INTEGER,
        proceeds_lamports INTEGER,
        at_ms INTEGER NOT NULL)""",
    "CREATE INDEX outcomes_attempt ON outcomes (attempt_id)",
)

# MIGRATIONS[n] takes a file from user_version n to n + 1.
MIGRATIONS: Final = (_SCHEMA_V1,)
SCHEMA_VERSION: Final = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION``, one transaction per step."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise JournalError(f"journal schema {version} is newer than this build ({SCHEMA_VERSION})")
    for step in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


def _connect(
    path: Path, factory: type[sqlite3.Connection] = sqlite3.Connection, durable: bool = True
) -> sqlite3.Connection:
    """Open ``path`` for writing: private file, WAL, migrated; ``synchronous=FULL`` (every
    commit synced) when ``durable``, else ``NORMAL``."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _create_private(path)
    conn = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, factory=factory
    )
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise JournalError(f"journal_mode is {mode}, not wal")
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _create_private(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o777 != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _max_id(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT MAX((SELECT COALESCE(MAX(id), 0) FROM signals),"
        " (SELECT COALESCE(MAX(id), 0) FROM attempts))"
    ).fetchone()
    return int(row[0])


# --------------------------------------------------------------------------- rows


class PendingAttempt(msgspec.Struct, frozen=True):
    """A submitted transaction whose fate is not known yet (state pending/unknown)."""

    attempt_id: int
    signal_id: int
    attempt_no: int
    kind: str
    state: str
    signature: str | None
    signed_tx_b64: str | None
    position_id: int | None
    wallet: str
    mint: str
    level_index: int | None
    slippage_bps: int | None
    created_at_ms: int


class TradeRow(msgspec.Struct, frozen=True):
    """One signal with its latest (or landed) attempt; ``pnl_lamports`` when realized."""

    signal_id: int
    received_at_ms: int
    kind: str
    position_id: int | None
    wallet: str
    mint: str
    reason: str
    level_index: int | None
    state: str
    signature: str | None
    attempts: int
    slippage_bps: int | None
    dry_run: bool
    guard_reason: str | None
    profit_units: int | None
    sell_tokens: int | None
    position_tokens: int | None
    proceeds_lamports: int | None
    pnl_lamports: int | None


_PENDING_SQL: Final = f"""
    SELECT a.id, a.signal_id, a.attempt_no, COALESCE(s.kind, ''), a.state, a.signature,
           a.signed_tx_b64, s.position_id, COALESCE(s.wallet, ''), COALESCE(s.mint, ''),
           s.level_index, a.slippage_bps, a.created_at_ms
    FROM attempts a LEFT JOIN signals s ON s.id = a.signal_id
    WHERE a.state IN {OPEN_STATES!r} AND a.dry_run = 0
    ORDER BY a.created_at_ms, a.id"""

_TRADES_SQL: Final = """
    SELECT s.id, s.received_at_ms, s.kind, s.position_id, s.wallet, s.mint, s.reason,
           s.level_index,
           COALESCE(a.state, CASE WHEN g.ok = 0 THEN 'refused' ELSE 'received' END),
           a.signature, (SELECT COUNT(*) FROM attempts c WHERE c.signal_id = s.id),
           a.slippage_bps, COALESCE(a.dry_run, 0), g.reason, s.profit_units,
           s.sell_tokens, s.position_tokens, a.proceeds_lamports
    FROM signals s
    LEFT JOIN attempts a ON a.id = (
        SELECT b.id FROM attempts b WHERE b.signal_id = s.id
        ORDER BY b.state = 'landed' DESC, b.attempt_no DESC, b.id DESC LIMIT 1)
    LEFT JOIN guard_checks g ON g.id = (
        SELECT MAX(h.id) FROM guard_checks h WHERE h.signal_id = s.id)"""


def _trade_row(row: Sequence[Any]) -> TradeRow:
    (sid, received, kind, position, wallet, mint, reason, level, state, signature,
     attempts, slippage, dry_run, guard_reason, profit, sell, held, proceeds) = row
    realized = kind == "exit" and state == "landed" and not dry_run and profit is not None
    return TradeRow(
        signal_id=sid, received_at_ms=received, kind=kind, position_id=position,
        wallet=wallet, mint=mint, reason=reason, level_index=level, state=state,
        signature=signature, attempts=attempts, slippage_bps=slippage, dry_run=bool(dry_run),
        guard_reason=guard_reason, profit_units=profit, sell_tokens=sell,
        position_tokens=held, proceeds_lamports=proceeds,
        pnl_lamports=realized_profit(profit, sell, held) if realized else None,
    )


def realized_profit(profit_units: int, sell_tokens: int | None, position_tokens: int | None) -> int:
    """The share of a position's profit realized by selling ``sell_tokens`` of it.

    A full exit (no ``sell_tokens``, or all of them) realizes ``profit_units``; a ladder
    level realizes it pro rata, truncated toward zero.
    """
    if sell_tokens is None or not position_tokens or sell_tokens >= position_tokens:
        return profit_units
    share = abs(profit_units) * sell_tokens // position_tokens
    return share if profit_units >= 0 else -share


class JournalReader:
    """Read-only queries over a journal file; never creates or changes it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    def pending_attempts(self) -> list[PendingAttempt]:
        """Real (not dry-run) attempts still pending or unknown, oldest first."""
        return [PendingAttempt(*row) for row in self._query(_PENDING_SQL)]

    def recent_trades(self, limit: int = 50) -> list[TradeRow]:
        """The ``limit`` most recently received signals, newest first."""
        sql = _TRADES_SQL + " ORDER BY s.received_at_ms DESC, s.id DESC LIMIT ?"
        return [_trade_row(row) for row in self._query(sql, (limit,))]

    def realized_pnl(self) -> int:
        """Sum of ``pnl_lamports`` over every landed, non-dry-run exit (quote units)."""
        rows = (_trade_row(row) for row in self._query(_TRADES_SQL + " WHERE s.kind = 'exit'"))
        return sum(row.pnl_lamports for row in rows if row.pnl_lamports is not None)

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[Any]:
        if not self.path.exists():
            return []
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S)
            try:
                if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                    return []
                return conn.execute(sql, args).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read journal {self.path}: {exc}") from exc


# --------------------------------------------------------------------------- writes


class _Op(Protocol):
    def apply(self, conn: sqlite3.Connection) -> None: ...


def _fit(value: object) -> object:
    """SQLite integers are i64: a u64 beyond that is stored as NULL (raw_json keeps it)."""
    if type(value) is int and not _I64_MIN <= value <= _I64_MAX:
        return None
    return value


@dataclass(frozen=True, slots=True)
class _Write:
    sql: str
    args: tuple[object, ...]

    def apply(self, conn: sqlite3.Connection) -> None:
        conn.execute(self.sql, tuple(_fit(arg) for arg in self.args))


_INSERT_ATTEMPT: Final = (
    "INSERT INTO attempts (id, signal_id, attempt_no, signature, slippage_bps,"
    " dry_run, state, signed_tx_b64, created_at_ms, updated_at_ms)"
    " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)")

_INSERT_SIGNAL: Final = """INSERT INTO signals (id, kind, received_at_ms, session_id,
    position_id, wallet, mint, reason, source_wallet, level_index, sell_tokens,
    position_tokens, profit_units, amount_quote_units, slippage_bps, triggered_at_ms,
    unsigned_tx_b64, raw_json) VALUES (:id, :kind, :received_at_ms, :session_id,
    :position_id, :wallet, :mint, :reason, :source_wallet, :level_index, :sell_tokens,
    :position_tokens, :profit_units, :amount_quote_units, :slippage_bps, :triggered_at_ms,
    :unsigned_tx_b64, :raw_json)"""


@dataclass(frozen=True, slots=True)
class _SignalWrite:
    """Converted to a row on the writer thread, to keep ``record_signal`` cheap."""

    signal_id: int
    kind: str
    msg: SignalMessage
    received_at_ms: int

    def apply(self, conn: sqlite3.Connection) -> None:
        row = {key: _fit(value) for key, value in self.row().items()}
        conn.execute(_INSERT_SIGNAL, row)

    def row(self) -> dict[str, object]:
        raw = msgspec.to_builtins(self.msg)
        raw.pop("unsigned_tx_b64", None)
        common = {"id": self.signal_id, "kind": self.kind, "received_at_ms": self.received_at_ms,
                  "session_id": self.msg.session_id, "mint": self.msg.mint,
                  "unsigned_tx_b64": self.msg.unsigned_tx_b64,
                  "raw_json": msgspec.json.encode(raw).decode()}
        return common | _kind_columns(self.msg)


def _kind_columns(msg: SignalMessage) -> dict[str, object]:
    if isinstance(msg, ExitSignalWithTx):
        return {"position_id": msg.position_id, "wallet": msg.wallet_pubkey,
                "reason": msg.reason, "source_wallet": msg.mirror_source,
                "level_index": msg.level_index, "sell_tokens": msg.sell_tokens,
                "position_tokens": msg.position_tokens, "profit_units": msg.profit_units,
                "amount_quote_units": None, "slippage_bps": None,
                "triggered_at_ms": msg.triggered_at_ms}
    return {"position_id": None, "wallet": msg.user_wallet, "reason": "mirror",
            "source_wallet": msg.watched_wallet, "level_index": None, "sell_tokens": None,
            "position_tokens": None, "profit_units": None,
            "amount_quote_units": msg.amount_quote_units, "slippage_bps": msg.slippage_bps,
            "triggered_at_ms": None}


@dataclass(frozen=True, slots=True)
class _Logged:
    """An attempt insert that is also in the intent log (counted off when committed)."""

    op: _Write

    def apply(self, conn: sqlite3.Connection) -> None:
        self.op.apply(conn)


INTENT_SUFFIX: Final = "-inflight"
INTENT_PREALLOC: Final = 256 << 10  # ~80 records of a signal and its signed transaction


class _IntentLog:
    """``<journal>-inflight``: attempts appended (one JSON line each) before they are
    sent, forgotten once all of them are committed to SQLite. See the module docstring.

    The file is preallocated with written zeros (``INTENT_PREALLOC`` bytes, synced once
    at open), and records are written at the log's end with ``pwrite``: within that
    size the file does not grow, so ``fdatasync`` of a record flushes one data block and
    no inode update. Once every record is committed, writing starts over at offset 0;
    the old records are left as they are (they are in SQLite already, and replay
    inserts with ``INSERT OR IGNORE``, so a stale record adds nothing; a fragment of one
    does not decode). Records past the preallocated size just extend the file (their
    sync then includes the size). Nothing here writes more than the record or syncs
    more than once per record on the caller's thread. ``durable=False`` skips the sync."""

    def __init__(self, path: Path, durable: bool = True,
                 on_sync: Callable[[float], object] | None = None) -> None:
        self.path = path
        self.durable = durable
        self._on_sync = on_sync
        self._lock = threading.Lock()
        self._uncommitted = 0
        self._fd: int | None = None
        self._end = 0

    def open(self) -> None:
        """Open and preallocate now (at start-up), so the first append only writes."""
        with self._lock:
            self._open_locked()

    def _open_locked(self) -> int:
        if self._fd is not None:
            return self._fd
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _preallocate(fd, INTENT_PREALLOC)
        except OSError:
            os.close(fd)
            raise
        self._fd, self._end = fd, 0
        return fd

    def append(self, line: bytes) -> bool:
        """Write one line now (synced when durable); False if it could not be written."""
        with self._lock:
            try:
                fd = self._open_locked()
                written = os.pwrite(fd, line, self._end)
                if written == len(line) and self.durable:
                    started = time.perf_counter()
                    os.fdatasync(fd)
                    self._synced(time.perf_counter() - started)
            except OSError:
                return False
            if written != len(line):
                return False
            self._end += written
            self._uncommitted += 1
            return True

    def _synced(self, seconds: float) -> None:
        if self._on_sync is not None:
            self._on_sync(seconds)

    @property
    def uncommitted(self) -> int:
        """Records written here whose rows are not committed to SQLite yet."""
        return self._uncommitted

    def committed(self, count: int) -> None:
        with self._lock:
            self._uncommitted = max(0, self._uncommitted - count)
            if self._uncommitted == 0:
                self._end = 0

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _preallocate(fd: int, size: int) -> None:
    """Fill the file with written zeros up to ``size`` (synced once). On a disk too full
    for that, leave it as it was: records then extend the file, which still works."""
    before = os.fstat(fd).st_size
    if before >= size:
        return
    try:
        os.pwrite(fd, bytes(size - before), before)
        os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, before)


def _replay_intents(conn: sqlite3.Connection, path: Path) -> int:
    """Insert the attempts (and signals) of an intent log left by a crash; returns how
    many attempts were missing from the journal. A torn last line was never sent."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return 0
    entries = []
    for line in lines:
        line = line.strip(b"\0")  # preallocated zeros, and zeroed records
        if not line:
            continue
        with contextlib.suppress(msgspec.DecodeError):
            entry = msgspec.json.decode(line)
            if isinstance(entry, dict) and isinstance(entry.get("attempt"), list):
                entries.append(entry)
    conn.execute("BEGIN IMMEDIATE")
    try:
        missing = 0
        for entry in entries:
            if isinstance(entry.get("signal"), dict):
                row = {key: _fit(value) for key, value in entry["signal"].items()}
                conn.execute(_INSERT_SIGNAL.replace("INSERT", "INSERT OR IGNORE", 1), row)
            args = tuple(_fit(value) for value in entry["attempt"])
            cursor = conn.execute(_INSERT_ATTEMPT.replace("INSERT", "INSERT OR IGNORE", 1), args)
            missing += cursor.rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    os.truncate(path, 0)
    return missing


@dataclass(frozen=True, slots=True)
class _Stop:
    deadline: float


_Item = _Write | _Logged | _SignalWrite | threading.Event | _Stop
_json_encoder = msgspec.json.Encoder(enc_hook=repr)


def _json(value: object) -> str | None:
    return None if value is None else _json_encoder.encode(value).decode()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _intent_path(path: Path) -> Path:
    return path.with_name(path.name + INTENT_SUFFIX)


class _Writer:
    """Runs on the journal thread: owns the write connection, the backlog and retries."""

    def __init__(self, path: Path, metrics: Metrics | None, healthy: bool,
                 intents: _IntentLog | None = None, durable: bool = True) -> None:
        self.path = path
        self.durable = durable
        self.metrics = metrics
        self.healthy = healthy
        self.intents = intents
        self.queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.backlog: deque[_Op] = deque()
        self.log = get_logger("journal")
        self._waiters: list[threading.Event] = []
        self._conn: sqlite3.Connection | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._dropped = 0

    def run(self) -> None:
        stop: _Stop | None = None
        while stop is None:
            stop, forced = self._take(self._drain(self._wait_time()))
            if forced or time.monotonic() >= self._retry_at:
                self._commit()
        self._finish(stop)

    def _wait_time(self) -> float | None:
        return max(0.0, self._retry_at - time.monotonic()) if self.backlog else None

    def _drain(self, timeout: float | None) -> list[_Item]:
        try:
            items = [self.queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(items) < _MAX_BATCH:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _take(self, items: Iterable[_Item]) -> tuple[_Stop | None, bool]:
        """Sort drained items; returns the stop request and whether a flush asked."""
        stop, forced = None, False
        for item in items:
            if isinstance(item, _Stop):
                stop = item
            elif isinstance(item, threading.Event):
                self._waiters.append(item)
                forced = True
            else:
                self._push(item)
        return stop, forced

    def _push(self, op: _Op) -> None:
        self.backlog.append(op)
        if len(self.backlog) > _MAX_BACKLOG:
            self.backlog.popleft()
            self._dropped += 1
            self.count_error()
            if self._dropped == 1 or self._dropped % 1000 == 0:
                self.log.error("journal_backlog_full", dropped=self._dropped,
                               limit=_MAX_BACKLOG, path=str(self.path))

    def _commit(self) -> None:
        if self.backlog:
            written = len(self.backlog)
            try:
                self._execute(self._connection(), list(self.backlog))
            except Exception as exc:  # the disk, not the data: keep the batch, retry
                self._failed(exc)
                return
            logged = sum(1 for op in self.backlog if isinstance(op, _Logged))
            self.backlog.clear()
            if logged and self.intents is not None:
                self.intents.committed(logged)
            self._succeeded(written)
        for waiter in self._waiters:
            waiter.set()
        self._waiters.clear()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = _connect(self.path, durable=self.durable)
        return self._conn

    def _execute(self, conn: sqlite3.Connection, ops: list[_Op]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                op.apply(conn)
            except _WRITE_FAULTS as exc:
                conn.execute("ROLLBACK TO op")
                self._reject(op, exc)
            conn.execute("RELEASE op")
        conn.execute("COMMIT")

    def _reject(self, op: _Op, exc: Exception) -> None:
        self.count_error()
        self.log.error("journal_write_rejected", error=repr(exc), write=repr(op)[:300],
                       path=str(self.path))

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        delay = min(_RETRY_MAX_S, _RETRY_MIN_S * 2 ** min(self._failures - 1, 16))
        self._retry_at = time.monotonic() + delay
        self.healthy = False
        self.count_error()
        self.log.error("journal_write_failed", error=repr(exc), pending=len(self.backlog),
                       failures=self._failures, retry_in_s=round(delay, 3), path=str(self.path))
        self._close_connection()

    def _succeeded(self, written: int) -> None:
        if not self.healthy:
            self.log.warning("journal_write_recovered", written=written,
                             failures=self._failures, dropped=self._dropped, path=str(self.path))
        self.healthy = True
        self._failures = self._dropped = 0
        self._retry_at = 0.0

    def count_error(self, amount: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.journal_errors.inc(amount=amount)

    def _close_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def _finish(self, stop: _Stop) -> None:
        """Write what is left, retrying until the close deadline, then let go."""
        while items := self._drain(0):
            self._take(items)
        self._commit()
        while self.backlog and time.monotonic() < stop.deadline:
            time.sleep(max(0.0, min(self._retry_at, stop.deadline) - time.monotonic()))
            self._commit()
        if self.backlog:
            self.count_error(len(self.backlog))
            self.log.error("journal_unflushed_at_close", lost=len(self.backlog),
                           path=str(self.path))
        self._close_connection()


# --------------------------------------------------------------------------- journal


class Journal:
    """The daemon's journal: non-blocking ``record_*`` calls, one writer thread."""

    def __init__(self, path: Path, writer: _Writer, first_id: int) -> None:
        self.path = path
        self._writer = writer
        self._intents = writer.intents or _IntentLog(_intent_path(path))
        writer.intents = self._intents
        self._signal_writes: dict[int, _SignalWrite] = {}
        self._reader = JournalReader(path)
        self._ids = itertools.count(first_id)
        self._id_lock = threading.Lock()
        self._closed = False
        self._held: list[_Item] | None = None
        self._thread = threading.Thread(target=writer.run, name="journal-writer", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, path: str | os.PathLike[str], metrics: Metrics | None = None,
             durable: bool = True) -> Journal:
        """Open or create the journal at ``path``. Never raises for disk problems:
        an unusable path gives an unhealthy journal that keeps retrying.

        ``durable``: the intent record of a signed transaction is synced
        (``fdatasync``) before ``record_attempt`` returns, and every commit is synced
        (``synchronous=FULL``), so a power cut cannot lose a sale that went out."""
        target = Path(path).expanduser()
        intents = _IntentLog(_intent_path(target), durable,
                             None if metrics is None else metrics.intent_sync_seconds.observe)
        try:
            conn = _connect(target, durable=durable)
            try:
                replayed = _replay_intents(conn, _intent_path(target))
                first_id, healthy = _max_id(conn) + 1, True
            finally:
                conn.close()
            if replayed:
                get_logger("journal").warning("journal_write_recovered", written=replayed,
                                              source="inflight", path=str(target))
        except (OSError, sqlite3.Error, JournalError) as exc:
            first_id, healthy = time.time_ns() // 1000, False
            if metrics is not None:
                metrics.journal_errors.inc()
            get_logger("journal").error("journal_open_failed", error=repr(exc),
                                        path=str(target))
        with contextlib.suppress(OSError):  # else opened on the first record
            intents.open()
        return cls(target, _Writer(target, metrics, healthy, intents, durable), first_id)

    @property
    def healthy(self) -> bool:
        """False while writes fail (or the writer is gone); health reports degraded."""
        return self._writer.healthy and (self._thread.is_alive() or self._closed)

    @property
    def intents_pending(self) -> int:
        """Signed transactions in the intent log whose rows are not committed yet."""
        return self._intents.uncommitted

    @property
    def pending_writes(self) -> int:
        """Writes queued or waiting for a retry, not yet committed."""
        return self._writer.queue.qsize() + len(self._writer.backlog)

    # ---------------------------------------------------------------- record (non-blocking)

    def record_signal(self, kind: SignalKind, msg: SignalMessage, received_at_ms: int) -> int:
        """Journal an exit or mirror-buy signal (unsigned tx kept); returns its id."""
        if _KIND_OF.get(type(msg)) != kind:
            raise ValueError(f"kind {kind!r} does not match {type(msg).__name__}")
        signal_id = self._next_id()
        write = _SignalWrite(signal_id, kind, msg, received_at_ms)
        self._signal_writes[signal_id] = write
        if len(self._signal_writes) > _RECENT_SIGNALS:
            del self._signal_writes[next(iter(self._signal_writes))]
        self._put(write)
        return signal_id

    def record_attempt(
        self,
        signal_id: int,
        attempt_no: int,
        *,
        signature: str | None,
        slippage_bps: int | None,
        signed_tx_b64: str | None,
        dry_run: bool,
    ) -> int:
        """Journal a signed transaction (state ``pending``) before it is sent; returns its id.

        A real (not dry-run) signed transaction is also on disk when this returns (the
        intent log), so call it before the first send."""
        attempt_id, now = self._next_id(), _now_ms()
        write = _Write(_INSERT_ATTEMPT, (attempt_id, signal_id, attempt_no, signature,
                                         slippage_bps, dry_run, signed_tx_b64, now, now))
        if signed_tx_b64 and not dry_run and self._log_intent(signal_id, write):
            self._put(_Logged(write))
        else:
            self._put(write)
        return attempt_id

    def _log_intent(self, signal_id: int, write: _Write) -> bool:
        signal = self._signal_writes.get(signal_id)
        try:
            line = msgspec.json.encode({"signal": None if signal is None else signal.row(),
                                        "attempt": list(write.args)}) + b"\n"
        except (msgspec.MsgspecError, OverflowError, TypeError) as exc:
            self._writer.log.error("journal_write_rejected", error=repr(exc),
                                   write="inflight", path=str(self._intents.path))
            return False
        if self._intents.append(line):
            return True
        self._writer.count_error()
        self._writer.log.error("journal_write_failed", error="inflight log not writable",
                               path=str(self._intents.path))
        return False

    def record_guard(
        self, signal_id: int, verdict_ok: bool, reason: str, detail: object = None
    ) -> None:
        """Journal the guard's verdict on a signal's transaction (``detail`` as JSON)."""
        self._put(_Write(
            "INSERT INTO guard_checks (signal_id, ok, reason, detail_json, checked_at_ms)"
            " VALUES (?, ?, ?, ?, ?)",
            (signal_id, verdict_ok, reason, _json(detail), _now_ms()),
        ))

    def record_submission(
        self, attempt_id: int, target: str, ok: bool, error: str | None, elapsed_ms: float
    ) -> None:
        """Journal one send of an attempt to one target."""
        self._put(_Write(
            "INSERT INTO submissions (attempt_id, target, ok, error, elapsed_ms, at_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (attempt_id, target, ok, error, elapsed_ms, _now_ms()),
        ))

    def record_outcome(
        self,
        attempt_id: int,
        state: AttemptState,
        err: object = None,
        slot: int | None = None,
        proceeds_lamports: int | None = None,
    ) -> None:
        """Set an attempt's state (and keep the transition in ``outcomes``)."""
        if state not in STATES:
            raise ValueError(f"unknown attempt state {state!r}")
        err_json, now = _json(err), _now_ms()
        self._put(_Write(
            "UPDATE attempts SET state = ?, err_json = COALESCE(?, err_json),"
            " slot = COALESCE(?, slot), proceeds_lamports = COALESCE(?, proceeds_lamports),"
            " updated_at_ms = ? WHERE id = ?",
            (state, err_json, slot, proceeds_lamports, now, attempt_id),
        ))
        self._put(_Write(
            "INSERT INTO outcomes (attempt_id, state, err_json, slot, proceeds_lamports, at_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (attempt_id, state, err_json, slot, proceeds_lamports, now),
        ))

    def _next_id(self) -> int:
        with self._id_lock:
            return next(self._ids)

    def _put(self, item: _Item) -> None:
        if self._closed:
            self._writer.count_error()
            self._writer.log.error("journal_write_after_close", write=repr(item)[:300])
            return
        if self._held is not None:
            self._held.append(item)
            return
        self._writer.queue.put(item)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold the writes recorded inside the block and queue them, in order, at its end.

        Ids are still handed out at once. The signal hot path runs inside this so the
        writer thread is not woken (and does not compete for the GIL) before the signed
        transaction is on the wire; durability is unchanged (the queue is memory too).
        Call it from the event loop thread only.
        """
        if self._held is not None:
            yield
            return
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            for item in held:
                self._put(item)

    # ---------------------------------------------------------------- lifecycle (blocking)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything recorded so far is committed; False on timeout."""
        if self._closed:
            return self.pending_writes == 0
        done = threading.Event()
        self._writer.queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (retrying for up to ``timeout`` s) and stop the writer."""
        if self._closed:
            return
        self._closed = True
        self._writer.queue.put(_Stop(time.monotonic() + timeout))
        self._thread.join(timeout + 1.0)
        if self._thread.is_alive():
            self._writer.log.error("journal_close_timeout", path=str(self.path))
        else:
            self._intents.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------- reads (blocking)

    def pending_attempts(self) -> list[PendingAttempt]:
        return self._reader.pending_attempts()

    def recent_trades(self, limit: int = 50) -> list[TradeRow]:
        return self._reader.recent_trades(limit)

    def realized_pnl(self) -> int:
        return self._reader.realized_pnl()


# --------------------------------------------------------------------------- rendering

_COLUMNS: Final = ("time (UTC)", "kind", "position", "mint", "reason", "level", "state",
                   "signature", "attempts", "pnl SOL")
_RIGHT_ALIGNED: Final = frozenset({"position", "level", "attempts", "pnl SOL"})


def render_table(rows: Sequence[TradeRow]) -> str:
    """A plain-text table, one line per trade, columns aligned."""
    table = [_COLUMNS, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_COLUMNS))]
    lines = [_join(line, widths) for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines) + "\n"


def _join(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = (cell.rjust(width) if name in _RIGHT_ALIGNED else cell.ljust(width)
              for cell, width, name in zip(cells, widths, _COLUMNS, strict=True))
    return "  ".join(padded).rstrip()


def _cells(row: TradeRow) -> tuple[str, ...]:
    when = datetime.fromtimestamp(row.received_at_ms / 1000, tz=UTC)
    return (
        when.strftime("%Y-%m-%d %H:%M:%S"),
        row.kind,
        _or_dash(row.position_id),
        _shorten(row.mint),
        row.reason or "-",
        _or_dash(row.level_index),
        f"{row.state} (dry run)" if row.dry_run else row.state,
        _shorten(row.signature),
        str(row.attempts),
        _sol(row.pnl_lamports),
    )


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _shorten(text: str | None, keep: int = 4) -> str:
    if not text:
        return "-"
    return text if len(text) <= 2 * keep + 2 else f"{text[:keep]}..{text[-keep:]}"


def _sol(lamports: int | None) -> str:
    return "-" if lamports is None else f"{Decimal(lamports) / _LAMPORTS_PER_SOL:+.6f}"


def rows_to_json(rows: Sequence[TradeRow]) -> str:
    """Rows as an indented JSON array, every field in full (for ``journal --json``)."""
    return msgspec.json.format(msgspec.json.encode(list(rows)), indent=2).decode()
