"""Unsigned swap transactions built the way the LaserSell server builds them.

The fee payer is the user's wallet, the only required signer; every signature
slot is zero-filled. Instructions, in order: SetComputeUnitLimit,
SetComputeUnitPrice, ATA ``create_idempotent`` for the wallet's token account
(creates it for a buy, a no-op for a sell: either way the mint and the token
account are among the static keys, as with a real DEX swap, which the guard
checks), the swap instruction that ``SimChain`` settles (``SWAP_INSTRUCTION_INDEX``),
then any fee transfers, and a System transfer to a tip account when tipping.

Shapes (``TxShape``, chosen per ``ChainTxFactory``; the default is ``router``, the real
service's shape; the environment variable ``LASERSELL_SIM_TX_SHAPE`` overrides it, e.g.
``LASERSELL_SIM_TX_SHAPE=direct make test`` runs every simulator-backed test with
direct-DEX swaps):

* ``router``: one top-level LaserSell Router instruction (``sim.router``)
  wrapping the swap, paying the routing fee to the fee vault and 1-3 referrers;
* ``router_lookup_table``: the same, with the pool, fee vault, referrers and DEX program
  loaded from an address lookup table the chain holds (v0 only);
* ``fee_transfers``: the direct-DEX swap memo followed by top-level System transfers of
  the routing fee to the fee vault and referrers (fee computed at build time from the
  current price);
* ``direct``: the direct-DEX swap memo alone (the simulator's historical shape).

``Hostile`` values make the factory build thefts: the router variants of ``sim.router``
(router-shaped whatever the shape; with ``router_lookup_table`` through a table),
and ``output_not_ours`` (exits only): a direct Raydium CPMM sell whose WSOL output
account belongs to someone else. The result is standard base64 of a v0 message, or a
legacy message with ``legacy=True``: the stream carries both. ``ChainTxFactory`` plugs
these builders into the simulated stream server (``sim.scenario.TxFactory``) and the
REST ``POST /v1/sell`` (``build_sell``).
"""

from __future__ import annotations

import base64
import math
import os
import random
from dataclasses import dataclass
from typing import Final, Literal, Protocol, get_args

from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import Instruction
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import create_idempotent_associated_token_account

from lasersell_bot.config import HELIUS_TIP_ACCOUNTS
from lasersell_bot.sim.chain import SimChain, SwapOrder, memo_instruction, quote
from lasersell_bot.sim.router import (
    DEFAULT_DRAIN_LAMPORTS,
    HOSTILE_VARIANTS,
    MAX_REFERRERS,
    NATIVE_MINT,
    PUMP_FUN_PROGRAM_ID,
    CpmmSwap,
    RouterAccounts,
    RouterOrder,
    Side,
    Variant,
    cpmm_instruction,
    router_instruction,
    split_fee,
)
from lasersell_bot.sim.routing import sim_address
from lasersell_bot.sim.scenario import SellQuote, SellRefused, derived_address

DEFAULT_CU_LIMIT: Final = 120_000
DEFAULT_CU_PRICE_MICRO_LAMPORTS: Final = 50_000
BPS_DENOMINATOR: Final = 10_000
SWAP_INSTRUCTION_INDEX: Final = 3
"""Where the swap memo sits; a failed swap reports ``InstructionError`` at this index."""


def min_out_for(tokens: int, price: float, slippage_bps: int) -> int:
    """The least lamports a sell of ``tokens`` at ``price`` may pay with that slippage."""
    return _less_slippage(quote("sell", tokens, price), slippage_bps)


def min_tokens_out_for(lamports_in: int, price: float, slippage_bps: int) -> int:
    """The fewest tokens a buy with ``lamports_in`` at ``price`` may return."""
    return _less_slippage(quote("buy", lamports_in, price), slippage_bps)


def _less_slippage(expected: int, slippage_bps: int) -> int:
    if not 0 <= slippage_bps <= BPS_DENOMINATOR:
        raise ValueError("slippage_bps must be within 0..10000")
    return math.floor(expected * (BPS_DENOMINATOR - slippage_bps) / BPS_DENOMINATOR)


