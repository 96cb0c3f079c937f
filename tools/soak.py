"""Soak: the real daemon in-process against SimWorld (LiteSVM chain + sim stream), under chaos.

    python tools/soak.py                  # 3 minutes
    python tools/soak.py --duration 3600  # an hour
    make soak SOAK_ARGS="--duration 900 --seed 7"

For ``--duration`` seconds it opens random positions (some with a per-position ladder
override), walks their prices, mirrors buys of a watched wallet, floods PnL frames, drops
the stream connection (abruptly or with a close code), injects RPC faults and sends the
occasional hostile exit signal. Then it lets every position sell out, stops the daemon and
checks, printing a table:

* no exit signal lost: every ``exit_signal_with_tx`` the server sent is in the journal and
  was executed (a final on-chain state) or superseded/refused with a journaled reason;
* no duplicate sale: per position the chain settled no more tokens than it held, and no
  two sells landed for the same position and ladder level;
* every mirror buy reported: ``mirror_buy_result`` count == ``mirror_buy_signal`` count;
* the hostile signals were refused and moved nothing;
* RSS flat: slope of the resident set size over the second half (judged from 60 s on);
* no task or file-descriptor leak: asyncio tasks and /proc/self/fd before and after;
* RPC blackhole: the daemon reads from two RPC front-ends on the one chain (``rpc.urls``:
  a proxy to the simulator's RPC, preferred, and a second RPC server). From 40 % to 80 %
  of the run the proxy is a black hole (accepts, never answers); reported: the time until
  the daemon marks it down, the exits landed meanwhile, and (with "no duplicate sale")
  that nothing was sold twice.

Exit status 0 when every check passes. ``run_soak`` is the same thing for tests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
import tomli_w
from solders.compute_budget import set_compute_unit_limit
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from spl.token.instructions import create_idempotent_associated_token_account

from lasersell_bot import protocol
from lasersell_bot.config import load_config
from lasersell_bot.daemon import Daemon
from lasersell_bot.logs import configure_logging
from lasersell_bot.sim.blackhole import BlackholeProxy
from lasersell_bot.sim.chain import decode_transaction
from lasersell_bot.sim.rpc import SimRpcServer, b58decode
from lasersell_bot.sim.stream_server import SimStreamServer
from lasersell_bot.sim.txbuild import ChainTxFactory
from lasersell_bot.sim.world import LAMPORTS_PER_SOL, SimWorld
from lasersell_bot.wallet import Wallets

TOKENS = 1_000_000_000
ENTRY_LAMPORTS = LAMPORTS_PER_SOL // 20
MIRROR_LAMPORTS = LAMPORTS_PER_SOL // 50
MAX_OPEN = 6
RESIGNAL_S = 5.0
RSS_JUDGED_AFTER_S = 60.0
RSS_SLOPE_LIMIT_KIB_PER_MIN = 2048.0
FAULTS = ("http_429", "http_500", "reset", "rpc_error", "timeout", "accept_no_land")
FAULT_METHODS = ("sendTransaction", "getSignatureStatuses", "isBlockhashValid")
RPC_TIMEOUT_MS = 1000
RPC_PROBE_S = 1.0
BLACKHOLE_FROM, BLACKHOLE_UNTIL = 0.4, 0.8  # fractions of the run
QUIET_BEFORE_S = 2.0  # no RPC faults injected from this long before the blackhole
FINAL_STATES = ("landed", "failed", "expired", "refused", "error", "dry_run")


# --------------------------------------------------------------------------- results


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Summary:
    seconds: float
    counts: Counter[str] = field(default_factory=Counter)
    checks: list[Check] = field(default_factory=list)
    rss_slope_kib_per_min: float = 0.0
    log_path: str = ""

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def table(self) -> str:
        width = max(len(c.name) for c in self.checks)
        lines = [f"soak: {self.seconds:.0f} s, " + ", ".join(
            f"{key}={value}" for key, value in sorted(self.counts.items()))]
        lines += [f"  {'PASS' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.detail}"
                  for c in self.checks]
        lines.append(f"  logs: {self.log_path}")
        lines.append("SOAK OK" if self.ok else "SOAK FAILED")
        return "\n".join(lines)


# --------------------------------------------------------------------------- set-up


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def write_config(directory: Path, world: SimWorld, keypair: Keypair, watched: str,
                 rpc_urls: list[str]) -> Path:
    key_path = directory / "wallet.json"
    _write_private(key_path, json.dumps(list(bytes(keypair))).encode())
    config = {
        "stream": {"url": world.ws_url, "api_key": "soak-api-key", "api_url": world.api_url,
                   "reconcile_sec": 1.0, "ping_interval_sec": 5.0},
        "rpc": {"urls": rpc_urls, "timeout_ms": RPC_TIMEOUT_MS, "hedge_after_ms": 150,
                "probe_interval_sec": RPC_PROBE_S, "send_to_all": True},
        "wallets": [{"keypair_path": str(key_path)}],
        "strategy": {"target_profit_pct": 30.0, "stop_loss_pct": 20.0},
        "send": {"mode": "helius_sender", "tip_lamports": 1_000_000,
                 "targets": ["rpc", "helius_sender"],
                 "helius_sender_url": world.rpc_url + "/fast", "max_retries": 6,
                 "rebroadcast_interval_ms": 300, "confirm_poll_ms": 50,
                 "request_timeout_ms": 1000},
        "mirror": {"enabled": True, "max_positions_per_wallet": 0},
        "watch_wallets": [{"pubkey": watched, "auto_buy_sol": MIRROR_LAMPORTS / 1e9}],
        "journal": {"path": str(directory / "journal.sqlite3")},
        "log": {"level": "info", "format": "json"},
        "http": {"listen": "off"},
        "daemon": {"shutdown_grace_sec": 10.0},
    }
    path = directory / "soak.toml"
    _write_private(path, tomli_w.dumps(config).encode())
    return path


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def slope_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, KiB) samples, in KiB per minute."""
    if len(samples) < 3:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return cov / var * 60


