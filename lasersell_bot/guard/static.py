"""Static pre-signing check of a server-built transaction: bytes and policy in, verdict out.

The LaserSell server builds every exit and mirror-buy transaction and we sign it with
the user's key. This module is the first filter between a compromised server (or a
man-in-the-middle) and the user's wallet. It is pure: no I/O, no clock, no RPC. With
effects verification on (``GuardPolicy.verify_effects``, the default) what it cannot
judge by shape (programs outside the allowlist, routing fees paid to strangers) is
recorded on the verdict and left to the effects stage; it never lets those through with
verification off.

What it checks, in order (the first failure wins and names the instruction index):

1. size <= ``max_tx_bytes``; the whole wire layout is well formed (no truncation, no
   trailing bytes, message version 0 or legacy), every program id is a static key, the
   signature count equals ``num_required_signatures``, and solders decodes it;
2. it can land: header counts agree with the key list (a signer, a writable fee payer,
   no more read-only keys than keys), at most 64 top-level instructions, every account
   index exists; lookup tables resolve from ``tables`` (``lookup_table_unavailable``
   otherwise); no account key appears twice (static or loaded);
3. our wallet is a required signer, is the fee payer (static key 0) and is the *only*
   required signer. A second signer is refused: it can pre-fill or withhold its slot, so
   whoever holds that key decides if and when our signed transaction lands;
4. a non-zero recent blockhash; the expected mint is among the account keys;
5. every top-level instruction invokes an allowlisted program given as a static key
   (never a lookup-table-loaded key) and passes that program's rule, or, with effects
   verification on, an unknown program is recorded in ``Verdict.unknown_programs``:

   * System: transfers out of our wallet (``transfer``, ``transfer_with_seed`` with us
     as base) only to a tip account (their sum <= ``max_tip_lamports``), to ourselves,
     into our own WSOL account (the SPL Token ATA, or a temp account initialised for us),
     or, with effects verification on, to a stranger as a routing fee (summed into
     ``fee_lamports``, <= ``Expectation.fee_allowance_lamports``). ``assign``,
     ``allocate`` and every nonce instruction are refused (a nonce advance would make the
     transaction durable: the server could hold it and land it at any later time);
   * accounts we fund (``create_account[_with_seed]``) must end up ours: System-owned,
     or under a token program and initialised in this transaction as a token account
     owned by our wallet (nothing else may touch it first); never a lookup-table key,
     never owned by another program (even an allowlisted one), at most the rent-exempt
     minimum of a 512-byte account unless it is a token account (a wrap);
   * SPL Token / Token-2022 with our wallet as authority: ``transfer`` and
     ``transfer_checked`` only to our own token accounts (or, with effects verification
     on, WSOL into ``fee_lamports`` and USD1 into ``fee_usd1`` within the allowances; any
     other mint to a stranger is refused), no ``approve``, ``set_authority``, ``burn``,
     ``mint_to``, ``freeze_account`` or ``thaw_account``, ``close_account`` only to our
     wallet; unknown instructions that mention our wallet are refused;
   * Associated Token Account: we only pay for ATAs under a token program, and that we
     own (with effects verification on, the rent of a stranger's counts as a fee);
   * Compute Budget: each kind at most once, unit price <= ``max_priority_fee``
     micro-lamports/CU and total priority fee <= ``max_priority_fee_lamports``;
   * Memo: any text. DEX programs (``dex``): only known trade instructions, trading the
     signal's mint (an exit sells it, or, with effects verification on, converts between
     quote assets; a mirror buy buys it with SOL, WSOL or, with effects verification on,
     a stable coin);

6. every account we funded became ours; a mirror buy's visible SOL outlay (the larger of
   SOL wrapped into our WSOL accounts and what recognised buys may take at most, plus
   tips and priority fee) <= the agreed maximum.

An accepted verdict carries the tips, the priority fee and the signature count it
computed, and what it left to the effects stage (``Verdict.needs_effects``).

Limits (what this cannot see without simulation): only top-level instructions are
inspected. What an allowlisted DEX program does by CPI with the accounts it is given
(where the bought tokens or the proceeds land) is trusted to that program; the effects
stage checks it. Token destinations are recognised as ours only when they are the ATA
derived for our wallet (position mint, WSOL or USD1 for plain ``transfer``; the
instruction's mint for ``transfer_checked``) or a token account this transaction
initialised for us. Without ``tables``, lookup-table-loaded keys are unknown: a transfer,
token transfer or close to one is refused.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence

from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from lasersell_bot.guard.context import Ctx, Funded, Ix, u64
from lasersell_bot.guard.dex import TRADES, check_dex
from lasersell_bot.guard.layout import MalformedTransaction, read_layout
from lasersell_bot.guard.policy import (
    ATA_ID,
    COMPUTE_ID,
    DEFAULT_UNITS_PER_INSTRUCTION,
    MAX_COMPUTE_UNIT_LIMIT,
    MAX_FUNDED_SPACE,
    SYSTEM_ID,
    TOKEN_2022_ID,
    TOKEN_ID,
    TOKEN_PROGRAM_IDS,
    ZERO_HASH,
    Expectation,
    GuardPolicy,
    Verdict,
    priority_fee_lamports,
    refuse,
    rent_exempt_lamports,
)
from lasersell_bot.guard.tables import MissingLookupTable, resolve_keys
from lasersell_bot.guard.token import check_ata, check_token, over_fee_allowance

# The runtime refuses a transaction with more top-level instructions than this
# (solana-program-runtime MAX_INSTRUCTION_TRACE_LENGTH: 64 invocations in all).
MAX_INSTRUCTIONS = 64

Rule = Callable[[Ctx, int, Ix], Verdict | None]


# ---------------------------------------------------------------------------
# The check


def check_transaction(tx_bytes: bytes, policy: GuardPolicy, expect: Expectation,
                      tables: Mapping[Pubkey, Sequence[Pubkey]] | None = None) -> Verdict:
    """Decide whether ``tx_bytes`` may be signed by ``expect.wallet``. Never raises: an
    unexpected error inside a rule refuses the transaction (``guard_error``).

    ``tables`` holds the contents of address lookup tables (``guard.tables``): when given,
    lookup-table-loaded keys are checked like static ones, and a table (or an index) the
    message uses that is not in it refuses with ``lookup_table_unavailable`` (fetch it and
    check again). ``None`` means unresolved: every loaded key is unknown to the rules
    (never ours, never a tip account, never the mint)."""
    try:
        return _check(tx_bytes, policy, expect, tables)
    except Exception as exc:
        return refuse("guard_error", f"{type(exc).__name__}: {exc}")


def _check(tx_bytes: bytes, policy: GuardPolicy, expect: Expectation,
           tables: Mapping[Pubkey, Sequence[Pubkey]] | None) -> Verdict:
    if len(tx_bytes) > policy.max_tx_bytes:
        return refuse("tx_too_large", f"{len(tx_bytes)} bytes > {policy.max_tx_bytes}")
    shape = _check_shape(tx_bytes)
    if isinstance(shape, Verdict):
        return shape
    message = shape.message
    static_keys = tuple(message.account_keys)
    instructions = [Ix(ix.program_id_index, ix.accounts, ix.data)
                    for ix in message.instructions]
    landing = _check_landing(message, len(static_keys), instructions)
    if landing is not None:
        return landing
    keys = _resolve(message, static_keys, tables)
    if isinstance(keys, Verdict):
        return keys
    num_required = message.header.num_required_signatures
    ctx = Ctx(policy, expect, keys, len(static_keys), len(instructions))
    for precheck in (_check_duplicates(keys), _check_signers(ctx, num_required),
                     _check_blockhash(bytes(message.recent_blockhash)), _check_mint(ctx)):
        if precheck is not None:
            return precheck
    for index, ix in enumerate(instructions):
        verdict = _check_instruction(ctx, index, ix)
        if verdict is not None:
            return verdict
    funded = _check_funded(ctx)
    return funded if funded is not None else _check_totals(ctx, num_required)


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


def _check_landing(message: object, num_keys: int, instructions: list[Ix]) -> Verdict | None:
    """What the runtime's sanitizer would reject: the transaction could never land."""
    header = message.header  # type: ignore[attr-defined]
    signed = header.num_required_signatures
    if signed == 0 or signed > num_keys:
        return refuse("invalid_header", f"{signed} required signers for {num_keys} keys")
    if header.num_readonly_signed_accounts >= signed:
        return refuse("invalid_header", "the fee payer is marked read-only")
    if header.num_readonly_unsigned_accounts > num_keys - signed:
        return refuse("invalid_header", f"{header.num_readonly_unsigned_accounts} read-only "
                       f"unsigned keys, but only {num_keys - signed} unsigned keys")
    if len(instructions) > MAX_INSTRUCTIONS:
        return refuse("too_many_instructions", f"{len(instructions)} top-level instructions "
                       f"> the runtime's {MAX_INSTRUCTIONS}")
    for index, ix in enumerate(instructions):
        if ix.program_id_index == 0:
            return refuse("invalid_account_index", "the fee payer is named as the program",
                           index)
    highest = max((max(ix.accounts) for ix in instructions if ix.accounts), default=-1)
    if highest < num_keys:
        return None
    total = num_keys
    if isinstance(message, MessageV0):
        total += sum(len(lookup.writable_indexes) + len(lookup.readonly_indexes)
                     for lookup in message.address_table_lookups)
    for index, ix in enumerate(instructions):
        if ix.accounts and max(ix.accounts) >= total:
            return refuse("invalid_account_index", f"account index {max(ix.accounts)} "
                           f"but the message has {total} accounts", index)
    return None


