"""Stream faults against the real daemon: dropped and closed connections, half-open
sockets, withheld ``hello_ok``, ``error`` frames, server restarts and forced flapping.

Each test checks the reconnect timing against the backoff (100 ms doubling to 2 s,
+-10 %, reset after ``hello_ok``), that the CURRENT configure is re-sent, that the
daemon's positions equal the server's after the reconcile, and that an exit still
lands afterwards (once: ``SendAudit``).
"""

from __future__ import annotations

import asyncio
import os
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from lasersell_bot import protocol
from lasersell_bot.sim.scenario import ExitDecision
from tests.faultkit import (
    BACKOFF_CAP_S,
    BACKOFF_FIRST_S,
    JITTER,
    FaultStreamServer,
    Running,
    SendAudit,
    lost_signals,
    max_connects_per_second_bound,
    report_figures,
    restart_stream,
    start_daemon,
    until,
)

RECONCILE_S = 0.5
# Scheduling slack on top of a backoff delay (close handshake, task wake-ups, CI noise).
SLACK_S = 0.35


def edit_strategy(run: Running, **values: Any) -> None:
    """Change the strategy in the config file and reload it (what SIGHUP does)."""
    data = tomllib.loads(run.config_path.read_text())
    data["strategy"].update(values)
    run.config_path.write_text(tomli_w.dumps(data))
    run.daemon.reload()


async def reconnected(run: Running, configures_before: int, timeout: float = 10.0) -> None:
    await until("a new configure and hello_ok", lambda: len(run.configures()) > configures_before
                and run.daemon.stream.state.connected, timeout)


async def consistent(run: Running) -> None:
    """After the reconcile window the daemon tracks exactly the server's positions."""
    await until("daemon positions == server positions",
                lambda: run.tracked_ids() == run.server_ids(), timeout=RECONCILE_S + 3)


async def exit_lands_once(run: Running, audit: SendAudit, position_id: int, mint: str) -> None:
    """Trigger the stop-loss; one landed sale, no lost signal; figures reported."""
    await run.world.set_profit_pct(position_id, -25)
    await run.sold(position_id)
    assert len(audit.landed_sells(mint)) == 1
    assert audit.violations == [] and audit.double_sales() == {}
    report_stream_figures(run, audit)


def report_stream_figures(run: Running, audit: SendAudit, faults: int | None = None) -> None:
    """Faults: by default the reconnects the daemon went through; lost: exit signals
    the server sent that the daemon did not journal."""
    run.daemon.journal.flush(5)
    lost = lost_signals(run.world, run.daemon.cfg.journal.path)
    assert lost == 0
    report_figures(os.environ.get("PYTEST_CURRENT_TEST", "stream").split(" ")[0],
                   faults=run.daemon.stream.state.reconnects if faults is None else faults,
                   lost=lost,
                   duplicates=len(audit.double_sales()))


SLOW = pytest.mark.slow


@pytest.mark.parametrize("code", [None, 1000, pytest.param(1001, marks=SLOW),
                                  pytest.param(1008, marks=SLOW), 1011, 4000,
                                  pytest.param(4999, marks=SLOW)],
                         ids=lambda c: "abrupt-1006" if c is None else str(c))
async def test_close_code_reconnects_within_backoff_with_current_configure(
        tmp_path: Path, code: int | None) -> None:
    async with start_daemon(tmp_path) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        kept, kept_mint = await run.open()
        gone, _ = await run.open()
        edit_strategy(run, stop_loss_pct=12.5)
        await until("update_strategy reached the server", lambda: any(
            isinstance(r.message, protocol.UpdateStrategy) for r in run.world.stream.received))
        run.world.stream.forget_position(gone)
        connects = len(run.server.connects)
        configures = len(run.configures())
        dropped_at = time.monotonic()
        assert await run.world.stream.drop_connections(code) == 1
        await reconnected(run, configures)

        gap = run.server.connects[connects] - dropped_at
        assert BACKOFF_FIRST_S * (1 - JITTER) <= gap <= BACKOFF_FIRST_S * (1 + JITTER) + SLACK_S
        assert len(run.server.connects) == connects + 1  # one reconnect, no storm
        assert run.configures()[-1].strategy.stop_loss_pct == 12.5  # current, not initial 20
        await consistent(run)
        assert run.tracked_ids() == {kept}
        await exit_lands_once(run, audit, kept, kept_mint)  # -25 % < new stop-loss 12.5
        run.daemon.journal.flush(5)
        assert lost_signals(run.world, run.daemon.cfg.journal.path) == 0


