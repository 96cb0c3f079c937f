"""Static pre-signing check of a server-built transaction: bytes and policy in, verdict out.

The LaserSell server builds every exit and mirror-buy transaction and we sign it with
the user's key. This module is what stands between a compromised server (or a
man-in-the-middle) and the user's wallet. It is pure: no I/O, no clock, no RPC.

What it checks, in order (the first failure wins and names the instruction index):

1. size <= ``max_tx_bytes``; the whole wire layout is well formed (no truncation, no
   trailing bytes, message version 0 or legacy), every program id is a static key, the
   signature count equals ``num_required_signatures``, and solders decodes it;
2. our wallet is a required signer, is the fee payer (static key 0) and is the *only*
   required signer. A second signer is refused by default: it can pre-fill or withhold
   its slot, so whoever holds that key decides if and when our signed transaction
   lands, and it can authorise instructions we cannot see the effect of;
3. a non-zero recent blockhash; the expected mint is among the static account keys;
4. every top-level instruction invokes an allowlisted program given as a static key
   (never a lookup-table-loaded key) and passes that program's rule:

   * System: transfers out of our wallet (``transfer``, ``transfer_with_seed`` with us
     as base) only to a tip account (their sum <= ``max_tip_lamports``), to ourselves,
     or, in a mirror buy, to our own WSOL ATA (counted as spend). ``assign``,
     ``allocate`` and every nonce instruction are refused (a nonce advance would make
     the transaction durable: the server could hold it and land it at any later time).
     Accounts we fund may hold at most the rent-exempt minimum of a token account
     (mirror buys may add the swap amount to a token-program account: counted as spend);
   * SPL Token / Token-2022 with our wallet as authority: ``transfer`` and
     ``transfer_checked`` only to our own ATA, no ``approve``, ``set_authority`` or
     ``burn``, ``close_account`` only to our wallet; unknown instructions that mention
     our wallet are refused;
     Accounts we create must be owned by an allowlisted program (System, the token
     programs, the DEXs), and a token account we create must be initialised for us;
   * Associated Token Account: we only pay for ATAs that we own, under a token program;
   * Compute Budget: unit price <= ``max_priority_fee`` micro-lamports/CU and total
     priority fee <= ``max_priority_fee_lamports``;
   * Memo: any text. DEX programs: trusted (see limits).

5. a mirror buy's visible SOL outlay (WSOL wraps, over-rent funding, pump.fun ``buy``
   ``max_sol_cost`` / ``buy_exact_sol_in`` amount, tips, priority fee) <= the agreed
   maximum; an exit must not contain a pump.fun buy.

Limits (what this cannot see without simulation): only top-level instructions are
inspected. What an allowlisted DEX program does by CPI with the accounts it is given
(where the bought tokens land, how much SOL it pulls through the system program) is
trusted to that program; so are its non-trading instructions. Accounts loaded through
address lookup tables have no known address here, so a transfer, token transfer or
close whose destination is lookup-table-loaded is refused. Token destinations are
recognised as ours only when they are the ATA derived for our wallet (position mint,
WSOL or USD1 for plain ``transfer``; the instruction's mint for ``transfer_checked``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from solders.instruction import CompiledInstruction
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from lasersell_bot.guard.layout import MalformedTransaction, read_layout
from lasersell_bot.guard.policy import (
    ACCEPTED,
    ATA_ID,
    COMPUTE_ID,
    DEFAULT_UNITS_PER_INSTRUCTION,
    MAX_COMPUTE_UNIT_LIMIT,
    MAX_FUNDED_SPACE,
    PUMP_FUN_ID,
    SYSTEM_ID,
    TOKEN_2022_ID,
    TOKEN_ID,
    TOKEN_PROGRAM_IDS,
    USD1_ID,
    WSOL_ID,
    ZERO_HASH,
    Expectation,
    GuardPolicy,
    Verdict,
    associated_token_address,
    priority_fee_lamports,
    refuse,
    rent_exempt_lamports,
)

_PUMP_BUY = bytes.fromhex("66063d1201daebea")  # sha256("global:buy")[:8]
_PUMP_BUY_EXACT_SOL_IN = bytes([56, 252, 116, 8, 158, 223, 205, 95])


# ---------------------------------------------------------------------------
# The check


@dataclass(slots=True)
class _Tally:
    tips: int = 0
    spend: int = 0
    cu_price: int = 0
    cu_price_ix: int | None = None
    cu_limit: int | None = None


@dataclass(slots=True)
class _Ctx:
    policy: GuardPolicy
    expect: Expectation
    keys: list[Pubkey]
    num_instructions: int
    tally: _Tally = field(default_factory=_Tally)
    funded: set[Pubkey] = field(default_factory=set)  # accounts we create in this tx

    def key(self, ix: CompiledInstruction, pos: int) -> Pubkey | None:
        """Account at ``pos`` of ``ix``; None if missing or loaded from a lookup table."""
        accounts = ix.accounts
        if pos >= len(accounts) or accounts[pos] >= len(self.keys):
            return None
        return self.keys[accounts[pos]]

    def ours(self, ix: CompiledInstruction, pos: int) -> bool:
        return self.key(ix, pos) == self.expect.wallet

    def ours_from(self, ix: CompiledInstruction, pos: int) -> bool:
        """Our wallet at ``pos`` or later (authority, or a multisig signer after it)."""
        return any(self.ours(ix, p) for p in range(pos, len(ix.accounts)))

    def mentions_us(self, ix: CompiledInstruction) -> bool:
        return self.ours_from(ix, 0)


def check_transaction(tx_bytes: bytes, policy: GuardPolicy, expect: Expectation,
                      tables: Mapping[Pubkey, Sequence[Pubkey]] | None = None) -> Verdict:
    """Decide whether ``tx_bytes`` may be signed by ``expect.wallet``. Never raises: an
    unexpected error inside a rule refuses the transaction (``guard_error``).

    ``tables`` holds the contents of address lookup tables (``guard.tables``) so that
    lookup-table-loaded keys are checked like static ones."""
    try:
        return _check(tx_bytes, policy, expect)
    except Exception as exc:
        return refuse("guard_error", f"{type(exc).__name__}: {exc}")


def _check(tx_bytes: bytes, policy: GuardPolicy, expect: Expectation) -> Verdict:
    if len(tx_bytes) > policy.max_tx_bytes:
        return refuse("tx_too_large", f"{len(tx_bytes)} bytes > {policy.max_tx_bytes}")
    shape = _check_shape(tx_bytes)
    if isinstance(shape, Verdict):
        return shape
    message = shape.message
    header = message.header
    ctx = _Ctx(policy, expect, list(message.account_keys), len(message.instructions))
    for precheck in (_check_signers(ctx, header.num_required_signatures),
                     _check_blockhash(bytes(message.recent_blockhash)),
                     _check_mint(ctx)):
        if precheck is not None:
            return precheck
    for index, ix in enumerate(message.instructions):
        verdict = _check_instruction(ctx, index, ix)
        if verdict is not None:
            return verdict
    totals = _check_totals(ctx)
    return totals if totals is not None else ACCEPTED


def _check_shape(tx_bytes: bytes) -> VersionedTransaction | Verdict:
    """Whole-layout walk (no trailing bytes), static program ids, then solders decode."""
    try:
        layout = read_layout(tx_bytes)
    except MalformedTransaction as exc:
        return refuse("undecodable", str(exc))
    for index, program in enumerate(layout.program_indexes):
        if program >= layout.num_static_keys:
            return refuse("lookup_table_program",
                           "program id is loaded from an address lookup table", index)
    if layout.num_signatures != layout.num_required_signatures:
        return refuse("undecodable", f"{layout.num_signatures} signatures for "
                       f"{layout.num_required_signatures} required signers")
    try:
        return VersionedTransaction.from_bytes(tx_bytes)
    except (ValueError, TypeError) as exc:
        return refuse("undecodable", str(exc))


def _check_signers(ctx: _Ctx, num_required: int) -> Verdict | None:
    wallet = ctx.expect.wallet
    if wallet not in ctx.keys[:num_required]:
        return refuse("wallet_not_signer", f"{wallet} is not a required signer")
    if ctx.keys[0] != wallet:
        return refuse("fee_payer_mismatch", f"fee payer is {ctx.keys[0]}, not {wallet}")
    if num_required > 1:
        others = ", ".join(str(k) for k in ctx.keys[1:num_required])
        return refuse("extra_signer", f"other required signers: {others}")
    return None


def _check_blockhash(blockhash: bytes) -> Verdict | None:
    if blockhash == ZERO_HASH:
        return refuse("missing_blockhash", "recent blockhash is all zeros")
    return None


def _check_mint(ctx: _Ctx) -> Verdict | None:
    if ctx.expect.mint not in ctx.keys:
        return refuse("mint_not_touched",
                       f"mint {ctx.expect.mint} is not among the static account keys")
    return None


def _check_instruction(ctx: _Ctx, index: int, ix: CompiledInstruction) -> Verdict | None:
    program = ctx.keys[ix.program_id_index]
    if program not in ctx.policy.programs:
        return refuse("program_not_allowed", f"program {program} is not allowlisted", index)
    rule = _RULES.get(program)
    return rule(ctx, index, ix) if rule is not None else None


def _check_totals(ctx: _Ctx) -> Verdict | None:
    tally = ctx.tally
    units = tally.cu_limit if tally.cu_limit is not None else min(
        MAX_COMPUTE_UNIT_LIMIT, DEFAULT_UNITS_PER_INSTRUCTION * ctx.num_instructions)
    fee = priority_fee_lamports(tally.cu_price, min(units, MAX_COMPUTE_UNIT_LIMIT))
    if fee > ctx.policy.max_priority_fee_lamports:
        return refuse("priority_fee_too_high", f"total priority fee {fee} lamports > "
                       f"{ctx.policy.max_priority_fee_lamports}", tally.cu_price_ix)
    if ctx.expect.kind == "mirror_buy":
        spend = tally.spend + tally.tips + fee
        if spend > ctx.expect.max_spend_lamports:
            return refuse("buy_amount_mismatch", f"visible SOL outlay {spend} lamports > "
                           f"agreed {ctx.expect.max_spend_lamports}")
    return None


# ---------------------------------------------------------------------------
# System program (u32 LE discriminant, bincode arguments)


_SYS_REFUSED = {
    1: ("system_assign", "assign"),
    4: ("nonce_advance", "advance_nonce_account"),
    5: ("nonce_withdraw", "withdraw_nonce_account"),
    6: ("nonce_initialize", "initialize_nonce_account"),
    7: ("nonce_authorize", "authorize_nonce_account"),
    8: ("system_allocate", "allocate"),
    9: ("system_allocate", "allocate_with_seed"),
    10: ("system_assign", "assign_with_seed"),
    12: ("nonce_upgrade", "upgrade_nonce_account"),
}


def _check_system(ctx: _Ctx, index: int, ix: CompiledInstruction) -> Verdict | None:
    data = ix.data
    if len(data) < 4:
        return refuse("undecodable", "system instruction without discriminant", index)
    tag = int.from_bytes(data[:4], "little")
    if tag in _SYS_REFUSED:
        reason, name = _SYS_REFUSED[tag]
        return refuse(reason, f"system {name} is never signed", index)
    try:
        if tag == 2:
            return _sol_out(ctx, index, ctx.ours(ix, 0), ctx.key(ix, 1), _u64(data, 4))
        if tag == 11:
            ours = ctx.ours(ix, 0) or ctx.ours(ix, 1)
            return _sol_out(ctx, index, ours, ctx.key(ix, 2), _u64(data, 4))
        if tag in (0, 3):
            return _check_create(ctx, index, ix, tag)
    except struct.error:
        return refuse("undecodable", "system instruction data too short", index)
    return refuse("system_instruction_unknown", f"system instruction {tag}", index)


def _u64(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<Q", data, offset)[0])


def _sol_out(ctx: _Ctx, index: int, ours: bool, dest: Pubkey | None,
             lamports: int) -> Verdict | None:
    """SOL leaving our wallet: only to a tip account, to ourselves, or a buy's WSOL ATA."""
    if not ours or dest == ctx.expect.wallet:
        return None
    tally = ctx.tally
    if dest in ctx.policy.tip_accounts:
        tally.tips += lamports
        if tally.tips > ctx.policy.max_tip_lamports:
            return refuse("tip_too_large", f"tips total {tally.tips} lamports > "
                           f"{ctx.policy.max_tip_lamports}", index)
        return None
    if dest is not None and ctx.expect.kind == "mirror_buy" and dest in _own_wsol(ctx):
        tally.spend += lamports
        return None
    shown = dest if dest is not None else "a lookup-table or missing account"
    return refuse("foreign_transfer", f"{lamports} lamports from our wallet to {shown}",
                   index)