def _resolve(message: object, static_keys: tuple[Pubkey, ...],
             tables: Mapping[Pubkey, Sequence[Pubkey]] | None) -> tuple[Pubkey, ...] | Verdict:
    if tables is None or not isinstance(message, MessageV0) or not message.address_table_lookups:
        return static_keys
    try:
        return resolve_keys(message, tables).keys
    except MissingLookupTable as exc:
        return refuse("lookup_table_unavailable", str(exc))


def _check_duplicates(keys: tuple[Pubkey, ...]) -> Verdict | None:
    if len(set(keys)) == len(keys):
        return None
    seen: set[Pubkey] = set()
    for key in keys:
        if key in seen:
            return refuse("duplicate_account_key", f"{key} appears twice among the accounts "
                           "(static or lookup-table loaded); the runtime refuses it")
        seen.add(key)
    return None


def _check_signers(ctx: Ctx, num_required: int) -> Verdict | None:
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


def _check_mint(ctx: Ctx) -> Verdict | None:
    if ctx.expect.mint not in ctx.keys:
        return refuse("mint_not_touched",
                       f"mint {ctx.expect.mint} is not among the transaction's account keys")
    return None


def _check_instruction(ctx: Ctx, index: int, ix: Ix) -> Verdict | None:
    program = ctx.keys[ix.program_id_index]
    if program not in ctx.policy.programs:
        if ctx.policy.verify_effects:
            ctx.unknown_programs.setdefault(str(program))
            return None
        return refuse("program_not_allowed", f"program {program} is not allowlisted", index)
    rule = _RULES.get(program)
    return rule(ctx, index, ix) if rule is not None else None


