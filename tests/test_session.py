"""The session state machine, fed decoded seed frames and explicit times (no I/O)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, cast

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from lasersell_bot import protocol
from lasersell_bot.protocol import (
    Configure,
    MirrorBuyFailed,
    MirrorConfig,
    MirrorWalletAutoDisabled,
    RequestExitSignal,
    Strategy,
    UpdatePositionStrategy,
    UpdateStrategy,
    UpdateWallets,
    UpdateWatchWallets,
    WatchWallet,
)
from lasersell_bot.session import (
    Action,
    AppliesOnReconnect,
    Connected,
    DesiredConfig,
    ExecuteExit,
    ExecuteMirrorBuy,
    MirrorEvent,
    PositionClosedEvent,
    PositionDropped,
    PositionOpenedEvent,
    Send,
    ServerError,
    Session,
)
from tests.test_protocol import SERVER_EXAMPLES

DECODER = protocol.server_decoder()
STRATEGY = Strategy(target_profit_pct=5.0, stop_loss_pct=1.5, trailing_stop_pct=3.0)
TIMEOUT_MS = 45_000
RETRY_MS = 10_000
RECONCILE_MS = 3_000
SEED_BANDS = [  # the full band list of the vendor's liquidity_snapshot example
    {"slippage_bps": 100, "max_tokens": 500000, "coverage_pct": 10.0},
    {"slippage_bps": 200, "max_tokens": 1200000, "coverage_pct": 24.0},
    {"slippage_bps": 500, "max_tokens": 3000000, "coverage_pct": 60.0},
    {"slippage_bps": 1000, "max_tokens": 5000000, "coverage_pct": 100.0},
]


def frame(kind: str, **overrides: Any) -> Any:
    """The vendor's example of ``kind`` with fields replaced, through the real decoder."""
    example = cast(dict[str, Any], SERVER_EXAMPLES[kind])
    message = DECODER.decode(json.dumps({**example, **overrides}))
    assert not isinstance(message, protocol.MalformedFrame | protocol.UnknownMessage), message
    return message


def make_session(timeout_sec: float = TIMEOUT_MS / 1000) -> Session:
    desired = DesiredConfig(
        wallet_pubkeys=("Abc123...",),
        strategy=STRATEGY,
        send_mode="helius_sender",
        tip_lamports=1000,
        deadline_timeout_sec=timeout_sec,
        deadline_retry_sec=RETRY_MS / 1000,
    )
    return Session(desired, reconcile_sec=RECONCILE_MS / 1000)


def connect(session: Session, now_ms: int = 0) -> list[Action]:
    session.on_connection_opened(now_ms)
    return session.on_message(frame("hello_ok"), now_ms)


def open_position(
    session: Session, position_id: int, now_ms: int, opened_at_ms: int | None = None
) -> list[Action]:
    extra = {} if opened_at_ms is None else {"opened_at_ms": opened_at_ms}
    opened = frame("position_opened", position_id=position_id,
                   token_account=f"ATA-{position_id}", **extra)
    return session.on_message(opened, now_ms)


def close_position(session: Session, position_id: int, now_ms: int) -> list[Action]:
    closed = frame("position_closed", position_id=position_id, token_account=f"ATA-{position_id}")
    return session.on_message(closed, now_ms)


def exit_requests(actions: list[Action]) -> list[int | None]:
    return [
        a.message.position_id
        for a in actions
        if isinstance(a, Send) and isinstance(a.message, RequestExitSignal)
    ]


def sent(actions: list[Action]) -> list[protocol.ClientMessage]:
    return [a.message for a in actions if isinstance(a, Send)]


@pytest.fixture
def session() -> Session:
    live = make_session()
    connect(live)
    return live


# --------------------------------------------------------------------------- every message type


def test_hello_ok_stores_session_and_limits() -> None:
    fresh = make_session()
    actions = connect(fresh, now_ms=5)
    assert len(actions) == 1 and isinstance(actions[0], Connected)
    assert actions[0].session_id == 42
    assert actions[0].limits.max_positions_per_session == 100
    assert fresh.session_id == 42
    assert fresh.limits is not None and fresh.limits.hi_capacity == 1024
    assert fresh.stats().connected


