"""``make bench``: signal-to-wire latency, flood behaviour, ingest, memory, startup and
hot-path micro costs of lasersell-bot, side by side with the vendor's Python SDK.

Every component is its own process on loopback: the lean bench stream server and RPC
server (``bench.stream_server``, ``bench.rpc_server``), the daemon under test
(``python -m lasersell_bot run --config ...``, uvloop, dry_run off, send target rpc) and
the baseline client (``bench.sdk_client`` in bench/.venv-sdk). Signal-to-wire is the
RPC server's ``monotonic_ns`` when a ``sendTransaction`` body is complete minus the
stream server's ``monotonic_ns`` just before it wrote the ``exit_signal_with_tx`` frame
(one clock: per-boot monotonic). Every received transaction is verified (signature,
signer, message identical to what the stream server sent) in the RPC process.

Writes ``<out>/latest.json`` (raw), ``<out>/latest.md`` and ``<out>/latency.png``.

The tier phase (``bench/tier.py``: 200 wallets, 20,000 positions, PnL and liquidity at
the Advanced tier's full rate) runs last, with its own servers.

Usage: python -m bench.run [--quick] [--out DIR] [--no-baseline] [--no-plot] [--no-tier]
                           [--tier-only]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from bench.common import (
    API_KEY,
    BENCH_DIR,
    REPO_DIR,
    cpu_seconds,
    now_ns,
    percentile,
    rss_kib,
    summarize,
    write_keypair,
)
from bench.report import render_markdown
from bench.txtemplate import build_positions, new_wallet_secret

SDK_VENV = BENCH_DIR / ".venv-sdk"
PLOT_VENV = BENCH_DIR / ".venv-plot"
SDK_REQUIREMENT = "lasersell-sdk==1.1.0"
PLOT_REQUIREMENT = "matplotlib>=3.8"
LOW_TYPES = ("pnl_update", "liquidity_snapshot", "trade_tick")
DELAY_BUDGET_US = 1000.0


API_LOAD_GAP_S = 0.1
# Signals far enough apart that each exit's work is done before the next arrives (the
# 2-6 ms idle schedule queues the simulated path's extra CPU behind earlier exits).
SPARSE_GAP_MS = (20.0, 40.0)


@dataclass(frozen=True)
class Plan:
    signals: int
    gap_ms: tuple[float, float]
    flood_rates: tuple[int, ...]
    throughput_rates: tuple[int, ...]  # 0 = unpaced (as fast as the client reads)
    throughput_signals: int
    memory_frames: int
    memory_signals: int
    startups: int
    floor_count: int
    micro_budget_s: float
    settle_s: float = 1.5
    sync_records: int = 1000
    trace: bool = True
    api_load: bool = False  # an extra idle phase with the control API under load
    sparse_signals: int = 300  # the guard comparison: signals 20-40 ms apart
    seed: int = 20260101


FULL = Plan(signals=2000, gap_ms=(2.0, 6.0), flood_rates=(1_000, 10_000, 50_000),
            throughput_rates=(50_000, 100_000, 150_000, 200_000, 300_000, 0),
            throughput_signals=150, memory_frames=1_000_000, memory_signals=10_000,
            startups=3, floor_count=2000, micro_budget_s=0.3)
QUICK = Plan(signals=50, gap_ms=(2.0, 6.0), flood_rates=(10_000,), throughput_rates=(),
             throughput_signals=0, memory_frames=20_000, memory_signals=100, startups=1,
             floor_count=50, micro_budget_s=0.02, settle_s=0.3, sync_records=50,
             trace=False, sparse_signals=30)


# --------------------------------------------------------------------------- venvs


def ensure_venv(path: Path, requirement: str) -> Path:
    """A virtualenv at ``path`` with ``requirement`` installed (stamped; reused)."""
    python = path / "bin" / "python"
    stamp = path / ".bench-installed"
    if stamp.exists() and stamp.read_text() == requirement and python.exists():
        return python
    print(f"bench: creating {path.relative_to(REPO_DIR)} with {requirement}", flush=True)
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([_base_python(), "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    requirement], check=True)
    stamp.write_text(requirement)
    return python


def _base_python() -> str:
    """The interpreter the project venv was made from (the SDK venv must not see ours)."""
    base = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"
    return str(base)


def versions_in(python: Path | str, packages: Sequence[str]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            "for p in sys.argv[1:]:\n"
            "    try: out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: out[p] = 'absent'\n"
            "print(json.dumps(out))")
    done = subprocess.run([str(python), "-c", code, *packages], capture_output=True, text=True,
                          check=True)
    return dict(json.loads(done.stdout))


# --------------------------------------------------------------------------- processes


class Child:
    """A bench process; its output goes to a log file (servers announce their port)."""

    def __init__(self, name: str, argv: list[str], workdir: Path, *, announces: bool = False,
                 env: dict[str, str] | None = None,
                 stop_signal: signal.Signals = signal.SIGTERM, cwd: Path = REPO_DIR) -> None:
        self.name = name
        self.stop_signal = stop_signal
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.spawned_ns = now_ns()
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if announces else self._log, stderr=self._log)
        self.port = self._read_port() if announces else None

    def _read_port(self) -> int:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"{self.name} did not start; see {self.log_path}")
        return int(json.loads(line)["port"])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.alive():
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- the bench


@dataclass
class PhaseResult:
    label: str
    flood_rate: int
    signals: int
    latencies_us: list[float] = field(default_factory=list)
    missing: int = 0
    invalid: int = 0
    invalid_examples: list[str] = field(default_factory=list)
    flood: dict[str, Any] = field(default_factory=dict)
    client_ingest: dict[str, Any] = field(default_factory=dict)
    pairs: list[tuple[int, int, int]] = field(default_factory=list)  # seq, written, received
    cpu_pct: float | None = None  # the client's CPU use during the phase (100 = one core)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["pairs"]
        data["summary"] = summarize(self.latencies_us)
        data["latencies_us"] = [round(v, 1) for v in self.latencies_us]
        return data


class Bench:
    def __init__(self, plan: Plan, workdir: Path, baseline: bool,
                 wrap_daemon: Sequence[str] = (), daemon_src: Path | None = None) -> None:
        self.plan = plan
        self.daemon_src = daemon_src
        self.wrap_daemon = list(wrap_daemon)
        self.workdir = workdir
        self.baseline = baseline
        self.secret = new_wallet_secret()
        self.wallet = str(Keypair.from_bytes(self.secret).pubkey())
        self.keypair_path = workdir / "wallet.json"
        write_keypair(self.keypair_path, self.secret)
        self.http: aiohttp.ClientSession | None = None
        self.stream: Child | None = None
        self.rpc: Child | None = None
        self.metrics_port = free_port()
        self.results: dict[str, Any] = {}
        self.children: list[Child] = []
        self.journal_durable_line = ""  # e.g. "durable = false" (--journal-durable)
        self.startup_timeout_s = 60.0

    # ----------------------------------------------------------------- plumbing

    @property
    def stream_base(self) -> str:
        assert self.stream is not None
        return f"http://127.0.0.1:{self.stream.port}"

    @property
    def rpc_base(self) -> str:
        assert self.rpc is not None
        return f"http://127.0.0.1:{self.rpc.port}"

    async def get(self, url: str) -> Any:
        assert self.http is not None
        async with self.http.get(url) as resp:
            return await resp.json(content_type=None)

    async def post(self, url: str, body: Any = None, timeout: float = 600) -> Any:
        assert self.http is not None
        async with self.http.post(url, json=body or {},
                                  timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"{url}: {resp.status} {data}")
            return data

    async def run(self) -> dict[str, Any]:
        py = sys.executable
        self.rpc = Child("rpc_server", [py, "-m", "bench.rpc_server", "--wallet", self.wallet],
                         self.workdir, announces=True)
        self.stream = Child("stream_server", [py, "-m", "bench.stream_server",
                                              "--wallet", self.wallet],
                            self.workdir, announces=True)
        async with aiohttp.ClientSession() as self.http:
            try:
                self.results["floor"] = await self.floor()
                self.results["ours"] = await self.client_run("ours")
                self.results["ours_static"] = await self.client_run("ours_static")
                self.results["rpc_batch"] = await self.rpc_batch_roundtrip()
                if self.baseline:
                    self.results["baseline"] = await self.client_run("baseline")
                if self.plan.trace:
                    self.results["stages"] = await self.traced()
            finally:
                for child in self.children:
                    child.stop()
                self.rpc.stop()
                self.stream.stop()
        self.results["micro"] = self.micro()
        return self.results

    # ----------------------------------------------------------------- floor

    async def floor(self) -> dict[str, Any]:
        assert self.rpc is not None
        await self.post(self.rpc_base + "/bench/clear")
        done = subprocess.run(
            [sys.executable, "-m", "bench.floor", "--rpc-port", str(self.rpc.port),
             "--keypair", str(self.keypair_path), "--count", str(self.plan.floor_count)],
            cwd=REPO_DIR, capture_output=True, text=True, check=True)
        out = json.loads(done.stdout)
        records = await self.get(self.rpc_base + "/bench/records")
        t0 = {int(k): v for k, v in out["t0"].items()}
        latencies = [(r["t_ns"] - t0[r["seq"]]) / 1000 for r in records["records"]
                     if r["seq"] in t0 and r["valid"]]
        print(f"bench: floor p50 {percentile(sorted(latencies), 50):.0f} us", flush=True)
        return {"summary": summarize(latencies), "latencies_us": [round(v, 1) for v in latencies],
                "cpu_sign_encode": summarize(out["cpu_us"]), "count": len(latencies)}

    async def rpc_batch_roundtrip(self) -> dict[str, Any]:
        """One warm client posting the daemon's effects batch (getMultipleAccounts +
        simulateTransaction) to the bench RPC: the round trip the verification adds."""
        assert self.http is not None and self.stream is not None
        position = build_positions(Pubkey.from_string(self.wallet), 1)[0]
        tx, keys = position.stamp(1), [self.wallet, position.token_account]
        body = [{"jsonrpc": "2.0", "id": 0, "method": "getMultipleAccounts",
                 "params": [keys, {"encoding": "base64", "commitment": "processed"}]},
                {"jsonrpc": "2.0", "id": 1, "method": "simulateTransaction",
                 "params": [base64.b64encode(tx).decode(),
                            {"encoding": "base64", "sigVerify": False,
                             "replaceRecentBlockhash": False, "commitment": "processed",
                             "accounts": {"encoding": "base64", "addresses": keys}}]}]
        samples = []
        for _ in range(self.plan.floor_count):
            started = time.perf_counter_ns()
            async with self.http.post(self.rpc_base + "/", json=body) as resp:
                await resp.read()
            samples.append((time.perf_counter_ns() - started) / 1000)
        return {"summary": summarize(samples[10:] or samples), "count": len(samples)}

    # ----------------------------------------------------------------- one client

    def write_config(self, stream_port: int, rpc_port: int, simulate: str = "always") -> Path:
        path = self.workdir / f"bot-{simulate}.toml"
        path.write_text(f"""
