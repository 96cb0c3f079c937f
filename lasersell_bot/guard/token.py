"""Rules for SPL Token / Token-2022 and Associated Token Account instructions.

Token instructions use a u8 discriminant and share the base instruction set across both
programs. What we sign with our wallet as authority may move our tokens only to our own
accounts (or, with effects verification on, WSOL / USD1 to a stranger as a routing fee,
bounded by the expectation's allowance); it may never delegate, change authority, burn,
mint, freeze or thaw. Accounts this transaction funds must become token accounts owned
by our wallet.
"""

from __future__ import annotations

from solders.pubkey import Pubkey

from lasersell_bot.guard.context import Ctx, Ix, u64
from lasersell_bot.guard.policy import (
    MAX_FUNDED_SPACE,
    TOKEN_ID,
    TOKEN_PROGRAM_IDS,
    USD1_ID,
    WSOL_ID,
    Verdict,
    refuse,
    rent_exempt_lamports,
)

SPL_ACCOUNT_SPACE = 165  # an SPL Token account

# initialize_account, get_account_data_size, initialize_immutable_owner, revoke,
# sync_native, amount_to_ui_amount, ui_amount_to_amount (and the account inits, below)
_TOKEN_HARMLESS = frozenset({5, 17, 21, 22, 23, 24})
# {tag: (reason, name, position of the authority account)}
_TOKEN_REFUSED = {
    4: ("token_approve", "approve", 2),
    13: ("token_approve", "approve_checked", 3),
    6: ("set_authority", "set_authority", 1),
    8: ("token_burn", "burn", 2),
    15: ("token_burn", "burn_checked", 2),
    7: ("token_mint_to", "mint_to", 2),
    14: ("token_mint_to", "mint_to_checked", 2),
    10: ("token_freeze", "freeze_account", 2),
    11: ("token_freeze", "thaw_account", 2),
}
_TOKEN_INITS = frozenset({1, 16, 18})  # initialize_account, _account2, _account3
# What may touch an account we funded before it is ours: its own initialisation as a
# token account, the immutable-owner extension, and the size query.
_FUNDED_ALLOWED = _TOKEN_INITS | {21, 22}


def check_token(ctx: Ctx, index: int, ix: Ix) -> Verdict | None:
    data = ix.data
    if not data:
        return refuse("undecodable", "token instruction without discriminant", index)
    tag = data[0]
    funded = ctx.key(ix, 0)
    if funded in ctx.funded and funded not in ctx.own_accounts and tag not in _FUNDED_ALLOWED:
        return refuse("funded_account_not_ours", f"token instruction {tag} on the account "
                       f"we funded ({funded}) instead of initialising it as ours", index)
    if tag in _TOKEN_REFUSED:
        reason, name, authority = _TOKEN_REFUSED[tag]
        if ctx.ours_from(ix, authority):
            return refuse(reason, f"token {name} with our wallet as authority", index)
        return None
    if tag == 3:
        return _transfer(ctx, index, ix, dest_pos=1, mint_pos=None, authority=2)
    if tag == 12:
        return _transfer(ctx, index, ix, dest_pos=2, mint_pos=1, authority=3)
    if tag == 9:
        return _close(ctx, index, ix)
    if tag in _TOKEN_INITS:
        return _init(ctx, index, ix, tag)
    if tag in _TOKEN_HARMLESS or not ctx.mentions_us(ix):
        return None
    return refuse("token_instruction_not_allowed",
                   f"token instruction {tag} mentions our wallet", index)


def _init(ctx: Ctx, index: int, ix: Ix, tag: int) -> Verdict | None:
    """An account we just created and funded must be initialised with us as its owner:
    otherwise its rent (and, in a buy, the wrapped SOL) belongs to someone else."""
    account = ctx.key(ix, 0)
    if account is None or account not in ctx.funded:
        return None
    if tag == 1:
        owner = ctx.key(ix, 2)
    else:
        owner = Pubkey.from_bytes(ix.data[1:33]) if len(ix.data) >= 33 else None
    mint = ctx.key(ix, 1)
    if owner == ctx.expect.wallet and mint is not None:
        ctx.own_accounts[account] = mint
        return None
    shown = owner if owner is not None else "a lookup-table, missing or truncated owner"
    return refuse("token_init_foreign_owner",
                   f"initialises the account we funded ({account}) for {shown}", index)


