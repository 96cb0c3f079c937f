"""``lasersell-bot demo``: the whole daemon against the built-in simulator, in a minute.

Starts a simulated LaserSell stream and a LiteSVM Solana chain on loopback, a
fresh keypair, and the real daemon with a real config file. Exits and buys go through
a LaserSell Router stand-in that takes a routing fee and pays referrers, as the real
service does, and every one is verified by simulation before it is signed. Plays a
take-profit, a stop-loss, a three-level ladder, a mirror buy, a hostile drain refused by
the static rules, a router exit paying a stranger and a direct DEX sell whose output
account is a stranger's (both refused on their simulated effects), checking each on the
chain. Exits 0 only if all of it happened.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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
from lasersell_bot.journal import JournalReader, render_table
from lasersell_bot.logs import configure_logging
from lasersell_bot.sim.txbuild import Hostile
from lasersell_bot.sim.world import LAMPORTS_PER_SOL, SimWorld
from lasersell_bot.wallet import Wallets

TOKENS = 1_000_000_000  # 1,000 tokens with 6 decimals
ENTRY_LAMPORTS = LAMPORTS_PER_SOL // 2
WATCHED_WALLET = str(Keypair().pubkey())
MIRROR_BUY_SOL = 0.25
STEP_TIMEOUT_S = 15.0


class DemoFailed(Exception):
    """A step of the demo did not happen in time."""


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


async def wait_until(what: str, predicate: Callable[[], bool],
                     timeout: float = STEP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out waiting for: {what}")
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- set-up


def write_keypair(directory: Path, keypair: Keypair) -> Path:
    path = directory / "demo-wallet.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(list(bytes(keypair)), out)
    return path


def write_config(directory: Path, world: SimWorld, keypair_path: Path) -> Path:
    config = {
        "stream": {"url": world.ws_url, "api_key": "demo-api-key", "api_url": world.api_url,
                   "ping_interval_sec": 5.0, "reconcile_sec": 1.0},
        "rpc": {"url": world.rpc_url},
        "wallets": [{"keypair_path": str(keypair_path), "label": "demo"}],
        "strategy": {"target_profit_pct": 30.0, "stop_loss_pct": 20.0},
        "send": {"mode": "helius_sender", "tip_lamports": 1_000_000,
                 "targets": ["rpc", "helius_sender"],
                 "helius_sender_url": world.rpc_url + "/fast",
                 "rebroadcast_interval_ms": 500, "confirm_poll_ms": 50},
        "mirror": {"enabled": True},
        "watch_wallets": [{"pubkey": WATCHED_WALLET, "label": "whale",
                           "auto_buy_sol": MIRROR_BUY_SOL}],
        "journal": {"path": str(directory / "journal.sqlite3")},
        "log": {"level": "info", "format": "console", "syslog_prefix": False},
        "http": {"listen": "off"},
        "daemon": {"shutdown_grace_sec": 5.0},
    }
    path = directory / "demo.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        tomli_w.dump(config, out)
    return path


# --------------------------------------------------------------------------- steps


class Demo:
    def __init__(self, world: SimWorld, daemon: Daemon, wallet: Pubkey) -> None:
        self.world = world
        self.daemon = daemon
        self.wallet = wallet
        self.refused: dict[str, str] = {}

    def closed(self, position_id: int) -> Callable[[], bool]:
        return lambda: not self.world.is_tracked(position_id)

    async def open(self, label: str) -> int:
        opened = await self.world.open_position(self.wallet, TOKENS, ENTRY_LAMPORTS)
        await wait_until(f"daemon tracks {label}",
                         lambda: self.daemon.session.position(opened.position_id) is not None)
        return opened.position_id

    async def walk(self, position_id: int, path: list[float]) -> None:
        for pct in path:
            if not self.world.is_tracked(position_id):
                return
            await self.world.set_profit_pct(position_id, pct)
            await asyncio.sleep(0.05)

    async def take_profit(self) -> None:
        say("Take-profit: a position rises past target_profit_pct = 30 %")
        pid = await self.open("the take-profit position")
        await self.walk(pid, [5, 12, 20, 27, 34])
        await wait_until("the take-profit sell to land and close the position", self.closed(pid))

    async def stop_loss(self) -> None:
        say("Stop-loss: a position falls past stop_loss_pct = 20 %")
        pid = await self.open("the stop-loss position")
        await self.walk(pid, [-4, -9, -15, -22])
        await wait_until("the stop-loss sell to land and close the position", self.closed(pid))

    async def ladder(self) -> None:
        say("Ladder: a per-position strategy sells 50 % at +20 %, half the rest at +40 %, "
            "all at +60 %")
        pid = await self.open("the ladder position")
        levels = [protocol.TakeProfitLevel(profit_pct=20.0, sell_pct=50.0),
                  protocol.TakeProfitLevel(profit_pct=40.0, sell_pct=50.0),
                  protocol.TakeProfitLevel(profit_pct=60.0, sell_pct=100.0)]
        self.daemon.set_position_strategy(pid, protocol.Strategy(
            target_profit_pct=0.0, stop_loss_pct=20.0, take_profit_levels=levels))
        await wait_until("the server to apply the ladder override",
                         lambda: self.world.stream.position(pid).strategy_override is not None)
        for pct, remaining in ((22, TOKENS // 2), (43, TOKENS // 4)):
            await self.walk(pid, [pct])
            await wait_until(f"the ladder level at +{pct - 2} % to land",
                             lambda r=remaining: self._tokens(pid) == r)  # type: ignore[misc]
        await self.walk(pid, [61])
        await wait_until("the last ladder level to land and close the position",
                         self.closed(pid))

    def _tokens(self, position_id: int) -> int | None:
        try:
            return self.world.stream.position(position_id).tokens
        except KeyError:
            return 0

    async def mirror_buy(self) -> Pubkey:
        say(f"Mirror buy: the watched wallet buys a token; we mirror it with "
            f"{MIRROR_BUY_SOL} SOL")
        mint = self.world.new_token(lamports_per_token=0.5)
        await self.world.mirror_buy(WATCHED_WALLET, mint, self.wallet,
                                    round(MIRROR_BUY_SOL * LAMPORTS_PER_SOL))
        account = self.world.chain.token_account(self.wallet, mint)
        await wait_until("the mirror buy to land on chain",
                         lambda: self.world.chain.token_balance(account) > 0)
        await wait_until("mirror_buy_result to reach the server",
                         lambda: any(r.success for _, r in self.world.stream.mirror_results))
        return mint

    async def theft_refused(self, variant: Hostile, reason: str, story: str) -> None:
        """The next exit is built as ``variant``; the effects stage must refuse it for
        ``reason``, and the honest one asked for next must land."""
        say(story)
        pid = await self.open(f"the position targeted by {variant}")
        refusals = self.daemon.metrics.guard_refusals
        before = refusals.get(reason)
        self.world.factory.arm_hostile_once(variant)
        await self.walk(pid, [10, 20, 34])
        await wait_until(f"the guard to refuse it as {reason}",
                         lambda: refusals.get(reason) > before)
        await wait_until("the honest retry to land and close the position", self.closed(pid))
        self.refused[variant] = reason

    async def router_exit_verified(self) -> None:
        """The take-profit above went through the router; show what the guard saw."""
        verdicts = self.daemon.metrics.guard_verdicts
        programs = self.daemon.metrics.guard_unknown_programs.values
        if not verdicts.get("simulated", "accepted"):
            raise DemoFailed("no exit was verified by simulation")
        shown = ", ".join(p for (p,) in programs) or "none"
        print(f"  verified by simulation: {int(verdicts.get('simulated', 'accepted'))} "
              f"transactions; router program(s) seen: {shown}", flush=True)

    async def hostile(self) -> tuple[Pubkey, int]:
        say("Hostile transaction: an exit signal whose transaction drains 5 SOL to a "
            "stranger. The guard must refuse it; the daemon then asks for a fresh one.")
        pid = await self.open("the position targeted by the hostile signal")
        attacker = Keypair().pubkey()
        frame = protocol.encode(protocol.ExitSignalWithTx(
            session_id=self.world.stream.session_ids()[-1], position_id=pid,
            wallet_pubkey=str(self.wallet), mint=str(self._mint_of(pid)),
            position_tokens=TOKENS, profit_units=0, reason="stop_loss",
            triggered_at_ms=int(time.time() * 1000),
            unsigned_tx_b64=self._drain_tx(attacker, Pubkey.from_string(self._mint_of(pid)))))
        await self.world.stream.emit_raw(frame)
        await wait_until("the honest retry to land and close the position", self.closed(pid))
        return attacker, self.world.chain.balance(attacker)

    def _mint_of(self, position_id: int) -> str:
        return self.world.stream.position(position_id).mint

    def _drain_tx(self, attacker: Pubkey, mint: Pubkey) -> str:
        """Shaped like a sell (it names the mint) but sends 5 SOL to a stranger."""
        blockhash, _ = self.world.chain.latest_blockhash()
        program = self.world.chain.token_program_of(mint)
        message = MessageV0.try_compile(
            self.wallet,
            [set_compute_unit_limit(200_000),
             create_idempotent_associated_token_account(self.wallet, self.wallet, mint, program),
             transfer(TransferParams(from_pubkey=self.wallet, to_pubkey=attacker,
                                     lamports=5 * LAMPORTS_PER_SOL))],
            [], blockhash)
        unsigned = VersionedTransaction.populate(message, [Signature.default()])
        return base64.b64encode(bytes(unsigned)).decode()


# --------------------------------------------------------------------------- run


async def run_demo() -> int:
    with tempfile.TemporaryDirectory(prefix="lasersell-demo-") as tmp:
        try:
            return await _run(Path(tmp))
        except DemoFailed as exc:
            print(f"\nDEMO FAILED: {exc}", flush=True)
            return 1


async def _run(directory: Path) -> int:
    say("Starting the simulated LaserSell stream and a LiteSVM Solana chain on 127.0.0.1")
    async with SimWorld(slot_ms=50) as world:
        keypair = world.new_wallet(sol=10.0)
        wallet = keypair.pubkey()
        config_path = write_config(directory, world, write_keypair(directory, keypair))
        start_sol = world.chain.balance(wallet)
        say(f"Fresh wallet {wallet} funded with {start_sol / LAMPORTS_PER_SOL:.2f} SOL; "
            f"config written to {config_path}")
        cfg = load_config(config_path)
        configure_logging(cfg.log.level, cfg.log.format, cfg.log.syslog_prefix)
        daemon = Daemon(cfg, Wallets.load(cfg.wallets), config_path=str(config_path))
        task = asyncio.create_task(daemon.run(install_signal_handlers=False))
        try:
            await wait_until("the daemon to connect and configure",
                             lambda: daemon.stream.state.configured
                             and daemon.stream.state.connected)
            demo = Demo(world, daemon, wallet)
            await demo.take_profit()
            await demo.router_exit_verified()
            await demo.stop_loss()
            await demo.ladder()
            mint = await demo.mirror_buy()
            attacker, stolen = await demo.hostile()
            await demo.theft_refused(
                "proceeds_elsewhere", "effects_proceeds_too_low",
                "Router theft: an exit through the LaserSell Router whose proceeds go to a "
                "stranger. Simulation shows it; the guard refuses it and asks again.")
            await demo.theft_refused(
                "output_not_ours", "effects_proceeds_too_low",
                "DEX account swap: a direct Raydium CPMM sell whose output WSOL account is a "
                "stranger's. The DEX program would pay them; simulation shows it.")
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, 20)
        return _report(world, cfg.journal.path, wallet, start_sol, mint, attacker, stolen,
                       demo.refused)


def _report(world: SimWorld, journal_path: str, wallet: Pubkey, start_sol: int,
            mint: Pubkey, attacker: Pubkey, stolen: int, thefts: dict[str, str]) -> int:
    reader = JournalReader(journal_path)
    rows = reader.recent_trades(50)
    say("Journal (what `lasersell-bot journal` prints)")
    print(render_table(rows))
    refused = [r for r in rows if getattr(r, "state", "") == "refused"
               or "refused" in str(getattr(r, "guard_reason", ""))]
    end_sol = world.chain.balance(wallet)
    bought = world.chain.token_balance(world.chain.token_account(wallet, mint))
    say("Result")
    print(f"  wallet SOL: {start_sol / LAMPORTS_PER_SOL:.6f} -> {end_sol / LAMPORTS_PER_SOL:.6f} "
          f"({(end_sol - start_sol) / LAMPORTS_PER_SOL:+.6f}, after a "
          f"{MIRROR_BUY_SOL} SOL mirror buy)")
    print(f"  mirrored tokens held: {bought}")
    print(f"  lamports the hostile transaction moved to {attacker}: {stolen}")
    print(f"  guard refusals in the journal: {len(refused)}")
    for variant, reason in thefts.items():
        print(f"  refused on its simulated effects: {variant} ({reason})")
    ok = (stolen == 0 and bought > 0 and end_sol > start_sol - LAMPORTS_PER_SOL
          and set(thefts) == {"proceeds_elsewhere", "output_not_ours"})
    print("\nDEMO OK" if ok else "\nDEMO FAILED: final checks did not hold")
    return 0 if ok else 1