def test_pong_is_counted_and_changes_nothing(session: Session) -> None:
    assert session.on_message(frame("pong"), 1) == []
    assert session.stats().frames_by_type["pong"] == 1


def test_error_becomes_server_error(session: Session) -> None:
    actions = session.on_message(frame("error"), 1)
    assert actions == [ServerError("invalid_strategy", "target_profit_pct must be >= 0")]


def test_position_opened_is_found_by_id_and_token_account(session: Session) -> None:
    actions = session.on_message(frame("position_opened"), 7)
    assert len(actions) == 1 and isinstance(actions[0], PositionOpenedEvent)
    position = session.position(1)
    assert position is not None and position == actions[0].position
    assert position.tokens == 5_000_000 and position.opened_ms == 7
    assert session.position_by_token_account("ATA...") == position
    assert session.positions() == [position]
    assert session.stats().positions_open == 1


def test_balance_update_sets_tokens_of_known_token_account(session: Session) -> None:
    session.on_message(frame("position_opened"), 0)
    session.on_message(frame("balance_update", tokens=1234), 1)
    session.on_message(frame("balance_update", token_account="OTHER", tokens=1), 2)
    position = session.position(1)
    assert position is not None and position.tokens == 1234


def test_balance_update_without_token_account_matches_wallet_and_mint(session: Session) -> None:
    session.on_message(frame("position_opened"), 0)
    update = frame("balance_update", tokens=77)
    update.token_account = None
    session.on_message(update, 1)
    position = session.position(1)
    assert position is not None and position.tokens == 77


def test_pnl_update_keeps_latest_and_counts_orphans(session: Session) -> None:
    session.on_message(frame("position_opened"), 0)
    session.on_message(frame("pnl_update"), 1)
    session.on_message(frame("pnl_update", profit_units=-5, proceeds_units=95), 2)
    session.on_message(frame("pnl_update", position_id=99), 3)
    position = session.position(1)
    assert position is not None
    assert (position.profit_units, position.proceeds_units) == (-5, 95)
    assert session.stats().orphan_frames == 1


def test_trade_tick_keeps_only_the_last_trade(session: Session) -> None:
    session.on_message(frame("position_opened"), 0)
    session.on_message(frame("trade_tick"), 1)
    session.on_message(frame("trade_tick", side="sell", time_ms=1706000006000), 2)
    position = session.position(1)
    assert position is not None and position.last_trade is not None
    assert (position.last_trade.side, position.last_trade.time_ms) == ("sell", 1706000006000)


def test_exit_signal_becomes_execute_exit(session: Session) -> None:
    signal = frame("exit_signal_with_tx")
    assert session.on_message(signal, 1) == [ExecuteExit(signal)]


def test_mirror_buy_signal_becomes_execute_mirror_buy(session: Session) -> None:
    signal = frame("mirror_buy_signal")
    assert session.on_message(signal, 1) == [ExecuteMirrorBuy(signal)]


@pytest.mark.parametrize("kind", ["mirror_buy_failed", "mirror_wallet_auto_disabled"])
def test_mirror_notices_become_mirror_events(session: Session, kind: str) -> None:
    message = frame(kind)
    assert isinstance(message, MirrorBuyFailed | MirrorWalletAutoDisabled)
    assert session.on_message(message, 1) == [MirrorEvent(message)]


def test_position_closed_forgets_everything_about_the_position(session: Session) -> None:
    session.on_message(frame("position_opened"), 0)
    session.on_message(frame("liquidity_snapshot"), 1)
    actions = session.on_message(frame("position_closed"), 2)
    assert len(actions) == 1 and isinstance(actions[0], PositionClosedEvent)
    assert actions[0].closed.reason == "stop_loss"
    assert actions[0].position is not None and actions[0].position.position_id == 1
    assert session.position(1) is None
    assert session.position_by_token_account("ATA...") is None
    assert session.slippage_bands(1) == [] and session.liquidity_trend(1) is None


def test_position_closed_for_unknown_position_still_reported(session: Session) -> None:
    actions = session.on_message(frame("position_closed", position_id=9), 1)
    assert len(actions) == 1 and isinstance(actions[0], PositionClosedEvent)
    assert actions[0].position is None