[stream]
url = "ws://127.0.0.1:{stream_port}/v1/ws"
api_key = "{API_KEY}"
api_url = "http://127.0.0.1:{stream_port}"
register_wallets = true

[rpc]
url = "http://127.0.0.1:{rpc_port}/"

[[wallets]]
keypair_path = "{self.keypair_path}"
label = "bench"

[strategy]
target_profit_pct = 50.0
stop_loss_pct = 20.0

[send]
mode = "rpc"
targets = ["rpc"]
dry_run = false

[guard]
simulate = "{simulate}"

[journal]
path = "{self.workdir / 'journal.sqlite3'}"
{self.journal_durable_line}

[log]
level = "info"
format = "json"
syslog_prefix = false

[http]
listen = "127.0.0.1:{self.metrics_port}"
""")
        return path

    def spawn(self, who: str) -> Child:
        assert self.stream is not None and self.rpc is not None
        if who in ("ours", "ours_static"):
            config = self.write_config(self.stream.port or 0, self.rpc.port or 0,
                                       "never" if who == "ours_static" else "always")
            argv = [*self.wrap_daemon, sys.executable, "-m", "lasersell_bot", "run",
                    "--config", str(config)]
            # A profiler wrapper (py-spy) writes its output on SIGINT, which the daemon
            # handles like SIGTERM.
            env = None
            if self.daemon_src is not None:  # another checkout's lasersell_bot (A/B runs)
                env = {**os.environ, "PYTHONPATH": str(self.daemon_src)}
            name = "daemon" if who == "ours" else f"daemon_{who}"
            return Child(name, argv, self.workdir, env=env,
                         stop_signal=signal.SIGINT if self.wrap_daemon else signal.SIGTERM,
                         cwd=self.daemon_src or REPO_DIR)
        python = SDK_VENV / "bin" / "python"
        argv = [str(python), "-m", "bench.sdk_client",
                "--stream-url", f"ws://127.0.0.1:{self.stream.port}/v1/ws",
                "--api-url", self.stream_base, "--rpc-url", self.rpc_base + "/",
                "--keypair", str(self.keypair_path), "--api-key", API_KEY]
        return Child("sdk_client", argv, self.workdir)

    async def start_client(self, who: str) -> tuple[Child, float]:
        """Spawn and wait for its configure; returns (child, spawn-to-configure ms)."""
        before = (await self.get(self.stream_base + "/bench/state"))["session_id"]
        child = self.spawn(who)
        self.children.append(child)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            state = await self.get(self.stream_base + "/bench/state")
            if state["session_id"] != before and state["configured_at_ns"]:
                startup_ms = (state["configured_at_ns"] - child.spawned_ns) / 1e6
                return child, startup_ms
            if not child.alive():
                break
            await asyncio.sleep(0.005 if time.monotonic() - child.spawned_ns / 1e9 < 5 else 0.05)
        child.stop()
        raise RuntimeError(f"{who} never sent configure; see {child.log_path}")

    async def client_run(self, who: str) -> dict[str, Any]:
        plan = self.plan
        child, startup_ms = await self.start_client(who)
        startups = [startup_ms]
        await asyncio.sleep(plan.settle_s)  # positions announced, connections warm
        out: dict[str, Any] = {"memory_kib": {"after_start": rss_kib(child.pid)}}
        phases = [await self.phase(child, who, "idle", plan.signals)]
        if who in ("ours", "ours_static"):  # the effects check's price, one exit at a time
            phases.append(await self.phase(child, who, "sparse", plan.sparse_signals,
                                           gap_ms=SPARSE_GAP_MS))
        if who == "ours" and plan.api_load:
            phases.append(await self.api_load_phase(child, plan.signals))
        for rate in plan.flood_rates if who != "ours_static" else ():
            phases.append(await self.phase(child, who, f"flood_{rate}", plan.signals,
                                           flood_rate=rate))
        out["phases"] = {p.label: p.to_json() for p in phases}
        idle_p50 = percentile(sorted(phases[0].latencies_us), 50)
        if who == "ours":
            out["throughput"] = await self.throughput(child, who, idle_p50)
            out["memory_kib"].update(await self.memory(child, who))
        else:
            out["memory_kib"]["after_phases"] = rss_kib(child.pid)
        child.stop()
        for _ in range(plan.startups - 1 if who != "ours_static" else 0):
            again, ms = await self.start_client(who)
            startups.append(ms)
            await asyncio.sleep(0.3)
            again.stop()
        out["startup_ms"] = startups
        out["log"] = str(child.log_path)
        return out

    async def api_load_phase(self, child: Child, signals: int) -> PhaseResult:
        """The idle phase again while a status loop (GET /api/v1/state every
        ``API_LOAD_GAP_S``: ten terminals running ``watch -n1 lasersell-bot status``)
        and an events subscriber (an open dashboard) load the control API."""
        token = (self.workdir / "lasersell-bot.api-token").read_text().strip()
        base = f"http://127.0.0.1:{self.metrics_port}/api/v1"
        headers = {"Authorization": f"Bearer {token}"}
        calls = [0]

        async def status_loop() -> None:
            assert self.http is not None
            while True:
                async with self.http.get(base + "/state", headers=headers) as resp:
                    await resp.read()
                calls[0] += 1
                await asyncio.sleep(API_LOAD_GAP_S)

        async def events() -> None:
            assert self.http is not None
            async with self.http.get(base + "/events", headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=None)) as resp:
                async for _ in resp.content:
                    pass

        loops = [asyncio.create_task(status_loop()), asyncio.create_task(events())]
        started = time.monotonic()
        try:
            result = await self.phase(child, "ours", "idle_api_load", signals)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
        rate = calls[0] / (time.monotonic() - started)
        print(f"bench: api load: {calls[0]} state requests ({rate:.0f}/s)", flush=True)
        return result

    async def phase(self, child: Child, who: str, label: str, signals: int, *,
                    flood_rate: int = 0, flood_frames: int | None = None,
                    gap_ms: tuple[float, float] | None = None,
                    unpaced: bool = False, flood_kind: str | None = None) -> PhaseResult:
        if not child.alive():
            raise RuntimeError(f"{who} exited; see {child.log_path}")
        await self.post(self.rpc_base + "/bench/clear")
        before = await self.low_counts() if who == "ours" else None
        spec = {"signals": signals, "gap_ms": list(gap_ms or self.plan.gap_ms),
                "seed": self.plan.seed + len(label), "flood_rate": flood_rate,
                "flood_frames": flood_frames, "unpaced": unpaced, "flood_kind": flood_kind}
        cpu_before, wall_before = cpu_seconds(child.pid), time.monotonic()
        answer = await self.post(self.stream_base + "/bench/phase", spec)
        cpu_pct = 100 * (cpu_seconds(child.pid) - cpu_before) / (time.monotonic() - wall_before)
        after = await self.low_counts() if who == "ours" else None
        result = PhaseResult(label, flood_rate, signals, flood=answer["flood"], cpu_pct=cpu_pct)
        if before is not None and after is not None and answer["flood"]:
            seconds = answer["flood"]["seconds"] or 1.0
            ingested = after["ingested"] - before["ingested"]
            result.client_ingest = {
                "decoded": after["decoded"] - before["decoded"],
                "dropped": after["dropped"] - before["dropped"],
                "coalesced": after["coalesced"] - before["coalesced"],
                "ingested": ingested, "rate": ingested / seconds}
        await self.collect(result, answer["sent"])
        (self.workdir / f"pairs_{who}_{label}.json").write_text(json.dumps(result.pairs))
        s = summarize(result.latencies_us)
        print(f"bench: {who} {label}: p50 {s['p50']:.0f} us, p99 {s['p99']:.0f} us, "
              f"max {s['max']:.0f} us, missing {result.missing}, invalid {result.invalid}"
              + (f", flood {answer['flood'].get('rate', 0):.0f}/s" if answer["flood"] else "")
              + f", client CPU {cpu_pct:.0f} %", flush=True)
        return result

    async def collect(self, result: PhaseResult, sent: list[list[Any]]) -> None:
        """Wait until every sent signal's transaction reached the RPC (or stalled), then
        join on the memo sequence number and check each one."""
        expected = len(sent)
        last, last_change = -1, time.monotonic()
        while True:
            count = (await self.get(self.rpc_base + "/bench/count"))["count"]
            if count != last:
                last, last_change = count, time.monotonic()
            if count >= expected or time.monotonic() - last_change > 3.0:
                break
            await asyncio.sleep(0.05)
        records = (await self.get(self.rpc_base + "/bench/records"))["records"]
        first: dict[int, dict[str, Any]] = {}
        for record in records:
            seq = record.get("seq")
            if seq is not None and (seq not in first or record["t_ns"] < first[seq]["t_ns"]):
                first[seq] = record
        for seq, written_ns, digest in sent:
            record = first.get(seq)
            if record is None:
                result.missing += 1
                continue
            if not record["valid"] or record.get("digest") != digest:
                result.invalid += 1
                if len(result.invalid_examples) < 5:
                    result.invalid_examples.append(
                        f"seq {seq}: {record.get('why') or 'message differs from the one sent'}")
                continue
            result.latencies_us.append((record["t_ns"] - written_ns) / 1000)
            result.pairs.append((seq, written_ns, record["t_ns"]))

    async def metrics_text(self) -> str:
        assert self.http is not None
        async with self.http.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as resp:
            return await resp.text()

    async def low_counts(self) -> dict[str, float]:
        """Low-priority frames the daemon read: decoded, dropped, and coalesced (replaced
        by a newer one for the same position before it was read; absent before that
        lane existed)."""
        decoded = dropped = coalesced = 0.0
        for line in (await self.metrics_text()).splitlines():
            if line.startswith("lasersell_bot_frames_total{"):
                if any(f'type="{t}"' in line for t in LOW_TYPES):
                    decoded += float(line.rsplit(" ", 1)[1])
            elif line.startswith("lasersell_bot_low_lane_dropped_total "):
                dropped = float(line.rsplit(" ", 1)[1])
            elif line.startswith("lasersell_bot_low_lane_coalesced_total "):
                coalesced = float(line.rsplit(" ", 1)[1])
        return {"decoded": decoded, "dropped": dropped, "coalesced": coalesced,
                "ingested": decoded + dropped + coalesced}

    async def throughput(self, child: Child, who: str, idle_p50: float) -> dict[str, Any]:
        """Step the offered low-priority rate up; a step is sustained when the server wrote
        >= 98 % of what it offered (the client kept reading) and no signal under it took
        more than idle p50 + 1 ms from frame written to sendTransaction received."""
        steps = []
        best = best_p99 = 0.0
        for rate in self.plan.throughput_rates:
            label = f"throughput_{rate or 'unpaced'}"
            result = await self.phase(child, who, label, self.plan.throughput_signals,
                                      flood_rate=rate, gap_ms=(10.0, 20.0), unpaced=rate == 0)
            flood = result.flood
            summary = summarize(result.latencies_us)
            kept_up = rate == 0 or flood["written"] >= 0.98 * (flood["written"] + flood["skipped"])
            on_time = (summary["max"] - idle_p50 <= DELAY_BUDGET_US and result.missing == 0)
            on_time_p99 = (summary["p99"] - idle_p50 <= DELAY_BUDGET_US and result.missing == 0)
            ingest = result.client_ingest.get("rate", 0.0)
            if kept_up and on_time:
                best = max(best, ingest)
            if kept_up and on_time_p99:
                best_p99 = max(best_p99, ingest)
            steps.append({"offered": rate, "server_rate": flood["rate"],
                          "skipped": flood["skipped"], "client_ingest_rate": ingest,
                          "dropped": result.client_ingest.get("dropped", 0),
                          "summary": summary, "kept_up": kept_up, "on_time": on_time,
                          "on_time_p99": on_time_p99})
        return {"best_sustained_rate": best, "best_sustained_rate_p99": best_p99,
                "steps": steps, "delay_budget_us": DELAY_BUDGET_US, "idle_p50_us": idle_p50}

    async def memory(self, child: Child, who: str) -> dict[str, Any]:
        plan = self.plan
        before = rss_kib(child.pid)
        flood = await self.phase(child, who, "memory_flood", 0, flood_frames=plan.memory_frames)
        await asyncio.sleep(plan.settle_s / 3)
        after_frames = rss_kib(child.pid)
        await self.phase(child, who, "memory_signals", plan.memory_signals, gap_ms=(1.0, 3.0))
        await asyncio.sleep(plan.settle_s * 2 / 3)
        after_signals = rss_kib(child.pid)
        return {
            "before_flood": before, "after_frames": after_frames,
            "after_signals": after_signals, "frames": plan.memory_frames,
            "frames_written": flood.flood.get("written", 0), "signals": plan.memory_signals,
            "bytes_per_frame": (after_frames - before) * 1024 / plan.memory_frames,
            "bytes_per_signal": (after_signals - after_frames) * 1024 / plan.memory_signals,
            "growth_pct_frames": 100 * (after_frames - before) / before,
        }

    # ----------------------------------------------------------------- stages

    async def traced(self) -> dict[str, Any]:
        """Run the daemon again under ``bench.trace_daemon`` (idle and the heaviest flood)
        and split each signal's signal-to-wire into stages."""
        trace_path = self.workdir / "trace.json"
        saved = self.wrap_daemon
        self.wrap_daemon = ["env", f"LSB_TRACE_OUT={trace_path}", sys.executable, "-m",
                            "bench.trace_daemon"]
        try:
            child, _ = await self.start_client("ours")
        finally:
            self.wrap_daemon = saved
        await asyncio.sleep(self.plan.settle_s)
        count = min(self.plan.signals, 1000)
        runs = [("idle", 0)] + [(f"flood_{r}", r) for r in self.plan.flood_rates[-1:]]
        phases = [await self.phase(child, "traced", label, count, flood_rate=rate)
                  for label, rate in runs]
        child.stop()
        stamps = json.loads(trace_path.read_text())
        return {phase.label: _stages(phase.pairs, stamps) for phase in phases}

    # ----------------------------------------------------------------- micro

    def micro(self) -> dict[str, Any]:
        frame = self.workdir / "exit_frame.json"
        base = ["-m", "bench.micro", "--budget", str(self.plan.micro_budget_s),
                "--frame", str(frame), "--keypair", str(self.keypair_path)]
        sync = ["--sync-dir", str(self.workdir), "--sync-records", str(self.plan.sync_records)]
        ours = subprocess.run([sys.executable, *base, *sync], cwd=REPO_DIR,
                              capture_output=True, text=True, check=True)
        out = {"ours": json.loads(ours.stdout)}
        if self.baseline:
            sdk = subprocess.run([str(SDK_VENV / "bin" / "python"), *base, "--sdk"],
                                 cwd=REPO_DIR, capture_output=True, text=True, check=True)
            out["sdk"] = json.loads(sdk.stdout)
        return out


