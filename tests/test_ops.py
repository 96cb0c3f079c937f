"""sd_notify over real datagram sockets, the watchdog gate, /healthz and /metrics."""

from __future__ import annotations

import asyncio
import io
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from lasersell_bot.logs import configure_logging
from lasersell_bot.metrics import Metrics
from lasersell_bot.ops import (
    PROMETHEUS_CONTENT_TYPE,
    HealthReport,
    HealthServer,
    ListenAddressError,
    SdNotifier,
    Watchdog,
    assess_health,
    parse_listen,
    status_line,
)


class Receiver:
    """A fake systemd: a datagram socket that timestamps what it receives."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock, self.env_value = sock, env_value
        self.received: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.sock.settimeout(0.02)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode()))

    def messages(self, settle: float = 0.1) -> list[str]:
        time.sleep(settle)
        return [text for _, text in self.received]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def _bind(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    return sock


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Receiver]:
    if request.param == "path":
        path = str(tmp_path / "notify.sock")
        rx = Receiver(_bind(path), path)
    else:
        name = f"lasersell-test-{uuid.uuid4().hex}"
        rx = Receiver(_bind(b"\0" + name.encode()), "@" + name)
    yield rx
    rx.close()


def test_notifier_sends_lifecycle_in_order(receiver: Receiver) -> None:
    notifier = SdNotifier({"NOTIFY_SOCKET": receiver.env_value})
    assert notifier.enabled
    notifier.ready()
    notifier.status("positions=3\nlast_signal=12s ago")
    notifier.watchdog()
    notifier.reloading()
    notifier.stopping()
    notifier.close()
    got = receiver.messages()
    assert got[:3] == ["READY=1", "STATUS=positions=3 last_signal=12s ago", "WATCHDOG=1"]
    assert re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+", got[3])
    usec = int(got[3].split("=")[-1])
    assert abs(usec / 1e6 - time.clock_gettime(time.CLOCK_MONOTONIC)) < 5
    assert got[4:] == ["STOPPING=1"]


def test_notifier_is_noop_without_socket() -> None:
    notifier = SdNotifier({})
    assert not notifier.enabled
    notifier.ready()
    assert notifier.send("READY=1") is False
    assert notifier.watchdog_interval() is None


def test_notifier_failure_never_raises_and_logs_once(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging(fmt="json", syslog_prefix=False, stream=out)
    notifier = SdNotifier({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    for _ in range(3):
        notifier.ready()
        notifier.watchdog()
    assert out.getvalue().count("sd_notify_failed") == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "garbage"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert SdNotifier(env).watchdog_interval() == expected


class RecordingNotifier(SdNotifier):
    """Timestamps each WATCHDOG=1 on the sending side (the loop's own thread)."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.pinged_at: list[float] = []

    def watchdog(self) -> None:
        self.pinged_at.append(time.monotonic())
        super().watchdog()


def assert_all_pings_arrived(notifier: RecordingNotifier, receiver: Receiver) -> None:
    assert receiver.messages().count("WATCHDOG=1") == len(notifier.pinged_at)


async def test_watchdog_pings_only_while_healthy(receiver: Receiver) -> None:
    notifier = RecordingNotifier(
        {"NOTIFY_SOCKET": receiver.env_value, "WATCHDOG_USEC": "100000"}
    )
    watchdog = Watchdog(notifier, probe_interval=0.01)
    assert watchdog.interval == pytest.approx(0.05)
    healthy = [True]
    task = asyncio.create_task(watchdog.run(lambda: healthy[0]))
    await asyncio.sleep(0.3)
    healthy[0] = False
    pings_while_healthy = len(notifier.pinged_at)
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert pings_while_healthy >= 3
    assert len(notifier.pinged_at) == pings_while_healthy == watchdog.pings_sent
    assert watchdog.pings_withheld >= 3
    assert_all_pings_arrived(notifier, receiver)


async def test_watchdog_withholds_ping_when_loop_blocked(receiver: Receiver) -> None:
    notifier = RecordingNotifier({"NOTIFY_SOCKET": receiver.env_value})
    watchdog = Watchdog(notifier, interval=0.05, probe_interval=0.01, lag_threshold_ms=200)
    task = asyncio.create_task(watchdog.run(lambda: True))
    await asyncio.sleep(0.2)
    block: list[float] = []

    def blocker() -> None:
        block.append(time.monotonic())
        time.sleep(0.6)
        block.append(time.monotonic())

    asyncio.get_running_loop().call_soon(blocker)
    await asyncio.sleep(0.01)
    await asyncio.sleep(0.4)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    stamps, (start, end) = notifier.pinged_at, block
    assert [t for t in stamps if t < start], "pinged before the block"
    assert not [t for t in stamps if start <= t <= end + 0.04], "pinged during/just after block"
    assert [t for t in stamps if t > end + 0.04], "pings resumed after the block"
    assert watchdog.pings_withheld >= 1
    assert watchdog.loop_lag_ms() < 200
    assert_all_pings_arrived(notifier, receiver)


async def test_watchdog_without_systemd_measures_lag_and_checks_health() -> None:
    watchdog = Watchdog(SdNotifier({}), probe_interval=0.01, check_interval=0.03)
    assert watchdog.interval is None
    calls: list[float] = []

    def healthy() -> bool:
        calls.append(time.monotonic())
        return True

    task = asyncio.create_task(watchdog.run(healthy))
    await asyncio.sleep(0.2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert (watchdog.pings_sent, watchdog.pings_withheld) == (0, 0)
    assert 3 <= len(calls) <= 9
    assert 0 <= watchdog.loop_lag_ms() < 1000


async def test_watchdog_treats_raising_health_check_as_unhealthy(receiver: Receiver) -> None:
    notifier = SdNotifier({"NOTIFY_SOCKET": receiver.env_value})
    watchdog = Watchdog(notifier, interval=0.02, probe_interval=0.01)

    def broken() -> bool:
        raise RuntimeError("boom")

    task = asyncio.create_task(watchdog.run(broken))
    await asyncio.sleep(0.15)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert "WATCHDOG=1" not in receiver.messages(0.05)
    assert watchdog.pings_withheld >= 2


# --------------------------------------------------------------------------- health


def test_assess_health_rules() -> None:
    ok = assess_health(
        connected=True, configured=True, loop_lag_ms=3, journal_healthy=True, last_signal_age_s=None
    )
    assert (ok.ok, ok.status, ok.reasons) == (True, "ok", [])
    down = assess_health(
        connected=False, configured=False, loop_lag_ms=0, journal_healthy=True, last_signal_age_s=5
    )
    assert (down.ok, down.status, down.reasons) == (False, "down", ["stream disconnected"])
    degraded = assess_health(
        connected=True, configured=True, loop_lag_ms=1500, journal_healthy=False,
        last_signal_age_s=5,
    )
    assert degraded.status == "degraded"
    assert degraded.reasons == ["journal writes failing", "event loop lag 1500ms"]


SAMPLE = re.compile(
    r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? -?(\d+(\.\d+)?(e[-+]?\d+)?|\+Inf|NaN)'
)


def assert_prometheus_text(text: str) -> None:
    assert text.endswith("\n")
    for line in text.rstrip("\n").split("\n"):
        if line.startswith("#"):
            assert re.fullmatch(r"# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+", line), line
        else:
            assert SAMPLE.fullmatch(line), line


def test_prometheus_checker_rejects_garbage() -> None:
    with pytest.raises(AssertionError):
        assert_prometheus_text("lasersell_bot_x{bad label} 1\n")


async def test_health_server_endpoints() -> None:
    metrics = Metrics()
    metrics.signals.inc("exit")
    metrics.submissions.inc('rp"c', "ok")
    metrics.signal_to_submit_ms.observe(0.7)
    report = [HealthReport(ok=True, status="ok", connected=True, configured=True)]
    server = HealthServer("127.0.0.1:0", lambda: report[0], metrics)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/healthz") as resp:
                assert resp.status == 200
                assert (await resp.json())["status"] == "ok"
            report[0] = assess_health(
                connected=True, configured=False, loop_lag_ms=0, journal_healthy=True,
                last_signal_age_s=None,
            )
            async with http.get(base + "/healthz") as resp:
                body = await resp.json()
                assert resp.status == 503
                assert body["status"] == "degraded"
                assert body["reason"] == "stream session not configured"
            async with http.get(base + "/metrics") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == PROMETHEUS_CONTENT_TYPE
                text = await resp.text()
    finally:
        await server.stop()
    assert 'lasersell_bot_signals_total{kind="exit"} 1' in text
    assert_prometheus_text(text)


async def test_health_server_reports_down_when_health_raises() -> None:
    def broken() -> HealthReport:
        raise RuntimeError("boom")

    server = HealthServer("127.0.0.1:0", broken, Metrics())
    await server.start()
    try:
        status, body = await _get_json(f"http://127.0.0.1:{server.port}/healthz")
    finally:
        await server.stop()
    assert (status, body["status"]) == (503, "down")


async def _get_json(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.json()


def _ok() -> HealthReport:
    return HealthReport(ok=True, status="ok")


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_health_server_ipv6() -> None:
    server = HealthServer("[::1]:0", _ok, Metrics())
    await server.start()
    try:
        status, _ = await _get_json(f"http://[::1]:{server.port}/healthz")
    finally:
        await server.stop()
    assert status == 200


async def test_health_server_port_in_use_names_field() -> None:
    first = HealthServer("127.0.0.1:0", _ok, Metrics())
    await first.start()
    try:
        second = HealthServer(f"127.0.0.1:{first.port}", _ok, Metrics())
        with pytest.raises(OSError, match=r"http\.listen 127\.0\.0\.1:"):
            await second.start()
    finally:
        await first.stop()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ("127.0.0.1", 9464)),
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("[::1]:9464", ("::1", 9464)),
        (":9464", ("127.0.0.1", 9464)),
        ("localhost:8080", ("localhost", 8080)),
        ("off", None),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int] | None) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize(
    "value", ["9464", "127.0.0.1", "127.0.0.1:port", "127.0.0.1:70000", "::1:9464", "[zz]:1"]
)
def test_parse_listen_errors_name_the_field(value: str) -> None:
    with pytest.raises(ListenAddressError, match=r"^http\.listen: .*" + re.escape(repr(value))):
        parse_listen(value)


async def test_disabled_server_does_not_listen() -> None:
    server = HealthServer("off", _ok, Metrics())
    await server.start()
    assert server.port is None
    await server.stop()


@pytest.mark.parametrize(
    ("age", "text"),
    [(None, "never"), (12.7, "12s ago"), (600, "10m ago"), (4 * 3600, "4h ago")],
)
def test_status_line(age: float | None, text: str) -> None:
    line = status_line(positions=3, last_signal_age_s=age, reconnects=2)
    assert line == f"positions=3 last_signal={text} reconnects=2"
