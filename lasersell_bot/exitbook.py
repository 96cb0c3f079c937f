"""Per-position exit bookkeeping: which exit signal runs now, which waits, what's next.

Pure and synchronous: feed signals and attempt outcomes in, get decisions out.
It holds the rules that keep money safe:

- at most one live sell per position: a signal that arrives while an attempt may
  still land is queued, never run beside it;
- ladder levels run in ``level_index`` order; a newer signal for a queued level
  replaces the older one (reported, not dropped silently); a full exit (no level)
  runs before queued ladder levels, which are discarded once it lands;
- a ladder level at or below one that already landed, or a signal whose exact
  transaction is already live or queued, is superseded: never sold twice;
- only a full exit known dead (failed on chain, expired, refused) leads to a new
  ``request_exit_signal`` (which asks the server for a full exit); a slippage
  failure bumps slippage, other failures don't; retries are bounded per exit;
- a failed ladder level is reported (``LevelFailed``), not escalated to a full
  exit: the server re-signals it while the price still qualifies;
- a position closed or dropped while a sell may still land keeps its state until
  that sell resolves; recovery locks are counted, one per unresolved attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from lasersell_bot.protocol import ExitSignalWithTx

FULL_EXIT = -1  # queue key for a signal without level_index


class Outcome(Enum):
    LANDED = "landed"
    FAILED_SLIPPAGE = "failed_slippage"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUSED = "refused"
    DRY_RUN = "dry_run"


@dataclass(frozen=True)
class Start:
    signal: ExitSignalWithTx
    attempt_no: int


@dataclass(frozen=True)
class RequestExit:
    position_id: int
    slippage_bps: int | None
    attempt_no: int


@dataclass(frozen=True)
class GiveUp:
    position_id: int
    reason: str
    attempts: int


@dataclass(frozen=True)
class LevelFailed:
    """A ladder level's sell is dead; the rest of the ladder goes on."""

    signal: ExitSignalWithTx
    outcome: Outcome


@dataclass(frozen=True)
class Superseded:
    """A queued signal that will never run, and why."""

    signal: ExitSignalWithTx
    reason: str


Decision = Start | RequestExit | GiveUp | Superseded | LevelFailed


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    slippage_base_bps: int = 1000
    slippage_bump_bps: int = 500
    slippage_max_bps: int = 5000
    signal_wait_ms: int = 10_000

    def next_slippage(self, current: int | None, bump: bool) -> int | None:
        if not bump:
            return current
        base = self.slippage_base_bps if current is None else current
        return min(base + self.slippage_bump_bps, self.slippage_max_bps)


def level_key(signal: ExitSignalWithTx) -> int:
    return FULL_EXIT if signal.level_index is None else signal.level_index


@dataclass
class _PositionExits:
    live: ExitSignalWithTx | None = None
    queued: dict[int, ExitSignalWithTx] = field(default_factory=dict)
    failures: int = 0
    slippage_bps: int | None = None
    awaiting_since_ms: int | None = None
    pending_request: bool = False
    locks: int = 0
    closed: bool = False
    highest_landed_level: int | None = None

    def holds(self) -> bool:
        """A sell may still land, or one is being asked for."""
        return self.live is not None or self.pending_request or self.locks > 0

    def seen(self, signal: ExitSignalWithTx) -> bool:
        pending = [self.live, *self.queued.values()]
        return any(s is not None and s.unsigned_tx_b64 == signal.unsigned_tx_b64
                   for s in pending)