STAGES = (
    ("socket", "server write → daemon reader has the frame (kernel, aiohttp websocket)"),
    ("dispatch", "reader → executor (decode, session, journal ids, exit book)"),
    ("inline", "executor → first byte written (guard, sign, intent log)"),
    ("write_rpc", "write → RPC server has read the request (kernel, RPC process)"),
    ("total", "total signal-to-wire"),
)


def _stages(pairs: list[tuple[int, int, int]], stamps: dict[str, list[int]]) -> dict[str, Any]:
    columns: dict[str, list[float]] = {key: [] for key, _ in STAGES}
    for seq, written, received in pairs:
        stamp = stamps.get(str(seq))
        if not stamp or not stamp[2]:
            continue
        reader, start, write, _ = stamp
        for key, value in (("socket", reader - written), ("dispatch", start - reader),
                           ("inline", write - start), ("write_rpc", received - write),
                           ("total", received - written)):
            columns[key].append(value / 1000)
    return {key: summarize(values) for key, values in columns.items()}


# --------------------------------------------------------------------------- machine


def machine_info(baseline: bool) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    ours = versions_in(sys.executable, ["lasersell-bot", "aiohttp", "msgspec", "solders",
                                        "uvloop", "structlog", "PyNaCl"])
    info: dict[str, Any] = {
        "nproc": os.cpu_count(), "cpu_model": model, "mem_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "packages": ours, "git": _git_describe(),
    }
    if baseline:
        info["sdk_packages"] = versions_in(SDK_VENV / "bin" / "python",
                                           ["lasersell-sdk", "websockets", "solders"])
    return info


