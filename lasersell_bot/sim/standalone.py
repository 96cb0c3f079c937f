"""``lasersell-bot sim``: the simulated stream and local chain as a standalone server.

Prints the URLs to put in a config, then keeps a small market going for every
wallet a client configures: the wallet is funded once (so it can pay fees),
up to ``positions_per_wallet`` token positions are opened, and their prices
random-walk, so ``lasersell-bot run`` sees positions, PnL and exit signals.
"""

from __future__ import annotations

import asyncio
import random
import sys

from solders.pubkey import Pubkey

from lasersell_bot.logs import get_logger
from lasersell_bot.sim.world import LAMPORTS_PER_SOL, SimWorld

log = get_logger("sim")

TOKENS = 1_000_000_000
ENTRY_LAMPORTS = LAMPORTS_PER_SOL // 10
FUND_SOL = 10.0


class MarketMaker:
    """Keeps a few positions moving for each configured wallet."""

    def __init__(self, world: SimWorld, *, positions_per_wallet: int = 2,
                 step_pct: float = 4.0, rng: random.Random | None = None) -> None:
        self.world = world
        self.positions_per_wallet = positions_per_wallet
        self.step_pct = step_pct
        self.rng = rng or random.Random()
        self.funded: set[str] = set()
        self.profit: dict[int, float] = {}

    async def step(self) -> None:
        for wallet in sorted(self.world.stream.configured_wallets()):
            await self._serve_wallet(wallet)
        for position_id in list(self.profit):
            await self._move(position_id)

    async def _serve_wallet(self, wallet: str) -> None:
        key = Pubkey.from_string(wallet)
        if wallet not in self.funded:
            self.funded.add(wallet)
            self.world.chain.fund(key, round(FUND_SOL * LAMPORTS_PER_SOL))
            log.info("sim_wallet_funded", wallet=wallet, sol=FUND_SOL)
        while len(self.world.stream.positions_of(wallet)) < self.positions_per_wallet:
            opened = await self.world.open_position(key, TOKENS, ENTRY_LAMPORTS)
            self.profit[opened.position_id] = 0.0

    async def _move(self, position_id: int) -> None:
        if not self.world.is_tracked(position_id):
            del self.profit[position_id]
            return
        self.profit[position_id] += self.rng.uniform(-self.step_pct, self.step_pct * 1.1)
        await self.world.set_profit_pct(position_id, self.profit[position_id])


EXIT_PORT_IN_USE = 2


def config_lines(ws_url: str, api_url: str, rpc_url: str) -> list[str]:
    """The config sections that point ``lasersell-bot run`` at this simulator.

    The simulator's RPC also serves Helius Sender's ``/fast`` and ``/ping``, so
    ``send.mode = "helius_sender"`` works against it with the URL given here.
    """
    return [
        "[stream]",
        f'url = "{ws_url}"',
        f'api_url = "{api_url}"',
        'api_key = ""                # any key, or none, is accepted here',
        "",
        "[rpc]",
        f'url = "{rpc_url}"',
        "",
        "[send]",
        f'helius_sender_url = "{rpc_url}/fast"   # for mode "helius_sender"',
    ]


async def serve(host: str, port: int, interval_s: float = 1.0) -> int:
    """Run until cancelled (Ctrl-C); stream on ``port``, RPC on ``port + 1``.

    Returns 2 (after one line on stderr) when either port cannot be bound.
    """
    world = SimWorld(host=host, stream_port=port, rpc_port=port + 1, slot_ms=400)
    try:
        await world.start()
    except OSError as exc:
        await world.stop()
        print(f"lasersell-bot sim: cannot listen on {host}:{port} (stream) and "
              f"{host}:{port + 1} (rpc): {exc.strerror or exc}; choose another --port",
              file=sys.stderr)
        return EXIT_PORT_IN_USE
    try:
        print(f"stream url:  {world.ws_url}", flush=True)
        print(f"api url:     {world.api_url}", flush=True)
        print(f"rpc url:     {world.rpc_url}", flush=True)
        print("any api_key is accepted, an empty one too; wallets must register (the daemon "
              "does)", flush=True)
        print("config lines for lasersell-bot run (add [[wallets]] and [strategy]):", flush=True)
        for line in config_lines(world.ws_url, world.api_url, world.rpc_url):
            print(f"  {line}" if line else "", flush=True)
        maker = MarketMaker(world)
        while True:
            await asyncio.sleep(interval_s)
            await maker.step()
    finally:
        await world.stop()