async def until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# --------------------------------------------------------------------------- the rig


class Rig:
    """SimWorld plus the real daemon, started from a real config file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.world = SimWorld(slot_ms=20)
        # The server re-signals an exit still unresolved after RESIGNAL_S (a failed ladder
        # level is not retried by the daemon as a full exit: it waits for the server).
        self.world.stream = SimStreamServer(tx_factory=ChainTxFactory(self.world.chain),
                                            resignal_after_s=RESIGNAL_S)
        self.watched = str(Keypair().pubkey())
        self.keypair = Keypair()
        self.held: dict[str, int] = {}  # tokens per mint of the positions opened here
        self.daemon: Daemon | None = None
        self.task: asyncio.Task[int] | None = None
        self.second = SimRpcServer(self.world.chain, slot_ms=None)  # same chain
        self.proxy: BlackholeProxy | None = None  # in front of world.rpc: preferred

    @property
    def wallet(self) -> Pubkey:
        return self.keypair.pubkey()

    async def start(self) -> Daemon:
        await self.world.start()
        await self.second.start()
        port = urlsplit(self.world.rpc_url).port
        assert port is not None
        self.proxy = await BlackholeProxy(port).start()
        self.world.chain.fund(self.wallet, 1_000 * LAMPORTS_PER_SOL)
        cfg = load_config(write_config(self.directory, self.world, self.keypair, self.watched,
                                       [self.proxy.url, self.second.url + "/"]))
        self.daemon = Daemon(cfg, Wallets.load(cfg.wallets))
        self.task = asyncio.create_task(self.daemon.run(install_signal_handlers=False))
        if not await until(self.connected, 15):
            raise RuntimeError("the daemon did not connect to the simulator")
        return self.daemon

    def connected(self) -> bool:
        state = self.running.stream.state
        return state.connected and state.configured and bool(
            self.world.stream.configured_session_ids())

    @property
    def running(self) -> Daemon:
        assert self.daemon is not None
        return self.daemon

    async def stop(self) -> int:
        code = -1
        if self.daemon is not None and self.task is not None:
            self.daemon.request_stop()
            code = await asyncio.wait_for(self.task, 30)
        if self.proxy is not None:
            await self.proxy.stop()
        await self.second.stop()
        await self.world.stop()
        return code

    async def open(self, tokens: int = TOKENS) -> int:
        opened = await self.world.open_position(self.wallet, tokens, ENTRY_LAMPORTS)
        self.held[str(opened.mint)] = tokens
        return opened.position_id

    def hostile_exit(self, position_id: int, attacker: Pubkey) -> bytes:
        """An exit signal for a real position whose transaction drains SOL to ``attacker``."""
        position = self.world.stream.position(position_id)
        mint = Pubkey.from_string(position.mint)
        blockhash, _ = self.world.chain.latest_blockhash()
        program = self.world.chain.token_program_of(mint)
        message = MessageV0.try_compile(self.wallet, [
            set_compute_unit_limit(200_000),
            create_idempotent_associated_token_account(self.wallet, self.wallet, mint, program),
            transfer(TransferParams(from_pubkey=self.wallet, to_pubkey=attacker,
                                    lamports=LAMPORTS_PER_SOL))], [], blockhash)
        tx = bytes(VersionedTransaction.populate(message, [Signature.default()]))
        return protocol.encode(protocol.ExitSignalWithTx(
            session_id=0, position_id=position_id, wallet_pubkey=str(self.wallet),
            mint=position.mint, position_tokens=position.tokens, profit_units=0,
            reason="stop_loss", triggered_at_ms=int(time.time() * 1000),
            unsigned_tx_b64=base64.b64encode(tx).decode()))


# --------------------------------------------------------------------------- chaos


class Chaos:
    """The random scenario: one ``step`` every ~50 ms."""

    def __init__(self, rig: Rig, rng: random.Random, counts: Counter[str]) -> None:
        self.rig, self.rng, self.counts = rig, rng, counts
        self.profit: dict[int, float] = {}
        self.attackers: list[Pubkey] = []
        self.steps = 0
        self.drops: list[tuple[int, int]] = []  # (start, end) wall-clock ms of each drop
        self.signatures: set[str] = set()  # of every transaction the RPC received
        self.rpc_quiet = False
        # Every kind of chaos happens at least once early on, even in a short run.
        self.must: list[Callable[[], Awaitable[None]]] = [
            self.mirror_buy, self.flood, self.disconnect, self.rpc_fault_now, self.hostile,
            self.mirror_buy, self.flood, self.disconnect]
        rng.shuffle(self.must)

    @property
    def world(self) -> SimWorld:
        return self.rig.world

    def open_positions(self) -> list[int]:
        """Every position the server tracks for us, mirrored buys included."""
        return [pid for pid in self.world.stream.positions_of(str(self.rig.wallet))
                if self.world.is_tracked(pid)]

    def harvest(self) -> None:
        """Keep only the signatures of what the RPC received (and drop the simulator's
        frame log), so the simulator's own bookkeeping does not grow the process."""
        for server in (self.world.rpc, self.rig.second):
            for received in server.received:
                try:
                    raw = base64.b64decode(received.raw, validate=True)
                except ValueError:
                    raw = b58decode(received.raw)
                self.signatures.add(str(decode_transaction(raw).signatures[0]))
            server.received.clear()
        self.world.stream.received.clear()

    async def step(self) -> None:
        self.steps += 1
        if self.steps % 40 == 0:
            self.harvest()
        if self.steps % 12 == 6 and self.must:
            await self.must.pop()()
        roll = self.rng.random()
        if self.steps < 4 or (roll < 0.10 and len(self.open_positions()) < MAX_OPEN):
            await self.open_position()
        elif roll < 0.115 and len(self.open_positions()) < MAX_OPEN:
            await self.mirror_buy()
        elif roll < 0.15:
            await self.flood()
        elif roll < 0.165:
            await self.disconnect()
        elif roll < 0.19:
            self.rpc_fault()
        elif roll < 0.195:
            await self.hostile()
        await self.walk_prices()

    async def open_position(self) -> None:
        pid = await self.rig.open(self.rng.choice([TOKENS, TOKENS // 3, 7_777_777]))
        self.profit[pid] = 0.0
        self.counts["positions"] += 1
        if self.rng.random() < 0.4 and await until(
                lambda: self.rig.running.session.position(pid) is not None, 3):
            levels = sorted(self.rng.sample([8.0, 15.0, 22.0, 28.0, 35.0], 3))
            self.rig.running.set_position_strategy(pid, protocol.Strategy(
                target_profit_pct=0.0, stop_loss_pct=20.0, take_profit_levels=[
                    protocol.TakeProfitLevel(profit_pct=pct, sell_pct=self.rng.choice(
                        [25.0, 50.0, 100.0])) for pct in levels]))
            self.counts["ladders"] += 1

    async def walk_prices(self) -> None:
        for pid in self.open_positions():
            self.profit[pid] = max(-60.0, min(80.0, self.profit.get(pid, 0.0)
                                              + self.rng.gauss(0.6, 4)))
            with contextlib.suppress(KeyError):
                await self.world.set_profit_pct(pid, self.profit[pid])

    async def mirror_buy(self) -> None:
        mint = self.world.new_token(lamports_per_token=self.rng.choice([0.05, 0.5, 2.0]))
        lamports = self.rng.randint(MIRROR_LAMPORTS // 4, MIRROR_LAMPORTS)
        sessions = len(self.world.stream.configured_session_ids())
        await self.world.mirror_buy(self.rig.watched, mint, self.rig.wallet, lamports)
        self.counts["mirror_buy_signals"] += sessions

    async def flood(self) -> None:
        await self.world.stream.flood_low_priority(self.rng.choice([500, 2_000, 5_000]))
        self.counts["pnl_floods"] += 1

    async def disconnect(self) -> None:
        """Drop the stream once everything the server sent has reached the daemon, so a
        frame lost in a dying TCP buffer is not mistaken for one the daemon lost."""
        signals = self.rig.running.metrics.signals
        await until(lambda: signals.get("exit") >= len(self.world.stream.sent_exits)
                    and signals.get("mirror_buy") >= self.counts["mirror_buy_signals"], 2)
        start = int(time.time() * 1000)
        await self.world.stream.drop_connections(self.rng.choice([None, 1001, 1011]))
        self.counts["disconnects"] += 1
        await until(self.rig.connected, 10)
        self.drops.append((start, int(time.time() * 1000)))

    async def rpc_fault_now(self) -> None:
        self.rpc_fault()

    def rpc_fault(self) -> None:
        if self.rpc_quiet:  # around the RPC blackhole, so its switch time is its own
            return
        kind = self.rng.choice(FAULTS)
        method = "sendTransaction" if kind == "accept_no_land" else self.rng.choice(
            FAULT_METHODS)
        self.world.rpc.faults.add(method, kind, count=self.rng.randint(1, 3),  # type: ignore[arg-type]
                                  retry_after=0.2, delay=0.5 if kind == "timeout" else None)
        self.counts["rpc_faults"] += 1

    def drain_refusals(self) -> float:
        """Refusals of a SOL drain: ``fee_too_large`` with effects verification on (the
        default: transfers to strangers are fees up to the allowance), else
        ``foreign_transfer``."""
        refusals = self.rig.running.metrics.guard_refusals
        return refusals.get("fee_too_large") + refusals.get("foreign_transfer")

    async def hostile(self) -> None:
        open_now = self.open_positions()
        if not open_now:
            return
        before = self.drain_refusals()
        attacker = Keypair().pubkey()
        self.attackers.append(attacker)
        await self.world.stream.emit_raw(self.rig.hostile_exit(self.rng.choice(open_now),
                                                               attacker))
        if await until(lambda: self.drain_refusals() > before, 3):
            self.counts["hostile_refused"] += 1
        self.counts["hostile_sent"] += 1

    async def sell_out(self, timeout: float) -> bool:
        """Calm down, then push every position (mirrored ones too) through its stop-loss
        until none is left and nothing is in flight, twice in a row."""
        self.world.rpc.faults.clear()
        deadline, quiet = time.monotonic() + timeout, 0
        while time.monotonic() < deadline and quiet < 2:
            open_now = self.open_positions()
            idle = not open_now and self.rig.running.executor.in_flight == 0
            quiet = quiet + 1 if idle else 0
            for pid in open_now:
                with contextlib.suppress(KeyError):
                    await self.world.set_profit_pct(pid, -45.0)
            await asyncio.sleep(0.5)
        return quiet >= 2


# --------------------------------------------------------------------------- checks


def journal_rows(path: str) -> tuple[list[tuple[Any, ...]], dict[int, list[str]],
                                     list[tuple[Any, ...]]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        signals = db.execute("SELECT id, kind, position_id, level_index, unsigned_tx_b64 "
                             "FROM signals").fetchall()
        guards: dict[int, list[str]] = {}
        for signal_id, ok, reason in db.execute(
                "SELECT signal_id, ok, reason FROM guard_checks"):
            guards.setdefault(signal_id, []).append("ok" if ok else reason)
        attempts = db.execute("SELECT signal_id, signature, state FROM attempts").fetchall()
    return signals, guards, attempts


def check_signals(world: SimWorld, journal_path: str, drops: list[tuple[int, int]],
                  summary: Summary) -> None:
    """Match what the server sent with the journal. An exit the server wrote while it was
    closing the connection (it may still emit during a close handshake) cannot reach the
    daemon: those are counted apart as ``in dropped connections``."""
    signals, guards, attempts = journal_rows(journal_path)
    journaled = Counter(row[4] for row in signals if row[1] == "exit")
    sent = Counter(message.unsigned_tx_b64 for message in world.stream.sent_exits)
    missing = sent - journaled
    at = {m.unsigned_tx_b64: m.triggered_at_ms for m in world.stream.sent_exits}
    in_drop = sum(n for tx, n in missing.items()
                  if any(start - 50 <= at[tx] <= end for start, end in drops))
    lost = sum(missing.values()) - in_drop
    states: dict[int, list[str]] = {}
    for signal_id, _sig, state in attempts:
        states.setdefault(signal_id, []).append(state)
    unresolved, dispositions = 0, Counter[str]()
    for signal_id, kind, _pid, _level, _tx in signals:
        if kind != "exit":
            continue
        verdicts = guards.get(signal_id, [])
        final = [s for s in states.get(signal_id, []) if s in FINAL_STATES]
        if "ok" in verdicts and final:
            dispositions["executed"] += 1
        elif any(v != "ok" and v for v in verdicts):
            dispositions[next(v for v in verdicts if v != "ok")] += 1
        else:
            unresolved += 1
    summary.counts["exit_signals_sent"] = sum(sent.values())
    summary.checks.append(Check(
        "no exit signal lost", lost == 0 and unresolved == 0,
        f"sent {sum(sent.values())}, journaled {sum(journaled.values())}, lost {lost}, "
        f"in dropped connections {in_drop}, unresolved {unresolved}; "
        + ", ".join(f"{k} {v}" for k, v in dispositions.most_common())))


def check_sales(world: SimWorld, journal_path: str, opened: dict[str, int],
                signatures: set[str], summary: Summary) -> None:
    """Tokens each position held (opened here, or bought by a landed mirror buy) against
    what the chain settled as sold, from every transaction the RPC received."""
    held: Counter[str] = Counter(opened)
    sold: Counter[str] = Counter()
    seen: set[str] = set()
    for signature in signatures:
        settlement = world.chain.settlement(signature)
        if settlement is None:
            continue
        seen.add(signature)
        (sold if settlement.side == "sell" else held)[str(settlement.mint)] += settlement.tokens
    oversold = {mint: n for mint, n in sold.items() if n > held[mint]}
    signals, _guards, attempts = journal_rows(journal_path)
    by_id = {row[0]: row for row in signals}
    landed_levels = Counter((by_id[sid][2], by_id[sid][3]) for sid, _sig, state in attempts
                            if state == "landed" and by_id[sid][1] == "exit")
    doubled = {key: n for key, n in landed_levels.items() if n > 1}
    summary.counts["swaps_landed"] = len(seen)
    summary.checks.append(Check(
        "no duplicate sale", not oversold and not doubled,
        f"{len(seen)} swaps settled, sells for {len(sold)} positions; oversold {len(oversold)}, "
        f"position+level landed twice {len(doubled)}"))


# --------------------------------------------------------------------------- RPC blackhole


@dataclass
class BlackholePhase:
    """The preferred RPC front-end is a black hole from ``start`` to ``end`` (seconds into
    the run): when did the daemon mark it down, and how many exits landed meanwhile."""

    rig: Rig
    chaos: Chaos
    start: float
    end: float
    holed_at: float | None = None
    switch_s: float | None = None
    landed_before: float = 0.0
    landed_during: float = 0.0
    restored: bool = False
    restored_at: float | None = None

    def tick(self, now: float) -> None:
        proxy, daemon = self.rig.proxy, self.rig.running
        assert proxy is not None
        landed = daemon.metrics.confirmations.get("landed")
        preferred = daemon.rpc_pool.providers[0]
        if not self.chaos.rpc_quiet and self.start - QUIET_BEFORE_S <= now < self.end:
            self.chaos.rpc_quiet = True  # no new RPC faults; the pending ones go
            self.rig.world.rpc.faults.clear()
        # Start once it is up (an injected RPC fault may have had it down for a moment).
        if self.holed_at is None and now >= self.start and preferred.health.state == "up":
            proxy.blackhole()
            self.holed_at, self.landed_before = time.monotonic(), landed
        if self.holed_at is None or self.restored:
            return
        if self.switch_s is None and preferred.health.state == "down":
            self.switch_s = (preferred.health.down_since or time.monotonic()) - self.holed_at
        self.landed_during = landed - self.landed_before
        if now >= self.end:
            proxy.restore()
            self.restored, self.restored_at = True, time.monotonic()
            self.chaos.rpc_quiet = False

    def _held_for(self) -> float:
        if self.holed_at is None:
            return 0.0
        return (self.restored_at or time.monotonic()) - self.holed_at

    def check(self, summary: Summary) -> None:
        duplicates = summary.check("no duplicate sale")
        summary.counts["blackhole_exits_landed"] = int(self.landed_during)
        switched = "never" if self.switch_s is None else f"{self.switch_s:.2f} s"
        summary.checks.append(Check(
            "rpc blackhole survived",
            self.switch_s is not None and duplicates.ok
            and self.switch_s <= RPC_TIMEOUT_MS / 1000 + RPC_PROBE_S + 0.5,
            f"preferred RPC blackholed {self._held_for():.1f} s: switched in {switched} "
            f"(rpc.timeout_ms {RPC_TIMEOUT_MS}, probe every {RPC_PROBE_S:g} s), exits landed "
            f"meanwhile "
            f"{self.landed_during:.0f}, duplicate sales {0 if duplicates.ok else 'some'}"))


# --------------------------------------------------------------------------- run


async def run_soak(duration: float, seed: int = 1, directory: Path | None = None) -> Summary:
    """Run the soak in this event loop; returns the checked summary."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="lasersell-soak-")))
        return await _run(duration, seed, directory)


async def _run(duration: float, seed: int, directory: Path) -> Summary:
    log_path = directory / "daemon.log"
    summary = Summary(seconds=duration, log_path=str(log_path))
    await asyncio.sleep(0)
    tasks_before, fds_before = len(asyncio.all_tasks()), open_fds()
    rng = random.Random(seed)
    logging_before = structlog.get_config()
    with open(log_path, "w") as log_file, _restored_logging(logging_before):
        configure_logging("info", "json", syslog_prefix=False, stream=log_file)
        rig = Rig(directory)
        started = time.monotonic()
        daemon = await rig.start()
        chaos = Chaos(rig, rng, summary.counts)
        hole = BlackholePhase(rig, chaos, duration * BLACKHOLE_FROM,
                              duration * BLACKHOLE_UNTIL)
        rss: list[tuple[float, int]] = []
        try:
            while (now := time.monotonic() - started) < duration:
                hole.tick(now)
                await chaos.step()
                rss.append((now, rss_kib()))
                await asyncio.sleep(0.05)
            sold_out = await chaos.sell_out(timeout=60)
            reported = await until(lambda: len(rig.world.stream.mirror_results)
                                   >= summary.counts["mirror_buy_signals"], 20)
            await until(lambda: daemon.executor.in_flight == 0, 30)
        finally:
            exit_code = await rig.stop()
        summary.seconds = time.monotonic() - started
    summary.counts["exit_code"] = exit_code
    summary.checks.append(Check("all positions sold out", sold_out and exit_code == 0,
                                f"daemon exit code {exit_code}"))
    check_signals(rig.world, daemon.cfg.journal.path, chaos.drops, summary)
    chaos.harvest()
    check_sales(rig.world, daemon.cfg.journal.path, rig.held, chaos.signatures, summary)
    hole.check(summary)
    results = len(rig.world.stream.mirror_results)
    summary.checks.append(Check(
        "every mirror buy reported",
        reported and results == summary.counts["mirror_buy_signals"],
        f"mirror_buy_signal {summary.counts['mirror_buy_signals']}, "
        f"mirror_buy_result {results}"))
    stolen = sum(rig.world.chain.balance(a) for a in chaos.attackers)
    summary.checks.append(Check(
        "hostile signals refused",
        stolen == 0 and summary.counts["hostile_refused"] == summary.counts["hostile_sent"],
        f"sent {summary.counts['hostile_sent']}, refused (fee_too_large / foreign_transfer) "
        f"{summary.counts['hostile_refused']}, lamports moved {stolen}"))
    _check_resources(summary, rss, tasks_before, fds_before)
    return summary


@contextlib.contextmanager
def _restored_logging(config: dict[str, Any]) -> Iterator[None]:
    try:
        yield
    finally:
        structlog.configure(**config)


def _check_resources(summary: Summary, rss: list[tuple[float, int]], tasks_before: int,
                     fds_before: int) -> None:
    second_half = [sample for sample in rss if sample[0] >= summary.seconds / 2]
    slope = slope_per_min(second_half)
    summary.rss_slope_kib_per_min = slope
    judged = summary.seconds >= RSS_JUDGED_AFTER_S
    start_kib = rss[0][1] if rss else 0
    end_kib = rss[-1][1] if rss else 0
    summary.checks.append(Check(
        "RSS flat", not judged or slope < RSS_SLOPE_LIMIT_KIB_PER_MIN,
        f"{start_kib} -> {end_kib} KiB, second-half slope {slope:+.0f} KiB/min"
        + ("" if judged else f" (reported only: run < {RSS_JUDGED_AFTER_S:.0f} s)")))
    tasks_after, fds_after = len(asyncio.all_tasks()), open_fds()
    summary.checks.append(Check(
        "no task or fd leak", tasks_after <= tasks_before and fds_after <= fds_before,
        f"asyncio tasks {tasks_before} -> {tasks_after}, fds {fds_before} -> {fds_after}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds (default 180)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", metavar="DIR", help="keep journal and logs in DIR")
    args = parser.parse_args(argv)
    directory = Path(args.keep) if args.keep else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    summary = asyncio.run(run_soak(args.duration, args.seed, directory))
    print(summary.table())
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
