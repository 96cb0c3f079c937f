"""The tier phase of ``make bench``: the vendor's Advanced tier in one session.

200 wallets x 100 positions = 20,000 positions, ``pnl_flush_ms`` = 100: a
``pnl_update`` per position every 100 ms is 200,000 frames/s, and as many
``liquidity_snapshot`` (see ../shared/PROTOCOL.md, "Tiers and stream limits"). Its
own stream and RPC servers (``bench.stream_server --wallets-file``), the daemon with
200 ``[[wallets]]``; measured: spawn to ``configure``, RSS at configure and with
every position, the time to absorb 20,000 ``position_opened``, signal-to-wire idle
and under each flood (signals rotate over the 200 wallets), the frames the daemon
decoded, coalesced and dropped, and its largest garbage-collector pause.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solders.keypair import Keypair

from bench.common import rss_kib, write_keypair
from bench.run import Bench, Child, Plan
from bench.txtemplate import new_wallet_secret

_METRIC = re.compile(r'^(lasersell_bot_[a-z_]+)(?:\{(?:generation|le)="([^"]+)"\})? (\S+)$')


@dataclass(frozen=True)
class TierPlan:
    wallets: int = 200
    per_wallet: int = 100
    signals: int = 300
    # Idle uses the 100-position phases' schedule (Plan.gap_ms, 2-6 ms) so the two idle
    # figures compare; the floods use the 10-20 ms.
    gap_ms: tuple[float, float] = (10.0, 20.0)
    # (flood kind, frames/s): the tier's full PnL rate, then PnL + liquidity.
    floods: tuple[tuple[str, int], ...] = (("pnl", 200_000), ("pnl_liquidity", 400_000))
    startup_timeout_s: float = 400.0
    absorb_timeout_s: float = 120.0


FULL_TIER = TierPlan()
QUICK_TIER = TierPlan(wallets=20, per_wallet=5, signals=20, floods=(("pnl", 2_000),),
                      startup_timeout_s=60.0, absorb_timeout_s=30.0)


def _bucket_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """GC pauses during one phase: how many, how many over 2 ms, and the bucket bound of
    the longest (ms; "+Inf" beyond the last bound)."""
    if not after:
        return {}
    delta = {le: after[le] - before.get(le, 0.0) for le in after}
    bounds = sorted((le for le in delta if le != "+Inf"), key=float)
    longest = next((le for le in bounds if delta[le] == delta["+Inf"]), "+Inf")
    return {"pauses": delta["+Inf"], "over_2ms": delta["+Inf"] - delta.get("2", 0.0),
            "longest_at_most_ms": longest if delta["+Inf"] else "0"}


class TierBench(Bench):
    """A ``Bench`` whose servers and daemon config carry many wallets."""

    def __init__(self, plan: Plan, tier: TierPlan, workdir: Path,
                 daemon_src: Path | None = None, wrap_daemon: list[str] | None = None) -> None:
        super().__init__(plan, workdir, baseline=False, wrap_daemon=wrap_daemon or (),
                         daemon_src=daemon_src)
        self.tier = tier
        self.startup_timeout_s = tier.startup_timeout_s
        self.keypair_paths: list[Path] = []
        pubkeys = []
        for index in range(tier.wallets):
            secret = new_wallet_secret()
            path = workdir / f"tier-wallet-{index}.json"
            write_keypair(path, secret)
            self.keypair_paths.append(path)
            pubkeys.append(str(Keypair.from_bytes(secret).pubkey()))
        self.wallets_file = workdir / "tier-wallets.json"
        self.wallets_file.write_text(json.dumps(pubkeys))

    def write_config(self, stream_port: int, rpc_port: int, simulate: str = "always") -> Path:
        path = super().write_config(stream_port, rpc_port, simulate)
        text = path.read_text()
        one = f'[[wallets]]\nkeypair_path = "{self.keypair_path}"\nlabel = "bench"\n'
        many = "".join(f'[[wallets]]\nkeypair_path = "{p}"\nlabel = "tier-{i}"\n\n'
                       for i, p in enumerate(self.keypair_paths))
        assert one in text
        path.write_text(text.replace(one, many))
        return path

    async def run(self) -> dict[str, Any]:
        py = sys.executable
        wallets = ["--wallets-file", str(self.wallets_file)]
        self.rpc = Child("tier_rpc_server", [py, "-m", "bench.rpc_server", *wallets],
                         self.workdir, announces=True)
        self.stream = Child("tier_stream_server", [
            py, "-m", "bench.stream_server", *wallets,
            "--positions-per-wallet", str(self.tier.per_wallet)], self.workdir, announces=True)
        import aiohttp

        async with aiohttp.ClientSession() as self.http:
            try:
                return await self.measure()
            finally:
                for child in self.children:
                    child.stop()
                self.rpc.stop()
                self.stream.stop()

    async def measure(self) -> dict[str, Any]:
        tier = self.tier
        total = tier.wallets * tier.per_wallet
        child, startup_ms = await self.start_client("ours")
        configured = time.monotonic()
        out: dict[str, Any] = {"wallets": tier.wallets, "positions": total,
                               "startup_ms": startup_ms,
                               "rss_kib": {"at_configure": rss_kib(child.pid)}}
        print(f"bench: tier start-up {startup_ms / 1000:.2f} s with {tier.wallets} wallets",
              flush=True)
        out["absorb_s"] = await self.wait_for_positions(total, configured)
        print(f"bench: tier {total} positions absorbed in {out['absorb_s']:.2f} s", flush=True)
        await asyncio.sleep(self.plan.settle_s)
        out["rss_kib"]["with_positions"] = rss_kib(child.pid)
        runs = [("tier_idle", None, 0), *((f"tier_{k}_{r}", k, r) for k, r in tier.floods)]
        phases = []
        for label, kind, rate in runs:
            before = await self.pause_buckets()
            gap_ms = self.plan.gap_ms if kind is None else tier.gap_ms
            phases.append(await self.phase(child, "ours", label, tier.signals, flood_rate=rate,
                                           flood_kind=kind, gap_ms=gap_ms))
            out.setdefault("gc_during", {})[label] = _bucket_delta(
                before, await self.pause_buckets())
        out["rss_kib"]["after_phases"] = rss_kib(child.pid)
        out["gc"] = await self.gc_pauses()
        out["phases"] = {p.label: p.to_json() for p in phases}
        child.stop()
        out["log"] = str(child.log_path)
        return out

    async def wait_for_positions(self, total: int, since: float) -> float | None:
        """Seconds from configure until the daemon's open_positions gauge reads ``total``."""
        deadline = since + self.tier.absorb_timeout_s
        while time.monotonic() < deadline:
            values = await self.metric_values()
            if values.get(("lasersell_bot_open_positions", None), 0) >= total:
                return time.monotonic() - since
            await asyncio.sleep(0.05)
        return None

    async def pause_buckets(self) -> dict[str, float]:
        """Cumulative counts of the daemon's GC pause histogram, by upper bound (ms)."""
        return {le: v for (name, le), v in (await self.metric_values()).items()
                if name == "lasersell_bot_gc_pause_ms_bucket" and le is not None}

    async def metric_values(self) -> dict[tuple[str, str | None], float]:
        try:
            text = await self.metrics_text()
        except OSError:
            return {}
        values = {}
        for line in text.splitlines():
            match = _METRIC.match(line)
            if match:
                values[(match.group(1), match.group(2))] = float(match.group(3))
        return values

    async def gc_pauses(self) -> dict[str, dict[str, float]] | None:
        """Largest collector pause per generation so far (ms, wall and CPU), or None
        when the daemon does not export it."""
        values = await self.metric_values()
        pauses: dict[str, dict[str, float]] = {}
        for (name, gen), value in values.items():
            kind = {"lasersell_bot_gc_pause_max_ms": "wall",
                    "lasersell_bot_gc_pause_max_cpu_ms": "cpu"}.get(name)
            if kind and gen is not None:
                pauses.setdefault(kind, {})[gen] = value
        return pauses or None