def build_sell_tx(
    chain: SimChain,
    wallet: Pubkey,
    mint: Pubkey,
    tokens: int,
    min_out: int,
    tip_lamports: int = 0,
    tip_account: Pubkey | None = None,
    *,
    cu_price_micro_lamports: int = DEFAULT_CU_PRICE_MICRO_LAMPORTS,
    cu_limit: int = DEFAULT_CU_LIMIT,
    legacy: bool = False,
) -> str:
    """Base64 of an unsigned sell of ``tokens`` for at least ``min_out`` lamports."""
    return _swap_b64(
        chain, wallet, SwapOrder("sell", mint, tokens, min_out),
        _compute_budget(cu_limit, cu_price_micro_lamports),
        _tip(wallet, tip_lamports, tip_account), legacy,
    )


def build_buy_tx(
    chain: SimChain,
    wallet: Pubkey,
    mint: Pubkey,
    lamports_in: int,
    min_tokens_out: int,
    tip_lamports: int = 0,
    tip_account: Pubkey | None = None,
    *,
    cu_price_micro_lamports: int = DEFAULT_CU_PRICE_MICRO_LAMPORTS,
    cu_limit: int = DEFAULT_CU_LIMIT,
    legacy: bool = False,
) -> str:
    """Base64 of an unsigned buy with ``lamports_in`` for at least ``min_tokens_out``."""
    return _swap_b64(
        chain, wallet, SwapOrder("buy", mint, lamports_in, min_tokens_out),
        _compute_budget(cu_limit, cu_price_micro_lamports),
        _tip(wallet, tip_lamports, tip_account), legacy,
    )


def _swap_b64(
    chain: SimChain, wallet: Pubkey, order: SwapOrder, budget: list[Instruction],
    tip: list[Instruction], legacy: bool, fee_transfers: list[Instruction] | None = None,
) -> str:
    program = chain.token_program_of(order.mint)
    instructions = [
        *budget,
        create_idempotent_associated_token_account(wallet, wallet, order.mint, program),
        memo_instruction(order.memo(), wallet),
        *(fee_transfers or []),
        *tip,
    ]
    return _unsigned_b64(chain, wallet, instructions, legacy)


# --------------------------------------------------------------------------- router shapes


TxShape = Literal["router", "router_lookup_table", "fee_transfers", "direct"]
TX_SHAPES: Final[tuple[TxShape, ...]] = get_args(TxShape)
DEFAULT_TX_SHAPE: Final[TxShape] = "router"
TX_SHAPE_ENV: Final = "LASERSELL_SIM_TX_SHAPE"
Hostile = Literal[
    "proceeds_elsewhere", "delegate", "owner_change", "drain_holding", "drain_sol",
    "output_not_ours",
]
HOSTILE: Final[tuple[Hostile, ...]] = get_args(Hostile)
ATTACKER: Final = sim_address("sim-attacker")
"""Who receives what the hostile builds take."""


def default_tx_shape() -> TxShape:
    """``DEFAULT_TX_SHAPE``, or the shape named by ``$LASERSELL_SIM_TX_SHAPE``."""
    value = os.environ.get(TX_SHAPE_ENV) or DEFAULT_TX_SHAPE
    for shape in TX_SHAPES:
        if shape == value:
            return shape
    raise ValueError(f"{TX_SHAPE_ENV}={value!r}: expected one of {', '.join(TX_SHAPES)}")


@dataclass(frozen=True)
class RouterSwap:
    """One router-shaped swap to build: ``amount_in`` tokens (sell) or lamports (buy)."""

    side: Side
    wallet: Pubkey
    mint: Pubkey
    amount_in: int
    min_out: int
    pool: Pubkey
    referrers: int = MAX_REFERRERS
    variant: Variant = "honest"
    extra: Pubkey | None = None
    extra_lamports: int = 0


@dataclass(frozen=True)
class BuildOptions:
    """Compute budget, tip and message format of a built transaction."""

    tip_lamports: int = 0
    tip_account: Pubkey | None = None
    cu_price_micro_lamports: int = DEFAULT_CU_PRICE_MICRO_LAMPORTS
    cu_limit: int = DEFAULT_CU_LIMIT
    legacy: bool = False
    lookup_table: bool = False


