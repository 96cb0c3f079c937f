"""Session state: the pure state machine over LaserSell stream messages.

Owns what the client knows about one logical stream session, across reconnects:

- the desired configuration (what the server should know), replayed in full by
  ``configure_messages()`` on every (re)connect, later updates included;
- open positions, by id and by token account, with their latest tokens, PnL,
  last trade and per-position strategy override, plus the liquidity cache;
- the reconcile after a reconnect: positions the server does not re-emit within
  ``reconcile_sec`` of ``hello_ok`` are dropped, so no ghost positions remain;
- the client-side deadline timers (``deadline_timeout_sec``), which ask for an
  exit signal once per due position and never while an exit is in flight.

Sans-I/O, like python-websockets' ``protocol.py``: no sockets, no asyncio, no
clock reads. Time comes in as ``now_ms``. Events come in through ``on_*``,
``set_*`` and ``exit_*`` calls; the calls return actions for the I/O layer and
the executor (``Send``, ``ExecuteExit``, ``ExecuteMirrorBuy``) and events to log
or journal. Call ``next_wakeup_ms()`` after each call and ``on_tick`` at that time;
``on_wakeup_earlier`` (optional) is called when a change makes the next wake-up
earlier than it was, so a timer task can sleep until then without polling.

Work per event does not depend on the number of positions: deadlines sit in a heap
keyed by due time (stale entries are skipped when they reach the top), positions are
indexed by id, token account and (wallet, mint), and counts are kept as counters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from msgspec import Struct

from lasersell_bot.deadlines import DeadlineHeap
from lasersell_bot.protocol import (
    BalanceUpdate,
    ClientMessage,
    Configure,
    ErrorMsg,
    ExitSignalWithTx,
    HelloOk,
    Limits,
    LiquiditySnapshot,
    MalformedFrame,
    MirrorBuyFailed,
    MirrorBuySignal,
    MirrorConfig,
    MirrorWalletAutoDisabled,
    PnlUpdate,
    Pong,
    PositionClosed,
    PositionOpened,
    RequestExitSignal,
    SendMode,
    SlippageBand,
    Strategy,
    TradeTick,
    UpdatePositionStrategy,
    UpdateStrategy,
    UpdateWallets,
    UpdateWatchWallets,
    WatchWallet,
)

DEFAULT_RECONCILE_SEC: Final = 3.0
NOT_REEMITTED: Final = "not_reemitted"


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


# --------------------------------------------------------------------------- desired state


class DesiredConfig(Struct, frozen=True, kw_only=True):
    """What the client wants the server to know, plus the client-side deadline timers."""

    wallet_pubkeys: tuple[str, ...]
    strategy: Strategy
    send_mode: SendMode | None = None
    tip_lamports: int | None = None
    watch_wallets: tuple[WatchWallet, ...] = ()
    mirror_config: MirrorConfig | None = None
    deadline_timeout_sec: float = 0.0
    deadline_retry_sec: float = 30.0


class Position(Struct, frozen=True, kw_only=True, gc=False):
    """A snapshot of one open position; the session replaces it when it changes.

    Never tracked by the cycle collector (``gc=False``): a frozen snapshot cannot be part
    of a cycle, and one is made per PnL frame, so tracked ones would fill the oldest
    generation and make full collections walk every position.
    """

    opened: PositionOpened
    opened_ms: int
    tokens: int
    profit_units: int | None = None
    proceeds_units: int | None = None
    last_trade: TradeTick | None = None
    strategy_override: Strategy | None = None

    @property
    def position_id(self) -> int:
        return self.opened.position_id

    @property
    def token_account(self) -> str:
        return self.opened.token_account


class SessionStats(Struct, frozen=True, kw_only=True):
    frames_by_type: dict[str, int]
    unknown_frames: int
    malformed_frames: int
    orphan_frames: int
    positions_open: int
    positions_unconfirmed: int
    connected: bool


# --------------------------------------------------------------------------- actions and events


class Send(Struct, frozen=True):
    """Write this client message on the current connection."""

    message: ClientMessage


class ExecuteExit(Struct, frozen=True):
    signal: ExitSignalWithTx


class ExecuteMirrorBuy(Struct, frozen=True):
    signal: MirrorBuySignal


class Connected(Struct, frozen=True):
    session_id: int
    limits: Limits


class ServerError(Struct, frozen=True):
    code: str
    message: str


class PositionOpenedEvent(Struct, frozen=True):
    position: Position


class PositionClosedEvent(Struct, frozen=True):
    """``position`` is the last snapshot, or None if the session never knew it."""

    closed: PositionClosed
    position: Position | None


class PositionDropped(Struct, frozen=True):
    """Forgotten without a ``position_closed``: the server did not re-emit it."""

    position_id: int
    reason: str
    position: Position


class MirrorEvent(Struct, frozen=True):
    message: MirrorBuyFailed | MirrorWalletAutoDisabled


class AppliesOnReconnect(Struct, frozen=True):
    """A setting changed that has no update message; the next ``configure`` carries it."""

    setting: str


Action = (
    Send
    | ExecuteExit
    | ExecuteMirrorBuy
    | Connected
    | ServerError
    | PositionOpenedEvent
    | PositionClosedEvent
    | PositionDropped
    | MirrorEvent
    | AppliesOnReconnect
)


# --------------------------------------------------------------------------- per-position tracking


@dataclass(slots=True)
class _Tracking:
    """Reconcile and deadline state of one position (never leaves the session).

    A heap entry ``(due_ms, position_id)`` is live only while it equals
    ``(armed_due_ms(), position_id)``; every change that arms a deadline pushes one.
    """

    confirmed: bool = True
    due_ms: int | None = None
    last_fired_ms: int | None = None
    exits_in_flight: int = 0

    def armed_due_ms(self) -> int | None:
        """The due time if the deadline may fire (re-emitted, no exit in flight), else None."""
        if self.confirmed and self.exits_in_flight == 0:
            return self.due_ms
        return None


# --------------------------------------------------------------------------- the session


class _Liquidity(Struct, frozen=True, gc=False):
    """The latest liquidity snapshot of a position, kept out of the cycle collector."""

    bands: tuple[SlippageBand, ...]
    trend: str


class Session:
    """State of one logical stream session; see the module docstring."""

    def __init__(
        self, desired: DesiredConfig, *, reconcile_sec: float = DEFAULT_RECONCILE_SEC
    ) -> None:
        self._desired = desired
        self._reconcile_ms = _ms(reconcile_sec)
        self._positions: dict[int, Position] = {}
        self._tracking: dict[int, _Tracking] = {}
        self._by_token_account: dict[str, int] = {}
        self._by_wallet_mint: dict[tuple[str, str], list[int]] = {}
        self._liquidity: dict[int, _Liquidity] = {}
        self._deadlines = DeadlineHeap(self._is_live)
        self._unconfirmed_count = 0
        self._profit_total = 0
        self.on_wakeup_earlier: Callable[[], None] | None = None
        self._link_open = False
        self._ready = False
        self._reconcile_close_ms: int | None = None
        self.session_id: int | None = None
        self.limits: Limits | None = None
        self._frames: Counter[str] = Counter()
        self._unknown_frames = 0
        self._malformed_frames = 0
        self._orphan_frames = 0
        self._handlers: dict[type[Struct], Callable[[Any, int], list[Action]]] = {
            HelloOk: self._on_hello_ok,
            Pong: self._on_pong,
            ErrorMsg: self._on_error,
            BalanceUpdate: self._on_balance_update,
            PositionOpened: self._on_position_opened,
            PositionClosed: self._on_position_closed,
            ExitSignalWithTx: self._on_exit_signal,
            MirrorBuySignal: self._on_mirror_buy_signal,
            MirrorBuyFailed: self._on_mirror_event,
            MirrorWalletAutoDisabled: self._on_mirror_event,
            PnlUpdate: self._on_pnl_update,
            LiquiditySnapshot: self._on_liquidity_snapshot,
            TradeTick: self._on_trade_tick,
        }

    # ----------------------------------------------------------- desired state

    @property
    def desired(self) -> DesiredConfig:
        return self._desired

    def set_strategy(
        self,
        strategy: Strategy,
        deadline_timeout_sec: float,
        now_ms: int,
        *,
        deadline_retry_sec: float | None = None,
    ) -> list[Action]:
        """New global strategy and deadline; deadlines it makes due are returned at once."""
        if deadline_retry_sec is None:
            deadline_retry_sec = self._desired.deadline_retry_sec
        self._desired = msgspec.structs.replace(
            self._desired,
            strategy=strategy,
            deadline_timeout_sec=deadline_timeout_sec,
            deadline_retry_sec=deadline_retry_sec,
        )
        for position_id in self._positions:
            self._schedule_deadline(position_id)
        return self._send_if_open(UpdateStrategy(strategy=strategy)) + self._fire_due(now_ms)

    def set_wallets(self, wallet_pubkeys: Sequence[str]) -> list[Action]:
        self._desired = msgspec.structs.replace(self._desired, wallet_pubkeys=tuple(wallet_pubkeys))
        return self._send_if_open(UpdateWallets(wallet_pubkeys=list(wallet_pubkeys)))

    def set_watch_wallets(self, watch_wallets: Sequence[WatchWallet]) -> list[Action]:
        self._desired = msgspec.structs.replace(self._desired, watch_wallets=tuple(watch_wallets))
        return self._send_if_open(UpdateWatchWallets(watch_wallets=list(watch_wallets)))

    def set_mirror_config(self, mirror_config: MirrorConfig | None) -> list[Action]:
        """Stored for the next ``configure``: the protocol has no mirror-config update."""
        self._desired = msgspec.structs.replace(self._desired, mirror_config=mirror_config)
        return [AppliesOnReconnect(setting="mirror_config")] if self._link_open else []

    def set_position_strategy(self, position_id: int, strategy: Strategy) -> list[Action]:
        """Override one open position's strategy; unknown positions are ignored."""
        position = self._positions.get(position_id)
        if position is None:
            return []
        self._positions[position_id] = msgspec.structs.replace(position, strategy_override=strategy)
        override = UpdatePositionStrategy(position_id=position_id, strategy=strategy)
        return self._send_if_open(override)

    def configure_messages(self) -> list[ClientMessage]:
        """What to send right after a (re)connect, from the current desired state."""
        desired = self._desired
        configure = Configure(
            wallet_pubkeys=list(desired.wallet_pubkeys),
            strategy=desired.strategy,
            send_mode=desired.send_mode,
            tip_lamports=desired.tip_lamports,
            watch_wallets=list(desired.watch_wallets),
            mirror_config=desired.mirror_config,
        )
        overrides: list[ClientMessage] = [
            UpdatePositionStrategy(position_id=p.position_id, strategy=p.strategy_override)
            for p in self._positions.values()
            if p.strategy_override is not None
        ]
        return [configure, *overrides]

    def _send_if_open(self, message: ClientMessage) -> list[Action]:
        return [Send(message)] if self._link_open else []

    # ----------------------------------------------------------- connection lifecycle

    def on_connection_opened(self, now_ms: int) -> list[ClientMessage]:
        """A socket just opened: returns ``configure_messages()``, to be written first.

        Every known position becomes unconfirmed until the server re-emits it. Call
        this when the socket opens (it fits ``StreamClient(configure_messages=...)``),
        so updates made before ``hello_ok`` are sent rather than lost.
        """
        self._link_open = True
        self._ready = False
        self._reconcile_close_ms = None
        for tracking in self._tracking.values():
            tracking.confirmed = False
        self._unconfirmed_count = len(self._tracking)
        return self.configure_messages()

    def on_connection_lost(self, now_ms: int) -> None:
        self._link_open = False
        self._ready = False
        self._reconcile_close_ms = None

    # ----------------------------------------------------------- server messages

    def on_message(self, message: Struct, now_ms: int) -> list[Action]:
        """Apply one decoded server frame; unknown and malformed frames are only counted."""
        handler = self._handlers.get(type(message))
        if handler is None:
            self._count_unhandled(message)
            return []
        self._frames[str(message.__struct_config__.tag)] += 1
        return handler(message, now_ms)

    def _count_unhandled(self, message: Struct) -> None:
        if isinstance(message, MalformedFrame):
            self._malformed_frames += 1
        else:
            self._unknown_frames += 1

    def _on_hello_ok(self, hello: HelloOk, now_ms: int) -> list[Action]:
        if not self._link_open:
            self.on_connection_opened(now_ms)  # the I/O layer skipped it; configure went out
        self._ready = True
        self.session_id = hello.session_id
        self.limits = hello.limits
        self._reconcile_close_ms = now_ms + self._reconcile_ms if self._unconfirmed_count else None
        self._wakeup_moved()
        return [Connected(session_id=hello.session_id, limits=hello.limits)]

    def _on_pong(self, pong: Pong, now_ms: int) -> list[Action]:
        return []

    def _on_error(self, error: ErrorMsg, now_ms: int) -> list[Action]:
        return [ServerError(code=error.code, message=error.message)]

    def _on_position_opened(self, opened: PositionOpened, now_ms: int) -> list[Action]:
        tracking = self._tracking.get(opened.position_id)
        if tracking is not None:
            if not tracking.confirmed:
                tracking.confirmed = True
                self._unconfirmed_count -= 1
                self._arm(opened.position_id, tracking)
            self._replace(opened.position_id, tokens=opened.tokens)
            return []
        opened_ms = now_ms if opened.opened_at_ms is None else opened.opened_at_ms
        position = Position(opened=opened, opened_ms=opened_ms, tokens=opened.tokens)
        self._positions[opened.position_id] = position
        self._by_token_account[opened.token_account] = opened.position_id
        self._by_wallet_mint.setdefault((opened.wallet_pubkey, opened.mint), []).append(
            opened.position_id)
        self._tracking[opened.position_id] = _Tracking()
        self._schedule_deadline(opened.position_id)
        return [PositionOpenedEvent(position=position)]

    def _on_position_closed(self, closed: PositionClosed, now_ms: int) -> list[Action]:
        return [PositionClosedEvent(closed=closed, position=self._forget(closed.position_id))]

    def _on_balance_update(self, update: BalanceUpdate, now_ms: int) -> list[Action]:
        position_id = self._position_id_for_balance(update)
        if position_id is not None:
            self._replace(position_id, tokens=update.tokens)
        return []

    def _on_pnl_update(self, pnl: PnlUpdate, now_ms: int) -> list[Action]:
        position = self._positions.get(pnl.position_id)
        if position is None:
            self._orphan_frames += 1
            return []
        self._profit_total += pnl.profit_units - (position.profit_units or 0)
        self._positions[pnl.position_id] = msgspec.structs.replace(
            position, profit_units=pnl.profit_units, proceeds_units=pnl.proceeds_units)
        return []

    def _on_liquidity_snapshot(self, snapshot: LiquiditySnapshot, now_ms: int) -> list[Action]:
        if snapshot.position_id in self._positions:
            self._liquidity[snapshot.position_id] = _Liquidity(
                tuple(snapshot.bands), snapshot.liquidity_trend)
        else:
            self._orphan_frames += 1
        return []

    def _on_trade_tick(self, tick: TradeTick, now_ms: int) -> list[Action]:
        self._replace(tick.position_id, last_trade=tick)
        return []

    def _on_exit_signal(self, signal: ExitSignalWithTx, now_ms: int) -> list[Action]:
        return [ExecuteExit(signal=signal)]

    def _on_mirror_buy_signal(self, signal: MirrorBuySignal, now_ms: int) -> list[Action]:
        return [ExecuteMirrorBuy(signal=signal)]

    def _on_mirror_event(
        self, message: MirrorBuyFailed | MirrorWalletAutoDisabled, now_ms: int
    ) -> list[Action]:
        return [MirrorEvent(message=message)]

    # ----------------------------------------------------------- position bookkeeping

    def _replace(self, position_id: int, **changes: Any) -> None:
        position = self._positions.get(position_id)
        if position is None:
            self._orphan_frames += 1
            return
        self._positions[position_id] = msgspec.structs.replace(position, **changes)

    def _position_id_for_balance(self, update: BalanceUpdate) -> int | None:
        if update.token_account is not None:
            return self._by_token_account.get(update.token_account)
        ids = self._by_wallet_mint.get((update.wallet_pubkey, update.mint))
        return ids[0] if ids else None

    def _forget(self, position_id: int) -> Position | None:
        """Remove a position with its deadline, override and caches (its heap entries
        go stale and are skipped)."""
        position = self._positions.pop(position_id, None)
        tracking = self._tracking.pop(position_id, None)
        if tracking is not None and not tracking.confirmed:
            self._unconfirmed_count -= 1
        self._liquidity.pop(position_id, None)
        if position is None:
            return None
        self._profit_total -= position.profit_units or 0
        if self._by_token_account.get(position.token_account) == position_id:
            del self._by_token_account[position.token_account]
        key = (position.opened.wallet_pubkey, position.opened.mint)
        ids = self._by_wallet_mint.get(key)
        if ids is not None:
            ids.remove(position_id)
            if not ids:
                del self._by_wallet_mint[key]
        return position

    def _unconfirmed(self) -> list[int]:
        """Positions not re-emitted since the connection opened (O(n): once a reconnect)."""
        return [pid for pid, tracking in self._tracking.items() if not tracking.confirmed]

    # ----------------------------------------------------------- lookups

    def position(self, position_id: int) -> Position | None:
        return self._positions.get(position_id)

    def position_by_token_account(self, token_account: str) -> Position | None:
        position_id = self._by_token_account.get(token_account)
        return None if position_id is None else self._positions.get(position_id)

    def positions(self) -> list[Position]:
        """A copy of every open position (O(n): not for per-event use)."""
        return list(self._positions.values())

    def position_count(self) -> int:
        return len(self._positions)

    def profit_total(self) -> int:
        """Sum of the latest ``profit_units`` over open positions, kept as a counter."""
        return self._profit_total

    def slippage_bands(self, position_id: int) -> list[SlippageBand]:
        snapshot = self._liquidity.get(position_id)
        return [] if snapshot is None else list(snapshot.bands)

    def max_sell_at_slippage(self, position_id: int, slippage_bps: int) -> int:
        """Most tokens sellable within ``slippage_bps`` per the latest snapshot; 0 if unknown."""
        within = [
            band.max_tokens
            for band in self.slippage_bands(position_id)
            if band.slippage_bps <= slippage_bps
        ]
        return max(within, default=0)

    def liquidity_trend(self, position_id: int) -> str | None:
        snapshot = self._liquidity.get(position_id)
        return None if snapshot is None else snapshot.trend

    def stats(self) -> SessionStats:
        return SessionStats(
            frames_by_type=dict(self._frames),
            unknown_frames=self._unknown_frames,
            malformed_frames=self._malformed_frames,
            orphan_frames=self._orphan_frames,
            positions_open=len(self._positions),
            positions_unconfirmed=self._unconfirmed_count,
            connected=self._ready,
        )

    # ----------------------------------------------------------- exits in flight

    def exit_started(self, position_id: int) -> None:
        """The executor is submitting an exit: no deadline fires until it finishes."""
        tracking = self._tracking.get(position_id)
        if tracking is not None:
            tracking.exits_in_flight += 1

    def exit_finished(self, position_id: int, landed: bool, now_ms: int) -> None:
        """The exit is settled. After a landed one the deadline waits one retry interval
        (a partial ladder sell leaves the position open; a full one closes it meanwhile)."""
        tracking = self._tracking.get(position_id)
        if tracking is None or tracking.exits_in_flight == 0:
            return
        tracking.exits_in_flight -= 1
        if landed and tracking.due_ms is not None:
            tracking.due_ms = max(tracking.due_ms, now_ms + self._retry_ms())
        self._arm(position_id, tracking)

    # ----------------------------------------------------------- time

    def on_tick(self, now_ms: int) -> list[Action]:
        """Drop positions the reconcile did not see again, then fire due deadlines."""
        return self._close_reconcile(now_ms) + self._fire_due(now_ms)

    def next_wakeup_ms(self) -> int | None:
        """When ``on_tick`` next has work, or None; may be in the past (call it now)."""
        if not self._ready:
            return None
        due = self._deadlines.earliest()
        close = self._reconcile_close_ms
        if due is None or (close is not None and close < due):
            return close
        return due

    def _close_reconcile(self, now_ms: int) -> list[Action]:
        if self._reconcile_close_ms is None or now_ms < self._reconcile_close_ms:
            return []
        self._reconcile_close_ms = None
        dropped: list[Action] = []
        for position_id in self._unconfirmed():
            position = self._forget(position_id)
            if position is not None:
                dropped.append(PositionDropped(position_id, NOT_REEMITTED, position))
        return dropped

    def _fire_due(self, now_ms: int) -> list[Action]:
        if not self._ready:
            return []
        fired: dict[int, Action] = {}  # a position fires once a tick, duplicates or not
        for due_ms, position_id in self._deadlines.pop_due(now_ms):
            if position_id not in fired and self._is_live(due_ms, position_id):
                fired[position_id] = self._fire_deadline(position_id, now_ms)
        return list(fired.values())

    def _fire_deadline(self, position_id: int, now_ms: int) -> Action:
        tracking = self._tracking[position_id]
        tracking.last_fired_ms = now_ms
        tracking.due_ms = now_ms + self._retry_ms()
        self._arm(position_id, tracking)
        return Send(RequestExitSignal(position_id=position_id))

    def _schedule_deadline(self, position_id: int) -> None:
        """Due at opening + timeout, never sooner than a retry interval after the last fire."""
        tracking = self._tracking[position_id]
        position = self._positions[position_id]
        timeout_ms = _ms(self._desired.deadline_timeout_sec)
        if timeout_ms <= 0 or position.opened.watched:
            tracking.due_ms = None
            return
        due_ms = position.opened_ms + timeout_ms
        if tracking.last_fired_ms is not None:
            due_ms = max(due_ms, tracking.last_fired_ms + self._retry_ms())
        tracking.due_ms = due_ms
        self._arm(position_id, tracking)

    # ----------------------------------------------------------- the deadline heap

    def _is_live(self, due_ms: int, position_id: int) -> bool:
        tracking = self._tracking.get(position_id)
        return tracking is not None and tracking.armed_due_ms() == due_ms

    def _arm(self, position_id: int, tracking: _Tracking) -> None:
        """Push the position's deadline if it may fire; say so if it is now the earliest."""
        due_ms = tracking.armed_due_ms()
        if due_ms is None:
            return
        if self._deadlines.needs_rebuild(len(self._tracking)):
            self._deadlines.rebuild((due, pid) for pid, t in self._tracking.items()
                                    if (due := t.armed_due_ms()) is not None)
        if self._deadlines.push(due_ms, position_id):
            self._wakeup_moved()

    def _wakeup_moved(self) -> None:
        if self.on_wakeup_earlier is not None and self._ready:
            self.on_wakeup_earlier()

    def _retry_ms(self) -> int:
        return _ms(self._desired.deadline_retry_sec)
