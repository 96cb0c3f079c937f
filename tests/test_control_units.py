"""The control surface's pure rules and small parts: token file and request checks,
percentiles, position status, PnL history, the event bus, operator actions over a
fake daemon, Telegram command parsing and confirmations, the exposure rule."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from lasersell_bot import protocol, session
from lasersell_bot.config import StrategyConfig
from lasersell_bot.control import auth
from lasersell_bot.control.actions import Actions, ControlError, parse_strategy
from lasersell_bot.control.api import api_allowed
from lasersell_bot.control.events import EventBus, sse_frame
from lasersell_bot.control.history import Trade, histogram_quantile, percentiles
from lasersell_bot.control.telegram import CONFIRM_SEC, Confirmations, parse_command
from lasersell_bot.control.views import PnlHistory, position_status

# --------------------------------------------------------------------------- token


def test_token_file_is_created_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    token = auth.load_or_create_token(path, env={})
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert len(token) >= 40 and auth.load_or_create_token(path, env={}) == token
    assert auth.read_token(path, env={}) == token


def test_token_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    path.write_text("a" * 32 + "\n")
    os.chmod(path, 0o644)
    with pytest.raises(auth.TokenError, match="readable by other users"):
        auth.load_or_create_token(path, env={})


def test_short_token_is_refused_and_credential_wins(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    path.write_text("short\n")
    os.chmod(path, 0o600)
    with pytest.raises(auth.TokenError, match="at least 16"):
        auth.load_or_create_token(path, env={})
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / auth.CREDENTIAL_NAME).write_text("c" * 20 + "\n")
    env = {"CREDENTIALS_DIRECTORY": str(credentials)}
    assert auth.load_or_create_token(path, env=env) == "c" * 20
    assert auth.read_token(path, env={**env, "LASERSELL_API_TOKEN": "e" * 20}) == "e" * 20


def test_missing_token_file_names_the_key_for_the_client(tmp_path: Path) -> None:
    with pytest.raises(auth.TokenError, match=r"http\.api_token_file"):
        auth.read_token(tmp_path / "none", env={})


@pytest.mark.parametrize(("authorization", "cookie", "method", "header", "verdict"), [
    ("Bearer " + "t" * 20, None, "POST", None, "ok"),
    ("bearer " + "t" * 20, None, "GET", None, "ok"),
    ("Bearer " + "x" * 20, None, "GET", None, "wrong"),
    (None, None, "GET", None, "missing"),
    ("Basic abc", None, "GET", None, "wrong"),
    (None, "t" * 20, "GET", None, "ok"),
    (None, "t" * 20, "POST", None, "needs_header"),
    (None, "t" * 20, "POST", "1", "ok"),
    (None, "x" * 20, "GET", None, "wrong"),
])
def test_request_check(authorization: str | None, cookie: str | None, method: str,
                       header: str | None, verdict: str) -> None:
    assert auth.check_request("t" * 20, authorization=authorization, cookie=cookie,
                              method=method, request_header=header) == verdict


@pytest.mark.parametrize(("host", "expose", "allowed"), [
    ("127.0.0.1", False, True), ("::1", False, True), ("localhost", False, True),
    ("0.0.0.0", False, False), ("10.0.0.5", False, False), ("0.0.0.0", True, True),
])
def test_api_on_non_loopback_needs_expose(host: str, expose: bool, allowed: bool) -> None:
    assert api_allowed(host, expose) is allowed


# --------------------------------------------------------------------------- figures


def test_percentiles_and_histogram_quantile() -> None:
    assert percentiles([]) == {"p50": None, "p90": None, "p99": None}
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"p50": 50.0, "p90": 90.0, "p99": 99.0}
    buckets = (1.0, 2.0, 5.0)
    assert histogram_quantile(0.5, buckets, [0, 0, 0, 0]) is None
    assert histogram_quantile(0.5, buckets, [0, 10, 0, 0]) == 1.5
    assert histogram_quantile(0.99, buckets, [0, 0, 0, 4]) == 5.0  # overflow: top bound


def _trade(state: str, received_at_ms: int = 2_000) -> Trade:
    return Trade(signal_id=1, received_at_ms=received_at_ms, kind="exit", position_id=7,
                 wallet="w", mint="m", reason="manual", level_index=None, state=state,
                 signature=None, attempts=1, slippage_bps=None, dry_run=False,
                 guard_reason=None, pnl_lamports=None, first_submit_ms=None,
                 time_to_land_ms=None)


def test_position_status() -> None:
    def status(busy: bool, requested: bool, trade: Trade | None) -> str:
        return position_status(busy=busy, sell_requested=requested, latest_exit=trade,
                               started_ms=1_000)

    assert status(False, False, None) == "open"
    assert status(False, True, None) == "selling"
    assert status(True, False, _trade("pending")) == "selling"
    assert status(True, False, _trade("pending", received_at_ms=500)) == "recovering"
    assert status(True, False, _trade("unknown")) == "outcome_unknown"
    assert status(False, False, _trade("landed")) == "open"


def test_pnl_history_keeps_one_point_per_step_and_is_bounded() -> None:
    history = PnlHistory(points=3, step_ms=1000)
    for t, profit in ((0, 1), (500, 2), (1000, 3), (2000, 4), (3000, 5)):
        history.add(7, t, profit)
    assert history.get(7) == [(1000, 3), (2000, 4), (3000, 5)]
    history.add(7, 3100, 6)
    assert history.get(7)[-1] == (3000, 6)
    history.forget(7)
    assert history.get(7) == []


# --------------------------------------------------------------------------- events


async def test_event_bus_cuts_off_a_slow_subscriber() -> None:
    bus = EventBus(capacity=2)
    fast, slow = bus.subscribe(), bus.subscribe()
    received: list[int] = []

    async def drain() -> None:
        async for event_id, _, _ in fast:
            received.append(event_id)

    reader = asyncio.create_task(drain())
    for n in range(5):
        bus.publish("pnl", {"n": n})
        await asyncio.sleep(0)
    # The slow one gets what it had room for, then its stream ends (it re-reads state).
    assert slow.overflowed and [item async for item in slow] == [(2, "pnl", {"n": 1})]
    bus.close_all()
    await asyncio.wait_for(reader, 1)
    assert received == [1, 2, 3, 4, 5]
    assert sse_frame(3, "pnl", {"n": 1}) == b'id: 3\nevent: pnl\ndata: {"n":1}\n\n'


# --------------------------------------------------------------------------- actions


def _opened(position_id: int) -> protocol.PositionOpened:
    return protocol.PositionOpened(position_id=position_id, wallet_pubkey="W", mint="M",
                                   token_account=f"T{position_id}", tokens=100,
                                   entry_quote_units=1000)


@dataclass
class FakeDaemon:
    session: session.Session
    sent: list[protocol.ClientMessage] = field(default_factory=list)
    busy: set[int] = field(default_factory=set)
    ready: bool = True
    paused: bool = False
    dispatched: list[session.Action] = field(default_factory=list)

    def send_to_stream(self, message: protocol.ClientMessage) -> None:
        self.sent.append(message)

    def stream_ready(self) -> bool:
        return self.ready

    def exit_busy(self, position_id: int) -> bool:
        return position_id in self.busy

    def set_mirror_paused(self, paused: bool) -> None:
        self.paused = paused

    def mirror_paused(self) -> bool:
        return self.paused

    def dispatch(self, actions: list[session.Action]) -> None:
        self.dispatched += actions

    def config_strategy(self) -> StrategyConfig:
        return StrategyConfig(target_profit_pct=30, stop_loss_pct=20)

    def max_slippage_bps(self) -> int:
        return 5000


def _actions() -> tuple[Actions, FakeDaemon, list[tuple[str, Any]], list[float]]:
    sess = session.Session(session.DesiredConfig(
        wallet_pubkeys=("W",), strategy=protocol.Strategy(target_profit_pct=30,
                                                          stop_loss_pct=20)))
    sess.on_connection_opened(0)
    sess.on_message(protocol.HelloOk(session_id=1, server_time_ms=0), 0)
    sess.on_message(_opened(7), 0)
    daemon = FakeDaemon(sess)
    published: list[tuple[str, Any]] = []
    now = [100.0]
    actions = Actions(daemon, lambda name, data: published.append((name, data)),
                      clock=lambda: now[0])
    return actions, daemon, published, now


def _refusal(call: Any) -> ControlError:
    with pytest.raises(ControlError) as caught:
        call()
    return caught.value


def test_sell_is_a_request_exit_signal_and_refused_while_one_may_land() -> None:
    actions, daemon, published, now = _actions()
    assert _refusal(lambda: actions.sell(8)).status == 404
    error = _refusal(lambda: actions.sell(7, slippage_bps=9000))
    assert (error.status, error.field) == (400, "slippage_bps")
    daemon.ready = False
    assert _refusal(lambda: actions.sell(7)).code == "stream_down"
    daemon.ready = True
    actions.sell(7, slippage_bps=1200)
    assert daemon.sent == [protocol.RequestExitSignal(position_id=7, slippage_bps=1200)]
    assert _refusal(lambda: actions.sell(7)).code == "sell_requested"
    actions.exit_seen(7)  # the signal came
    daemon.busy.add(7)
    assert _refusal(lambda: actions.sell(7)).code == "sell_in_flight"
    daemon.busy.clear()
    actions.sell(7)
    now[0] += 16  # no signal came back within the wait: another request may go
    actions.sell(7)
    assert len(daemon.sent) == 3 and published[0][0] == "action"


def test_close_pause_and_strategy() -> None:
    actions, daemon, _, _ = _actions()
    actions.close(7)
    assert daemon.sent == [protocol.ClosePosition(position_id=7)]
    actions.pause_mirror()
    assert daemon.paused
    actions.resume_mirror()
    assert not daemon.paused
    result = actions.set_strategy({"target_profit_pct": 50, "stop_loss_pct": 10})
    assert result["differs_from_config"] is True
    assert any(isinstance(a, session.Send) and isinstance(a.message, protocol.UpdateStrategy)
               for a in daemon.dispatched)
    assert actions.set_strategy({"target_profit_pct": 30, "stop_loss_pct": 20})[
        "differs_from_config"] is False


@pytest.mark.parametrize(("body", "field_name"), [
    ({"stop_loss_pct": -1}, "stop_loss_pct"),
    ({"target_profit_pct": "high"}, "target_profit_pct"),
    ({"stop_los_pct": 5}, "stop_los_pct"),
    ({}, "strategy"),
    ([1], "strategy"),
    ({"take_profit_levels": [{"profit_pct": 10, "sell_pct": 150}]},
     "take_profit_levels[0].sell_pct"),
])
def test_strategy_errors_name_the_field(body: Any, field_name: str) -> None:
    error = _refusal(lambda: parse_strategy(body))
    assert (error.status, error.field) == (400, field_name), error.message


# --------------------------------------------------------------------------- telegram


def test_parse_command() -> None:
    assert parse_command("/sell 12") == ("sell", ["12"])
    assert parse_command("/Status@my_bot") == ("status", [])
    assert parse_command("hello") is None
    assert parse_command("") is None


def test_confirmations_expire_and_are_used_once() -> None:
    now = [0.0]
    confirmations = Confirmations(clock=lambda: now[0])
    assert not confirmations.take(3)
    confirmations.ask(3)
    assert confirmations.take(3) and not confirmations.take(3)
    confirmations.ask(4)
    now[0] += CONFIRM_SEC + 1
    assert not confirmations.take(4)


async def test_subscription_survives_a_keepalive_timeout() -> None:
    """The events handler waits with a timeout (to send keepalives); a timed-out wait
    must not end the subscription."""
    bus = EventBus()
    subscription = bus.subscribe()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(subscription.next(), 0.01)
    bus.publish("position", {"id": 1})
    assert await asyncio.wait_for(subscription.next(), 1) == (1, "position", {"id": 1})
    bus.close_all()
    assert await subscription.next() is None and await subscription.next() is None


def test_a_watched_wallets_position_is_not_sold() -> None:
    actions, daemon, _, _ = _actions()
    watched = msgspec.structs.replace(_opened(9), watched=True)
    daemon.session.on_message(watched, 0)
    assert _refusal(lambda: actions.sell(9)).code == "watched_position"
    assert daemon.sent == []


def test_downsample_keeps_the_newest_and_bounds_the_count() -> None:
    from lasersell_bot.control.views import downsample

    points = [(t, t) for t in range(300)]
    picked = downsample(points, 60)
    assert len(picked) == 60 and picked[-1] == (299, 299)
    assert picked == sorted(picked)
    assert downsample(points[:10], 60) == points[:10]
    assert len(downsample(points[:61], 60)) <= 60 and downsample(points, 0) == []


def test_every_dashboard_file_is_package_data_and_served() -> None:
    """A wheel carries the dashboard (pyproject package-data), and every static file the
    page loads is one the server serves."""
    import fnmatch
    import re
    import tomllib

    from lasersell_bot.control.api import STATIC_FILES

    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["lasersell_bot.dashboard"]
    files = [p.name for p in (root / "lasersell_bot" / "dashboard").iterdir()
             if p.suffix != ".py" and p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files)
    page = (root / "lasersell_bot" / "dashboard" / "index.html").read_text()
    loaded = re.findall(r'(?:src|href)="/static/([^"]+)"', page)
    assert loaded and set(loaded) <= set(STATIC_FILES) and set(STATIC_FILES) <= set(files)
    assert "http://" not in page.replace('http://www.w3.org', '') and "https://" not in page


def test_cli_finds_the_units_token_when_the_configured_file_is_missing(tmp_path: Path) -> None:
    from lasersell_bot.control.client import token_file

    configured, unit = tmp_path / "lasersell-bot.api-token", tmp_path / "unit-token"
    assert token_file(configured, unit) == configured  # neither exists: name the configured
    unit.write_text("u" * 20)
    assert token_file(configured, unit) == unit
    configured.write_text("c" * 20)
    assert token_file(configured, unit) == configured
