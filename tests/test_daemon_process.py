"""The daemon as systemd runs it: a real subprocess against the in-process simulator.

A fake systemd (a datagram socket named by ``NOTIFY_SOCKET``) collects READY,
STATUS, WATCHDOG, RELOADING and STOPPING. The tests read the daemon's JSON log
lines, its /healthz and /metrics, what the simulated stream received, the LiteSVM
chain and the journal file, and send the process real signals.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import signal
import socket
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tomli_w
from solders.keypair import Keypair

from lasersell_bot import protocol
from lasersell_bot.config import load_config
from lasersell_bot.daemon import reload_plan
from lasersell_bot.journal import JournalReader, TradeRow
from lasersell_bot.sim.stream_server import SimStreamServer
from lasersell_bot.sim.world import LAMPORTS_PER_SOL, SimWorld
from tests.test_ops import Receiver, _bind, assert_prometheus_text

REPO = Path(__file__).resolve().parents[1]
TOKENS = 1_000_000_000
ENTRY = LAMPORTS_PER_SOL // 2
EXIT_BAD_INPUT = 2
EXIT_NOW = 130
_PRIORITY_PREFIX = re.compile(r"^<[0-7]>")
_OWN_ENV_PREFIXES = ("LASERSELL_", "NOTIFY_SOCKET", "WATCHDOG_", "CREDENTIALS_DIRECTORY",
                     "STATE_DIRECTORY")


# --------------------------------------------------------------------------- the process


def parse_log_line(line: str) -> dict[str, Any] | None:
    """One stdout line as JSON, without its ``<N>`` syslog priority; None if not JSON."""
    try:
        value = json.loads(_PRIORITY_PREFIX.sub("", line, count=1))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class DaemonProcess:
    """``python -m lasersell_bot ...`` with its stdout and stderr collected line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [asyncio.create_task(_collect(proc.stdout, self.stdout)),
                         asyncio.create_task(_collect(proc.stderr, self.stderr))]

    @classmethod
    async def start(cls, args: list[str], env: Mapping[str, str]) -> DaemonProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=REPO, env=dict(env),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    def events(self, name: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        parsed = (parse_log_line(line) for line in list(self.stdout))
        return [e for e in parsed if e is not None and (name is None or e.get("event") == name)
                and all(e.get(k) == v for k, v in fields.items())]

    async def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll ``predicate``; fail at once (with the output) if the daemon exits first."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.returncode is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode} while waiting for "
                                     f"{what}\n{self.output_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.output_tail()}")
            await asyncio.sleep(0.02)

    async def wait_event(self, name: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        await self.wait(f"log event {name} {fields}", lambda: bool(self.events(name, **fields)),
                        timeout)
        return self.events(name, **fields)[0]

    def output_tail(self, lines: int = 25) -> str:
        return "\n".join(["--- stdout", *self.stdout[-lines:], "--- stderr",
                          *self.stderr[-lines:]])

    def send_signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"daemon still running after {timeout}s\n"
                                 f"{self.output_tail()}") from None
        await asyncio.wait_for(asyncio.gather(*self._readers), 5)
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


async def _collect(stream: asyncio.StreamReader, lines: list[str]) -> None:
    async for raw in stream:
        lines.append(raw.decode(errors="replace").rstrip("\n"))