def build_router_tx(chain: SimChain, swap: RouterSwap, options: BuildOptions = BuildOptions(),
                    ) -> str:
    """Base64 of an unsigned router-shaped sell or buy (the pool is created if missing;
    with ``options.lookup_table`` the pool, fee vault, referrers and DEX program come
    from a lookup table)."""
    chain.ensure_pool(swap.pool)
    program = chain.token_program_of(swap.mint)
    token_account = chain.token_account(swap.wallet, swap.mint)
    referrers = chain.referrers[:swap.referrers]
    accounts = RouterAccounts(swap.wallet, swap.mint, token_account, swap.pool,
                              chain.fee_vault, program, referrers, swap.extra)
    order = RouterOrder(swap.side, swap.amount_in, swap.min_out, swap.referrers,
                        swap.variant, swap.extra_lamports)
    instructions = [
        *_compute_budget(options.cu_limit, options.cu_price_micro_lamports),
        create_idempotent_associated_token_account(swap.wallet, swap.wallet, swap.mint,
                                                   program),
        router_instruction(order, accounts),
        *_tip(swap.wallet, options.tip_lamports, options.tip_account),
    ]
    tables: list[AddressLookupTableAccount] = []
    if options.lookup_table:
        addresses = [swap.pool, chain.fee_vault, *chain.referrers, PUMP_FUN_PROGRAM_ID]
        tables.append(AddressLookupTableAccount(chain.create_lookup_table(addresses),
                                                addresses))
    return _unsigned_b64(chain, swap.wallet, instructions, options.legacy, tables)


def fee_transfer_instructions(chain: SimChain, wallet: Pubkey, lamports: int,
                              referrers: int = MAX_REFERRERS) -> list[Instruction]:
    """System transfers paying the routing fee on ``lamports`` (fee vault, referrers)."""
    vault_share, shares = split_fee(chain.router_fees.fee(lamports), referrers)
    payees = [(chain.fee_vault, vault_share), *zip(chain.referrers, shares, strict=False)]
    return [transfer(TransferParams(from_pubkey=wallet, to_pubkey=to, lamports=amount))
            for to, amount in payees if amount > 0]


def build_cpmm_sell_tx(chain: SimChain, wallet: Pubkey, mint: Pubkey, tokens: int,
                       min_out: int, output_account: Pubkey | None = None,
                       options: BuildOptions = BuildOptions()) -> str:
    """Base64 of an unsigned direct Raydium CPMM sell paying WSOL to ``output_account``
    (default: our WSOL ATA, created idempotently in the same transaction)."""
    program = chain.token_program_of(mint)
    pool = derived_address("pool", "raydium_cpmm", str(mint))
    chain.ensure_pool(Pubkey.from_string(pool))
    our_wsol = chain.token_account(wallet, NATIVE_MINT)
    swap = CpmmSwap(wallet, Pubkey.from_string(pool), chain.token_account(wallet, mint),
                    output_account or our_wsol, mint, program, tokens, min_out)
    instructions = [
        *_compute_budget(options.cu_limit, options.cu_price_micro_lamports),
        create_idempotent_associated_token_account(wallet, wallet, NATIVE_MINT,
                                                   TOKEN_PROGRAM_ID),
        cpmm_instruction(swap, TOKEN_PROGRAM_ID),
        *_tip(wallet, options.tip_lamports, options.tip_account),
    ]
    return _unsigned_b64(chain, wallet, instructions, options.legacy)


def _compute_budget(cu_limit: int, cu_price_micro_lamports: int) -> list[Instruction]:
    return [set_compute_unit_limit(cu_limit), set_compute_unit_price(cu_price_micro_lamports)]


def _tip(wallet: Pubkey, tip_lamports: int, tip_account: Pubkey | None) -> list[Instruction]:
    """The tip transfer (none when ``tip_lamports`` is 0); a random Helius tip
    account unless one is given, as the server picks one per transaction."""
    if tip_lamports <= 0:
        return []
    to = tip_account or Pubkey.from_string(random.choice(HELIUS_TIP_ACCOUNTS))
    return [transfer(TransferParams(from_pubkey=wallet, to_pubkey=to, lamports=tip_lamports))]