def test_unknown_and_malformed_frames_are_counted_not_raised(session: Session) -> None:
    unknown = DECODER.decode(b'{"type":"new_feature","x":1}')
    malformed = DECODER.decode(b'{"type":"position_opened","position_id":"one"}')
    garbage = DECODER.decode(b"not json")
    assert isinstance(unknown, protocol.UnknownMessage)
    for message in (unknown, malformed, garbage):
        assert session.on_message(message, 1) == []
    stats = session.stats()
    assert (stats.unknown_frames, stats.malformed_frames) == (1, 2)
    assert stats.frames_by_type == {"hello_ok": 1}


def test_stats_count_frames_by_type(session: Session) -> None:
    session.on_message(frame("position_opened"), 0)
    for _ in range(3):
        session.on_message(frame("pnl_update"), 1)
    counts = session.stats().frames_by_type
    assert counts == {"hello_ok": 1, "position_opened": 1, "pnl_update": 3}


# --------------------------------------------------------------------------- liquidity cache


@pytest.mark.parametrize(
    ("bps", "tokens"), [(50, 0), (100, 500_000), (300, 1_200_000), (999, 3_000_000),
                        (1000, 5_000_000), (5000, 5_000_000)]
)
def test_max_sell_at_slippage(session: Session, bps: int, tokens: int) -> None:
    session.on_message(frame("position_opened"), 0)
    session.on_message(frame("liquidity_snapshot", bands=SEED_BANDS), 1)
    assert session.max_sell_at_slippage(1, bps) == tokens


def test_max_sell_at_slippage_takes_the_largest_qualifying_band(session: Session) -> None:
    session.on_message(frame("position_opened"), 0)
    unsorted = [SEED_BANDS[2], SEED_BANDS[0], SEED_BANDS[3], SEED_BANDS[1]]
    session.on_message(frame("liquidity_snapshot", bands=unsorted), 1)
    assert session.max_sell_at_slippage(1, 600) == 3_000_000


def test_liquidity_getters_use_the_latest_snapshot(session: Session) -> None:
    session.on_message(frame("position_opened"), 0)
    assert session.slippage_bands(1) == [] and session.liquidity_trend(1) is None
    session.on_message(frame("liquidity_snapshot", bands=SEED_BANDS), 1)
    assert [b.slippage_bps for b in session.slippage_bands(1)] == [100, 200, 500, 1000]
    draining = frame("liquidity_snapshot", liquidity_trend="draining",
                     bands=[{"slippage_bps": 100, "max_tokens": 7, "coverage_pct": 1.0}])
    session.on_message(draining, 2)
    assert session.liquidity_trend(1) == "draining"
    assert session.max_sell_at_slippage(1, 1000) == 7


def test_liquidity_for_unknown_position_is_not_cached(session: Session) -> None:
    session.on_message(frame("liquidity_snapshot", position_id=5), 1)
    assert session.slippage_bands(5) == []
    assert session.stats().orphan_frames == 1


# --------------------------------------------------------------------------- reconcile