@pytest.mark.parametrize("cut", [pytest.param(1, marks=SLOW), 40, pytest.param(-10, marks=SLOW)],
                         ids=["header", "payload", "tail"])
async def test_connection_dropped_mid_frame_is_never_acted_on(tmp_path: Path, cut: int) -> None:
    async with start_daemon(tmp_path) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        pid, mint = await run.open()
        position = run.world.stream.position(pid)
        session_id = run.world.stream.session_ids()[0]
        tx = run.world.stream._factory.build_exit(position, position.tokens, 1000, "rpc", 1000)
        exit_frame = protocol.encode(
            position.exit_message(session_id, ExitDecision("stop_loss"), tx, 0))
        configures = len(run.configures())
        frame_len = len(exit_frame) + 4
        assert await run.server.abort_mid_frame(exit_frame, cut % frame_len) == 1
        await reconnected(run, configures)
        await consistent(run)
        assert run.daemon.metrics.signals.get("exit") == 0  # the half signal was not read
        assert audit.sends == 0
        await exit_lands_once(run, audit, pid, mint)


async def test_half_open_connection_is_detected_within_two_ping_intervals(
        tmp_path: Path) -> None:
    ping = 0.3
    async with start_daemon(tmp_path, stream={"ping_interval_sec": ping,
                                              "connect_timeout_sec": 1.0}) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        pid, mint = await run.open()
        await until("a pong measured the round trip", lambda: run.daemon.stream.state.rtt_ms
                    is not None)
        run.world.stream.set_half_open(True)
        silenced = time.monotonic()
        await until("the daemon declares the socket dead",
                    lambda: not run.daemon.stream.state.connected, timeout=5)
        detected = time.monotonic() - silenced
        # No frame for more than 2 intervals, checked once per interval.
        assert ping <= detected <= 3 * ping + SLACK_S, detected
        status = run.daemon.health()
        assert status.status == "down" and not status.ok

        await asyncio.sleep(1.5)  # the server stays mute: no hello_ok, backoff grows
        half_open_connects = run.server.connects_between(silenced, time.monotonic())
        assert 1 <= half_open_connects <= 3, half_open_connects
        configures = len(run.configures())
        run.world.stream.set_half_open(False)
        healed = time.monotonic()
        await reconnected(run, configures - 1)
        assert time.monotonic() - healed <= BACKOFF_CAP_S * (1 + JITTER) + 1.0 + SLACK_S
        await consistent(run)
        await exit_lands_once(run, audit, pid, mint)


async def test_withheld_hello_ok_is_abandoned_and_backs_off(tmp_path: Path) -> None:
    """The server answers pings but never says hello_ok: the daemon must not sit on
    that socket (it would never be configured), and must not retry at full speed."""
    async with start_daemon(tmp_path, stream={"ping_interval_sec": 0.2,
                                              "connect_timeout_sec": 0.5}) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        pid, mint = await run.open()
        run.server.withhold_hello = True
        started = time.monotonic()
        await run.world.stream.drop_connections(1011)
        await asyncio.sleep(2.5)
        attempts = run.server.connects_between(started, time.monotonic())
        # Each attempt: the 0.5 s hello timeout, then 0.1, 0.2, 0.4 s ... delays.
        assert 2 <= attempts <= 4, attempts
        assert not run.daemon.stream.state.connected
        assert run.daemon.health().status == "down"
        run.server.withhold_hello = False
        configures = len(run.configures())
        await reconnected(run, configures, timeout=BACKOFF_CAP_S * (1 + JITTER) + 2)
        await consistent(run)
        await exit_lands_once(run, audit, pid, mint)