def _own_wsol(ctx: _Ctx) -> tuple[Pubkey, Pubkey]:
    wallet = ctx.expect.wallet
    return (associated_token_address(wallet, WSOL_ID, TOKEN_ID),
            associated_token_address(wallet, WSOL_ID, TOKEN_2022_ID))


def _create_args(data: bytes, tag: int) -> tuple[int, int, Pubkey]:
    """(lamports, space, owner) of create_account (0) or create_account_with_seed (3)."""
    offset = 4
    if tag == 3:
        seed_len = _u64(data, 36)
        if seed_len > len(data):  # a u64 offset would overflow unpack_from (OverflowError)
            raise struct.error("seed longer than the instruction data")
        offset = 44 + seed_len
    lamports, space = struct.unpack_from("<QQ", data, offset)
    owner = data[offset + 16:offset + 48]
    if len(owner) != 32:
        raise struct.error("owner truncated")
    return int(lamports), int(space), Pubkey.from_bytes(owner)


def _check_create(ctx: _Ctx, index: int, ix: CompiledInstruction, tag: int) -> Verdict | None:
    if not ctx.ours(ix, 0):
        return None
    lamports, space, owner = _create_args(ix.data, tag)
    created = ctx.key(ix, 1)
    if created is not None:
        ctx.funded.add(created)
    excess = lamports - rent_exempt_lamports(min(space, MAX_FUNDED_SPACE))
    if excess > 0:
        if ctx.expect.kind != "mirror_buy" or owner not in TOKEN_PROGRAM_IDS:
            return refuse("create_account_overfunded", f"funds a new {owner}-owned account "
                           f"with {lamports} lamports ({excess} above rent-exempt)", index)
        ctx.tally.spend += excess
    if owner not in ctx.policy.programs:
        # The owning program may debit the account: what we put in would be its to take.
        return refuse("create_account_foreign_owner", f"funds a new account owned by "
                       f"{owner}, which is not an allowlisted program", index)
    return None


