"""ExitBook: the per-position rules that prevent double sells and lost ladder levels."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lasersell_bot.exitbook import (
    ExitBook,
    GiveUp,
    LevelFailed,
    Outcome,
    RequestExit,
    RetryPolicy,
    Start,
    Superseded,
)
from lasersell_bot.protocol import ExitSignalWithTx

POLICY = RetryPolicy(max_retries=2, slippage_base_bps=1000, slippage_bump_bps=500,
                     slippage_max_bps=1800, signal_wait_ms=5000)


def signal(position_id: int = 1, level: int | None = None, tx: str = "tx",
           reason: str = "stop_loss") -> ExitSignalWithTx:
    return ExitSignalWithTx(
        session_id=1, position_id=position_id, wallet_pubkey="W", mint="M",
        position_tokens=100, profit_units=0, reason=reason, triggered_at_ms=0,
        unsigned_tx_b64=tx, level_index=level)


def started(decisions: list[object]) -> list[ExitSignalWithTx]:
    return [d.signal for d in decisions if isinstance(d, Start)]


def test_first_signal_starts_at_once() -> None:
    book = ExitBook(POLICY)
    first = signal()
    assert book.offer(first, 0) == [Start(first, 1)]
    assert book.is_busy(1)


def test_second_signal_waits_while_the_first_may_still_land() -> None:
    book = ExitBook(POLICY)
    book.offer(signal(tx="a"), 0)
    assert book.offer(signal(tx="b"), 1) == []
    assert [s.unsigned_tx_b64 for s in book.queued(1)] == ["b"]


def test_ladder_levels_run_in_level_order_none_dropped() -> None:
    book = ExitBook(POLICY)
    book.offer(signal(level=0, tx="l0"), 0)
    book.offer(signal(level=2, tx="l2"), 1)
    book.offer(signal(level=1, tx="l1"), 2)
    order = []
    for _ in range(2):
        decisions = book.finished(1, Outcome.LANDED, 10)
        order += [s.unsigned_tx_b64 for s in started(decisions)]
    assert order == ["l1", "l2"]
    assert book.finished(1, Outcome.LANDED, 20) == []
    assert not book.is_busy(1)


def test_newer_signal_for_a_queued_level_replaces_and_reports_the_older() -> None:
    book = ExitBook(POLICY)
    book.offer(signal(level=0, tx="l0"), 0)
    old = signal(level=1, tx="old")
    book.offer(old, 1)
    decisions = book.offer(signal(level=1, tx="new"), 2)
    assert decisions == [Superseded(old, "replaced_by_newer_signal")]
    assert [s.unsigned_tx_b64 for s in book.queued(1)] == ["new"]


def test_full_exit_jumps_the_ladder_and_clears_it_when_landed() -> None:
    book = ExitBook(POLICY)
    book.offer(signal(level=0, tx="l0"), 0)
    book.offer(signal(level=1, tx="l1"), 1)
    book.offer(signal(level=None, tx="sl"), 2)
    decisions = book.finished(1, Outcome.LANDED, 3)
    assert [s.unsigned_tx_b64 for s in started(decisions)] == ["sl"]
    decisions = book.finished(1, Outcome.LANDED, 4)
    assert [(d.signal.unsigned_tx_b64, d.reason) for d in decisions
            if isinstance(d, Superseded)] == [("l1", "position_sold_out")]


def test_slippage_failure_requests_a_new_signal_with_bumped_slippage_capped() -> None:
    book = ExitBook(POLICY)
    book.offer(signal(tx="a"), 0)
    assert book.finished(1, Outcome.FAILED_SLIPPAGE, 1) == [RequestExit(1, 1500, 2)]
    assert book.is_busy(1)  # asking for a new tx counts as busy: no deadline re-fire
    book.offer(signal(tx="b"), 2)
    assert book.finished(1, Outcome.FAILED_SLIPPAGE, 3) == [RequestExit(1, 1800, 3)]


def test_other_failures_do_not_bump_slippage() -> None:
    book = ExitBook(POLICY)
    book.offer(signal(tx="a"), 0)
    assert book.finished(1, Outcome.EXPIRED, 1) == [RequestExit(1, None, 2)]
    book.offer(signal(tx="b"), 2)
    assert book.finished(1, Outcome.FAILED, 3) == [RequestExit(1, None, 3)]


def test_retries_are_bounded() -> None:
    book = ExitBook(POLICY)
    book.offer(signal(tx="0"), 0)
    decisions: list[object] = []
    for n in range(3):
        decisions = book.finished(1, Outcome.REFUSED, n)
        if n < 2:
            assert isinstance(decisions[0], RequestExit)
            book.offer(signal(tx=str(n + 1)), n)
    assert decisions == [GiveUp(1, "retries_exhausted", 3)]
    assert not book.is_busy(1)


def test_a_queued_fresh_signal_is_used_instead_of_asking_again() -> None:
    book = ExitBook(POLICY)
    book.offer(signal(tx="a"), 0)
    book.offer(signal(tx="b"), 1)
    decisions = book.finished(1, Outcome.EXPIRED, 2)
    assert started(decisions)[0].unsigned_tx_b64 == "b"
    assert not [d for d in decisions if isinstance(d, RequestExit)]


def test_requested_signal_that_never_comes_counts_as_a_failure() -> None:
    book = ExitBook(POLICY)
    book.offer(signal(tx="a"), 0)
    book.finished(1, Outcome.EXPIRED, 0)
    assert book.tick(4999) == []
    assert book.tick(5000) == [RequestExit(1, None, 3)]
    assert book.tick(10_000) == [GiveUp(1, "retries_exhausted", 3)]


def test_recovery_lock_holds_new_signals_until_unlocked() -> None:
    book = ExitBook(POLICY)
    book.lock(1)
    assert book.offer(signal(tx="fresh"), 0) == []
    assert book.is_busy(1)
    assert started(book.unlock(1))[0].unsigned_tx_b64 == "fresh"


def test_position_closed_drops_queue_but_not_a_live_attempt() -> None:
    book = ExitBook(POLICY)
    book.offer(signal(position_id=2, tx="a"), 0)
    assert book.position_closed(2) == []
    assert book.is_busy(2)
    book.offer(signal(position_id=3, tx="q"), 0)
    book.finished(3, Outcome.EXPIRED, 0)
    book.offer(signal(position_id=3, tx="r"), 0)
    book.finished(3, Outcome.LANDED, 0)
    assert book.position_closed(3) == []


def test_a_ladder_level_that_landed_is_never_sold_again() -> None:
    book = ExitBook(POLICY)
    book.offer(signal(level=0, tx="l0"), 0)
    again = signal(level=0, tx="l0-resent")  # e.g. re-emitted after a reconnect
    book.offer(again, 1)
    decisions = book.finished(1, Outcome.LANDED, 2)
    assert decisions == [Superseded(again, "level_already_sold")]
    late = signal(level=0, tx="l0-late")
    assert book.offer(late, 3) == [Superseded(late, "level_already_sold")]
    assert not book.is_busy(1)


def test_an_exact_duplicate_of_a_live_or_queued_signal_is_superseded() -> None:
    book = ExitBook(POLICY)
    book.offer(signal(tx="same"), 0)
    dup = signal(tx="same")
    assert book.offer(dup, 1) == [Superseded(dup, "duplicate_signal")]
    assert book.queued(1) == []


def test_recovery_locks_survive_close_and_are_counted() -> None:
    book = ExitBook(POLICY)
    book.lock(1)
    book.lock(1)  # two unresolved attempts for one position
    book.position_closed(1)  # e.g. dropped by the reconcile while the RPC is down
    assert book.is_busy(1)
    assert book.unlock(1) == []
    assert book.is_busy(1)
    book.unlock(1)
    assert not book.is_busy(1)
    assert book.offer(signal(tx="after"), 5) != []  # a fresh position state


def test_a_position_closed_during_a_live_sell_is_not_retried() -> None:
    book = ExitBook(POLICY)
    book.offer(signal(tx="a"), 0)
    queued = signal(level=1, tx="q")
    book.offer(queued, 1)
    assert book.position_closed(1) == [Superseded(queued, "position_closed")]
    assert book.finished(1, Outcome.FAILED, 2) == []  # no request for a closed position
    assert not book.is_busy(1)


def test_a_failed_ladder_level_is_reported_and_the_ladder_goes_on() -> None:
    book = ExitBook(POLICY)
    level0 = signal(level=0, tx="l0")
    book.offer(level0, 0)
    book.offer(signal(level=1, tx="l1"), 1)
    decisions = book.finished(1, Outcome.FAILED_SLIPPAGE, 2)
    assert decisions[0] == LevelFailed(level0, Outcome.FAILED_SLIPPAGE)
    assert [s.unsigned_tx_b64 for s in started(decisions)] == ["l1"]
    assert not [d for d in decisions if isinstance(d, RequestExit)]  # never a full exit


def test_a_failed_lone_ladder_level_does_not_become_a_full_exit() -> None:
    book = ExitBook(POLICY)
    level0 = signal(level=0, tx="l0")
    book.offer(level0, 0)
    assert book.finished(1, Outcome.EXPIRED, 1) == [LevelFailed(level0, Outcome.EXPIRED)]
    assert not book.is_busy(1)


events = st.lists(
    st.tuples(st.sampled_from(["offer", "landed", "failed", "slip", "tick"]),
              st.sampled_from([None, 0, 1, 2]), st.integers(0, 20_000)),
    max_size=60)


@settings(max_examples=400, deadline=None)
@given(events)
def test_never_two_live_sells_and_nothing_lost(script: list[tuple[str, int | None, int]]) -> None:
    book = ExitBook(POLICY)
    live: ExitSignalWithTx | None = None
    offered = accounted = 0
    now = 0
    for n, (kind, level, dt) in enumerate(script):
        now += dt
        if kind == "offer":
            offered += 1
            decisions = book.offer(signal(level=level, tx=str(n)), now)
        elif kind == "tick":
            decisions = book.tick(now)
        elif live is not None:
            outcome = {"landed": Outcome.LANDED, "failed": Outcome.FAILED,
                       "slip": Outcome.FAILED_SLIPPAGE}[kind]
            decisions = book.finished(1, outcome, now)
            live = None
        else:
            continue
        for decision in decisions:
            if isinstance(decision, Start):
                assert live is None, "a second sell started while one was live"
                live = decision.signal
                accounted += 1
            elif isinstance(decision, Superseded):
                accounted += 1
            elif isinstance(decision, RequestExit):
                assert live is None
    # Every offered signal was started, reported superseded, or is still queued.
    assert accounted + len(book.queued(1)) == offered
