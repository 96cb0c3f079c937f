"""The control plane of a running daemon: live state for the API, the events stream,
the operator actions, and the background loops that feed them.

The daemon calls ``on_low`` (PnL, liquidity) and ``on_action`` (positions opened and
closed, signals) from its routing; both only update in-memory state and mark it
dirty. A broadcaster publishes PnL changes twice a second, a journal watcher
publishes new trades and refusals, and a balance loop asks the RPC for each
wallet's SOL now and then: nothing on the exit path waits on any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import msgspec

from lasersell_bot import config as config_mod
from lasersell_bot import protocol, session
from lasersell_bot.config import StrategyConfig
from lasersell_bot.control import views
from lasersell_bot.control.actions import Actions
from lasersell_bot.control.events import EventBus
from lasersell_bot.control.history import JournalHistory, Trade, histogram_quantile
from lasersell_bot.logs import get_logger
from lasersell_bot.notify import NotifyKind

if TYPE_CHECKING:
    from lasersell_bot.daemon import Daemon

BROADCAST_EVERY_SEC: Final = 0.5
# The journal is read again at most every JOURNAL_EVERY_SEC, and only while someone
# looks (an events subscriber, or a state request in the last LOOKING_SEC).
JOURNAL_EVERY_SEC: Final = 2.0
LOOKING_SEC: Final = 10.0
REALIZED_POINTS: Final = 500
BALANCE_EVERY_SEC: Final = 30.0
BALANCE_SETTLE_SEC: Final = 1.0
# GET state is built at most this often; requests in between get the same bytes.
STATE_CACHE_SEC: Final = 1.0
STATE_HISTORY_POINTS: Final = 60  # PnL points per position in GET state (?history=N)
RECENT_TRADES: Final = 200
RECENT_MIRROR: Final = 50

log = get_logger("control")
_SAMPLED: Final = (protocol.PnlUpdate, protocol.LiquiditySnapshot)
_CHANGES_STATE: Final = (session.PositionOpenedEvent, session.PositionClosedEvent,
                         session.PositionDropped, session.ExecuteExit)


class DaemonAdapter:
    """``DaemonControls`` over a ``Daemon``."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self.session = daemon.session
        self.pause_marker = pause_marker(daemon.cfg.journal.path)

    def send_to_stream(self, message: protocol.ClientMessage) -> None:
        self._daemon.stream.send(message)

    def stream_ready(self) -> bool:
        state = self._daemon.stream.state
        return state.connected and state.configured

    def exit_busy(self, position_id: int) -> bool:
        return self._daemon.executor.is_busy(position_id)

    def set_mirror_paused(self, paused: bool) -> None:
        """Pause or resume mirror buys; a pause is kept on disk across restarts."""
        self._daemon.executor.mirror_paused = paused
        try:
            if paused:
                self.pause_marker.touch(exist_ok=True)
            else:
                self.pause_marker.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("mirror_pause_not_saved", path=str(self.pause_marker),
                        error=exc.strerror or str(exc))

    def restore_mirror_pause(self) -> None:
        if self.pause_marker.exists():
            self._daemon.executor.mirror_paused = True
            log.warning("mirror_paused", source="saved",
                        detail="paused before the restart; resume-buys to take buys again")

    def mirror_paused(self) -> bool:
        return self._daemon.executor.mirror_paused

    def dispatch(self, actions: list[session.Action]) -> None:
        self._daemon.dispatch(actions)

    def config_strategy(self) -> StrategyConfig:
        return self._daemon.cfg.strategy

    def max_slippage_bps(self) -> int:
        return self._daemon.cfg.send.slippage_max_bps


