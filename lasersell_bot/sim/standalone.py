"""``lasersell-bot sim``: the simulated stream and local chain as a standalone server.

Prints the URLs to put in a config, then keeps a small market going for every
wallet a client configures: the wallet is funded once (so it can pay fees),
up to ``positions_per_wallet`` token positions are opened, and their prices
random-walk, so ``lasersell-bot run`` sees positions, PnL and exit signals.
A watch-wallet entry with ``auto_buy`` gets one mirror buy of a new token (the
watched wallet "bought" it); once it lands, the holding is a position like the others.

Ports: the stream (and REST API) on ``port``, the RPC on ``port + 1`` and the
RPC's websocket on ``port + 2`` (web3.js looks at RPC port + 1). ``api_port``
serves the REST API on a second port too: the vendor SDKs' local mode expects
``http://localhost:8080`` beside ``ws://localhost:8082/v1/ws``.
"""

from __future__ import annotations

import asyncio
import random
import sys
from dataclasses import dataclass

from solders.pubkey import Pubkey

from lasersell_bot.logs import get_logger
from lasersell_bot.sim.world import LAMPORTS_PER_SOL, SimWorld

log = get_logger("sim")

TOKENS = 1_000_000_000
ENTRY_LAMPORTS = LAMPORTS_PER_SOL // 10
FUND_SOL = 10.0
VENDOR_LOCAL_STREAM_PORT = 8082
VENDOR_LOCAL_API_PORT = 8080


@dataclass(frozen=True)
class SimOptions:
    """What ``lasersell-bot sim`` was asked for."""

    host: str = "127.0.0.1"
    port: int = VENDOR_LOCAL_STREAM_PORT
    api_port: int | None = None
    hello_after_configure: bool = False
    interval_s: float = 1.0
    slot_ms: float = 400


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
        self.mirrored: set[tuple[str, str]] = set()

    async def step(self) -> None:
        for wallet in sorted(self.world.stream.configured_wallets()):
            await self._serve_wallet(wallet)
        for watched, buyer, lamports in sorted(self.world.stream.auto_buys()):
            await self._mirror(watched, buyer, lamports)
        for position_id in list(self.profit):
            await self._move(position_id)

    def _fund(self, wallet: str) -> Pubkey:
        key = Pubkey.from_string(wallet)
        if wallet not in self.funded:
            self.funded.add(wallet)
            self.world.chain.fund(key, round(FUND_SOL * LAMPORTS_PER_SOL))
            log.info("sim_wallet_funded", wallet=wallet, sol=FUND_SOL)
        return key

    async def _serve_wallet(self, wallet: str) -> None:
        key = self._fund(wallet)
        for position_id in self.world.stream.positions_of(wallet):
            if position_id not in self.profit and self.world.is_tracked(position_id):
                self.profit[position_id] = 0.0  # e.g. a mirror buy that landed
        while len(self.world.stream.positions_of(wallet)) < self.positions_per_wallet:
            opened = await self.world.open_position(key, TOKENS, ENTRY_LAMPORTS)
            self.profit[opened.position_id] = 0.0

    async def _mirror(self, watched: str, buyer: str, lamports: int) -> None:
        """One mirror buy per (watched wallet, buyer): a new token at the entry price."""
        if (watched, buyer) in self.mirrored:
            return
        self.mirrored.add((watched, buyer))
        key = self._fund(buyer)
        mint = self.world.new_token(ENTRY_LAMPORTS / TOKENS)
        log.info("sim_mirror_buy", watched_wallet=watched, wallet=buyer, mint=str(mint),
                 lamports=lamports)
        await self.world.mirror_buy(watched, mint, key, lamports)

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


async def serve(options: SimOptions) -> int:
    """Run until cancelled (Ctrl-C); stream on ``port``, RPC on ``port + 1``.

    Returns 2 (after one line on stderr) when a port cannot be bound.
    """
    rpc_port = options.port + 1 if options.port else 0
    world = SimWorld(host=options.host, stream_port=options.port, rpc_port=rpc_port,
                     slot_ms=options.slot_ms)
    world.stream.api_port = options.api_port
    world.stream.hello_after_configure = options.hello_after_configure
    try:
        await world.start()
    except OSError as exc:
        await world.stop()
        print(f"lasersell-bot sim: cannot listen on {options.host}:{options.port} (stream) "
              f"and {options.host}:{rpc_port} (rpc): {exc.strerror or exc}; choose another "
              "--port", file=sys.stderr)
        return EXIT_PORT_IN_USE
    try:
        print(f"stream url:  {world.ws_url}", flush=True)
        print(f"api url:     {world.api_url}", flush=True)
        print(f"rpc url:     {world.rpc_url}", flush=True)
        print(f"rpc ws url:  {world.rpc.ws_url}", flush=True)
        print("any api_key is accepted, an empty one too; wallets must register (the daemon "
              "does)", flush=True)
        print("config lines for lasersell-bot run (add [[wallets]] and [strategy]):", flush=True)
        for line in config_lines(world.ws_url, world.api_url, world.rpc_url):
            print(f"  {line}" if line else "", flush=True)
        maker = MarketMaker(world)
        while True:
            await asyncio.sleep(options.interval_s)
            await maker.step()
    finally:
        await world.stop()
