"""What the journal says, for the control API: trades (paged), guard refusals, the
realised-PnL series and landing figures.

Every query opens the journal read-only on its own connection and is meant to run
in a worker thread (``asyncio.to_thread``): the daemon's writer is never waited on.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Final

import msgspec

from lasersell_bot.journal import realized_profit

MAX_PAGE: Final = 200
LANDING_WINDOW: Final = 200
_BUSY_TIMEOUT_S: Final = 2.0

_TRADES_SQL: Final = """
    SELECT s.id, s.received_at_ms, s.kind, s.position_id, s.wallet, s.mint, s.reason,
           s.level_index,
           COALESCE(a.state, CASE WHEN g.ok = 0 THEN 'refused' ELSE 'received' END),
           a.signature, (SELECT COUNT(*) FROM attempts c WHERE c.signal_id = s.id),
           a.slippage_bps, COALESCE(a.dry_run, 0), g.reason, s.profit_units,
           s.sell_tokens, s.position_tokens,
           (SELECT MIN(u.at_ms) FROM submissions u JOIN attempts b ON b.id = u.attempt_id
            WHERE b.signal_id = s.id AND u.ok = 1),
           (SELECT MIN(o.at_ms) FROM outcomes o JOIN attempts b ON b.id = o.attempt_id
            WHERE b.signal_id = s.id AND o.state = 'landed')
    FROM signals s
    LEFT JOIN attempts a ON a.id = (
        SELECT b.id FROM attempts b WHERE b.signal_id = s.id
        ORDER BY b.state = 'landed' DESC, b.attempt_no DESC, b.id DESC LIMIT 1)
    LEFT JOIN guard_checks g ON g.id = (
        SELECT MAX(h.id) FROM guard_checks h WHERE h.signal_id = s.id)"""


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """One signal with its latest (or landed) attempt and its timings."""

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
    pnl_lamports: int | None
    first_submit_ms: int | None  # after the signal was received (ms clock of the journal)
    time_to_land_ms: int | None


def _trade(row: tuple[Any, ...]) -> Trade:
    (sid, received, kind, position, wallet, mint, reason, level, state, signature, attempts,
     slippage, dry_run, guard_reason, profit, sell, held, submitted, landed) = row
    realized = kind == "exit" and state == "landed" and not dry_run and profit is not None
    return Trade(
        signal_id=sid, received_at_ms=received, kind=kind, position_id=position, wallet=wallet,
        mint=mint, reason=reason, level_index=level, state=state, signature=signature,
        attempts=attempts, slippage_bps=slippage, dry_run=bool(dry_run),
        guard_reason=guard_reason if guard_reason else None,
        pnl_lamports=realized_profit(profit, sell, held) if realized else None,
        first_submit_ms=None if submitted is None else max(0, submitted - received),
        time_to_land_ms=None if landed is None else max(0, landed - received),
    )


class JournalHistory:
    """Read-only queries over the daemon's journal file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def trades(self, limit: int = 50, before: int | None = None,
               kind: str | None = None) -> list[Trade]:
        """Newest first; ``before`` pages on by signal id."""
        where: list[str] = []
        args: list[object] = []
        if before is not None:
            where.append("s.id < ?")
            args.append(before)
        if kind is not None:
            where.append("s.kind = ?")
            args.append(kind)
        sql = _TRADES_SQL + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY s.id DESC LIMIT ?"
        args.append(max(1, min(limit, MAX_PAGE)))
        return [_trade(row) for row in self._query(sql, tuple(args))]

    def refusals(self, limit: int = 20) -> list[Trade]:
        sql = _TRADES_SQL + (" WHERE s.id IN (SELECT signal_id FROM guard_checks WHERE ok = 0"
                             " ORDER BY id DESC LIMIT ?) ORDER BY s.id DESC")
        return [_trade(row) for row in self._query(sql, (limit,))]

    def realized_since(self, updated_ms: int) -> list[tuple[int, int, int]]:
        """``(signal id, landed at ms, realised PnL)`` of every landed real exit whose
        attempt changed at or after ``updated_ms`` (0: all of them)."""
        sql = """
            SELECT s.id, a.updated_at_ms, s.profit_units, s.sell_tokens, s.position_tokens
            FROM attempts a JOIN signals s ON s.id = a.signal_id
            WHERE a.state = 'landed' AND a.dry_run = 0 AND s.kind = 'exit'
              AND s.profit_units IS NOT NULL AND a.updated_at_ms >= ?"""
        return [(sid, at, realized_profit(profit, sell, held))
                for sid, at, profit, sell, held in self._query(sql, (updated_ms,))]

    def landing(self, window: int = LANDING_WINDOW) -> dict[str, Any]:
        """Time to land (percentiles) and landing rate over the last ``window`` exits."""
        trades = [t for t in self.trades(window, kind="exit") if not t.dry_run
                  and t.state in ("landed", "failed", "expired")]
        landed = sorted(t.time_to_land_ms for t in trades if t.time_to_land_ms is not None)
        return {
            "exits": len(trades),
            "landed": len(landed),
            "landing_rate": round(len(landed) / len(trades), 4) if trades else None,
            "time_to_land_ms": percentiles([float(v) for v in landed]),
        }

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        uri = self.path.resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S)
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                return []
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p90/p99 of sorted ``values`` (nearest rank); None when empty."""
    def rank(q: float) -> float | None:
        if not values:
            return None
        index = min(len(values) - 1, max(0, int(q * len(values) + 0.999999) - 1))
        return round(values[index], 3)

    return {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99)}


def histogram_quantile(q: float, buckets: tuple[float, ...], counts: list[int]) -> float | None:
    """Prometheus-style quantile from bucket counts (``counts`` has one overflow slot):
    linear inside the bucket; the largest finite bound when it falls in the overflow."""
    total = sum(counts)
    if total == 0:
        return None
    target, running, lower = q * total, 0, 0.0
    for bound, count in zip(buckets, counts, strict=False):
        if count and running + count >= target:
            return round(lower + (bound - lower) * (target - running) / count, 3)
        running += count
        lower = bound
    return buckets[-1] if buckets else None