def _check_funded(ctx: Ctx) -> Verdict | None:
    """Every token-program account we funded became a token account owned by us."""
    for account, funded in ctx.funded.items():
        if account not in ctx.own_accounts:
            return refuse("funded_account_not_ours", f"the account funded here ({account}) "
                           "is never initialised as a token account of ours",
                           funded.instruction)
    return None


def _check_totals(ctx: Ctx, num_required: int) -> Verdict:
    tally = ctx.tally
    units = tally.cu_limit if tally.cu_limit is not None else min(
        MAX_COMPUTE_UNIT_LIMIT, DEFAULT_UNITS_PER_INSTRUCTION * ctx.num_instructions)
    fee = priority_fee_lamports(tally.cu_price, min(units, MAX_COMPUTE_UNIT_LIMIT))
    if fee > ctx.policy.max_priority_fee_lamports:
        return refuse("priority_fee_too_high", f"total priority fee {fee} lamports > "
                       f"{ctx.policy.max_priority_fee_lamports}", tally.cu_price_ix)
    if ctx.expect.kind == "mirror_buy":
        # Wrapped SOL and what the recognised buys may take are two views of one outlay
        # (a buy takes the WSOL we wrapped): the larger bounds both.
        spend = max(tally.wraps, tally.trade_in) + tally.tips + fee
        if spend > ctx.expect.max_spend_lamports:
            return refuse("buy_amount_mismatch", f"visible SOL outlay {spend} lamports > "
                           f"agreed {ctx.expect.max_spend_lamports}")
    return Verdict(ok=True, unknown_programs=tuple(ctx.unknown_programs),
                   fee_lamports=tally.fee_lamports, fee_usd1=tally.fee_usd1,
                   tips_lamports=tally.tips, priority_fee_lamports=fee,
                   signatures=num_required, effects_only=tuple(ctx.effects_only))


# ---------------------------------------------------------------------------
# System program (u32 LE discriminant, bincode arguments)


# {tag: (reason, instruction name)}
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


def _check_system(ctx: Ctx, index: int, ix: Ix) -> Verdict | None:
    data = ix.data
    if len(data) < 4:
        return refuse("undecodable", "system instruction without discriminant", index)
    tag = int.from_bytes(data[:4], "little")
    if tag in _SYS_REFUSED:
        reason, name = _SYS_REFUSED[tag]
        return refuse(reason, f"system {name} is never signed", index)
    try:
        if tag == 2:
            return _sol_out(ctx, index, ctx.ours(ix, 0), ctx.key(ix, 1), u64(data, 4))
        if tag == 11:
            ours = ctx.ours(ix, 0) or ctx.ours(ix, 1)
            return _sol_out(ctx, index, ours, ctx.key(ix, 2), u64(data, 4))
        if tag in (0, 3):
            return _check_create(ctx, index, ix, tag)
    except struct.error:
        return refuse("undecodable", "system instruction data too short", index)
    return refuse("system_instruction_unknown", f"system instruction {tag}", index)