def _transfer(ctx: Ctx, index: int, ix: Ix, *, dest_pos: int,
              mint_pos: int | None, authority: int) -> Verdict | None:
    if not ctx.ours_from(ix, authority):
        return None
    dest = ctx.key(ix, dest_pos)
    program = ctx.keys[ix.program_id_index]
    if mint_pos is None:
        mints: tuple[Pubkey | None, ...] = (ctx.expect.mint, WSOL_ID, USD1_ID)
    else:
        mints = (ctx.key(ix, mint_pos),)
    if any(ctx.own_token_account(dest, m, program) for m in mints):
        return None
    if ctx.policy.verify_effects:
        fee = _fee_transfer(ctx, index, ix, program, mint_pos)
        if fee is not None:
            return fee if isinstance(fee, Verdict) else None
    shown = dest if dest is not None else "a lookup-table or missing account"
    return refuse("token_transfer_foreign",
                   f"token transfer from our wallet to {shown}, not our own account", index)


def _fee_transfer(ctx: Ctx, index: int, ix: Ix, program: Pubkey,
                  mint_pos: int | None) -> Verdict | bool | None:
    """A WSOL or USD1 transfer from our account to a stranger, counted as a routing fee.
    None: not such a transfer (the caller refuses it); True: counted; Verdict: over."""
    source = ctx.key(ix, 0)
    if mint_pos is None:
        wsol, usd1 = ctx.own_wsol(source), ctx.own_usd1(source, program)
    else:
        mint = ctx.key(ix, mint_pos)
        wsol, usd1 = mint == WSOL_ID, mint == USD1_ID
    if not (wsol or usd1) or len(ix.data) < 9:
        return None
    amount = u64(ix.data, 1)
    tally = ctx.tally
    if wsol:
        tally.fee_lamports += amount
        return over_fee_allowance(ctx, index) or True
    tally.fee_usd1 += amount
    if tally.fee_usd1 > ctx.expect.fee_allowance_usd1:
        return refuse("fee_too_large", f"USD1 sent to accounts not ours adds up to "
                       f"{tally.fee_usd1} > allowance {ctx.expect.fee_allowance_usd1}", index)
    return True


def over_fee_allowance(ctx: Ctx, index: int) -> Verdict | None:
    fee, allowance = ctx.tally.fee_lamports, ctx.expect.fee_allowance_lamports
    if fee > allowance:
        return refuse("fee_too_large", f"SOL and WSOL sent to accounts not ours add up to "
                       f"{fee} lamports > allowance {allowance}", index)
    return None


def _close(ctx: Ctx, index: int, ix: Ix) -> Verdict | None:
    if not ctx.ours_from(ix, 2) or ctx.ours(ix, 1):
        return None
    dest = ctx.key(ix, 1)
    shown = dest if dest is not None else "a lookup-table or missing account"
    return refuse("close_to_foreign", f"close_account sends rent to {shown}", index)


def check_ata(ctx: Ctx, index: int, ix: Ix) -> Verdict | None:
    tag = ix.data[0] if ix.data else 0
    if tag == 2:
        return None
    if tag not in (0, 1):
        return refuse("ata_instruction_unknown", f"ATA instruction {tag}", index)
    if not ctx.ours(ix, 0):
        return None
    token_program = ctx.key(ix, 5)
    if token_program not in TOKEN_PROGRAM_IDS:
        # The ATA program creates the account owned by whatever program is named here.
        return refuse("ata_foreign_token_program", f"we pay for an account the ATA program "
                       f"creates for {token_program}, which is not a token program", index)
    if ctx.ours(ix, 2):
        return None
    if ctx.policy.verify_effects:
        # A fee recipient's token account (e.g. the fee vault's WSOL or USD1 account): its
        # rent is paid to a stranger, so it counts as a routing fee (at most: a Token-2022
        # account's size depends on the mint's extensions).
        space = SPL_ACCOUNT_SPACE if token_program == TOKEN_ID else MAX_FUNDED_SPACE
        ctx.tally.fee_lamports += rent_exempt_lamports(space)
        return over_fee_allowance(ctx, index)
    return refuse("ata_foreign_owner", f"we pay for an ATA owned by {ctx.key(ix, 2)}", index)