def child_env(notify_socket: str | None, **extra: str) -> dict[str, str]:
    """The test's environment without our own variables, plus systemd's and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    if notify_socket is not None:
        env.update(NOTIFY_SOCKET=notify_socket, WATCHDOG_USEC="1000000")
    env.update(extra)
    return env


def run_args(config: Path) -> list[str]:
    return ["-m", "lasersell_bot", "run", "--config", str(config)]


# --------------------------------------------------------------------------- files


def write_private(path: Path, data: bytes, mode: int = 0o600) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, mode)  # the umask may have narrowed it
    return path


def write_keypair(path: Path, keypair: Keypair, mode: int = 0o600) -> Path:
    return write_private(path, json.dumps(list(bytes(keypair))).encode(), mode)


def base_config(tmp: Path, world: SimWorld, key_path: Path) -> dict[str, Any]:
    return {
        "stream": {"url": world.ws_url, "api_key": "process-test-key", "api_url": world.api_url,
                   "reconcile_sec": 0.5, "ping_interval_sec": 1.0},
        "rpc": {"url": world.rpc_url},
        "wallets": [{"keypair_path": str(key_path)}],
        "strategy": {"target_profit_pct": 30.0, "stop_loss_pct": 20.0},
        "send": {"rebroadcast_interval_ms": 300, "confirm_poll_ms": 50},
        "journal": {"path": str(tmp / "journal.sqlite3")},
        "log": {"level": "info", "format": "json"},
        "http": {"listen": "127.0.0.1:0"},
        "daemon": {"shutdown_grace_sec": 10.0},
    }


def write_config(path: Path, config: Mapping[str, Any], **sections: Mapping[str, Any]) -> Path:
    data = copy.deepcopy(dict(config))
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    write_private(path, tomli_w.dumps(data).encode())
    return path


def edit_config(path: Path, section: str, **values: Any) -> None:
    data = tomllib.loads(path.read_text())
    data[section].update(values)
    path.write_text(tomli_w.dumps(data))


# --------------------------------------------------------------------------- systemd


def notify_fields(systemd: Receiver, since: float = 0.0) -> list[str]:
    """Every ``KEY=VALUE`` the daemon sent after monotonic time ``since``, in order."""
    return [field for at, text in list(systemd.received) if at >= since
            for field in text.split("\n")]


def count(systemd: Receiver, field: str, since: float = 0.0) -> int:
    return notify_fields(systemd, since).count(field)


def sent_in_order(systemd: Receiver, first: str, then: str, since: float) -> bool:
    fields = notify_fields(systemd, since)
    return first in fields and then in fields[fields.index(first) + 1:]


# --------------------------------------------------------------------------- the set-up


class Setup:
    """A started ``SimWorld``, a funded wallet, a config file and a fake systemd."""

    def __init__(self, tmp: Path, world: SimWorld, systemd: Receiver, socket_path: str) -> None:
        self.tmp, self.world, self.systemd = tmp, world, systemd
        self.socket_path = socket_path
        self.keypair = world.new_wallet(sol=10)
        self.key_path = write_keypair(tmp / "wallet.json", self.keypair)
        self.config_data = base_config(tmp, world, self.key_path)
        self.config = write_config(tmp / "bot.toml", self.config_data)
        self.processes: list[DaemonProcess] = []

    def configure(self, **sections: Mapping[str, Any]) -> Path:
        return write_config(self.config, self.config_data, **sections)

    async def spawn(self, args: list[str] | None = None, **env: str) -> DaemonProcess:
        process = await DaemonProcess.start(args or run_args(self.config),
                                            child_env(self.socket_path, **env))
        self.processes.append(process)
        return process

    async def start_ready(self, **env: str) -> DaemonProcess:
        """Spawn the daemon and wait for READY=1 on the notify socket."""
        daemon = await self.spawn(**env)
        await daemon.wait("READY=1", lambda: count(self.systemd, "READY=1") >= 1, 15)
        return daemon

    @property
    def wallet(self) -> Any:
        return self.keypair.pubkey()

    async def open_position(self, daemon: DaemonProcess) -> int:
        opened = await self.world.open_position(self.wallet, TOKENS, ENTRY)
        await daemon.wait_event("position_opened", position_id=opened.position_id)
        return opened.position_id

    async def sold(self, daemon: DaemonProcess, position_id: int, timeout: float = 10.0) -> None:
        await daemon.wait(f"position {position_id} sold on chain",
                          lambda: not self.world.is_tracked(position_id), timeout)

    def received(self, kind: type[Any]) -> list[Any]:
        return [r for r in self.world.stream.received if isinstance(r.message, kind)]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    world = SimWorld(slot_ms=20)
    await world.start()
    socket_path = str(tmp_path / "notify.sock")
    systemd = Receiver(_bind(socket_path), socket_path)
    harness = Setup(tmp_path, world, systemd, socket_path)
    try:
        yield harness
    finally:
        for process in harness.processes:
            await process.kill()
        systemd.close()
        await world.stop()


async def http_get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(5)) as r:
        return r.status, await r.text()


async def http_port(daemon: DaemonProcess) -> int:
    return int((await daemon.wait_event("http_listening"))["port"])


def journal_rows(setup: Setup) -> list[TradeRow]:
    return JournalReader(setup.tmp / "journal.sqlite3").recent_trades(20)


# --------------------------------------------------------------------------- the acceptance test


async def test_systemd_lifecycle_reload_health_and_journal(setup: Setup) -> None:
    """READY, STATUS, WATCHDOG; health and metrics; an exit lands; SIGHUP changes the
    strategy on the same session; SIGTERM exits 0 and the journal has the exit."""
    daemon = await setup.start_ready()
    # READY=1 reaches systemd just before the "ready" line reaches the log: wait for both.
    await daemon.wait("configure_sent and ready in the log", lambda: {
        "configure_sent", "ready"} <= {e.get("event") for e in daemon.events()})
    names = [e.get("event") for e in daemon.events()]
    assert names.index("configure_sent") < names.index("ready")  # READY only once configured
    await daemon.wait("the sim to see a configured session",
                      lambda: bool(setup.world.stream.configured_session_ids()))
    await daemon.wait("STATUS= and three WATCHDOG=1", lambda: count(
        setup.systemd, "WATCHDOG=1") >= 3 and any(
        f.startswith("STATUS=positions=") for f in notify_fields(setup.systemd)), 8)

    port = await http_port(daemon)
    status, body = await http_get(port, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, text = await http_get(port, "/metrics")
    assert status == 200
    assert_prometheus_text(text)
    assert re.search(r"^lasersell_bot_stream_connected 1$", text, re.MULTILINE)

    start_sol = setup.world.chain.balance(setup.wallet)
    pid = await setup.open_position(daemon)
    for pct in (10, 31):
        await setup.world.set_profit_pct(pid, pct)
    await setup.sold(daemon, pid)
    assert setup.world.chain.balance(setup.wallet) > start_sol
    await daemon.wait_event("tx_confirmed", position_id=pid, state="landed")

    first_session = setup.received(protocol.Configure)[0].session_id
    edit_config(setup.config, "strategy", stop_loss_pct=12.5)
    mark = time.monotonic()
    daemon.send_signal(signal.SIGHUP)
    await daemon.wait("RELOADING=1 then READY=1", lambda: sent_in_order(
        setup.systemd, "RELOADING=1", "READY=1", mark))
    await daemon.wait("update_strategy at the sim", lambda: bool(
        setup.received(protocol.UpdateStrategy)))
    update = setup.received(protocol.UpdateStrategy)[0]
    assert update.message.strategy.stop_loss_pct == 12.5
    assert update.session_id == first_session  # applied live, not by reconnecting
    assert [r.session_id for r in setup.received(protocol.Configure)] == [first_session]

    mark = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(10) == 0
    assert "STOPPING=1" in notify_fields(setup.systemd, mark)
    assert daemon.events("shutdown_complete")
    assert all(parse_log_line(line) is not None for line in daemon.stdout)
    assert daemon.stderr == []
    assert [(r.reason, r.state) for r in journal_rows(setup)] == [("target_profit", "landed")]


# --------------------------------------------------------------------------- reload and signals


async def test_invalid_reload_is_rejected_and_old_strategy_kept(setup: Setup) -> None:
    daemon = await setup.start_ready()
    edit_config(setup.config, "strategy", target_profit_pct=50.0, stop_loss_pct=-1.0)
    mark = time.monotonic()
    daemon.send_signal(signal.SIGHUP)
    rejected = await daemon.wait_event("reload_rejected")
    assert rejected["error"].startswith("strategy.stop_loss_pct:")
    await daemon.wait("READY=1 after the rejected reload", lambda: sent_in_order(
        setup.systemd, "RELOADING=1", "READY=1", mark))
    pid = await setup.open_position(daemon)  # still running, still trading
    await setup.world.set_profit_pct(pid, 35)  # the old target (30) fires, not 50
    await setup.sold(daemon, pid)
    assert setup.received(protocol.UpdateStrategy) == []
    daemon.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(10) == 0


async def test_reload_names_the_settings_that_need_a_restart(setup: Setup) -> None:
    daemon = await setup.start_ready()
    port = await http_port(daemon)
    edit_config(setup.config, "strategy", target_profit_pct=40.0)
    edit_config(setup.config, "send", rebroadcast_interval_ms=900, max_retries=5)
    edit_config(setup.config, "http", listen="127.0.0.1:1")
    daemon.send_signal(signal.SIGHUP)
    warning = await daemon.wait_event("reload_needs_restart")
    assert warning["keys"] == ["http", "send.rebroadcast_interval_ms"]
    await daemon.wait("update_strategy", lambda: bool(setup.received(protocol.UpdateStrategy)))
    assert setup.received(protocol.UpdateStrategy)[0].message.strategy.target_profit_pct == 40
    assert (await http_get(port, "/healthz"))[0] == 200  # still on the port it started with
    daemon.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(10) == 0


async def test_reload_plan_keeps_start_up_values_of_restart_only_keys(setup: Setup) -> None:
    old = load_config(setup.config)
    edit_config(setup.config, "send", dry_run=True, confirm_poll_ms=999)
    edit_config(setup.config, "rpc", url="http://127.0.0.1:9")
    edit_config(setup.config, "strategy", stop_loss_pct=5.0)
    effective, pending = reload_plan(old, load_config(setup.config))
    assert pending == ["rpc", "send.confirm_poll_ms"]
    assert (effective.send.dry_run, effective.send.confirm_poll_ms) == (True, 50)
    assert effective.rpc == old.rpc and effective.strategy.stop_loss_pct == 5.0


async def test_reloaded_watch_wallet_is_mirrored(setup: Setup) -> None:
    """The executor checks mirror buys against the reloaded watch list, not the first one."""
    setup.configure(mirror={"enabled": True})
    daemon = await setup.start_ready()
    watched = str(Keypair().pubkey())
    data = tomllib.loads(setup.config.read_text())
    data["watch_wallets"] = [{"pubkey": watched, "auto_buy_sol": 0.1}]
    setup.config.write_text(tomli_w.dumps(data))
    daemon.send_signal(signal.SIGHUP)
    await daemon.wait("update_watch_wallets", lambda: bool(
        setup.received(protocol.UpdateWatchWallets)))
    mint = setup.world.new_token(lamports_per_token=0.5)
    await setup.world.mirror_buy(watched, mint, setup.wallet, LAMPORTS_PER_SOL // 10)
    account = setup.world.chain.token_account(setup.wallet, mint)
    await daemon.wait("the mirror buy to land", lambda: bool(
        daemon.events("guard_refused")) or setup.world.chain.token_balance(account) > 0)
    assert daemon.events("guard_refused") == []


async def test_sigint_stops_like_sigterm(setup: Setup) -> None:
    daemon = await setup.start_ready()
    mark = time.monotonic()
    daemon.send_signal(signal.SIGINT)
    assert await daemon.wait_exit(10) == 0
    assert "STOPPING=1" in notify_fields(setup.systemd, mark)
    assert daemon.events("stop_signal", signal="SIGINT")
    assert daemon.events("shutdown_complete")
    assert daemon.stderr == []


async def _exit_in_flight(setup: Setup, daemon: DaemonProcess, slow_polls: int) -> int:
    """Open a position and trigger its exit while every status poll hangs (the RPC is slow)."""
    setup.world.rpc.faults.add("getSignatureStatuses", "timeout", count=slow_polls, delay=3.0)
    pid = await setup.open_position(daemon)
    await setup.world.set_profit_pct(pid, 35)
    await daemon.wait_event("tx_submitted", position_id=pid)
    return pid


async def test_sigterm_lets_an_exit_in_flight_finish(setup: Setup) -> None:
    setup.configure(send={"request_timeout_ms": 500})
    daemon = await setup.start_ready()
    pid = await _exit_in_flight(setup, daemon, slow_polls=3)
    signalled = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert (await daemon.wait_event("shutdown_started"))["in_flight"] == 1
    assert await daemon.wait_exit(10) == 0
    assert time.monotonic() - signalled >= 1.0  # it waited for the three slow polls
    assert daemon.events("tx_confirmed", position_id=pid, state="landed")
    assert not daemon.events("shutdown_grace_expired")
    assert [r.state for r in journal_rows(setup)] == ["landed"]


async def test_second_sigterm_during_slow_shutdown_exits_at_once(setup: Setup) -> None:
    setup.configure(send={"request_timeout_ms": 500}, daemon={"shutdown_grace_sec": 30.0})
    daemon = await setup.start_ready()
    pid = await _exit_in_flight(setup, daemon, slow_polls=1000)
    daemon.send_signal(signal.SIGTERM)
    await daemon.wait_event("shutdown_started")
    signalled = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(3) == EXIT_NOW
    assert time.monotonic() - signalled < 2.5
    assert daemon.events("second_stop_signal_exiting_now", signal="SIGTERM")
    # The signal and its signed attempt were flushed first: the next start re-checks it.
    assert [(r.position_id, r.state) for r in journal_rows(setup)] == [(pid, "pending")]
    pending = JournalReader(setup.tmp / "journal.sqlite3").pending_attempts()
    assert [(p.position_id, bool(p.signed_tx_b64)) for p in pending] == [(pid, True)]


async def test_watchdog_keeps_pinging_while_the_stream_reconnects(setup: Setup) -> None:
    daemon = await setup.start_ready()
    port = await http_port(daemon)
    first = setup.received(protocol.Configure)[0].session_id
    await setup.world.stream.drop_connections()
    await daemon.wait("a configure on a new session", lambda: any(
        r.session_id != first for r in setup.received(protocol.Configure)))

    await setup.world.stream.stop()  # a longer outage: nobody answers for 1.5 s
    outage = time.monotonic()
    await daemon.wait_event("stream_connect_failed")
    status, body = await http_get(port, "/healthz")
    assert status == 503 and json.loads(body)["status"] == "down"
    await asyncio.sleep(1.5)
    assert count(setup.systemd, "WATCHDOG=1", since=outage) >= 2
    await setup.world.stream.start()
    await daemon.wait("a session after the outage", lambda: len(daemon.events("hello_ok")) >= 3,
                      5)
    assert any(r.at > outage for r in setup.received(protocol.Configure))
    status, _ = await http_get(port, "/healthz")
    assert status == 200
    assert count(setup.systemd, "READY=1") == 1
    daemon.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(10) == 0


# --------------------------------------------------------------------------- bad input at start


@pytest.mark.parametrize(("section", "values", "expected"), [
    ("strategy", {"stop_loss_pct": 150.0}, "strategy.stop_loss_pct: must be <= 100 (got 150)"),
    ("send", {"mode": "carrier_pigeon"}, "send.mode: must be one of"),
    ("log", {"levle": "debug"}, 'log.levle: unknown key (did you mean "level"?)'),
])
async def test_bad_config_at_start_exits_2_with_one_line(
        setup: Setup, section: str, values: dict[str, Any], expected: str) -> None:
    setup.configure(**{section: values})
    daemon = await setup.spawn()
    assert await daemon.wait_exit(10) == EXIT_BAD_INPUT
    assert len(daemon.stderr) == 1, daemon.stderr
    assert daemon.stderr[0].startswith("lasersell-bot: ") and expected in daemon.stderr[0]
    assert daemon.stdout == []
    assert notify_fields(setup.systemd) == []


async def test_world_readable_keypair_exits_2_with_chmod_hint(setup: Setup) -> None:
    os.chmod(setup.key_path, 0o644)
    daemon = await setup.spawn()
    assert await daemon.wait_exit(10) == EXIT_BAD_INPUT
    assert daemon.stderr == [f"lasersell-bot: keypair file {setup.key_path} has permissions "
                             f"0644; run: chmod 600 {setup.key_path}"]
    assert bytes(setup.keypair).hex() not in "\n".join(daemon.stdout + daemon.stderr)


async def test_http_listen_in_use_fails_with_one_line(setup: Setup) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        setup.configure(http={"listen": listen})
        daemon = await setup.spawn()
        assert await daemon.wait_exit(10) == 1  # not 2: systemd may retry once it is free
    [failure] = daemon.events("startup_failed")
    assert failure["error"].startswith(f"http.listen {listen}:")
    assert daemon.stderr == []
    assert "READY=1" not in notify_fields(setup.systemd)


def test_parse_log_line_strips_the_priority_prefix() -> None:
    assert parse_log_line('<4>{"event": "x"}') == {"event": "x"}
    assert parse_log_line('{"event": "y"}') == {"event": "y"}
    assert parse_log_line("Traceback (most recent call last):") is None



@pytest.mark.parametrize(("api", "expected_code", "symptom"), [
    ("refusing", EXIT_BAD_INPUT, "registration refused"),  # the API said no: fix the config
    ("unreachable", 1, "registration failed"),  # transient: systemd restarts the daemon
])
async def test_failed_registration_exit_codes_match_the_readme(
        setup: Setup, api: str, expected_code: int, symptom: str) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}"
    async with SimStreamServer(api_keys={"not-the-configured-key"}) as refusing:
        api_url = refusing.api_url if api == "refusing" else unreachable
        setup.configure(stream={"api_url": api_url})
        daemon = await setup.spawn()
        assert await daemon.wait_exit(20) == expected_code
    [line] = daemon.stderr
    assert line.startswith(f"lasersell-bot: wallet {setup.wallet}: {symptom}: ")
    assert not daemon.events("shutdown_complete")  # the error line is the last word
    assert "READY=1" not in notify_fields(setup.systemd)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    [row] = [r for r in readme.splitlines() if r.startswith(f"| `wallet W: {symptom}")]
    assert f"(exit {expected_code})" in row
