"""Operations surface: sd_notify, the systemd watchdog, health and metrics over HTTP.

``SdNotifier`` speaks the sd_notify datagram protocol itself (no libsystemd).
``Watchdog`` pings systemd only while the daemon says it is healthy and the event
loop is responsive. ``HealthServer`` serves ``/healthz`` (JSON) and ``/metrics``
(Prometheus text). ``assess_health`` and ``status_line`` are pure functions.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import msgspec
from aiohttp import web

from lasersell_bot.logs import get_logger
from lasersell_bot.metrics import Metrics

DEFAULT_LISTEN = ("127.0.0.1", 9464)
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DISABLED_LISTEN = frozenset({"off", "none", "disabled"})



def _log() -> Any:
    """The component logger, looked up per call so ``configure_logging`` applies."""
    return get_logger("ops")

HealthStatus = Literal["ok", "degraded", "down"]


# --------------------------------------------------------------------------- sd_notify


def notify_address(value: str) -> str | bytes | None:
    """The socket address for a ``NOTIFY_SOCKET`` value, or None if unusable.

    ``@name`` is Linux's abstract namespace (a leading NUL byte on the wire).
    """
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


class SdNotifier:
    """Sends sd_notify messages; every method is a no-op when not run by systemd."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._address = notify_address(self._env.get("NOTIFY_SOCKET", ""))
        self._sock: socket.socket | None = None
        self._failure_logged = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> bool:
        """Send ``fields`` as one datagram; True if it was written. Never raises."""
        if self._address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            self._log_failure(exc)
            return False
        return True

    def _log_failure(self, exc: OSError) -> None:
        if not self._failure_logged:
            self._failure_logged = True
            _log().warning("sd_notify_failed", error=f"{type(exc).__name__}: {exc}")

    def ready(self) -> None:
        self.send("READY=1")

    def status(self, text: str) -> None:
        self.send("STATUS=" + " ".join(text.split()))

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def reloading(self) -> None:
        """Tell systemd a reload started; call ``ready()`` when it is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of ``WATCHDOG_USEC``), None if not enabled for us."""
        pid = self._env.get("WATCHDOG_PID", "")
        if pid and pid != str(os.getpid()):
            return None
        try:
            usec = int(self._env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        return usec / 2_000_000 if usec > 0 else None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# --------------------------------------------------------------------------- watchdog


class Watchdog:
    """Pings the systemd watchdog while the daemon is healthy and its loop responsive.

    A probe sleeps ``probe_interval`` seconds over and over; how late each wake-up
    is, is the loop lag. If the largest lag since the last ping decision is above
    ``lag_threshold_ms``, or ``is_healthy()`` is false or raises, the ping is
    withheld so systemd restarts a daemon that is stuck. Without a systemd
    watchdog (Docker, a terminal) the task still measures lag for ``/healthz`` and
    calls ``is_healthy`` every ``check_interval`` seconds, so the daemon's
    health-change hooks run there too.
    """

    def __init__(
        self,
        notifier: SdNotifier,
        *,
        interval: float | None = None,
        probe_interval: float | None = None,
        lag_threshold_ms: float = 1000.0,
        check_interval: float = 15.0,
    ) -> None:
        self._notifier = notifier
        self._interval = interval if interval is not None else notifier.watchdog_interval()
        self._check_interval = self._interval or check_interval
        self._probe_interval = probe_interval or min(0.5, self._check_interval / 4)
        self._threshold_ms = lag_threshold_ms
        self._lag_ms = 0.0
        self._window_max_ms = 0.0
        self._withholding = False
        self.pings_sent = 0
        self.pings_withheld = 0

    @property
    def interval(self) -> float | None:
        return self._interval

    def loop_lag_ms(self) -> float:
        """The schedule-to-run delay of the latest probe, in milliseconds."""
        return self._lag_ms

    async def run(self, is_healthy: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        next_check = loop.time()
        while True:
            due = loop.time() + self._probe_interval
            await asyncio.sleep(self._probe_interval)
            self._record_lag(max(0.0, loop.time() - due) * 1000)
            if loop.time() >= next_check:
                self._decide(is_healthy)
                next_check = loop.time() + self._check_interval

    def _record_lag(self, lag_ms: float) -> None:
        self._lag_ms = lag_ms
        self._window_max_ms = max(self._window_max_ms, lag_ms)

    def _decide(self, is_healthy: Callable[[], bool]) -> None:
        reason = self._unhealthy_reason(is_healthy)
        self._window_max_ms = 0.0
        if self._interval is None:
            return
        if reason is None:
            self._notifier.watchdog()
            self.pings_sent += 1
            if self._withholding:
                _log().info("watchdog_ping_resumed")
            self._withholding = False
            return
        self.pings_withheld += 1
        if not self._withholding:
            _log().warning("watchdog_ping_withheld", reason=reason)
        self._withholding = True

    def _unhealthy_reason(self, is_healthy: Callable[[], bool]) -> str | None:
        try:
            healthy = is_healthy()
        except Exception as exc:
            return f"health check raised {type(exc).__name__}: {exc}"
        if self._window_max_ms > self._threshold_ms:
            return f"event loop lag {self._window_max_ms:.0f}ms > {self._threshold_ms:.0f}ms"
        return None if healthy else "daemon reports unhealthy"


# --------------------------------------------------------------------------- health


class HealthReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``/healthz`` reports; ``ok`` decides 200 versus 503."""

    ok: bool
    status: HealthStatus
    reasons: list[str] = []
    connected: bool = False
    configured: bool = False
    loop_lag_ms: float = 0.0
    journal_healthy: bool = True
    last_signal_age_s: float | None = None
    unknown_outcomes: int = 0
    rpc_providers: dict[str, str] = {}
    rpc_preferred: str | None = None


def assess_health(
    *,
    connected: bool,
    configured: bool,
    loop_lag_ms: float,
    journal_healthy: bool,
    last_signal_age_s: float | None,
    lag_threshold_ms: float = 1000.0,
    unknown_outcomes: int = 0,
    rpc_providers: Mapping[str, str] | None = None,
    rpc_preferred: str | None = None,
) -> HealthReport:
    """Pure rule: no stream session is down; a half-ready session, journal
    errors or a lagging loop is degraded. Signal silence is reported, not judged."""
    reasons: list[str] = []
    if not connected:
        reasons.append("stream disconnected")
    elif not configured:
        reasons.append("stream session not configured")
    if not journal_healthy:
        reasons.append("journal writes failing")
    if loop_lag_ms > lag_threshold_ms:
        reasons.append(f"event loop lag {loop_lag_ms:.0f}ms")
    if unknown_outcomes:
        reasons.append(f"{unknown_outcomes} sale outcome(s) unknown past the confirm timeout")
    providers = dict(rpc_providers or {})
    reasons += [f"rpc provider {name} down" for name, state in providers.items()
                if state != "up"]
    status: HealthStatus = "down" if not connected else ("degraded" if reasons else "ok")
    return HealthReport(
        ok=not reasons,
        status=status,
        reasons=reasons,
        connected=connected,
        configured=configured,
        loop_lag_ms=round(loop_lag_ms, 3),
        journal_healthy=journal_healthy,
        last_signal_age_s=last_signal_age_s,
        unknown_outcomes=unknown_outcomes,
        rpc_providers=providers,
        rpc_preferred=rpc_preferred,
    )


def health_body(report: HealthReport) -> dict[str, Any]:
    """The JSON object served for ``report``: its fields plus a one-line ``reason``."""
    body = msgspec.structs.asdict(report)
    if not report.ok:
        body["reason"] = "; ".join(report.reasons) or report.status
    return body


class ListenAddressError(ValueError):
    """``http.listen`` is not ``HOST:PORT``."""


def parse_listen(value: str) -> tuple[str, int] | None:
    """``"127.0.0.1:9464"``, ``"[::1]:9464"``, ``":9464"`` (loopback) or ``""``
    (127.0.0.1:9464) to ``(host, port)``; ``"off"`` to None (no HTTP server)."""
    text = value.strip()
    if not text:
        return DEFAULT_LISTEN
    if text.lower() in DISABLED_LISTEN:
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ListenAddressError(_listen_message(value, "expected HOST:PORT"))
    return _parse_host(host, value), int(port_text)


def _parse_host(host: str, value: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise ListenAddressError(_listen_message(value, "bad IPv6 address")) from None
    if ":" in host:
        raise ListenAddressError(_listen_message(value, "put IPv6 addresses in brackets"))
    if any(ch.isspace() or ch in "/[]" for ch in host):
        raise ListenAddressError(_listen_message(value, "bad host"))
    return host or DEFAULT_LISTEN[0]


def _listen_message(value: str, problem: str) -> str:
    return (
        f"http.listen: {problem}, got {value!r} "
        '(examples: "127.0.0.1:9464", "[::1]:9464", "off")'
    )


class HealthServer:
    """``GET /healthz`` and ``GET /metrics`` on ``http.listen`` (loopback by default)."""

    def __init__(
        self, listen: str, health: Callable[[], HealthReport], metrics: Metrics,
        routes: Callable[[web.Application], None] | None = None,
    ) -> None:
        self.address = parse_listen(listen)
        self._health = health
        self._metrics = metrics
        self._routes = routes
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._handle_health)
        app.router.add_get("/metrics", self._handle_metrics)
        if self._routes is not None:
            self._routes(app)
        return app

    async def start(self) -> None:
        if self.address is None or self._runner is not None:
            return
        # Open requests (an events stream) get this long at shutdown, not aiohttp's 60 s.
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        host, port = self.address
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(exc.errno, f"http.listen {host}:{port}: {exc.strerror}") from exc
        self._runner = runner
        self.port = _bound_port(runner, port)
        _log().info("http_listening", host=host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle_health(self, _request: web.Request) -> web.Response:
        try:
            report = self._health()
        except Exception as exc:
            report = HealthReport(
                ok=False, status="down", reasons=[f"health check raised {type(exc).__name__}"]
            )
        return web.Response(
            body=msgspec.json.encode(health_body(report)),
            status=200 if report.ok else 503,
            content_type="application/json",
        )

    async def _handle_metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.render().encode(),
            headers={"Content-Type": PROMETHEUS_CONTENT_TYPE},
        )


def _bound_port(runner: web.AppRunner, fallback: int) -> int:
    for address in runner.addresses:
        return int(address[1])
    return fallback


# --------------------------------------------------------------------------- STATUS=


def status_line(
    *, positions: int, last_signal_age_s: float | None, reconnects: int
) -> str:
    """One line for ``systemctl status``: ``positions=3 last_signal=12s ago reconnects=2``."""
    return (
        f"positions={positions} last_signal={_age_text(last_signal_age_s)} "
        f"reconnects={reconnects}"
    )


def _age_text(age_s: float | None) -> str:
    if age_s is None:
        return "never"
    seconds = max(0, int(age_s))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"