def _sol_out(ctx: Ctx, index: int, ours: bool, dest: Pubkey | None,
             lamports: int) -> Verdict | None:
    """SOL leaving our wallet: to a tip account, to ourselves, into our own WSOL account,
    or (effects verification on) to a stranger as a routing fee within the allowance."""
    if not ours or dest == ctx.expect.wallet:
        return None
    tally = ctx.tally
    if dest in ctx.policy.tip_accounts:
        tally.tips += lamports
        if tally.tips > ctx.policy.max_tip_lamports:
            return refuse("tip_too_large", f"tips total {tally.tips} lamports > "
                           f"{ctx.policy.max_tip_lamports}", index)
        return None
    if ctx.own_wsol(dest):
        tally.wraps += lamports
        return None
    if ctx.policy.verify_effects:
        tally.fee_lamports += lamports
        return over_fee_allowance(ctx, index)
    shown = dest if dest is not None else "a lookup-table or missing account"
    return refuse("foreign_transfer", f"{lamports} lamports from our wallet to {shown}",
                   index)


def _create_args(data: bytes, tag: int) -> tuple[int, int, Pubkey]:
    """(lamports, space, owner) of create_account (0) or create_account_with_seed (3)."""
    offset = 4
    if tag == 3:
        seed_len = u64(data, 36)
        if seed_len > len(data):  # a u64 offset would overflow unpack_from (OverflowError)
            raise struct.error("seed longer than the instruction data")
        offset = 44 + seed_len
    lamports, space = struct.unpack_from("<QQ", data, offset)
    owner = data[offset + 16:offset + 48]
    if len(owner) != 32:
        raise struct.error("owner truncated")
    return int(lamports), int(space), Pubkey.from_bytes(owner)


def _check_create(ctx: Ctx, index: int, ix: Ix, tag: int) -> Verdict | None:
    """An account we fund must end up ours: System-owned (only a seed account of our
    wallet can be created here: any other new account would have to sign), or a token
    account initialised for us in this transaction (checked at the end)."""
    if not ctx.ours(ix, 0):
        return None
    lamports, space, owner = _create_args(ix.data, tag)
    excess = lamports - rent_exempt_lamports(min(space, MAX_FUNDED_SPACE))
    if excess > 0 and owner not in TOKEN_PROGRAM_IDS:
        return refuse("create_account_overfunded", f"funds a new {owner}-owned account "
                       f"with {lamports} lamports ({excess} above rent-exempt)", index)
    if owner != SYSTEM_ID and owner not in TOKEN_PROGRAM_IDS:
        # The owning program may debit the account, or nobody can ever close it (Memo).
        return refuse("create_account_foreign_owner", f"funds a new account owned by "
                       f"{owner}, which is neither System nor a token program", index)
    created = ctx.key(ix, 1)
    if created is None or not ctx.is_static(ix, 1):
        return refuse("funded_account_lookup_table", "funds a new account loaded from an "
                       "address lookup table (or missing)", index)
    if owner in TOKEN_PROGRAM_IDS:
        ctx.funded[created] = Funded(index, owner)
        ctx.tally.wraps += max(excess, 0)
    return None


# ---------------------------------------------------------------------------
# Compute Budget (u8 discriminant)

_COMPUTE_DATA_SIZES = {1: 5, 2: 5, 3: 9, 4: 5}


def _check_compute(ctx: Ctx, index: int, ix: Ix) -> Verdict | None:
    data = ix.data
    tag = data[0] if data else -1
    if tag not in _COMPUTE_DATA_SIZES:
        return refuse("compute_budget_unknown", f"compute budget instruction {tag}", index)
    if len(data) != _COMPUTE_DATA_SIZES[tag]:
        return refuse("undecodable", "compute budget data has the wrong length", index)
    if tag in ctx.tally.compute_kinds:
        return refuse("compute_budget_duplicate", f"a second compute budget instruction "
                       f"{tag}; the runtime refuses the transaction", index)
    ctx.tally.compute_kinds.add(tag)
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


_RULES: dict[Pubkey, Rule] = {
    SYSTEM_ID: _check_system,
    TOKEN_ID: check_token,
    TOKEN_2022_ID: check_token,
    ATA_ID: check_ata,
    COMPUTE_ID: _check_compute,
    **{program: check_dex for program in TRADES},
}
