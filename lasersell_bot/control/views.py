"""Pure builders of the JSON the control API serves: positions, session, executor.

They take plain values (session snapshots, journal rows, counters) and return dicts;
no I/O, no clock reads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from lasersell_bot import protocol, session
from lasersell_bot.control.history import Trade

HISTORY_POINTS: Final = 300
HISTORY_STEP_MS: Final = 1000


@dataclass
class PnlHistory:
    """A bounded PnL history per position: at most one point per ``step_ms``."""

    points: int = HISTORY_POINTS
    step_ms: int = HISTORY_STEP_MS
    _series: dict[int, deque[tuple[int, int]]] = field(default_factory=dict)

    def add(self, position_id: int, now_ms: int, profit_units: int) -> None:
        series = self._series.get(position_id)
        if series is None:
            series = self._series[position_id] = deque(maxlen=self.points)
        if series and now_ms - series[-1][0] < self.step_ms:
            series[-1] = (series[-1][0], profit_units)
            return
        series.append((now_ms, profit_units))

    def get(self, position_id: int) -> list[tuple[int, int]]:
        return list(self._series.get(position_id, ()))

    def forget(self, position_id: int) -> None:
        self._series.pop(position_id, None)


def downsample(points: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """At most ``limit`` points spread evenly over ``points``, the newest always kept."""
    if limit <= 0:
        return []
    if len(points) <= limit:
        return points
    step = -(-len(points) // limit)  # ceiling division
    picked = points[len(points) - 1::-step][::-1]  # every step-th point, ending at the newest
    return picked[-limit:]


def profit_pct(profit_units: int | None, entry_units: int) -> float | None:
    if profit_units is None or entry_units <= 0:
        return None
    return round(profit_units * 100 / entry_units, 3)


def position_status(*, busy: bool, sell_requested: bool, latest_exit: Trade | None,
                    started_ms: int) -> str:
    """open | selling | outcome_unknown | recovering."""
    if latest_exit is not None and latest_exit.state == "unknown":
        return "outcome_unknown"
    if busy:
        if latest_exit is not None and latest_exit.state == "pending" \
                and latest_exit.received_at_ms < started_ms:
            return "recovering"
        return "selling"
    return "selling" if sell_requested else "open"


@dataclass(frozen=True)
class PositionFacts:
    """Everything known about one position besides the session's snapshot."""

    status: str
    history: list[tuple[int, int]]
    bands: Sequence[protocol.SlippageBand]
    trend: str | None
    levels_done: list[int]
    strategy: protocol.Strategy


def position_view(position: session.Position, facts: PositionFacts) -> dict[str, Any]:
    opened = position.opened
    return {
        "id": position.position_id,
        "wallet": opened.wallet_pubkey,
        "mint": opened.mint,
        "symbol": opened.token_symbol,
        "name": opened.token_name,
        "tokens": position.tokens,
        "entry_quote_units": opened.entry_quote_units,
        "opened_ms": position.opened_ms,
        "profit_units": position.profit_units,
        "proceeds_units": position.proceeds_units,
        "profit_pct": profit_pct(position.profit_units, opened.entry_quote_units),
        # Tuples and Structs as they are: msgspec encodes them without a Python copy.
        "pnl_history": facts.history,
        "liquidity": {"trend": facts.trend, "bands": list(facts.bands)},
        "strategy": facts.strategy,
        "strategy_override": position.strategy_override is not None,
        "levels_done": facts.levels_done,
        "status": facts.status,
        "watched": opened.watched,
        "mirror_source": opened.mirror_source,
    }


@dataclass(frozen=True)
class ExitIndex:
    """Per position: the newest exit signal and the ladder levels whose sell landed."""

    latest: dict[int, Trade] = field(default_factory=dict)
    levels: dict[int, list[int]] = field(default_factory=dict)


def index_exits(trades: Iterable[Trade]) -> ExitIndex:
    """One pass over ``trades`` (newest first)."""
    index = ExitIndex()
    for trade in trades:
        if trade.kind != "exit" or trade.position_id is None:
            continue
        index.latest.setdefault(trade.position_id, trade)
        if trade.state in ("landed", "dry_run") and trade.level_index is not None:
            levels = index.levels.setdefault(trade.position_id, [])
            if trade.level_index not in levels:
                levels.append(trade.level_index)
                levels.sort()
    return index


def trade_view(trade: Trade) -> dict[str, Any]:
    body: dict[str, Any] = msgspec.to_builtins(trade)
    return body


def limits_view(limits: protocol.Limits | None) -> dict[str, Any] | None:
    return None if limits is None else msgspec.to_builtins(limits)


def watch_view(watch: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"pubkey": w.pubkey, "label": w.label, "auto_buy_sol": w.auto_buy_sol,
             "mirror_sell": w.mirror_sell} for w in watch]