# ---------------------------------------------------------------------------
# SPL Token and Token-2022 (u8 discriminant; both share the base instruction set)

_TOKEN_HARMLESS = frozenset({1, 5, 7, 10, 11, 14, 16, 17, 18, 21, 22, 23, 24})
_TOKEN_REFUSED = {
    4: ("token_approve", "approve", 2),
    13: ("token_approve", "approve_checked", 3),
    6: ("set_authority", "set_authority", 1),
    8: ("token_burn", "burn", 2),
    15: ("token_burn", "burn_checked", 2),
}


def _check_token(ctx: _Ctx, index: int, ix: CompiledInstruction) -> Verdict | None:
    data = ix.data
    if not data:
        return refuse("undecodable", "token instruction without discriminant", index)
    tag = data[0]
    if tag in _TOKEN_REFUSED:
        reason, name, authority = _TOKEN_REFUSED[tag]
        if ctx.ours_from(ix, authority):
            return refuse(reason, f"token {name} with our wallet as authority", index)
        return None
    if tag == 3:
        return _token_transfer(ctx, index, ix, dest_pos=1, mint_pos=None, authority=2)
    if tag == 12:
        return _token_transfer(ctx, index, ix, dest_pos=2, mint_pos=1, authority=3)
    if tag == 9:
        return _token_close(ctx, index, ix)
    if tag in _TOKEN_INITS:
        return _token_init(ctx, index, ix, tag)
    if tag in _TOKEN_HARMLESS or not ctx.mentions_us(ix):
        return None
    return refuse("token_instruction_not_allowed",
                   f"token instruction {tag} mentions our wallet", index)