async def test_session_limit_error_in_place_of_hello_backs_off(tmp_path: Path) -> None:
    async with start_daemon(tmp_path) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        pid, mint = await run.open()
        run.server.refuse_with = ("too_many_sessions", "max_sessions_per_api_key 1 reached")
        started = time.monotonic()
        await run.world.stream.drop_connections(1000)
        await asyncio.sleep(2.0)
        refused = run.server.connects_between(started, time.monotonic())
        # Delays 0.1, 0.2, 0.4, 0.8 (sum 1.5 s): 4 or 5 attempts, not a storm of 20.
        assert 3 <= refused <= 5, refused
        assert not run.daemon.stream.state.connected
        run.server.refuse_with = None
        configures = len(run.configures())
        await reconnected(run, configures, timeout=BACKOFF_CAP_S * (1 + JITTER) + 2)
        await consistent(run)
        await exit_lands_once(run, audit, pid, mint)


async def test_wallet_not_registered_is_not_reported_healthy(tmp_path: Path) -> None:
    """The server forgot the wallet's registration: it refuses the configure. The
    daemon must not report a healthy session it gets no signals on; it registers the
    wallet again and ends up configured, with its positions."""
    async with start_daemon(tmp_path, stream={"connect_timeout_sec": 1.0}) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        pid, mint = await run.open()
        run.world.stream._registered.discard(str(run.wallet))
        configures = len(run.configures())
        await run.world.stream.drop_connections(1001)
        await until("the refused configure", lambda: len(run.configures()) > configures)
        await until("the daemon stops claiming a configured session",
                    lambda: not run.daemon.health().ok, timeout=3)
        await until("the daemon re-registers and is configured again",
                    lambda: str(run.wallet) in run.world.stream.configured_wallets(),
                    timeout=BACKOFF_CAP_S * 2 + 3)
        await until("health is ok again", lambda: run.daemon.health().ok, timeout=3)
        await consistent(run)
        assert run.tracked_ids() == {pid}
        await exit_lands_once(run, audit, pid, mint)


async def test_persistent_configure_refusal_backs_off(tmp_path: Path) -> None:
    """hello_ok comes first, then the configure is refused, every time: the hello must
    not reset the backoff, or the daemon would reconnect ten times a second."""
    async with start_daemon(tmp_path) as run:
        run.world.stream.is_registered = lambda _wallet: False  # type: ignore[method-assign]
        started = time.monotonic()
        await run.world.stream.drop_connections(1000)
        await asyncio.sleep(2.0)
        attempts = run.server.connects_between(started, time.monotonic())
        assert 3 <= attempts <= 5, attempts  # delays 0.1, 0.2, 0.4, 0.8 s
        assert not run.daemon.health().ok
        assert run.daemon.stream.state.last_error.startswith(
            "server refused the session: wallet_not_registered")
        report_stream_figures(run, SendAudit(run.world.chain), faults=attempts)


async def test_invalid_strategy_error_is_not_reported_healthy(tmp_path: Path) -> None:
    """An ``invalid_strategy`` error means the server refused our strategy: the
    daemon must say so on /healthz rather than claim a working session."""
    async with start_daemon(tmp_path) as run:
        pid, _ = await run.open()
        assert run.daemon.health().ok
        await run.world.stream.emit_raw(protocol.encode(
            protocol.ErrorMsg(code="invalid_strategy", message="stop_loss_pct out of range")))
        await until("health reports the refused strategy",
                    lambda: not run.daemon.health().ok, timeout=3)
        assert run.tracked_ids() == {pid}  # positions are kept, not dropped
        report_stream_figures(run, SendAudit(run.world.chain), faults=1)


@pytest.mark.parametrize("keep_state", [True, False], ids=["durable-server", "amnesiac-server"])
async def test_server_restart_with_new_session_ids(tmp_path: Path, keep_state: bool) -> None:
    async with start_daemon(tmp_path) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        pid, mint = await run.open()
        old_session = run.daemon.stream.state.session_id
        edit_strategy(run, stop_loss_pct=15.0)
        await until("update_strategy reached the server", lambda: any(
            isinstance(r.message, protocol.UpdateStrategy) for r in run.world.stream.received))
        restarted = time.monotonic()
        new = await restart_stream(run.world, keep_state=keep_state, first_session_id=1000)
        await until("configured on the new server", lambda: bool(new.configured_session_ids())
                    and run.daemon.stream.state.connected, timeout=5)
        assert new.connects[0] - restarted <= BACKOFF_FIRST_S * (1 + JITTER) + SLACK_S
        assert run.daemon.stream.state.session_id == new.configured_session_ids()[0] >= 1000
        assert run.daemon.stream.state.session_id != old_session
        configure = next(r.message for r in new.received
                         if isinstance(r.message, protocol.Configure))
        assert configure.strategy.stop_loss_pct == 15.0
        await consistent(run)
        if keep_state:
            assert run.tracked_ids() == {pid}
            await exit_lands_once(run, audit, pid, mint)
        else:
            assert run.tracked_ids() == set()  # the server forgot it: no ghost position
            assert audit.sends == 0
            report_stream_figures(run, audit)