def _git_describe() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lasersell_bot"],
                               cwd=REPO_DIR, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


# --------------------------------------------------------------------------- main


def run_tier(plan: Plan, quick: bool, workdir: Path, daemon_src: Path | None,
             wrap_daemon: list[str]) -> dict[str, Any]:
    from bench.tier import FULL_TIER, QUICK_TIER, TierBench

    tier_dir = workdir / "tier"
    tier_dir.mkdir()
    tier = TierBench(plan, QUICK_TIER if quick else FULL_TIER, tier_dir, daemon_src,
                     wrap_daemon)
    return asyncio.run(tier.run())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny run: 50 signals, one flood, no throughput ramp")
    parser.add_argument("--out", default=str(BENCH_DIR / "results"), help="output directory")
    parser.add_argument("--no-baseline", action="store_true", help="skip the vendor SDK")
    parser.add_argument("--no-plot", action="store_true", help="skip latency.png")
    parser.add_argument("--signals", type=int, help="signals per latency phase")
    parser.add_argument("--floods", help="comma-separated flood rates, e.g. 10000,50000")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--daemon-src", type=Path,
                        help="run lasersell_bot from this checkout (before/after comparisons)")
    parser.add_argument("--api-load", action="store_true",
                        help="add an idle phase with the control API under a status loop")
    parser.add_argument("--journal-durable", choices=("true", "false"),
                        help="set journal.durable in the daemon's config (default: leave it "
                             "out, so the daemon's default applies)")
    parser.add_argument("--wrap-daemon", default="",
                        help='profile the daemon, e.g. "py-spy record -o prof.svg --"')
    parser.add_argument("--no-tier", action="store_true", help="skip the tier phase")
    parser.add_argument("--tier-only", action="store_true",
                        help="only the tier phase (200 wallets, 20,000 positions)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.signals:
        plan = replace(plan, signals=args.signals)
    if args.floods:
        plan = replace(plan, flood_rates=tuple(int(r) for r in args.floods.split(",")))
    if args.api_load:
        plan = replace(plan, api_load=True)
    baseline = not args.no_baseline and not args.tier_only
    if baseline:
        ensure_venv(SDK_VENV, SDK_REQUIREMENT)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="lsb-bench-"))
    started = time.time()
    load_start = os.getloadavg()
    try:
        results: dict[str, Any] = {}
        if not args.tier_only:
            bench = Bench(plan, workdir, baseline, shlex.split(args.wrap_daemon),
                          args.daemon_src)
            if args.journal_durable:
                bench.journal_durable_line = f"durable = {args.journal_durable}"
            results = asyncio.run(bench.run())
        if not args.no_tier:
            results["tier"] = run_tier(plan, args.quick, workdir, args.daemon_src,
                                       shlex.split(args.wrap_daemon))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results["plan"] = asdict(plan)
    results["machine"] = machine_info(baseline)
    results["command"] = " ".join(shlex.quote(a) for a in
                                  ["python", "-m", "bench.run", *(argv or sys.argv[1:])])
    results["seconds"] = round(time.time() - started, 1)
    results["loadavg"] = {"start": load_start, "end": os.getloadavg()}
    results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (out_dir / "latest.json").write_text(json.dumps(results))
    plot = None
    if not args.no_plot and "ours" in results:
        plot_python = ensure_venv(PLOT_VENV, PLOT_REQUIREMENT)
        plot = out_dir / "latency.png"
        subprocess.run([str(plot_python), "-m", "bench.plot", str(out_dir / "latest.json"),
                        str(plot)], cwd=REPO_DIR, check=True)
    (out_dir / "latest.md").write_text(render_markdown(results, plot.name if plot else None))
    print(f"bench: wrote {out_dir / 'latest.md'} in {results['seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
