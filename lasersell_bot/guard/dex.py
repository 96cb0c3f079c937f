"""Rules for the built-in DEX programs: only known trade instructions, of the signal's mint.

Each DEX has an allowlist of trade discriminators (Anchor: ``sha256("global:<name>")[:8]``).
Any other instruction of a built-in DEX (pool creation, deposits, withdrawals, admin) is
refused: a transaction we sign only trades (pump.fun and PumpSwap may also initialise or
sync our own user volume accumulator). For each trade the guard reads which mint it
sells and which it buys (from the instruction's mint accounts and, where the program
decides the direction from the input token account, from which of our accounts is the
input), then:

* an exit may sell the signal's mint into a quote asset (SOL / WSOL, USD1, USDC), or,
  with effects verification on, convert between quote assets (a SOL-paired coin sold for
  USD1); it never buys a coin and never sells another position;
* a mirror buy may buy the signal's mint (or a quote asset) with a quote asset; the most
  SOL / WSOL each buy may take (its ``max_sol_cost`` / ``amount_in`` / ...) counts as spend.
  A buy paid with USD1 or USDC cannot be bounded in lamports: refused unless effects
  verification is on.

Sources for the layouts (account positions and argument offsets):
pump.fun and PumpSwap: the public IDLs, github.com/pump-fun/pump-public-docs ``idl/pump.json``
and ``idl/pump_amm.json`` (commit 1b822158844a60ca577df6ca122211b595a1a578, May 2026):
``buy`` 66063d1201daebea (amount, max_sol_cost), ``buy_exact_sol_in`` 38fc74089edfcd5f
(spendable_sol_in, min_tokens_out), ``buy_v2`` b817ee6167c5d33d (amount, max_sol_cost),
``buy_exact_quote_in_v2`` c2ab1c46684d5b2f (spendable_quote_in, min_tokens_out), ``sell``
33e685a4017f83ad, ``sell_v2`` 5df6823ce7e940b2; the v2 forms name base_mint (1),
quote_mint (2) and user (13). PumpSwap ``buy`` (base_amount_out, max_quote_amount_in),
``buy_exact_quote_in`` c62e1552b4d9e870 (spendable_quote_in, ...), ``sell``; base_mint (3),
quote_mint (4). Raydium LaunchLab ``buy_exact_in`` / ``buy_exact_out`` / ``sell_exact_in``
/ ``sell_exact_out`` (base mint 9, quote mint 10), Raydium CPMM ``swap_base_input`` /
``swap_base_output`` (input mint 10, output mint 11), Meteora DBC ``swap`` / ``swap2``
(input account 3, base mint 7, quote mint 8, token programs 10, 11) and DAMM v2 ``swap`` /
``swap2`` (input account 2, mints 6, 7, token programs 9, 10): their published Anchor IDLs;
``swap2`` takes (amount_0, amount_1, swap_mode) and, in ExactOut mode (2), amount_1 is the
maximum input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from solders.pubkey import Pubkey

from lasersell_bot.guard.context import Ctx, Ix, u64
from lasersell_bot.guard.policy import (
    METEORA_DAMM_V2_PROGRAM,
    METEORA_DBC_PROGRAM,
    PUMP_FUN_PROGRAM,
    PUMP_SWAP_PROGRAM,
    RAYDIUM_CPMM_PROGRAM,
    RAYDIUM_LAUNCHPAD_PROGRAM,
    SYSTEM_ID,
    USD1_ID,
    WSOL_ID,
    Verdict,
    refuse,
)

USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
# Native SOL (pump.fun v1 curves, and v2 curves whose quote is the default key) or WSOL.
SOL_QUOTES = frozenset({WSOL_ID, SYSTEM_ID})
QUOTE_ASSETS = SOL_QUOTES | {USD1_ID, Pubkey.from_string(USDC_MINT)}

# buy: bought = base, sold = quote; sell: the reverse; mints: sold = first, bought = second;
# accounts: the input token account says which of the two mints is sold.
Direction = Literal["buy", "sell", "mints", "accounts"]


@dataclass(frozen=True, slots=True)
class TradeForm:
    """One trade instruction of one DEX: where its mints are and its maximum input."""

    name: str
    direction: Direction
    base: int  # account position of the base (or input) mint
    quote: int | None  # position of the quote (or output) mint; None = native SOL
    max_in: int = 8  # offset of the u64 maximum input (of the sold side)
    data_len: int = 24
    input_account: int = 0  # "accounts" direction: position of the input token account
    programs: tuple[int, int] = (0, 0)  # "accounts": token programs of (base, quote)
    exact_out_mode: int | None = None  # swap2: offset of swap_mode; ExactOut (2) -> offset 16


def _anchor(name: str) -> bytes:
    return hashlib.sha256(f"global:{name}".encode()).digest()[:8]


def _forms(*forms: TradeForm) -> dict[bytes, TradeForm]:
    return {_anchor(f.name): f for f in forms}


def _meteora(base: int, inp: int, programs: tuple[int, int]) -> dict[bytes, TradeForm]:
    return _forms(
        TradeForm("swap", "accounts", base, base + 1, input_account=inp, programs=programs),
        TradeForm("swap2", "accounts", base, base + 1, data_len=25, input_account=inp,
                  programs=programs, exact_out_mode=24))


TRADES: dict[Pubkey, dict[bytes, TradeForm]] = {
    Pubkey.from_string(PUMP_FUN_PROGRAM): _forms(
        TradeForm("buy", "buy", 2, None, max_in=16),
        TradeForm("buy_exact_sol_in", "buy", 2, None),
        TradeForm("buy_v2", "buy", 1, 2, max_in=16),
        TradeForm("buy_exact_quote_in_v2", "buy", 1, 2),
        TradeForm("sell", "sell", 2, None),
        TradeForm("sell_v2", "sell", 1, 2)),
    Pubkey.from_string(PUMP_SWAP_PROGRAM): _forms(
        TradeForm("buy", "buy", 3, 4, max_in=16),
        TradeForm("buy_exact_quote_in", "buy", 3, 4),
        TradeForm("sell", "sell", 3, 4)),
    Pubkey.from_string(RAYDIUM_LAUNCHPAD_PROGRAM): _forms(
        TradeForm("buy_exact_in", "buy", 9, 10, data_len=32),
        TradeForm("buy_exact_out", "buy", 9, 10, max_in=16, data_len=32),
        TradeForm("sell_exact_in", "sell", 9, 10, data_len=32),
        TradeForm("sell_exact_out", "sell", 9, 10, max_in=16, data_len=32)),
    Pubkey.from_string(RAYDIUM_CPMM_PROGRAM): _forms(
        TradeForm("swap_base_input", "mints", 10, 11),
        TradeForm("swap_base_output", "mints", 10, 11)),  # (max_amount_in, amount_out)
    Pubkey.from_string(METEORA_DBC_PROGRAM): _meteora(7, 3, (10, 11)),
    Pubkey.from_string(METEORA_DAMM_V2_PROGRAM): _meteora(6, 2, (9, 10)),
}


# Non-trade instructions a trade may need, harmless for our own user: pump.fun and
# PumpSwap keep a per-user volume accumulator (a PDA of our wallet that we pay rent for and
# can close). {program: {discriminator: position of the user account}}
_USER_VOLUME = {_anchor("init_user_volume_accumulator"): 1,
                _anchor("sync_user_volume_accumulator"): 0}
AUXILIARY: dict[Pubkey, dict[bytes, int]] = {
    Pubkey.from_string(PUMP_FUN_PROGRAM): _USER_VOLUME,
    Pubkey.from_string(PUMP_SWAP_PROGRAM): _USER_VOLUME,
}


def check_dex(ctx: Ctx, index: int, ix: Ix) -> Verdict | None:
    program = ctx.keys[ix.program_id_index]
    data = ix.data
    form = TRADES[program].get(bytes(data[:8]))
    if form is None:
        user = AUXILIARY.get(program, {}).get(bytes(data[:8]))
        if user is not None and ctx.ours(ix, user):
            return None
        return refuse("dex_instruction_unknown", f"{program} instruction "
                       f"{bytes(data[:8]).hex() or '(empty)'} is not a trade the guard knows",
                       index)
    if len(data) < form.data_len:
        return refuse("undecodable", f"{form.name} data is {len(data)} bytes", index)
    sides = _sides(ctx, ix, form)
    if isinstance(sides, Verdict):
        return refuse(sides.reason, sides.detail, index)
    sold, bought = sides
    return _judge(ctx, index, form, sold, bought, _max_in(form, data))


def _sides(ctx: Ctx, ix: Ix,
           form: TradeForm) -> tuple[Pubkey, Pubkey] | Verdict:
    """(sold mint, bought mint) of a trade; native SOL is the System program id."""
    base = ctx.key(ix, form.base)
    quote = SYSTEM_ID if form.quote is None else ctx.key(ix, form.quote)
    if base is None or quote is None:
        return refuse("trade_unverifiable", f"{form.name} names a mint the guard cannot "
                       "read (missing, or in a lookup table it was not given)")
    if form.direction in ("sell", "mints"):
        return base, quote
    if form.direction == "buy":
        return quote, base
    source = ctx.key(ix, form.input_account)
    base_program, quote_program = (ctx.key(ix, p) for p in form.programs)
    if ctx.own_token_account(source, base, base_program):
        return base, quote
    if ctx.own_token_account(source, quote, quote_program):
        return quote, base
    return refuse("trade_unverifiable", f"{form.name} input account {source} is not our "
                   f"token account for {base} or {quote}, so its direction is unknown")


def _max_in(form: TradeForm, data: bytes) -> int:
    if form.exact_out_mode is not None and data[form.exact_out_mode] == 2:
        return u64(data, 16)
    return u64(data, form.max_in)


def _judge(ctx: Ctx, index: int, form: TradeForm, sold: Pubkey, bought: Pubkey,
           max_in: int) -> Verdict | None:
    signal = ctx.expect.mint
    if ctx.expect.kind == "exit":
        if sold != signal and sold not in QUOTE_ASSETS:
            return refuse("wrong_mint_traded", f"an exit of {signal} sells {sold} "
                           f"({form.name})", index)
        if bought not in QUOTE_ASSETS:
            return refuse("exit_contains_buy", f"an exit buys {bought} ({form.name})", index)
        if sold != signal:
            # Converting SOL we hold (not only the proceeds) through a pool the server
            # picks can lose it all to a skewed pool: only its effects can vouch for it.
            if not ctx.policy.verify_effects:
                return refuse("trade_unverifiable", f"an exit converts {sold} into "
                               f"{bought} ({form.name}); only effects verification can "
                               "judge that", index)
            ctx.effects_only.setdefault("quote_conversion")
        return None
    if sold not in QUOTE_ASSETS:
        return refuse("wrong_mint_traded", f"a mirror buy of {signal} sells {sold} "
                       f"({form.name})", index)
    if bought != signal and bought not in QUOTE_ASSETS:
        return refuse("wrong_mint_traded", f"a mirror buy of {signal} buys {bought} "
                       f"({form.name})", index)
    if sold in SOL_QUOTES:
        ctx.tally.trade_in += max_in
    elif not ctx.policy.verify_effects:
        return refuse("buy_input_unverifiable", f"a mirror buy pays with {sold}, which the "
                       "static guard cannot bound in lamports", index)
    else:
        ctx.effects_only.setdefault("stable_coin_buy")
    return None