def test_reemitted_position_is_idempotent(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    again = open_position(session, 1, now_ms=500)
    assert again == []
    assert len(session.positions()) == 1
    assert exit_requests(session.on_tick(TIMEOUT_MS)) == [1]
    assert exit_requests(session.on_tick(TIMEOUT_MS + 1)) == []


def test_reconnect_reemit_keeps_position_and_deadline(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    session.on_connection_lost(1000)
    connect(session, now_ms=2000)
    assert session.stats().positions_unconfirmed == 1
    assert open_position(session, 1, now_ms=2100) == []
    assert session.on_tick(2000 + RECONCILE_MS) == []
    assert session.position(1) is not None
    assert exit_requests(session.on_tick(TIMEOUT_MS)) == [1]


def test_reconcile_drops_ghosts_after_window_only(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    open_position(session, 2, now_ms=0)
    session.on_connection_lost(1000)
    connect(session, now_ms=2000)
    open_position(session, 2, now_ms=2050)
    assert session.on_tick(2000 + RECONCILE_MS - 1) == []
    assert session.position(1) is not None
    actions = session.on_tick(2000 + RECONCILE_MS)
    assert [(a.position_id, a.reason) for a in actions if isinstance(a, PositionDropped)] == [
        (1, "not_reemitted")
    ]
    assert session.position(1) is None and session.position_by_token_account("ATA-1") is None
    assert session.position(2) is not None
    assert session.on_tick(2000 + RECONCILE_MS + 1) == []


def test_reconcile_window_starts_at_hello_ok(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    session.on_connection_lost(100)
    session.on_connection_opened(200)
    assert session.on_tick(200 + RECONCILE_MS * 2) == []
    session.on_message(frame("hello_ok"), 10_000)
    assert session.next_wakeup_ms() == 10_000 + RECONCILE_MS
    assert session.position(1) is not None
    assert len(session.on_tick(10_000 + RECONCILE_MS)) == 1


def test_hello_ok_without_connection_opened_still_reconciles(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    session.on_connection_lost(100)
    session.on_message(frame("hello_ok"), 200)
    assert session.stats().positions_unconfirmed == 1
    assert [type(a) for a in session.on_tick(200 + RECONCILE_MS)] == [PositionDropped]


def test_set_strategy_can_change_the_retry_interval(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    session.set_strategy(STRATEGY, TIMEOUT_MS / 1000, now_ms=1, deadline_retry_sec=2)
    session.on_tick(TIMEOUT_MS)
    assert session.next_wakeup_ms() == TIMEOUT_MS + 2_000


def test_first_connect_has_nothing_to_reconcile() -> None:
    fresh = make_session(timeout_sec=0)
    connect(fresh)
    assert fresh.next_wakeup_ms() is None


# --------------------------------------------------------------------------- desired state


def test_configure_messages_from_initial_desired_state() -> None:
    fresh = make_session()
    [configure] = fresh.configure_messages()
    assert configure == Configure(
        wallet_pubkeys=["Abc123..."], strategy=STRATEGY, send_mode="helius_sender",
        tip_lamports=1000,
    )
    assert b"deadline_timeout_sec" not in protocol.encode(configure)


def test_configure_messages_reflect_every_later_update(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    open_position(session, 2, now_ms=0)
    new_strategy = Strategy(target_profit_pct=50, stop_loss_pct=10)
    override = Strategy(target_profit_pct=200, stop_loss_pct=5)
    watch = [WatchWallet(pubkey="Watched1")]
    mirror = MirrorConfig(cooldown_sec=5)
    session.set_strategy(new_strategy, 60, now_ms=1)
    session.set_wallets(["W1", "W2"])
    session.set_watch_wallets(watch)
    session.set_mirror_config(mirror)
    session.set_position_strategy(2, override)
    configure, *rest = session.configure_messages()
    assert configure == Configure(
        wallet_pubkeys=["W1", "W2"], strategy=new_strategy, send_mode="helius_sender",
        tip_lamports=1000, watch_wallets=watch, mirror_config=mirror,
    )
    assert configure.deadline_timeout_sec is None
    assert rest == [UpdatePositionStrategy(position_id=2, strategy=override)]


def test_connection_opened_returns_the_configure_messages(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    session.set_position_strategy(1, STRATEGY)
    session.on_connection_lost(1)
    session.set_wallets(["W2"])
    messages = session.on_connection_opened(2)
    assert messages == session.configure_messages()
    assert [type(m) for m in messages] == [Configure, UpdatePositionStrategy]
    assert isinstance(messages[0], Configure) and messages[0].wallet_pubkeys == ["W2"]


def test_update_between_socket_open_and_hello_ok_is_sent(session: Session) -> None:
    session.on_connection_lost(1)
    session.on_connection_opened(2)
    assert sent(session.set_wallets(["W3"])) == [UpdateWallets(wallet_pubkeys=["W3"])]


def test_override_of_a_closed_position_is_not_replayed(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    session.set_position_strategy(1, STRATEGY)
    close_position(session, 1, now_ms=1)
    assert len(session.configure_messages()) == 1


def test_updates_are_sent_only_while_a_connection_is_open(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    new_strategy = Strategy(target_profit_pct=9, stop_loss_pct=2)
    watch = [WatchWallet(pubkey="Watched1")]
    assert sent(session.set_strategy(new_strategy, 45, now_ms=1)) == [
        UpdateStrategy(strategy=new_strategy)
    ]
    assert sent(session.set_wallets(["W9"])) == [UpdateWallets(wallet_pubkeys=["W9"])]
    assert sent(session.set_watch_wallets(watch)) == [UpdateWatchWallets(watch_wallets=watch)]
    assert sent(session.set_position_strategy(1, new_strategy)) == [
        UpdatePositionStrategy(position_id=1, strategy=new_strategy)
    ]
    session.on_connection_lost(2)
    assert session.set_strategy(STRATEGY, 45, now_ms=3) == []
    assert session.set_wallets(["W1"]) == []
    assert session.set_watch_wallets([]) == []
    assert session.set_position_strategy(1, STRATEGY) == []
    assert session.desired.wallet_pubkeys == ("W1",)


def test_mirror_config_change_says_it_applies_on_reconnect(session: Session) -> None:
    assert session.set_mirror_config(MirrorConfig()) == [AppliesOnReconnect("mirror_config")]
    session.on_connection_lost(1)
    assert session.set_mirror_config(None) == []


def test_override_for_unknown_position_is_ignored(session: Session) -> None:
    assert session.set_position_strategy(5, STRATEGY) == []
    assert len(session.configure_messages()) == 1


# --------------------------------------------------------------------------- deadlines


def test_deadline_fires_once_at_opened_at_ms_plus_timeout(session: Session) -> None:
    open_position(session, 1, now_ms=10_000, opened_at_ms=4_000)
    assert session.next_wakeup_ms() == 4_000 + TIMEOUT_MS
    assert session.on_tick(4_000 + TIMEOUT_MS - 1) == []
    assert sent(session.on_tick(4_000 + TIMEOUT_MS)) == [RequestExitSignal(position_id=1)]
    assert session.on_tick(4_000 + TIMEOUT_MS) == []
    assert session.on_tick(4_000 + TIMEOUT_MS + RETRY_MS - 1) == []


def test_deadline_uses_arrival_time_without_opened_at_ms(session: Session) -> None:
    open_position(session, 1, now_ms=2_000)
    assert session.on_tick(2_000 + TIMEOUT_MS - 1) == []
    assert exit_requests(session.on_tick(2_000 + TIMEOUT_MS)) == [1]


def test_deadline_refires_after_retry_when_no_exit_arrives(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    fired_at = TIMEOUT_MS + 500
    assert exit_requests(session.on_tick(fired_at)) == [1]
    assert session.next_wakeup_ms() == fired_at + RETRY_MS
    assert exit_requests(session.on_tick(fired_at + RETRY_MS)) == [1]


def test_deadline_cancelled_on_close(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    close_position(session, 1, now_ms=100)
    assert session.next_wakeup_ms() is None
    assert session.on_tick(TIMEOUT_MS * 2) == []


def test_no_deadline_when_timeout_is_zero() -> None:
    fresh = make_session(timeout_sec=0)
    connect(fresh)
    open_position(fresh, 1, now_ms=0)
    assert fresh.next_wakeup_ms() is None
    assert fresh.on_tick(10**9) == []


def test_no_deadline_for_watched_positions(session: Session) -> None:
    session.on_message(frame("position_opened", watched=True), 0)
    assert session.on_tick(TIMEOUT_MS * 2) == []


def test_shorter_timeout_fires_overdue_position_at_once(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    actions = session.set_strategy(STRATEGY, 10, now_ms=20_000)
    assert sent(actions) == [UpdateStrategy(strategy=STRATEGY), RequestExitSignal(position_id=1)]
    assert session.on_tick(20_001) == []


def test_shorter_timeout_reschedules_from_opening(session: Session) -> None:
    open_position(session, 1, now_ms=1_000)
    session.set_strategy(STRATEGY, 20, now_ms=5_000)
    assert session.next_wakeup_ms() == 21_000
    assert exit_requests(session.on_tick(21_000)) == [1]


def test_longer_timeout_postpones_the_deadline(session: Session) -> None:
    open_position(session, 1, now_ms=1_000)
    session.set_strategy(STRATEGY, 90, now_ms=5_000)
    assert session.on_tick(1_000 + TIMEOUT_MS) == []
    assert exit_requests(session.on_tick(91_000)) == [1]


def test_timeout_change_after_a_fire_keeps_the_retry_gap(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    assert exit_requests(session.on_tick(TIMEOUT_MS)) == [1]
    assert exit_requests(session.set_strategy(STRATEGY, 1, now_ms=TIMEOUT_MS + 1)) == []
    assert session.next_wakeup_ms() == TIMEOUT_MS + RETRY_MS


def test_zero_timeout_cancels_deadlines(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    session.set_strategy(STRATEGY, 0, now_ms=1)
    assert session.next_wakeup_ms() is None


def test_no_deadline_while_an_exit_is_in_flight(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    session.exit_started(1)
    assert session.next_wakeup_ms() is None
    assert session.on_tick(TIMEOUT_MS * 10) == []


def test_deadline_refires_after_exit_that_did_not_land(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    assert exit_requests(session.on_tick(TIMEOUT_MS)) == [1]
    session.exit_started(1)
    assert session.on_tick(TIMEOUT_MS + RETRY_MS * 5) == []
    session.exit_finished(1, landed=False, now_ms=TIMEOUT_MS + RETRY_MS * 5)
    assert exit_requests(session.on_tick(TIMEOUT_MS + RETRY_MS * 5)) == [1]


def test_deadline_waits_a_retry_after_an_exit_that_landed(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    session.on_tick(TIMEOUT_MS)
    session.exit_started(1)
    finished_at = TIMEOUT_MS + RETRY_MS * 5
    session.exit_finished(1, landed=True, now_ms=finished_at)
    assert session.on_tick(finished_at + RETRY_MS - 1) == []
    assert exit_requests(session.on_tick(finished_at + RETRY_MS)) == [1]


def test_two_exits_in_flight_both_must_finish(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    session.exit_started(1)
    session.exit_started(1)
    session.exit_finished(1, landed=False, now_ms=TIMEOUT_MS)
    assert session.on_tick(TIMEOUT_MS) == []
    session.exit_finished(1, landed=False, now_ms=TIMEOUT_MS)
    assert exit_requests(session.on_tick(TIMEOUT_MS)) == [1]


def test_deadline_not_fired_while_disconnected_then_fired_after_reemit(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    session.on_connection_lost(1_000)
    assert session.next_wakeup_ms() is None
    assert session.on_tick(TIMEOUT_MS + 5_000) == []
    reconnect_at = TIMEOUT_MS + 6_000
    connect(session, now_ms=reconnect_at)
    assert session.on_tick(reconnect_at) == []
    open_position(session, 1, now_ms=reconnect_at + 10)
    assert exit_requests(session.on_tick(reconnect_at + 10)) == [1]


def test_due_deadline_of_a_ghost_never_fires(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    session.on_connection_lost(1_000)
    connect(session, now_ms=TIMEOUT_MS)
    actions = session.on_tick(TIMEOUT_MS + RECONCILE_MS)
    assert exit_requests(actions) == []
    assert [type(a) for a in actions] == [PositionDropped]


def test_next_wakeup_is_the_earliest_due_deadline(session: Session) -> None:
    assert session.next_wakeup_ms() is None
    open_position(session, 1, now_ms=5_000)
    open_position(session, 2, now_ms=1_000)
    assert session.next_wakeup_ms() == 1_000 + TIMEOUT_MS
    session.exit_started(2)
    assert session.next_wakeup_ms() == 5_000 + TIMEOUT_MS


def test_due_positions_fire_in_due_order(session: Session) -> None:
    open_position(session, 1, now_ms=5_000)
    open_position(session, 2, now_ms=1_000)
    assert exit_requests(session.on_tick(TIMEOUT_MS * 2)) == [2, 1]


# --------------------------------------------------------------------------- ladder


def test_ladder_signals_are_all_emitted_in_arrival_order(session: Session) -> None:
    open_position(session, 1, now_ms=0)
    signals = [
        frame("exit_signal_with_tx", level_index=level, sell_tokens=1000 * (level + 1),
              reason="tp")
        for level in (0, 1, 2)
    ]
    actions = [action for signal in signals for action in session.on_message(signal, 1)]
    assert actions == [ExecuteExit(signal) for signal in signals]


# --------------------------------------------------------------------------- work per event


class _CountingTracking:
    """Counts ``armed_due_ms`` calls: the work a tick does per position."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from lasersell_bot import session as session_mod

        self.calls = 0
        original = session_mod._Tracking.armed_due_ms

        def counted(tracking: Any) -> int | None:
            self.calls += 1
            return original(tracking)

        monkeypatch.setattr(session_mod._Tracking, "armed_due_ms", counted)


@pytest.mark.parametrize("timeout_sec", [0.0, TIMEOUT_MS / 1000])
def test_a_tick_does_not_walk_every_position(monkeypatch: pytest.MonkeyPatch,
                                             timeout_sec: float) -> None:
    session = make_session(timeout_sec)
    connect(session)
    for pid in range(1, 20_001):
        open_position(session, pid, now_ms=pid % 1000)
    counter = _CountingTracking(monkeypatch)
    for now in range(2_000, 2_200):  # 200 wake-ups, none due
        assert session.on_tick(now) == []
        session.next_wakeup_ms()
    assert counter.calls < 1_000  # a scan would be 2 x 20,000 per wake-up


def test_deadlines_fire_in_due_order_across_many_positions() -> None:
    session = make_session()
    connect(session)
    opened = {pid: (pid * 7919) % 5_000 for pid in range(1, 2_001)}
    for pid, at in opened.items():
        open_position(session, pid, now_ms=at)
    fired = []
    for now in range(TIMEOUT_MS, TIMEOUT_MS + 5_001, 250):
        fired += exit_requests(session.on_tick(now))
    assert fired == sorted(opened, key=lambda pid: (opened[pid], pid))


def test_wakeup_listener_hears_only_of_earlier_wakeups(session: Session) -> None:
    heard: list[int | None] = []
    session.on_wakeup_earlier = lambda: heard.append(session.next_wakeup_ms())
    open_position(session, 1, now_ms=5_000)
    open_position(session, 2, now_ms=9_000)  # later than the first: nobody woken
    open_position(session, 3, now_ms=1_000)
    assert heard == [5_000 + TIMEOUT_MS, 1_000 + TIMEOUT_MS]
    session.exit_started(3)
    session.exit_finished(3, landed=False, now_ms=2_000)  # armed again: earliest again
    assert heard[-1] == 1_000 + TIMEOUT_MS and len(heard) == 3


def test_stale_heap_entries_are_bounded() -> None:
    session = make_session()
    connect(session)
    for pid in range(1, 101):
        open_position(session, pid, now_ms=0)
    for timeout in range(1, 200):  # each change re-arms every position
        session.set_strategy(STRATEGY, float(timeout), now_ms=0)
    assert len(session._deadlines) <= 2 * 100 + 64 + 100


def test_counters_follow_pnl_and_closes(session: Session) -> None:
    for pid in (1, 2, 3):
        open_position(session, pid, now_ms=0)
    session.on_message(frame("pnl_update", position_id=1, profit_units=500), 1)
    session.on_message(frame("pnl_update", position_id=2, profit_units=-200), 1)
    session.on_message(frame("pnl_update", position_id=1, profit_units=700), 2)
    assert session.profit_total() == 500 and session.position_count() == 3
    close_position(session, 1, now_ms=3)
    assert session.profit_total() == -200 and session.position_count() == 2


def test_balance_without_token_account_finds_position_by_wallet_and_mint(
        session: Session) -> None:
    open_position(session, 1, now_ms=0)
    open_position(session, 2, now_ms=0)  # same wallet and mint in the seed example
    opened = session.position(1)
    assert opened is not None
    update = frame("balance_update", wallet_pubkey=opened.opened.wallet_pubkey,
                   mint=opened.opened.mint, token_account=None, tokens=42)
    session.on_message(update, 1)
    assert session.position(1).tokens == 42  # type: ignore[union-attr]
    close_position(session, 1, now_ms=2)
    session.on_message(frame("balance_update", wallet_pubkey=opened.opened.wallet_pubkey,
                             mint=opened.opened.mint, token_account=None, tokens=7), 3)
    assert session.position(2).tokens == 7  # type: ignore[union-attr]


# --------------------------------------------------------------------------- property test

POSITION_IDS = st.integers(min_value=1, max_value=4)


class DeadlineMachine(RuleBasedStateMachine):
    """Random open/close/tick/exit/reconnect interleavings against a simple model."""

    @initialize()
    def start(self) -> None:
        self.session = make_session()
        self.now = 0
        self.open: set[int] = set()
        self.in_flight: Counter[int] = Counter()
        self.last_request: dict[int, int] = {}
        connect(self.session)

    def check(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, PositionDropped):
                self.forget(action.position_id)
            elif isinstance(action, PositionClosedEvent):
                self.forget(action.closed.position_id)
        for pid in exit_requests(actions):
            assert pid is not None and pid in self.open, f"exit requested for closed {pid}"
            assert self.in_flight[pid] == 0, f"exit requested while one is in flight ({pid})"
            previous = self.last_request.get(pid)
            assert previous is None or self.now - previous >= RETRY_MS, "deadline double-fired"
            self.last_request[pid] = self.now

    def forget(self, pid: int) -> None:
        self.open.discard(pid)
        self.in_flight.pop(pid, None)
        self.last_request.pop(pid, None)

    @rule(pid=POSITION_IDS, age=st.integers(min_value=0, max_value=2 * TIMEOUT_MS))
    def position_opened(self, pid: int, age: int) -> None:
        self.check(open_position(self.session, pid, self.now, opened_at_ms=self.now - age))
        self.open.add(pid)

    @rule(pid=POSITION_IDS)
    def position_closed(self, pid: int) -> None:
        self.check(close_position(self.session, pid, self.now))

    @rule(advance=st.integers(min_value=0, max_value=3 * RETRY_MS))
    def tick(self, advance: int) -> None:
        self.now += advance
        self.check(self.session.on_tick(self.now))

    @rule(pid=POSITION_IDS)
    def exit_started(self, pid: int) -> None:
        self.session.exit_started(pid)
        if pid in self.open:
            self.in_flight[pid] += 1

    @rule(pid=POSITION_IDS, landed=st.booleans())
    def exit_finished(self, pid: int, landed: bool) -> None:
        self.session.exit_finished(pid, landed, self.now)
        if self.in_flight[pid] > 0:
            self.in_flight[pid] -= 1

    @rule(timeout_sec=st.sampled_from([0, 1, 30, 45, 120]))
    def strategy_changed(self, timeout_sec: int) -> None:
        self.check(self.session.set_strategy(STRATEGY, timeout_sec, self.now))

    @rule(reemit=st.sets(POSITION_IDS))
    def reconnected(self, reemit: set[int]) -> None:
        self.session.on_connection_lost(self.now)
        self.check(connect(self.session, self.now))
        for pid in sorted(reemit & self.open):
            self.check(open_position(self.session, pid, self.now))

    @invariant()
    def session_agrees_on_open_positions(self) -> None:
        if hasattr(self, "session"):
            assert {p.position_id for p in self.session.positions()} == self.open
            assert self.session.position_count() == len(self.open)

    @invariant()
    def heap_top_is_the_earliest_armed_deadline(self) -> None:
        """The heap answers what a scan over every position would (the old algorithm)."""
        if not hasattr(self, "session"):
            return
        session = self.session
        armed = [due for t in session._tracking.values()
                 if (due := t.armed_due_ms()) is not None]
        if session._reconcile_close_ms is not None:
            armed.append(session._reconcile_close_ms)
        assert session.next_wakeup_ms() == min(armed, default=None)
        unconfirmed = sum(not t.confirmed for t in session._tracking.values())
        assert session.stats().positions_unconfirmed == unconfirmed


TestDeadlineMachine = DeadlineMachine.TestCase
TestDeadlineMachine.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)


def test_position_snapshots_stay_out_of_the_cycle_collector(session: Session) -> None:
    import gc

    open_position(session, 1, now_ms=0)
    session.on_message(frame("pnl_update", position_id=1, profit_units=5), 1)
    session.on_message(frame("liquidity_snapshot", position_id=1, bands=SEED_BANDS), 2)
    assert not gc.is_tracked(session.position(1))
    assert not gc.is_tracked(session._liquidity[1])


def test_deadline_heap_skips_stale_entries_lazily() -> None:
    from lasersell_bot.deadlines import DeadlineHeap

    live = {(30, 3), (20, 2)}
    heap = DeadlineHeap(lambda due, pid: (due, pid) in live)
    assert heap.push(30, 3) is True
    assert heap.push(10, 1) is True  # stale from the start: it is dropped when on top
    assert heap.push(20, 2) is False
    assert heap.earliest() == 20 and len(heap) == 2
    assert heap.pop_due(25) == [(20, 2)]
    assert heap.earliest() == 30
    assert heap.needs_rebuild(0) is False
    heap.rebuild([(5, 9)])
    assert len(heap) == 1 and heap.pop_due(5) == [(5, 9)]
