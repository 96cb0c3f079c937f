"""A whole simulated LaserSell + Solana on loopback, wired together.

``SimWorld`` owns a LiteSVM-backed ``SimChain`` with its JSON-RPC server, and a
``SimStreamServer`` whose exit and mirror-buy transactions are built against
that chain (``ChainTxFactory``). A balance watcher plays the part of the real
server's chain observer: when a sell lands, the position's token balance drops
on chain and the stream server is told (``set_balance``), which closes the
position or moves a ladder on; when a mirror buy lands, the new holding is
opened as a position. Prices are kept in step on both sides.

Knobs that tests and the demo set (each takes effect for the next transaction built):

* ``tx_shape``: ``"router"`` (the default, or ``$LASERSELL_SIM_TX_SHAPE``: the LaserSell
  Router wrapping the swap, fee and referrers), ``"router_lookup_table"``,
  ``"fee_transfers"`` (direct swap plus System fee transfers) or ``"direct"`` (the
  direct-DEX swap alone); see ``sim.txbuild``;
* ``hostile``: None (honest) or a theft: ``"proceeds_elsewhere"``, ``"delegate"``,
  ``"owner_change"``, ``"drain_holding"``, ``"drain_sol"`` (through the router) or
  ``"output_not_ours"`` (a direct Raydium CPMM exit paying someone else's WSOL account);
* ``router_tier``: ``"personal"`` (2 %, min 0.01 SOL), ``"professional"`` (0.9 %, min
  0.01 SOL) or ``"advanced"`` (0.5 %); ``referrers``: how many referrers (0-3) are paid.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from lasersell_bot.sim.chain import SimChain
from lasersell_bot.sim.router import MAX_REFERRERS, TIERS
from lasersell_bot.sim.rpc import SimRpcServer
from lasersell_bot.sim.stream_server import SimStreamServer
from lasersell_bot.sim.txbuild import ChainTxFactory, Hostile, TxShape

LAMPORTS_PER_SOL = 1_000_000_000


@dataclass
class _Holding:
    position_id: int
    wallet: Pubkey
    mint: Pubkey
    token_account: Pubkey
    tokens: int


@dataclass(frozen=True)
class OpenedPosition:
    position_id: int
    mint: Pubkey
    token_account: Pubkey


class SimWorld:
    """Chain, RPC and stream server on 127.0.0.1, with a balance watcher."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        stream_port: int = 0,
        rpc_port: int = 0,
        slot_ms: float = 100,
        api_keys: Collection[str] | None = None,
        require_registration: bool = True,
        watch_interval_s: float = 0.02,
        tx_shape: TxShape | None = None,
        router_tier: str = "personal",
    ) -> None:
        self.chain = SimChain()
        self.rpc = SimRpcServer(self.chain, slot_ms=slot_ms, host=host, port=rpc_port)
        self.factory = ChainTxFactory(self.chain, shape=tx_shape)
        self.router_tier = router_tier
        self.stream = SimStreamServer(
            host, stream_port, tx_factory=self.factory, api_keys=api_keys,
            require_registration=require_registration)
        self._watch_interval = watch_interval_s
        self._holdings: dict[int, _Holding] = {}
        self._expected_buys: dict[tuple[Pubkey, Pubkey], str] = {}
        self._watcher: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- knobs

    @property
    def tx_shape(self) -> TxShape:
        return self.factory.shape

    @tx_shape.setter
    def tx_shape(self, shape: TxShape) -> None:
        self.factory.shape = shape

    @property
    def hostile(self) -> Hostile | None:
        return self.factory.hostile

    @hostile.setter
    def hostile(self, variant: Hostile | None) -> None:
        self.factory.hostile = variant

    @property
    def router_tier(self) -> str:
        fees = self.chain.router_fees
        return next((name for name, tier in TIERS.items() if tier == fees), "custom")

    @router_tier.setter
    def router_tier(self, tier: str) -> None:
        if tier not in TIERS:
            raise ValueError(f"router_tier must be one of {sorted(TIERS)}")
        self.chain.router_fees = TIERS[tier]

    @property
    def referrers(self) -> int:
        return self.factory.referrers

    @referrers.setter
    def referrers(self, count: int) -> None:
        if not 0 <= count <= MAX_REFERRERS:
            raise ValueError(f"referrers must be 0..{MAX_REFERRERS}")
        self.factory.referrers = count

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self.rpc.start()
        await self.stream.start()
        self._watcher = asyncio.create_task(self._watch_balances())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.stream.stop()
        await self.rpc.stop()

    async def __aenter__(self) -> SimWorld:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def ws_url(self) -> str:
        return self.stream.ws_url

    @property
    def api_url(self) -> str:
        return self.stream.api_url

    @property
    def rpc_url(self) -> str:
        return self.rpc.url

    # ----------------------------------------------------------------- scenario

    def new_wallet(self, sol: float = 10.0) -> Keypair:
        keypair = Keypair()
        self.chain.fund(keypair.pubkey(), round(sol * LAMPORTS_PER_SOL))
        return keypair

    async def open_position(
        self, wallet: Pubkey, tokens: int, entry_lamports: int, *,
        market_type: str = "pump_swap",
    ) -> OpenedPosition:
        """Mint ``tokens`` of a new token to ``wallet`` and have the server track it."""
        mint = self.chain.create_mint()
        token_account = self.chain.mint_to(wallet, mint, tokens)
        self.chain.set_price(mint, entry_lamports / tokens)
        position_id = await self.stream.open_position(
            str(wallet), str(mint), tokens, entry_lamports,
            token_account=str(token_account), market_type=market_type)
        self._holdings[position_id] = _Holding(position_id, wallet, mint, token_account, tokens)
        return OpenedPosition(position_id, mint, token_account)

    async def set_profit_pct(self, position_id: int, profit_pct: float) -> None:
        """Move the token's price so the position shows ``profit_pct``, on both sides."""
        holding = self._holdings[position_id]
        position = self.stream.position(position_id)
        entry_price = position.entry_quote_units / position.initial_tokens
        self.chain.set_price(holding.mint, entry_price * (100.0 + profit_pct) / 100.0)
        await self.stream.set_profit_pct(position_id, profit_pct)

    def new_token(self, lamports_per_token: float) -> Pubkey:
        mint = self.chain.create_mint()
        self.chain.set_price(mint, lamports_per_token)
        return mint

    async def mirror_buy(self, watched_wallet: str, mint: Pubkey, user_wallet: Pubkey,
                         lamports: int) -> None:
        """The watched wallet bought ``mint``: send the user a mirror-buy signal."""
        self._expected_buys[(user_wallet, mint)] = watched_wallet
        await self.stream.emit_mirror_buy(watched_wallet, str(mint), str(user_wallet), lamports)

    def is_tracked(self, position_id: int) -> bool:
        """Whether both sides still track the position; a client's ``close_position``
        ends it on the server side only, so the holding is forgotten here too."""
        if position_id in self._holdings and not self.stream.tracks(position_id):
            del self._holdings[position_id]
        return position_id in self._holdings

    # ----------------------------------------------------------------- balance watcher

    async def _watch_balances(self) -> None:
        while True:
            await asyncio.sleep(self._watch_interval)
            await self._sync_sells()
            await self._sync_buys()

    async def _sync_sells(self) -> None:
        for holding in list(self._holdings.values()):
            balance = self.chain.token_balance(holding.token_account)
            if balance == holding.tokens:
                continue
            holding.tokens = balance
            if balance == 0:
                del self._holdings[holding.position_id]
            with contextlib.suppress(KeyError):
                await self.stream.set_balance(holding.position_id, balance)

    async def _sync_buys(self) -> None:
        for (wallet, mint), watched in list(self._expected_buys.items()):
            token_account = self.chain.token_account(wallet, mint)
            tokens = self.chain.token_balance(token_account)
            if tokens == 0:
                continue
            del self._expected_buys[(wallet, mint)]
            price = self.chain.price(mint) or 0.0
            position_id = await self.stream.open_position(
                str(wallet), str(mint), tokens, round(tokens * price),
                token_account=str(token_account), mirror_source=watched)
            self._holdings[position_id] = _Holding(position_id, wallet, mint, token_account,
                                                   tokens)