def _unsigned_b64(
    chain: SimChain, payer: Pubkey, instructions: list[Instruction], legacy: bool,
    tables: list[AddressLookupTableAccount] | None = None,
) -> str:
    blockhash, _ = chain.latest_blockhash()
    message: Message | MessageV0
    if legacy and not tables:
        message = Message.new_with_blockhash(instructions, payer, blockhash)
    else:
        message = MessageV0.try_compile(payer, instructions, tables or [], blockhash)
    slots = [Signature.default()] * message.header.num_required_signatures
    tx = VersionedTransaction.populate(message, slots)
    return base64.b64encode(bytes(tx)).decode()


class _Holding(Protocol):
    @property
    def wallet(self) -> str: ...

    @property
    def mint(self) -> str: ...


class ChainTxFactory:
    """Signal transactions that settle on a ``SimChain`` (``sim.scenario.TxFactory``).

    ``min_out`` comes from the chain's current price less ``slippage_bps``; the
    tip goes in for ``helius_sender``, as the server builds it from ``configure``.
    ``shape`` picks the transaction shape (``TxShape``, default ``default_tx_shape()``),
    ``hostile`` a theft
    (``Hostile``, None = honest), ``referrers`` how many referrers a router trade pays.
    """

    def __init__(self, chain: SimChain, *, legacy: bool = False,
                 shape: TxShape | None = None, hostile: Hostile | None = None,
                 referrers: int = MAX_REFERRERS) -> None:
        self.chain = chain
        self.legacy = legacy
        self.shape: TxShape = shape or default_tx_shape()
        self.hostile: Hostile | None = hostile
        self.hostile_once = False
        self.referrers = referrers

    def arm_hostile_once(self, variant: Hostile) -> None:
        """The next exit or mirror buy built is ``variant``; every one after it is honest
        (so a daemon that refuses it and asks again gets an honest transaction)."""
        self.hostile, self.hostile_once = variant, True

    def _spend_hostile(self) -> None:
        if self.hostile_once:
            self.hostile, self.hostile_once = None, False

    def build_exit(
        self, position: _Holding, sell_tokens: int, slippage_bps: int, send_mode: str,
        tip_lamports: int,
    ) -> str:
        mint = Pubkey.from_string(position.mint)
        wallet = Pubkey.from_string(position.wallet)
        min_out = min_out_for(sell_tokens, self._price(mint), slippage_bps)
        options = self._options(send_mode, tip_lamports)
        if self.hostile == "output_not_ours":
            self._spend_hostile()
            theirs = self.chain.create_token_account(ATTACKER, NATIVE_MINT)
            return build_cpmm_sell_tx(self.chain, wallet, mint, sell_tokens, min_out, theirs,
                                      options)
        if self._direct():
            gross = quote("sell", sell_tokens, self._price(mint))
            return _swap_b64(
                self.chain, wallet, SwapOrder("sell", mint, sell_tokens, min_out),
                _compute_budget(options.cu_limit, options.cu_price_micro_lamports),
                _tip(wallet, options.tip_lamports, None), self.legacy,
                self._fee_transfers(wallet, gross))
        swap = RouterSwap("sell", wallet, mint, sell_tokens, min_out,
                          _pool_of(position, mint), self.referrers)
        return build_router_tx(self.chain, self._hostile(swap), options)

    def build_mirror_buy(
        self, user_wallet: str, mint: str, amount_lamports: int, slippage_bps: int,
        send_mode: str, tip_lamports: int,
    ) -> str:
        mint_key = Pubkey.from_string(mint)
        wallet = Pubkey.from_string(user_wallet)
        min_tokens = min_tokens_out_for(amount_lamports, self._price(mint_key), slippage_bps)
        options = self._options(send_mode, tip_lamports)
        if self._direct():
            return _swap_b64(
                self.chain, wallet, SwapOrder("buy", mint_key, amount_lamports, min_tokens),
                _compute_budget(options.cu_limit, options.cu_price_micro_lamports),
                _tip(wallet, options.tip_lamports, None), self.legacy,
                self._fee_transfers(wallet, amount_lamports))
        pool = Pubkey.from_string(derived_address("pool", "pump_swap", mint))
        swap = RouterSwap("buy", wallet, mint_key, amount_lamports, min_tokens, pool,
                          self.referrers)
        return build_router_tx(self.chain, self._hostile(swap), options)

    def build_sell(self, user_pubkey: str, mint: str, amount_tokens: int, slippage_bps: int,
                   send_mode: str = "rpc", tip_lamports: int = 0) -> SellQuote:
        """The ``POST /v1/sell`` transaction for a mint the user holds (SOL output)."""
        try:
            wallet, mint_key = Pubkey.from_string(user_pubkey), Pubkey.from_string(mint)
        except ValueError:
            raise SellRefused("invalid_pubkey: user_pubkey and mint must be base58 keys") from None
        try:
            held = self.chain.token_balance(self.chain.token_account(wallet, mint_key))
        except ValueError:
            raise SellRefused(f"unknown_mint: {mint} is not a token mint", 404) from None
        if self.chain.price(mint_key) is None:
            raise SellRefused(f"no_route: no market for {mint}", 404)
        if held < amount_tokens:
            raise SellRefused(f"insufficient_balance: {user_pubkey} holds {held} of {mint}")

        @dataclass
        class _Position:
            wallet: str
            mint: str

        tx = self.build_exit(_Position(user_pubkey, mint), amount_tokens, slippage_bps,
                             send_mode, tip_lamports)
        pool = derived_address("pool", "pump_swap", mint)
        return SellQuote(tx, "pump_swap", pool)

    def _direct(self) -> bool:
        """A direct-DEX build: a direct shape and no router theft (a router theft is
        always router-shaped, whatever the shape)."""
        return self.shape in ("direct", "fee_transfers") and self.hostile not in HOSTILE_VARIANTS

    def _options(self, send_mode: str, tip_lamports: int) -> BuildOptions:
        return BuildOptions(tip_lamports=_tip_for(send_mode, tip_lamports), legacy=self.legacy,
                            lookup_table=self.shape == "router_lookup_table")

    def _fee_transfers(self, wallet: Pubkey, lamports: int) -> list[Instruction]:
        if self.shape != "fee_transfers":
            return []
        return fee_transfer_instructions(self.chain, wallet, lamports, self.referrers)

    def _hostile(self, swap: RouterSwap) -> RouterSwap:
        """The swap with the configured theft (router variants only)."""
        variant = self.hostile
        if variant is None or variant not in HOSTILE_VARIANTS:
            return swap
        self._spend_hostile()
        extra = ATTACKER
        if variant == "proceeds_elsewhere" and swap.side == "buy":
            extra = self.chain.create_token_account(ATTACKER, swap.mint)
        elif variant == "drain_holding":
            extra = self._other_holding(swap.wallet, swap.mint)
        drain = 0
        if variant == "drain_sol":
            # A drainer takes what it can: half the wallet, never less than the default.
            drain = max(DEFAULT_DRAIN_LAMPORTS, self.chain.balance(swap.wallet) // 2)
        return RouterSwap(swap.side, swap.wallet, swap.mint, swap.amount_in, swap.min_out,
                          swap.pool, swap.referrers, variant, extra, drain)

    def _other_holding(self, wallet: Pubkey, mint: Pubkey) -> Pubkey:
        """A token account of ``wallet`` for another mint, holding tokens (one is
        minted to it if it has none)."""
        for account in self.chain.token_accounts_of(wallet):
            state = self.chain.token_state(account)
            if state is not None and state.mint != mint and state.amount > 0:
                return account
        other = self.chain.create_mint()
        return self.chain.mint_to(wallet, other, 1_000_000)

    def _price(self, mint: Pubkey) -> float:
        price = self.chain.price(mint)
        if price is None:
            raise ValueError(f"no price set for mint {mint}")
        return price


def _pool_of(position: _Holding, mint: Pubkey) -> Pubkey:
    """The pool the server routes through: the position's market, else pump_swap."""
    context = getattr(position, "market_context", None)
    market_type = getattr(context, "market_type", None) or "pump_swap"
    return Pubkey.from_string(derived_address("pool", market_type, str(mint)))


def _tip_for(send_mode: str, tip_lamports: int) -> int:
    return tip_lamports if send_mode == "helius_sender" else 0