class ControlPlane:
    """State, events and actions of the control API for one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.bus = EventBus()
        self.history = views.PnlHistory()
        self.adapter = DaemonAdapter(daemon)
        self.actions = Actions(self.adapter, self._publish)
        self.journal = JournalHistory(daemon.cfg.journal.path)
        self.trades: list[Trade] = []
        self.exits = views.ExitIndex()
        self.refusals: list[Trade] = []
        self.realized: list[tuple[int, int]] = []
        self.landing: dict[str, Any] = {}
        self.balances: dict[str, int | None] = {pk: None for pk in daemon.wallets.pubkeys()}
        self.mirror_recent: deque[dict[str, Any]] = deque(maxlen=RECENT_MIRROR)
        self.started_ms = _now_ms()
        self._dirty: set[int] = set()
        self._journal_changed = asyncio.Event()
        self._balances_due = asyncio.Event()
        self._state_cache: dict[int, tuple[float, bytes]] = {}
        self._journal_read_at = 0.0
        self._looked_at = time.monotonic()  # read once at start
        self._realized_rows: dict[int, tuple[int, int]] = {}
        self._realized_read_ms = 0

    def _publish(self, name: str, data: dict[str, Any]) -> None:
        self._state_cache.clear()
        self.bus.publish(name, data)

    def state_bytes(self, history: int = STATE_HISTORY_POINTS) -> bytes:
        """``state()`` as JSON, rebuilt at most every ``STATE_CACHE_SEC`` per history
        length (a status loop cannot keep the daemon's event loop building it)."""
        history = max(0, min(history, views.HISTORY_POINTS))
        now = time.monotonic()
        self._looked_at = now
        if now - self._journal_read_at > JOURNAL_EVERY_SEC:
            self._journal_changed.set()  # someone is looking: read the journal again soon
        cached = self._state_cache.get(history)
        if cached is not None and now - cached[0] < STATE_CACHE_SEC:
            return cached[1]
        body = msgspec.json.encode(self.state(history))
        self._state_cache[history] = (now, body)
        return body

    # ----------------------------------------------------------------- inputs

    def on_low(self, message: Any) -> None:
        """A low-lane frame: only note the position (the broadcaster samples it)."""
        if isinstance(message, _SAMPLED):
            self._dirty.add(message.position_id)

    def on_action(self, action: session.Action) -> None:
        if isinstance(action, _CHANGES_STATE):
            self._state_cache.clear()
        if isinstance(action, session.PositionOpenedEvent):
            self.bus.publish("position", self.position_view(action.position))
        elif isinstance(action, session.PositionClosedEvent | session.PositionDropped):
            position_id = (action.closed.position_id
                           if isinstance(action, session.PositionClosedEvent)
                           else action.position_id)
            self.history.forget(position_id)
            self.actions.exit_seen(position_id)
            self._dirty.discard(position_id)
            self.bus.publish("position_closed", {"id": position_id})
        elif isinstance(action, session.ExecuteExit):
            self.actions.exit_seen(action.signal.position_id)
            self._dirty.add(action.signal.position_id)
        elif isinstance(action, session.ExecuteMirrorBuy):
            self._mirror_event("buy_signal", action.signal.watched_wallet, action.signal.mint)
        elif isinstance(action, session.MirrorEvent):
            message = action.message
            self._mirror_event(str(message.__struct_config__.tag), message.watched_wallet,
                               getattr(message, "mint", None), message.reason)

    def on_notice(self, kind: NotifyKind, text: str) -> None:
        """A notification the executor raised (landed, failed, refused, mirror buy)."""
        self.bus.publish("notice", {"kind": kind, "text": text, "t": _now_ms()})
        self._journal_changed.set()
        if kind in ("exit_landed", "mirror_buy"):
            self._balances_due.set()

    def _mirror_event(self, kind: str, watched: str, mint: str | None,
                      reason: str = "") -> None:
        event = {"kind": kind, "watched_wallet": watched, "mint": mint, "reason": reason,
                 "t": _now_ms(), "paused": self.adapter.mirror_paused()}
        self.mirror_recent.appendleft(event)
        self.bus.publish("mirror", event)
        self._journal_changed.set()

    # ----------------------------------------------------------------- views

    def position_view(self, position: session.Position,
                      history: int = STATE_HISTORY_POINTS) -> dict[str, Any]:
        position_id = position.position_id
        sess = self.daemon.session
        facts = views.PositionFacts(
            status=self._status(position_id),
            history=views.downsample(self.history.get(position_id), history),
            bands=sess.slippage_bands(position_id),
            trend=sess.liquidity_trend(position_id),
            levels_done=self.exits.levels.get(position_id, []),
            strategy=position.strategy_override or sess.desired.strategy)
        return views.position_view(position, facts)

    def pnl_view(self, position: session.Position) -> dict[str, Any]:
        """The small, frequent update: PnL, status and liquidity of one position."""
        position_id = position.position_id
        sess = self.daemon.session
        return {
            "id": position_id, "t": _now_ms(), "tokens": position.tokens,
            "profit_units": position.profit_units, "proceeds_units": position.proceeds_units,
            "profit_pct": views.profit_pct(position.profit_units,
                                           position.opened.entry_quote_units),
            "status": self._status(position_id),
            "liquidity": {"trend": sess.liquidity_trend(position_id),
                          "bands": sess.slippage_bands(position_id)},
            "levels_done": self.exits.levels.get(position_id, []),
        }

    def _status(self, position_id: int) -> str:
        return views.position_status(
            busy=self.adapter.exit_busy(position_id),
            sell_requested=self.actions.sell_pending(position_id),
            latest_exit=self.exits.latest.get(position_id),
            started_ms=self.started_ms)

    def state(self, history: int = STATE_HISTORY_POINTS) -> dict[str, Any]:
        daemon = self.daemon
        stream = daemon.stream.state
        return {
            "t": _now_ms(),
            "health": daemon.health_body(),
            "session": {
                "connected": stream.connected and stream.configured,
                "session_id": daemon.session.session_id,
                "limits": views.limits_view(daemon.session.limits),
                "rtt_ms": None if stream.rtt_ms is None else round(stream.rtt_ms, 3),
                "reconnects": stream.reconnects,
            },
            "wallets": [{"pubkey": pk, "sol_lamports": lamports}
                        for pk, lamports in self.balances.items()],
            "positions": [self.position_view(p, history) for p in daemon.session.positions()],
            "executor": self.executor_view(),
            "mirror": {
                "enabled": daemon.cfg.mirror.enabled,
                "paused": self.adapter.mirror_paused(),
                "watch_wallets": views.watch_view(daemon.cfg.watch_wallets),
                "recent": list(self.mirror_recent)[:20],
            },
            "strategy": self.strategy_view(),
            "realized": {"total_lamports": self.realized[-1][1] if self.realized else 0,
                         "series": self.realized},
            "recent_trades": [views.trade_view(t) for t in self.trades[:20]],
            "refusals": [views.trade_view(t) for t in self.refusals[:20]],
        }

    def executor_view(self) -> dict[str, Any]:
        metrics = self.daemon.metrics
        histogram = metrics.signal_to_submit_ms
        return {
            "in_flight": self.daemon.executor.in_flight,
            "signals": {k[0]: int(v) for k, v in metrics.signals.values.items()},
            "confirmations": {k[0]: int(v) for k, v in metrics.confirmations.values.items()},
            "guard_refusals": {k[0]: int(v) for k, v in metrics.guard_refusals.values.items()},
            "signal_to_wire_ms": {
                name: histogram_quantile(q, histogram.buckets, histogram.counts)
                for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))},
            "landing": self.landing,
            "dry_run": self.daemon.cfg.send.dry_run,
        }

    def strategy_view(self) -> dict[str, Any]:
        """The strategy in force: the API's, unless a reload has replaced it since."""
        configured = self.daemon.cfg.strategy
        runtime = self.actions.runtime_strategy
        in_force = runtime is not None and config_mod.to_strategy(runtime) == (
            self.daemon.session.desired.strategy)
        effective = runtime if in_force and runtime is not None else configured
        return {"effective": msgspec.to_builtins(effective),
                "differs_from_config": effective != configured,
                "source": "runtime" if in_force else "config"}

    # ----------------------------------------------------------------- loops

    async def run(self, extra: list[Callable[[], Any]] | None = None) -> None:
        """The broadcaster, journal watcher and balance loop (until cancelled)."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._broadcast())
            tasks.create_task(self._watch_journal())
            tasks.create_task(self._refresh_balances())
            for loop in extra or []:
                tasks.create_task(loop())

    async def _broadcast(self) -> None:
        """Every ``BROADCAST_EVERY_SEC``: sample the PnL of the positions that changed into
        their history, and publish them to the events stream."""
        while True:
            await asyncio.sleep(BROADCAST_EVERY_SEC)
            if self._dirty:
                self._sample(self._dirty)
                self._dirty = set()

    def _sample(self, dirty: set[int]) -> None:
        now = _now_ms()
        for position_id in dirty:
            position = self.daemon.session.position(position_id)
            if position is None:
                continue
            if position.profit_units is not None:
                self.history.add(position_id, now, position.profit_units)
            if self.bus.subscribers:
                self.bus.publish("pnl", self.pnl_view(position))

    async def _watch_journal(self) -> None:
        """Re-read the journal after a change, at most every ``JOURNAL_EVERY_SEC`` and
        only while someone looks: the exit path never shares the CPU with it for nothing."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._journal_changed.wait(), JOURNAL_EVERY_SEC)
            if not self._looking():
                await asyncio.sleep(JOURNAL_EVERY_SEC)
                continue
            self._journal_changed.clear()
            try:
                await self.refresh_journal()
            except Exception as exc:  # a locked or missing file: try again later
                log.warning("control_journal_read_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(JOURNAL_EVERY_SEC)

    def _looking(self) -> bool:
        return bool(self.bus.subscribers) or (
            time.monotonic() - self._looked_at < LOOKING_SEC)

    async def refresh_journal(self) -> None:
        self._journal_read_at = time.monotonic()
        trades, refusals, realized, landing = await asyncio.to_thread(self._read_journal)
        known = {t.signal_id: t for t in self.trades}
        self.trades, self.refusals, self.realized, self.landing = (
            trades, refusals, realized, landing)
        self.exits = views.index_exits(trades)
        self._state_cache.clear()
        changed = [t for t in reversed(trades) if known.get(t.signal_id) != t]
        for trade in changed:
            self.bus.publish("trade", views.trade_view(trade))
            if trade.position_id is not None:
                self._dirty.add(trade.position_id)
        if changed:
            self.bus.publish("summary", {
                "realized_lamports": realized[-1][1] if realized else 0,
                "realized_series": realized,
                "executor": self.executor_view()})

    def _read_journal(self) -> tuple[list[Trade], list[Trade], list[tuple[int, int]],
                                     dict[str, Any]]:
        return (self.journal.trades(RECENT_TRADES), self.journal.refusals(),
                self._realized_series(), self.journal.landing())

    def _realized_series(self) -> list[tuple[int, int]]:
        """Cumulative realised PnL after each landed exit; only attempts changed since the
        last read are fetched (the rest are kept)."""
        since = max(0, self._realized_read_ms - 60_000)  # clock steps and late commits
        self._realized_read_ms = _now_ms()
        for signal_id, at_ms, pnl in self.journal.realized_since(since):
            self._realized_rows[signal_id] = (at_ms, pnl)
        total, points = 0, []
        for at_ms, pnl in sorted(self._realized_rows.values()):
            total += pnl
            points.append((at_ms, total))
        return points[-REALIZED_POINTS:]

    async def _refresh_balances(self) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                for pubkey in list(self.balances):
                    self.balances[pubkey] = await _get_balance(http, self.daemon.cfg.rpc.url,
                                                               pubkey, self.balances[pubkey])
                self.bus.publish("wallets", {"wallets": [
                    {"pubkey": pk, "sol_lamports": v} for pk, v in self.balances.items()]})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._balances_due.wait(), BALANCE_EVERY_SEC)
                self._balances_due.clear()
                await asyncio.sleep(BALANCE_SETTLE_SEC)  # let the landed change settle


async def _get_balance(http: aiohttp.ClientSession, url: str, pubkey: str,
                       previous: int | None) -> int | None:
    """``getBalance`` of ``pubkey``; the previous value when the RPC does not answer."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "getBalance",
            "params": [pubkey, {"commitment": "confirmed"}]}
    try:
        async with http.post(url, json=body) as response:
            answer = await response.json(content_type=None)
        value = answer["result"]["value"]
        return int(value) if isinstance(value, int) else previous
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
        return previous


def pause_marker(journal_path: str) -> Path:
    """The file whose presence keeps mirror buys paused across restarts."""
    return Path(journal_path or "lasersell-bot.sqlite3").with_suffix(".mirror-paused")


def _now_ms() -> int:
    return int(time.time() * 1000)
