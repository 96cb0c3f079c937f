"""Fault-injection harness shared by the stream, send and crash-recovery fault tests.

Everything runs on loopback against the simulator (``SimWorld``: LiteSVM chain,
JSON-RPC server, stream server):

- ``FaultStreamServer``: the sim stream server, plus a log of connection times
  (to check backoff and flapping), ``withhold_hello`` (answer pings, never send
  ``hello_ok``), ``refuse_with`` (an ``error`` frame, then close 1008, in place of
  ``hello_ok``) and ``abort_mid_frame`` (half a websocket frame, then a TCP abort).
- ``restart_stream``: stop the stream server and start a new one on the same port
  with other session ids, with or without the positions it tracked.
- ``SendAudit``: watches every ``sendTransaction`` the sim RPC servers receive and
  flags, at the moment it arrives, a sell under a new signature while an earlier
  sell of the same position may still land (no status yet, blockhash still valid).
  It also counts landed sells per position on the chain (double sales).
- ``start_daemon`` (in-process ``Daemon``) and ``DaemonProcess`` (``python -m
  lasersell_bot run`` as a subprocess, for ``kill -9``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import tomli_w
from aiohttp import web
from solders.hash import Hash
from solders.instruction import CompiledInstruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from lasersell_bot.config import load_config
from lasersell_bot.daemon import Daemon
from lasersell_bot.sim import rpc as sim_rpc
from lasersell_bot.sim.chain import MEMO_PROGRAM_ID, SimChain, SwapOrder, decode_transaction
from lasersell_bot.sim.router import MINT as ROUTER_MINT
from lasersell_bot.sim.router import ROUTER_PROGRAM_ID, RouterOrder
from lasersell_bot.sim.rpc import SimRpcServer
from lasersell_bot.sim.stream_server import SimStreamServer, ws_text_frame
from lasersell_bot.sim.world import LAMPORTS_PER_SOL, SimWorld
from lasersell_bot.wallet import Wallets

TOKENS = 1_000_000_000
ENTRY = LAMPORTS_PER_SOL // 2
API_KEY = "fault-test-key"
REPO = Path(__file__).resolve().parent.parent

# Reconnect backoff of the stream client (stream.py): first delay and cap, +-10 %.
BACKOFF_FIRST_S = 0.1
BACKOFF_CAP_S = 2.0
JITTER = 0.1


async def until(what: str, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` every 5 ms; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- stream server


class FaultStreamServer(SimStreamServer):
    """``SimStreamServer`` with connection timing and a few hostile behaviours."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connects: list[float] = []
        self.withhold_hello = False
        self.refuse_with: tuple[str, str] | None = None
        self._withheld: set[int] = set()

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        self.connects.append(time.monotonic())
        return await super()._ws_handler(request)

    async def _admit(self, session: Any) -> bool:
        if self.refuse_with is not None:
            await self._send_error(session, *self.refuse_with)
            await session.ws.close(code=1008, message=b"refused")
            return False
        if self.withhold_hello:
            self._sessions[session.session_id] = session
            self._withheld.add(session.session_id)
            return True
        return await super()._admit(session)

    async def _on_frame(self, session: Any, data: str) -> None:
        if session.session_id in self._withheld:
            message, _ = self._decode(data)
            if type(message).__name__ == "Ping":  # pongs only: alive, never ready
                await self._on_ping(session, message)
            return
        await super()._on_frame(session, data)

    async def abort_mid_frame(self, payload: bytes, cut: int) -> int:
        """Write the first ``cut`` bytes of a text frame to every session, then abort."""
        frame = ws_text_frame(payload)
        if not 0 < cut < len(frame):
            raise ValueError("cut must fall inside the frame")
        sessions = list(self._sessions.values())
        for session in sessions:
            if session.transport is not None:
                session.transport.write(frame[:cut])
                await asyncio.sleep(0.05)  # let the half frame reach the client
                session.transport.abort()
        return len(sessions)

    def connects_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.connects if start <= t < end)

    def max_connects_per_window(self, window: float = 1.0) -> int:
        """The most connections accepted within any ``window`` seconds."""
        times = sorted(self.connects)
        best = 0
        for i, start in enumerate(times):
            best = max(best, sum(1 for t in times[i:] if t < start + window))
        return best