_TOKEN_INITS = frozenset({1, 16, 18})  # initialize_account, _account2, _account3


def _token_init(ctx: _Ctx, index: int, ix: CompiledInstruction, tag: int) -> Verdict | None:
    """An account we just created and funded must be initialised with us as its owner:
    otherwise its rent (and, in a buy, the wrapped SOL) belongs to someone else."""
    account = ctx.key(ix, 0)
    if account is None or account not in ctx.funded:
        return None
    if tag == 1:
        owner = ctx.key(ix, 2)
    else:
        owner = Pubkey.from_bytes(ix.data[1:33]) if len(ix.data) >= 33 else None
    if owner == ctx.expect.wallet:
        return None
    shown = owner if owner is not None else "a lookup-table, missing or truncated owner"
    return refuse("token_init_foreign_owner",
                   f"initialises the account we funded ({account}) for {shown}", index)


def _token_transfer(ctx: _Ctx, index: int, ix: CompiledInstruction, *, dest_pos: int,
                    mint_pos: int | None, authority: int) -> Verdict | None:
    if not ctx.ours_from(ix, authority):
        return None
    dest = ctx.key(ix, dest_pos)
    program = ctx.keys[ix.program_id_index]
    if mint_pos is None:
        mints: tuple[Pubkey | None, ...] = (ctx.expect.mint, WSOL_ID, USD1_ID)
    else:
        mints = (ctx.key(ix, mint_pos),)
    wallet = ctx.expect.wallet
    owned = {associated_token_address(wallet, m, program) for m in mints if m is not None}
    if dest is not None and dest in owned:
        return None
    shown = dest if dest is not None else "a lookup-table or missing account"
    return refuse("token_transfer_foreign",
                   f"token transfer from our wallet to {shown}, not our ATA", index)