class ExitBook:
    """Decides, per position, which exit signal runs and what follows an outcome."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._positions: dict[int, _PositionExits] = {}

    def set_policy(self, policy: RetryPolicy) -> None:
        self._policy = policy

    # ----------------------------------------------------------------- queries

    def is_busy(self, position_id: int) -> bool:
        """True while a sell for the position may still land or is being asked for."""
        state = self._positions.get(position_id)
        return state is not None and state.holds()

    def queued(self, position_id: int) -> list[ExitSignalWithTx]:
        state = self._positions.get(position_id)
        return [] if state is None else [state.queued[k] for k in sorted(state.queued)]

    def slippage_for(self, position_id: int) -> int | None:
        state = self._positions.get(position_id)
        return None if state is None else state.slippage_bps

    # ----------------------------------------------------------------- events

    def lock(self, position_id: int) -> None:
        """Block new sells while an earlier attempt is unresolved (one lock per attempt)."""
        self._state(position_id).locks += 1

    def unlock(self, position_id: int) -> list[Decision]:
        state = self._state(position_id)
        state.locks = max(0, state.locks - 1)
        return self._start_next(position_id, state)

    def offer(self, signal: ExitSignalWithTx, now_ms: int) -> list[Decision]:
        """A new exit signal arrived."""
        state = self._state(signal.position_id)
        stale = self._stale_reason(state, signal)
        if stale is not None:
            return [Superseded(signal, stale)]
        key = level_key(signal)
        decisions: list[Decision] = []
        replaced = state.queued.get(key)
        if replaced is not None:
            decisions.append(Superseded(replaced, "replaced_by_newer_signal"))
        state.queued[key] = signal
        if state.pending_request and state.awaiting_since_ms is not None:
            state.pending_request = False
            state.awaiting_since_ms = None
        decisions.extend(self._start_next(signal.position_id, state))
        return decisions

    @staticmethod
    def _stale_reason(state: _PositionExits, signal: ExitSignalWithTx) -> str | None:
        if state.seen(signal):
            return "duplicate_signal"
        floor = state.highest_landed_level
        if signal.level_index is not None and floor is not None and signal.level_index <= floor:
            return "level_already_sold"
        return None

    def finished(self, position_id: int, outcome: Outcome, now_ms: int) -> list[Decision]:
        """The live attempt for ``position_id`` reached a final outcome."""
        state = self._state(position_id)
        done, state.live = state.live, None
        if state.closed:
            return self._forget_closed(position_id, state)
        if outcome in (Outcome.LANDED, Outcome.DRY_RUN):
            state.failures = 0
            return self._after_landing(position_id, state, done)
        if done is not None and done.level_index is not None:
            return [LevelFailed(done, outcome), *self._start_next(position_id, state)]
        return self._after_failure(position_id, state, outcome, now_ms)

    def tick(self, now_ms: int) -> list[Decision]:
        """Give up waiting for a requested signal that never came."""
        decisions: list[Decision] = []
        for position_id, state in self._positions.items():
            since = state.awaiting_since_ms
            if since is not None and now_ms - since >= self._policy.signal_wait_ms:
                state.awaiting_since_ms = None
                state.pending_request = False
                state.failures += 1
                decisions.extend(self._retry_or_give_up(position_id, state, now_ms, False))
        return decisions

    def restart_waits(self, now_ms: int) -> None:
        """Requested signals are waited for afresh (after a reconnect)."""
        for state in self._positions.values():
            if state.awaiting_since_ms is not None:
                state.awaiting_since_ms = now_ms

    def position_closed(self, position_id: int) -> list[Decision]:
        """The server stopped tracking the position: queued signals are moot. A sell
        that may still land (or a recovery lock) keeps the state until it resolves."""
        state = self._positions.get(position_id)
        if state is None:
            return []
        dropped: list[Decision] = [Superseded(s, "position_closed")
                                   for s in state.queued.values()]
        state.queued.clear()
        if state.live is not None or state.locks > 0:
            state.closed = True
        else:
            del self._positions[position_id]
        return dropped

    def _forget_closed(self, position_id: int, state: _PositionExits) -> list[Decision]:
        if state.locks == 0 and state.live is None:
            del self._positions[position_id]
        return []

    # ----------------------------------------------------------------- internals

    def _state(self, position_id: int) -> _PositionExits:
        return self._positions.setdefault(position_id, _PositionExits())

    def _start_next(self, position_id: int, state: _PositionExits) -> list[Decision]:
        if state.closed:
            return self._forget_closed(position_id, state)
        if state.holds() or not state.queued:
            return []
        key = FULL_EXIT if FULL_EXIT in state.queued else min(state.queued)
        state.live = state.queued.pop(key)
        return [Start(state.live, state.failures + 1)]

    def _after_landing(
        self, position_id: int, state: _PositionExits, done: ExitSignalWithTx | None
    ) -> list[Decision]:
        state.slippage_bps = None
        if done is not None and done.level_index is None:
            dropped = [Superseded(s, "position_sold_out") for s in state.queued.values()]
            state.queued.clear()
            return list(dropped)
        sold: list[Decision] = []
        if done is not None and done.level_index is not None:
            state.highest_landed_level = max(done.level_index,
                                             state.highest_landed_level or 0)
            sold = self._drop_sold_levels(state)
        return sold + self._start_next(position_id, state)

    @staticmethod
    def _drop_sold_levels(state: _PositionExits) -> list[Decision]:
        floor = state.highest_landed_level
        keys = [k for k in state.queued if k != FULL_EXIT and floor is not None and k <= floor]
        return [Superseded(state.queued.pop(k), "level_already_sold") for k in keys]

    def _after_failure(
        self, position_id: int, state: _PositionExits, outcome: Outcome, now_ms: int
    ) -> list[Decision]:
        state.failures += 1
        if state.queued:
            # The server already sent a fresh transaction: run it instead of asking again.
            return self._start_next(position_id, state)
        bump = outcome is Outcome.FAILED_SLIPPAGE
        return self._retry_or_give_up(position_id, state, now_ms, bump)

    def _retry_or_give_up(
        self, position_id: int, state: _PositionExits, now_ms: int, bump: bool
    ) -> list[Decision]:
        if state.failures > self._policy.max_retries:
            failures, state.failures = state.failures, 0
            state.slippage_bps = None
            return [GiveUp(position_id, "retries_exhausted", failures)]
        state.slippage_bps = self._policy.next_slippage(state.slippage_bps, bump)
        state.pending_request = True
        state.awaiting_since_ms = now_ms
        return [RequestExit(position_id, state.slippage_bps, state.failures + 1)]
