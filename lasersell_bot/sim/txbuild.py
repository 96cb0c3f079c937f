"""Unsigned swap transactions built the way the LaserSell server builds them.

The fee payer is the user's wallet, the only required signer; every signature
slot is zero-filled. Instructions, in order: SetComputeUnitLimit,
SetComputeUnitPrice, ATA ``create_idempotent`` for the wallet's token account
(creates it for a buy, a no-op for a sell: either way the mint and the token
account are among the static keys, as with a real DEX swap, which the guard
checks), the swap memo that ``SimChain`` settles (``SWAP_INSTRUCTION_INDEX``),
and a System transfer to a tip account when tipping.
The result is standard base64 of a v0 message (no lookup tables), or a legacy
message with ``legacy=True``: the stream carries both. ``ChainTxFactory`` plugs
these builders into the simulated stream server (``sim.scenario.TxFactory``).
"""

from __future__ import annotations

import base64
import math
import random
from typing import Final, Protocol

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import Instruction
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from spl.token.instructions import create_idempotent_associated_token_account

from lasersell_bot.config import HELIUS_TIP_ACCOUNTS
from lasersell_bot.sim.chain import SimChain, SwapOrder, memo_instruction, quote

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
    tip: list[Instruction], legacy: bool,
) -> str:
    program = chain.token_program_of(order.mint)
    instructions = [
        *budget,
        create_idempotent_associated_token_account(wallet, wallet, order.mint, program),
        memo_instruction(order.memo(), wallet),
        *tip,
    ]
    return _unsigned_b64(chain, wallet, instructions, legacy)


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
    chain: SimChain, payer: Pubkey, instructions: list[Instruction], legacy: bool
) -> str:
    blockhash, _ = chain.latest_blockhash()
    message: Message | MessageV0
    if legacy:
        message = Message.new_with_blockhash(instructions, payer, blockhash)
    else:
        message = MessageV0.try_compile(payer, instructions, [], blockhash)
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
    """

    def __init__(self, chain: SimChain, *, legacy: bool = False) -> None:
        self.chain = chain
        self.legacy = legacy

    def build_exit(
        self, position: _Holding, sell_tokens: int, slippage_bps: int, send_mode: str,
        tip_lamports: int,
    ) -> str:
        mint = Pubkey.from_string(position.mint)
        min_out = min_out_for(sell_tokens, self._price(mint), slippage_bps)
        return build_sell_tx(
            self.chain, Pubkey.from_string(position.wallet), mint, sell_tokens, min_out,
            _tip_for(send_mode, tip_lamports), legacy=self.legacy,
        )

    def build_mirror_buy(
        self, user_wallet: str, mint: str, amount_lamports: int, slippage_bps: int,
        send_mode: str, tip_lamports: int,
    ) -> str:
        mint_key = Pubkey.from_string(mint)
        min_tokens = min_tokens_out_for(amount_lamports, self._price(mint_key), slippage_bps)
        return build_buy_tx(
            self.chain, Pubkey.from_string(user_wallet), mint_key, amount_lamports, min_tokens,
            _tip_for(send_mode, tip_lamports), legacy=self.legacy,
        )

    def _price(self, mint: Pubkey) -> float:
        price = self.chain.price(mint)
        if price is None:
            raise ValueError(f"no price set for mint {mint}")
        return price


def _tip_for(send_mode: str, tip_lamports: int) -> int:
    return tip_lamports if send_mode == "helius_sender" else 0