def _token_close(ctx: _Ctx, index: int, ix: CompiledInstruction) -> Verdict | None:
    if not ctx.ours_from(ix, 2) or ctx.ours(ix, 1):
        return None
    dest = ctx.key(ix, 1)
    shown = dest if dest is not None else "a lookup-table or missing account"
    return refuse("close_to_foreign", f"close_account sends rent to {shown}", index)


# ---------------------------------------------------------------------------
# Associated Token Account, Compute Budget, pump.fun


def _check_ata(ctx: _Ctx, index: int, ix: CompiledInstruction) -> Verdict | None:
    tag = ix.data[0] if ix.data else 0
    if tag == 2:
        return None
    if tag not in (0, 1):
        return refuse("ata_instruction_unknown", f"ATA instruction {tag}", index)
    if ctx.ours(ix, 0) and not ctx.ours(ix, 2):
        return refuse("ata_foreign_owner",
                       f"we pay for an ATA owned by {ctx.key(ix, 2)}", index)
    if ctx.ours(ix, 0) and ctx.key(ix, 5) not in TOKEN_PROGRAM_IDS:
        # The ATA program creates the account owned by whatever program is named here.
        return refuse("ata_foreign_token_program", f"we pay for an account the ATA program "
                       f"creates for {ctx.key(ix, 5)}, which is not a token program", index)
    return None


_COMPUTE_DATA_SIZES = {1: 5, 2: 5, 3: 9, 4: 5}


def _check_compute(ctx: _Ctx, index: int, ix: CompiledInstruction) -> Verdict | None:
    data = ix.data
    tag = data[0] if data else -1
    if tag not in _COMPUTE_DATA_SIZES:
        return refuse("compute_budget_unknown", f"compute budget instruction {tag}", index)
    if len(data) != _COMPUTE_DATA_SIZES[tag]:
        return refuse("undecodable", "compute budget data has the wrong length", index)
    if tag == 2:
        ctx.tally.cu_limit = int.from_bytes(data[1:5], "little")
    elif tag == 3:
        price = int.from_bytes(data[1:9], "little")
        if price > ctx.policy.max_priority_fee:
            return refuse("priority_fee_too_high", f"{price} micro-lamports/CU > "
                           f"{ctx.policy.max_priority_fee}", index)
        ctx.tally.cu_price = price
        ctx.tally.cu_price_ix = index
    return None


def _check_pump_fun(ctx: _Ctx, index: int, ix: CompiledInstruction) -> Verdict | None:
    data = ix.data
    if len(data) < 24 or data[:8] not in (_PUMP_BUY, _PUMP_BUY_EXACT_SOL_IN):
        return None
    if ctx.expect.kind == "exit":
        return refuse("exit_contains_buy", "an exit transaction buys on pump.fun", index)
    sol_offset = 16 if data[:8] == _PUMP_BUY else 8
    ctx.tally.spend += _u64(data, sol_offset)
    return None


_RULES: dict[Pubkey, Callable[[_Ctx, int, CompiledInstruction], Verdict | None]] = {
    SYSTEM_ID: _check_system,
    TOKEN_ID: _check_token,
    TOKEN_2022_ID: _check_token,
    ATA_ID: _check_ata,
    COMPUTE_ID: _check_compute,
    PUMP_FUN_ID: _check_pump_fun,
}