async def _flap(run: Running, drops: int) -> list[float]:
    """Drop the connection ``drops`` times, each once the daemon is configured again;
    returns each reconnect gap (drop to the server accepting the next socket)."""
    codes = [None, 1000, 1001, 1011, 4000, 1006]
    gaps: list[float] = []
    for i in range(drops):
        if i == drops // 2:
            edit_strategy(run, stop_loss_pct=11.0)
        configures = len(run.configures())
        connects = len(run.server.connects)
        code = codes[i % len(codes)]
        dropped_at = time.monotonic()
        await run.world.stream.drop_connections(None if code == 1006 else code)
        await reconnected(run, configures, timeout=5)
        gaps.append(run.server.connects[connects] - dropped_at)
    return gaps


async def _flap_and_check(tmp_path: Path, drops: int) -> None:
    async with start_daemon(tmp_path) as run:
        audit = SendAudit(run.world.chain).watch(run.world.rpc)
        pid, mint = await run.open()
        started = time.monotonic()
        gaps = await _flap(run, drops)
        assert len(gaps) == drops
        assert min(gaps) >= BACKOFF_FIRST_S * (1 - JITTER), min(gaps)
        assert max(gaps) <= BACKOFF_FIRST_S * (1 + JITTER) + SLACK_S + 0.3, max(gaps)
        busiest = run.server.max_connects_per_window(1.0)
        assert busiest <= max_connects_per_second_bound(1.0), busiest
        assert len(run.server.connects) == drops + 1  # one connect per drop, no extras
        later = [c.strategy.stop_loss_pct for c in run.configures()[drops // 2 + 1:]]
        assert later and set(later) == {11.0}  # every configure after the reload is current
        await consistent(run)
        assert run.tracked_ids() == {pid}
        assert run.daemon.stream.state.reconnects == drops
        await exit_lands_once(run, audit, pid, mint)
        run.daemon.journal.flush(5)
        assert lost_signals(run.world, run.daemon.cfg.journal.path) == 0
        assert time.monotonic() - started < drops * 0.5 + 10


async def test_forced_disconnects_in_a_row_do_not_flap(tmp_path: Path) -> None:
    await _flap_and_check(tmp_path, 20)


@pytest.mark.slow
async def test_200_forced_disconnects_in_a_row_do_not_flap(tmp_path: Path) -> None:
    await _flap_and_check(tmp_path, 200)


async def test_blackholed_handshake_times_out_and_retries(tmp_path: Path) -> None:
    """The stream port accepts TCP but never answers the websocket upgrade."""
    async with start_daemon(tmp_path, stream={"connect_timeout_sec": 0.5}) as run:
        pid, _ = await run.open()
        accepted: list[float] = []
        writers: list[asyncio.StreamWriter] = []

        async def swallow(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(time.monotonic())
            writers.append(writer)

        server = run.world.stream
        assert isinstance(server, FaultStreamServer)
        port = server.port
        await server.stop()
        hole = await asyncio.start_server(swallow, "127.0.0.1", port, reuse_address=True)
        try:
            await asyncio.sleep(2.0)
        finally:
            hole.close()
            for writer in writers:
                writer.close()
            await hole.wait_closed()
        # 0.5 s timeout + 0.1, 0.2 s delays: handshakes at about 0, 0.6 and 1.3 s.
        assert len(accepted) >= 3, accepted
        new = await restart_stream(run.world, keep_state=True, first_session_id=500)
        await until("configured again", lambda: bool(new.configured_session_ids())
                    and run.daemon.stream.state.connected,
                    timeout=BACKOFF_CAP_S * (1 + JITTER) + 2)
        await consistent(run)
        assert run.tracked_ids() == {pid}
        report_stream_figures(run, SendAudit(run.world.chain), faults=len(accepted) + 1)