def max_connects_per_second_bound(window: float = 1.0) -> int:
    """Connections in ``window`` s a correct client can make: one per shortest delay."""
    return int(window / (BACKOFF_FIRST_S * (1 - JITTER))) + 1


def fault_world(*, slot_ms: float = 20, resignal_after_s: float | None = None,
                stream_port: int = 0) -> SimWorld:
    """A ``SimWorld`` whose stream server is a ``FaultStreamServer``."""
    world = SimWorld(slot_ms=slot_ms)
    world.stream = FaultStreamServer(
        "127.0.0.1", stream_port, tx_factory=world.factory,
        require_registration=True, resignal_after_s=resignal_after_s)
    return world


async def restart_stream(world: SimWorld, *, keep_state: bool,
                         first_session_id: int) -> FaultStreamServer:
    """Stop the stream server; start a new one on the same port whose session ids
    start at ``first_session_id``. ``keep_state`` carries the tracked positions and
    registrations over (a restart of a server with durable state)."""
    old = world.stream
    assert isinstance(old, FaultStreamServer)
    port = old.port
    await old.stop()
    new = FaultStreamServer(
        "127.0.0.1", port, tx_factory=world.factory,
        require_registration=True, resignal_after_s=old._resignal_after_s)
    new._session_ids = itertools.count(first_session_id)
    if keep_state:
        new._positions = old._positions
        new._position_ids = old._position_ids
        new._registered = set(old._registered)
        for position in new._positions.values():
            position.pending = None
    await new.start()
    world.stream = new
    return new


# --------------------------------------------------------------------------- send audit


@dataclass
class _Sell:
    signature: str
    blockhash: Hash
    first_seen: float
    tokens: int


@dataclass
class SendAudit:
    """Checks, as each ``sendTransaction`` arrives, that a position never gets a sell
    under a new signature while an earlier one may still land; counts landed sells."""

    chain: SimChain
    sells: dict[tuple[str, str], list[_Sell]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    sends: int = 0
    faulted: int = 0

    def watch(self, *servers: SimRpcServer) -> SendAudit:
        for server in servers:
            server.received = _AuditedList(self)
        return self

    def on_send(self, received: sim_rpc.Received) -> None:
        self.sends += 1
        if received.fault is not None:
            self.faulted += 1
        parsed = _parse_sell(received.raw)
        if parsed is None:
            return
        key, sell = parsed
        history = self.sells.setdefault(key, [])
        if any(s.signature == sell.signature for s in history):
            return  # a re-broadcast of the same bytes: cannot sell twice
        for earlier in history:
            state = self.state(earlier)
            if state == "may_land":
                self.violations.append(
                    f"mint {key[1]}: new signature {sell.signature[:12]} sent while "
                    f"{earlier.signature[:12]} may still land")
        history.append(sell)

    def state(self, sell: _Sell) -> str:
        """landed | failed | expired | may_land, as the chain knows it now."""
        status = self.chain.signature_statuses([sell.signature])[0]
        if status is not None:
            return "landed" if status["err"] is None else "failed"
        return "may_land" if self.chain.is_blockhash_valid(sell.blockhash) else "expired"

    def landed_sells(self, mint: str) -> list[str]:
        """Signatures of sells of ``mint`` that settled on chain."""
        return [s.signature for (_, m), history in self.sells.items() if m == mint
                for s in history if self.chain.settlement(s.signature) is not None]

    def double_sales(self, expected: dict[str, int] | None = None) -> dict[str, int]:
        """Mints sold more often than expected (default once) -> landed sell count."""
        expected = expected or {}
        counts = {mint: len(self.landed_sells(mint)) for _, mint in self.sells}
        return {m: n for m, n in counts.items() if n > expected.get(m, 1)}


class _AuditedList(list):  # type: ignore[type-arg]
    def __init__(self, audit: SendAudit) -> None:
        super().__init__()
        self._audit = audit

    def append(self, item: Any) -> None:
        super().append(item)
        self._audit.on_send(item)


def _parse_sell(raw: str) -> tuple[tuple[str, str], _Sell] | None:
    try:
        tx = decode_transaction(base64.b64decode(raw))
    except (ValueError, TypeError):
        return None
    keys = tx.message.account_keys
    for ix in tx.message.instructions:
        sold = _sold(keys, ix)
        if sold is not None:
            mint, tokens = sold
            sell = _Sell(str(tx.signatures[0]), tx.message.recent_blockhash, time.monotonic(),
                         tokens)
            return (str(keys[0]), str(mint)), sell
    return None


def _sold(keys: list[Pubkey], ix: CompiledInstruction) -> tuple[Pubkey, int] | None:
    """(mint, tokens) if ``ix`` is a sell: the direct swap memo or a router sell."""
    program = keys[ix.program_id_index]
    with contextlib.suppress(ValueError, UnicodeDecodeError, IndexError):
        if program == MEMO_PROGRAM_ID:
            order = SwapOrder.parse(bytes(ix.data).decode())
            if order is not None and order.side == "sell":
                return order.mint, order.amount_in
        if program == ROUTER_PROGRAM_ID:
            routed = RouterOrder.decode(bytes(ix.data))
            if routed.side == "sell":
                return keys[ix.accounts[ROUTER_MINT]], routed.amount_in
    return None


# --------------------------------------------------------------------------- RPC faults


class FaultLog:
    """Faults injected into sim RPC servers, and how many of them fired."""

    def __init__(self) -> None:
        self._servers: dict[int, SimRpcServer] = {}
        self._added = 0
        self._withdrawn = 0

    def add(self, server: SimRpcServer, method: str, kind: sim_rpc.FaultKind, count: int = 1,
            **options: Any) -> None:
        server.faults.add(method, kind, count, **options)
        self._servers[id(server)] = server
        self._added += count

    def _left(self) -> int:
        return sum(fault.remaining for server in self._servers.values()
                   for fault in server.faults._queue)

    def fired(self) -> int:
        """Injected faults already consumed by requests."""
        return self._added - self._withdrawn - self._left()

    def clear(self) -> None:
        """Withdraw the faults that have not fired yet."""
        self._withdrawn += self._left()
        for server in self._servers.values():
            server.faults.clear()


@contextlib.asynccontextmanager
async def second_rpc(chain: SimChain) -> AsyncIterator[SimRpcServer]:
    """Another JSON-RPC server on the same chain (a Helius Sender stand-in); the
    first server's clock drives the chain."""
    server = SimRpcServer(chain, slot_ms=None)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# --------------------------------------------------------------------------- figures


def report_figures(test: str, *, faults: int, lost: int, duplicates: int,
                   **extra: Any) -> None:
    """Append one line to ``$LASERSELL_FAULT_REPORT`` (JSON lines), if set."""
    target = os.environ.get("LASERSELL_FAULT_REPORT")
    if not target:
        return
    line = {"test": test, "faults": faults, "lost": lost, "duplicates": duplicates, **extra}
    with open(target, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


# --------------------------------------------------------------------------- config


def write_keypair(path: Path, keypair: Keypair) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(list(bytes(keypair)), out)
    return path


def write_config(tmp: Path, world: SimWorld, keypair: Keypair, **sections: Any) -> Path:
    """A daemon config for ``world``: fast stream timings, fast landing cadence."""
    key_path = write_keypair(tmp / "wallet.json", keypair)
    config: dict[str, Any] = {
        "stream": {"url": world.ws_url, "api_key": API_KEY, "api_url": world.api_url,
                   "reconcile_sec": 0.5, "ping_interval_sec": 5.0},
        "rpc": {"url": world.rpc_url},
        "wallets": [{"keypair_path": str(key_path)}],
        "strategy": {"target_profit_pct": 30.0, "stop_loss_pct": 20.0},
        "send": {"rebroadcast_interval_ms": 300, "confirm_poll_ms": 50},
        "journal": {"path": str(tmp / "journal.sqlite3")},
        "log": {"level": "warning", "format": "json"},
        "http": {"listen": "off"},
    }
    for section, values in sections.items():
        if isinstance(values, list):  # an array of tables, e.g. watch_wallets
            config[section] = values
        else:
            config.setdefault(section, {}).update(values)
    path = tmp / "bot.toml"
    path.write_bytes(tomli_w.dumps(config).encode())
    return path


# --------------------------------------------------------------------------- in-process daemon


@dataclass
class Running:
    world: SimWorld
    daemon: Daemon
    keypair: Keypair
    config_path: Path
    task: asyncio.Task[int]

    @property
    def wallet(self) -> Pubkey:
        return self.keypair.pubkey()

    @property
    def server(self) -> FaultStreamServer:
        stream = self.world.stream
        assert isinstance(stream, FaultStreamServer)
        return stream

    async def open(self, tokens: int = TOKENS) -> tuple[int, str]:
        """Open a position on chain and on the server; returns (position id, mint)."""
        opened = await self.world.open_position(self.wallet, tokens, ENTRY)
        await until("the daemon tracks the new position",
                    lambda: self.daemon.session.position(opened.position_id) is not None)
        return opened.position_id, str(opened.mint)

    async def sold(self, position_id: int, timeout: float = 10.0) -> None:
        await until(f"position {position_id} sold and closed",
                    lambda: not self.world.is_tracked(position_id), timeout)

    def tracked_ids(self) -> set[int]:
        return {p.position_id for p in self.daemon.session.positions()}

    def server_ids(self) -> set[int]:
        return set(self.world.stream.positions_of(str(self.wallet)))

    def configures(self) -> list[Any]:
        from lasersell_bot.protocol import Configure
        return [r.message for r in self.world.stream.received
                if isinstance(r.message, Configure)]


@contextlib.asynccontextmanager
async def start_daemon(tmp: Path, world: SimWorld | None = None,
                       **sections: Any) -> AsyncIterator[Running]:
    """A started world (if not given) and an in-process daemon, both stopped after."""
    world = world or fault_world()
    own_world = world.rpc.url == ""
    if own_world:
        await world.start()
    keypair = world.new_wallet(sol=10)
    config_path = write_config(tmp, world, keypair, **sections)
    cfg = load_config(config_path)
    daemon = Daemon(cfg, Wallets.load(cfg.wallets), config_path=str(config_path))
    task = asyncio.create_task(daemon.run(install_signal_handlers=False))
    try:
        await until("the daemon is connected and configured",
                    lambda: (daemon.stream.state.connected and daemon.stream.state.configured)
                    or task.done())
        if task.done():
            task.result()
        yield Running(world, daemon, keypair, config_path, task)
    finally:
        daemon.request_stop()
        try:
            await asyncio.wait_for(task, 20)
        finally:
            if own_world:
                await world.stop()


def journal_exit_signals(path: str | Path) -> list[tuple[int | None, int | None, int | None]]:
    """(session_id, position_id, triggered_at_ms) of every journaled exit signal."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(conn.execute(
            "SELECT session_id, position_id, triggered_at_ms FROM signals WHERE kind = 'exit'"))
    finally:
        conn.close()


def lost_signals(world: SimWorld, journal_path: str | Path) -> int:
    """Exit signals the server sent that the daemon never journaled."""
    journaled = set(journal_exit_signals(journal_path))
    sent = {(m.session_id, m.position_id, m.triggered_at_ms) for m in world.stream.sent_exits}
    return len(sent - journaled)


async def get_health(port: int) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}/healthz") as response:
        return response.status, await response.json()


# --------------------------------------------------------------------------- subprocess daemon


class DaemonProcess:
    """``python -m lasersell_bot run --config PATH`` as a child process; its log lines
    (JSON, one per line) go to ``log_path``."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.kills = 0

    async def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "lasersell_bot", "run", "--config", str(self.config_path),
                stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=REPO, env=env)
        finally:
            log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill9(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
            self.kills += 1

    async def terminate(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout``); the exit code."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode

    def events(self, name: str) -> list[dict[str, Any]]:
        """Log records whose event is ``name``."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            text = line[line.find("{"):] if "{" in line else ""
            with contextlib.suppress(ValueError):
                record = json.loads(text)
                if record.get("event") == name:
                    found.append(record)
        return found


def total(values: Iterable[int]) -> int:
    return sum(values)


# --------------------------------------------------------------------------- journal (read-only)


def journal_rows(path: str | Path, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    """Rows of a read-only query on a journal file (also while a daemon writes it)."""
    if not Path(path).exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return list(conn.execute(sql, args))
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        conn.close()


def journal_attempts(path: str | Path) -> list[tuple[int, str | None, str, int | None]]:
    """(position_id, signature, state, attempt id) of every exit attempt."""
    return journal_rows(path, "SELECT s.position_id, a.signature, a.state, a.id FROM attempts a"
                              " JOIN signals s ON s.id = a.signal_id WHERE s.kind = 'exit'")


# --------------------------------------------------------------------------- crash rig

CRASH_MODES = ("race", "no_land", "blind_confirm", "hung_send")
STAGES = ("before_signal", "signalled", "sent", "landed_unconfirmed", "confirmed")


@dataclass
class Flow:
    """One position taken through an exit while the daemon is killed."""

    position_id: int
    mint: str
    token_account: Pubkey
    mode: str
    stage: str = ""


@dataclass
class CrashRig:
    """A ``SimWorld`` in this process and the daemon as a subprocess, killed with
    SIGKILL at chosen or random points of exit flows and started again."""

    world: SimWorld
    keypair: Keypair
    process: DaemonProcess
    journal_path: Path
    audit: SendAudit
    faults: FaultLog
    rng: Any
    flows: list[Flow] = field(default_factory=list)
    restarts: int = 0

    @classmethod
    async def create(cls, tmp: Path, rng: Any, **sections: Any) -> CrashRig:
        world = fault_world(resignal_after_s=1.0)
        await world.start()
        keypair = world.new_wallet(sol=100)
        sections.setdefault("log", {"level": "info"})
        sections.setdefault("send", {"rebroadcast_interval_ms": 300, "confirm_poll_ms": 50,
                                     "request_timeout_ms": 800})
        config = write_config(tmp, world, keypair, **sections)
        process = DaemonProcess(config, tmp / "daemon.log")
        rig = cls(world, keypair, process, tmp / "journal.sqlite3",
                  SendAudit(world.chain).watch(world.rpc), FaultLog(), rng)
        await rig.start_daemon()
        return rig

    @property
    def wallet(self) -> str:
        return str(self.keypair.pubkey())

    async def start_daemon(self) -> None:
        before = set(self.world.stream.configured_session_ids())
        await self.process.start()
        await until("the daemon's session is configured", lambda: bool(
            set(self.world.stream.configured_session_ids()) - before)
            and self.wallet in self.world.stream.configured_wallets(), timeout=20)

    async def close(self) -> int | None:
        try:
            return await self.process.terminate()
        finally:
            if self.process.running:
                await self.process.kill9()
            await self.world.stop()

    async def open_batch(self, size: int, mode: str) -> list[Flow]:
        batch = []
        for _ in range(size):
            opened = await self.world.open_position(self.keypair.pubkey(), TOKENS, ENTRY)
            batch.append(Flow(opened.position_id, str(opened.mint), opened.token_account, mode))
        self.flows.extend(batch)
        return batch

    async def trigger(self, flow: Flow) -> None:
        with contextlib.suppress(KeyError):  # already sold and closed
            await self.world.set_profit_pct(flow.position_id, -25)

    def sent(self, flow: Flow) -> bool:
        return (self.wallet, flow.mint) in self.audit.sells

    def settled(self, flow: Flow) -> bool:
        return bool(self.audit.landed_sells(flow.mint))

    def sold(self, flow: Flow) -> bool:
        return (self.world.chain.token_balance(flow.token_account) == 0
                and not self.world.is_tracked(flow.position_id))

    async def run_batch(self, batch: list[Flow]) -> None:
        """Drive the batch's exits, kill -9 at a point its mode picks, restart, and
        wait until every position of the batch is sold."""
        mode = batch[0].mode
        await getattr(self, f"_kill_{mode}")(batch)
        self.faults.clear()
        self.classify(batch)
        await self.start_daemon()
        self.restarts += 1
        await self.finish(batch)

    async def _kill_race(self, batch: list[Flow]) -> None:
        order = self.rng.sample(batch, len(batch))
        offsets = sorted(self.rng.uniform(0, 0.1) for _ in order)

        async def fire() -> None:
            started = time.monotonic()
            for flow, offset in zip(order, offsets, strict=True):
                await asyncio.sleep(max(0.0, started + offset - time.monotonic()))
                await self.trigger(flow)

        firing = asyncio.create_task(fire())
        await asyncio.sleep(self.rng.uniform(0.0, 0.12))
        await self.process.kill9()
        await firing

    async def _kill_no_land(self, batch: list[Flow]) -> None:
        """Every target accepts, nothing lands; killed once k sells are out."""
        self.faults.add(self.world.rpc, "sendTransaction", "accept_no_land", 100_000)
        for flow in batch:
            await self.trigger(flow)
        wanted = self.rng.randint(1, len(batch))
        with contextlib.suppress(AssertionError):
            await until("sells sent", lambda: sum(map(self.sent, batch)) >= wanted, timeout=3)
        await self.process.kill9()

    async def _kill_blind_confirm(self, batch: list[Flow]) -> None:
        """Sells land but status reads fail: killed while confirming."""
        self.faults.add(self.world.rpc, "getSignatureStatuses", "http_500", 100_000)
        for flow in batch:
            await self.trigger(flow)
        wanted = self.rng.randint(1, len(batch))
        with contextlib.suppress(AssertionError):
            await until("sells landed", lambda: sum(map(self.settled, batch)) >= wanted,
                        timeout=3)
        await self.process.kill9()

    async def _kill_hung_send(self, batch: list[Flow]) -> None:
        """sendTransaction lands but its answer hangs; killed at a random moment."""
        self.faults.add(self.world.rpc, "sendTransaction", "timeout", len(batch), delay=3.0)
        for flow in batch:
            await self.trigger(flow)
        await asyncio.sleep(self.rng.uniform(0.02, 0.6))
        await self.process.kill9()

    def classify(self, batch: list[Flow]) -> None:
        """Where each flow was when the daemon died (chain, server and journal view)."""
        landed = {pid for pid, _, state, _ in journal_attempts(self.journal_path)
                  if state == "landed"}
        signalled = {m.position_id for m in self.world.stream.sent_exits}
        for flow in batch:
            if flow.position_id in landed:
                flow.stage = "confirmed"
            elif self.settled(flow):
                flow.stage = "landed_unconfirmed"
            elif self.sent(flow):
                flow.stage = "sent"
            elif flow.position_id in signalled:
                flow.stage = "signalled"
            else:
                flow.stage = "before_signal"

    async def finish(self, batch: list[Flow], timeout: float = 40.0) -> None:
        """Tick the price of unsold positions (the server re-evaluates, and re-signals
        exits outstanding for over a second) until all are sold; then give the daemon
        a moment to journal the outcomes."""
        deadline = time.monotonic() + timeout
        while not all(map(self.sold, batch)):
            if time.monotonic() > deadline:
                unsold = [f.position_id for f in batch if not self.sold(f)]
                raise AssertionError(f"positions not sold after restart: {unsold}")
            for flow in batch:
                if not self.sold(flow):
                    await self.trigger(flow)
            await asyncio.sleep(0.3)
        with contextlib.suppress(AssertionError):
            await until("landings journaled", lambda: not self.unjournaled(batch), timeout=10)

    def unjournaled(self, batch: list[Flow]) -> list[int]:
        """Positions without a landed exit attempt in the journal."""
        landed = {pid for pid, _, state, _ in journal_attempts(self.journal_path)
                  if state == "landed"}
        return [f.position_id for f in batch if f.position_id not in landed]
