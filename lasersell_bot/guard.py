"""Pre-signing policy check of a server-built transaction: bytes and policy in, verdict out.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from solders.instruction import CompiledInstruction
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from lasersell_bot.config import GuardConfig

SYSTEM_PROGRAM = "11111111111111111111111111111111"
COMPUTE_BUDGET_PROGRAM = "ComputeBudget111111111111111111111111111111"
TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
ATA_PROGRAM = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"
MEMO_PROGRAM = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
PUMP_FUN_PROGRAM = "6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P"
PUMP_SWAP_PROGRAM = "pAMMBay6oceH9fJKBRHGP5D4bD4sWpmSwMn52FMfXEA"
RAYDIUM_LAUNCHPAD_PROGRAM = "LanMV9sAd7wArD4vJFi2qDdfnVhFxYSUg6eADduJ3uj"
RAYDIUM_CPMM_PROGRAM = "CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C"
METEORA_DBC_PROGRAM = "dbcij3LWUppWqq96dh6gJWwBifmcGfLSB5D4DuSMaqN"
METEORA_DAMM_V2_PROGRAM = "cpamdpZCGKUy5JxQXB4dcpGPiikHawvSWAd6mEn1sGG"
WSOL_MINT = "So11111111111111111111111111111111111111112"
USD1_MINT = "USD1ttGY1N17NEEHLmELoaybftRBUSErhqYiQzvEmuB"

ALLOWED_PROGRAMS: tuple[str, ...] = (
    SYSTEM_PROGRAM, COMPUTE_BUDGET_PROGRAM, TOKEN_PROGRAM, TOKEN_2022_PROGRAM, ATA_PROGRAM,
    MEMO_PROGRAM, PUMP_FUN_PROGRAM, PUMP_SWAP_PROGRAM, RAYDIUM_LAUNCHPAD_PROGRAM,
    RAYDIUM_CPMM_PROGRAM, METEORA_DBC_PROGRAM, METEORA_DAMM_V2_PROGRAM,
)

# Jito's 8 mainnet tip accounts (Jito docs, "MEV payment and distribution: on-chain
# addresses"; also returned by the block engine's getTipAccounts).
JITO_TIP_ACCOUNTS: tuple[str, ...] = (
    "96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5",
    "HFqU5x63VTqvQss8hp11i4wVV8bD44PvwucfZ2bU7gRe",
    "Cw8CFyM9FkoMi7K7Crf6HNQqf4uEMzpKw6QNghXLvLkY",
    "ADaUMid9yfUytqMBgopwjb2DTLSokTSzL1zt6iGPaS49",
    "DfXygSm4jCyNCybVYYK6DwvWqjKee8pbDmJGcLWNDXjh",
    "ADuUkR4vqLUMWXxW9gh6D6L8pMSawimctcNZ5pGwDcEt",
    "DttWaMuVvTiduZRnguLF7jNxTgiMBZ1hyAumKUiL2KRL",
    "3AVi9Tg9Uo68tJfuvoKvqKNWKkC5wPdSSdeBnizKZ6jT",
)

# Astralane's published tipping addresses (Astralane docs, "Low latency: endpoints and
# configs": the 8 original ones and the 9 listed as recently added).
ASTRALANE_TIP_ACCOUNTS: tuple[str, ...] = (
    "astrazznxsGUhWShqgNtAdfrzP2G83DzcWVJDxwV9bF",
    "astra4uejePWneqNaJKuFFA8oonqCE1sqF6b45kDMZm",
    "astra9xWY93QyfG6yM8zwsKsRodscjQ2uU2HKNL5prk",
    "astraRVUuTHjpwEVvNBeQEgwYx9w9CFyfxjYoobCZhL",
    "astraEJ2fEj8Xmy6KLG7B3VfbKfsHXhHrNdCQx7iGJK",
    "astraubkDw81n4LuutzSQ8uzHCv4BhPVhfvTcYv8SKC",
    "astraZW5GLFefxNPAatceHhYjfA1ciq9gvfEg2S47xk",
    "astrawVNP4xDBKT7rAdxrLYiTSTdqtUr63fSMduivXK",
    "AstrA1ejL4UeXC2SBP4cpeEmtcFPZVLxx3XGKXyCW6to",
    "AsTra79FET4aCKWspPqeSFvjJNyp96SvAnrmyAxqg5b7",
    "AstrABAu8CBTyuPXpV4eSCJ5fePEPnxN8NqBaPKQ9fHR",
    "AsTRADtvb6tTmrsqULQ9Wji9PigDMjhfEMza6zkynEvV",
    "AsTRAEoyMofR3vUPpf9k68Gsfb6ymTZttEtsAbv8Bk4d",
    "AStrAJv2RN2hKCHxwUMtqmSxgdcNZbihCwc1mCSnG83W",
    "Astran35aiQUF57XZsmkWMtNCtXGLzs8upfiqXxth2bz",
    "AStRAnpi6kFrKypragExgeRoJ1QnKH7pbSjLAKQVWUum",
    "ASTRaoF93eYt73TYvwtsv6fMWHWbGmMUZfVZPo3CRU9C",
)

MAX_COMPUTE_UNIT_LIMIT = 1_400_000
DEFAULT_UNITS_PER_INSTRUCTION = 200_000
MICRO_LAMPORTS_PER_LAMPORT = 1_000_000
# Rent-exempt minimum = (128 + space) * 3480 lamports/byte-year * 2 years.
_RENT_BYTES_OVERHEAD = 128
_RENT_LAMPORTS_PER_BYTE = 6960
# Largest account we fund without counting it as spend: a token account with room for
# extensions (165 bytes base). rent(512) = 4_454_400 lamports.
MAX_FUNDED_SPACE = 512

_PUMP_BUY = bytes.fromhex("66063d1201daebea")  # sha256("global:buy")[:8]
_PUMP_BUY_EXACT_SOL_IN = bytes([56, 252, 116, 8, 158, 223, 205, 95])

Kind = Literal["exit", "mirror_buy"]


# ---------------------------------------------------------------------------
# Verdict, policy, expectation


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome of ``check_transaction``: ``ok`` or refused with a machine ``reason``."""

    ok: bool
    reason: str = ""
    detail: str = ""
    instruction: int | None = None


ACCEPTED = Verdict(ok=True)


def _refuse(reason: str, detail: str, instruction: int | None = None) -> Verdict:
    where = f"instruction {instruction}: " if instruction is not None else ""
    return Verdict(ok=False, reason=reason, detail=where + detail, instruction=instruction)


def _pubkeys(values: tuple[str, ...] | list[str]) -> frozenset[Pubkey]:
    return frozenset(Pubkey.from_string(v) for v in values)


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """What the guard allows. Build it once with ``from_config``; it is immutable."""

    programs: frozenset[Pubkey]
    tip_accounts: frozenset[Pubkey]
    max_tip_lamports: int
    max_priority_fee: int
    max_priority_fee_lamports: int
    max_tx_bytes: int

    @classmethod
    def from_config(cls, cfg: GuardConfig) -> GuardPolicy:
        """Allowlist = built-in programs + ``extra_programs``; tips = configured + Jito + Astralane.

        There is no config key for the total priority fee yet, so it is derived from the
        per-CU cap at the runtime's maximum compute-unit limit (no stricter than that cap).
        """
        tips = [*cfg.tip_accounts, *JITO_TIP_ACCOUNTS, *ASTRALANE_TIP_ACCOUNTS,
                *cfg.extra_tip_accounts]
        return cls(
            programs=_pubkeys([*ALLOWED_PROGRAMS, *cfg.extra_programs]),
            tip_accounts=_pubkeys(tips),
            max_tip_lamports=cfg.max_tip_lamports,
            max_priority_fee=cfg.max_priority_fee,
            max_priority_fee_lamports=priority_fee_lamports(
                cfg.max_priority_fee, MAX_COMPUTE_UNIT_LIMIT),
            max_tx_bytes=cfg.max_tx_bytes,
        )


@dataclass(frozen=True, slots=True)
class Expectation:
    """What we expect this transaction to be: for whom, what kind, which mint, how much."""

    wallet: Pubkey
    kind: Kind
    mint: Pubkey
    max_spend_lamports: int = 0

    @classmethod
    def exit(cls, wallet: str | Pubkey, mint: str | Pubkey) -> Expectation:
        return cls(wallet=_as_pubkey(wallet), kind="exit", mint=_as_pubkey(mint))

    @classmethod
    def mirror_buy(cls, wallet: str | Pubkey, mint: str | Pubkey,
                   max_spend_lamports: int) -> Expectation:
        """``max_spend_lamports`` = agreed amount + tolerance for tip and priority fee."""
        return cls(wallet=_as_pubkey(wallet), kind="mirror_buy", mint=_as_pubkey(mint),
                   max_spend_lamports=max_spend_lamports)


def _as_pubkey(value: str | Pubkey) -> Pubkey:
    return value if isinstance(value, Pubkey) else Pubkey.from_string(value)


def priority_fee_lamports(micro_lamports_per_cu: int, compute_units: int) -> int:
    """Priority fee the runtime charges: ceil(price * units / 1e6)."""
    return -(-micro_lamports_per_cu * compute_units // MICRO_LAMPORTS_PER_LAMPORT)


def rent_exempt_lamports(space: int) -> int:
    """Current rent-exempt minimum for an account of ``space`` data bytes."""
    return (_RENT_BYTES_OVERHEAD + space) * _RENT_LAMPORTS_PER_BYTE


@lru_cache(maxsize=4096)
def associated_token_address(owner: Pubkey, mint: Pubkey, token_program: Pubkey) -> Pubkey:
    """The ATA the ATA program derives for ``owner`` and ``mint`` under ``token_program``."""
    seeds = [bytes(owner), bytes(token_program), bytes(mint)]
    return Pubkey.find_program_address(seeds, _ATA)[0]


_SYSTEM = Pubkey.from_string(SYSTEM_PROGRAM)
_COMPUTE = Pubkey.from_string(COMPUTE_BUDGET_PROGRAM)
_TOKEN = Pubkey.from_string(TOKEN_PROGRAM)
_TOKEN_2022 = Pubkey.from_string(TOKEN_2022_PROGRAM)
_TOKEN_PROGRAMS = frozenset({_TOKEN, _TOKEN_2022})
_ATA = Pubkey.from_string(ATA_PROGRAM)
_PUMP_FUN = Pubkey.from_string(PUMP_FUN_PROGRAM)
_WSOL = Pubkey.from_string(WSOL_MINT)
_USD1 = Pubkey.from_string(USD1_MINT)
_ZERO_HASH = bytes(32)


# ---------------------------------------------------------------------------
# Raw wire layout: walked before solders decodes, and by wallet signing


class MalformedTransaction(ValueError):
    """The bytes are not a well-formed serialized VersionedTransaction."""


@dataclass(frozen=True, slots=True)
class TxLayout:
    """Offsets and counts of a serialized transaction, read without building objects."""

    num_signatures: int
    signatures_offset: int
    message_offset: int
    version: int | None
    num_required_signatures: int
    static_keys_offset: int
    num_static_keys: int
    program_indexes: tuple[int, ...]


def _compact_u16(raw: bytes, pos: int) -> tuple[int, int]:
    """Decode a compact-u16 at ``pos``; return (value, next position). IndexError if cut."""
    byte = raw[pos]
    if byte < 0x80:
        return byte, pos + 1
    value = byte & 0x7F
    byte = raw[pos + 1]
    if byte < 0x80:
        if byte == 0:
            raise MalformedTransaction("non-canonical compact-u16")
        return value | byte << 7, pos + 2
    value |= (byte & 0x7F) << 7
    byte = raw[pos + 2]
    if byte >= 0x80:
        raise MalformedTransaction("compact-u16 longer than 3 bytes")
    if byte == 0 or byte > 0x03:
        raise MalformedTransaction("non-canonical compact-u16")
    return value | byte << 14, pos + 3


def _skip_sized(raw: bytes, pos: int) -> int:
    length, pos = _compact_u16(raw, pos)
    return pos + length


def read_layout(raw: bytes) -> TxLayout:
    """Walk the whole wire format; raise ``MalformedTransaction`` on any defect."""
    try:
        return _walk(raw)
    except IndexError:
        raise MalformedTransaction(f"truncated ({len(raw)} bytes)") from None


def _walk(raw: bytes) -> TxLayout:
    num_sigs, sig_offset = _compact_u16(raw, 0)
    msg_offset = pos = sig_offset + 64 * num_sigs
    version: int | None = None
    if raw[pos] & 0x80:
        version = raw[pos] & 0x7F
        if version != 0:
            raise MalformedTransaction(f"unsupported message version {version}")
        pos += 1
    num_required = raw[pos]
    num_keys, keys_offset = _compact_u16(raw, pos + 3)
    count, pos = _compact_u16(raw, keys_offset + 32 * num_keys + 32)
    programs = []
    for _ in range(count):
        programs.append(raw[pos])
        pos = _skip_sized(raw, _skip_sized(raw, pos + 1))
    if version is not None:
        count, pos = _compact_u16(raw, pos)
        for _ in range(count):
            pos = _skip_sized(raw, _skip_sized(raw, pos + 32))
    if pos != len(raw):
        if pos > len(raw):
            raise IndexError(pos)
        raise MalformedTransaction(f"{len(raw) - pos} trailing bytes")
    return TxLayout(num_sigs, sig_offset, msg_offset, version, num_required, keys_offset,
                    num_keys, tuple(programs))


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


def check_transaction(tx_bytes: bytes, policy: GuardPolicy, expect: Expectation) -> Verdict:
    """Decide whether ``tx_bytes`` may be signed by ``expect.wallet``. Never raises: an
    unexpected error inside a rule refuses the transaction (``guard_error``)."""
    try:
        return _check(tx_bytes, policy, expect)
    except Exception as exc:
        return _refuse("guard_error", f"{type(exc).__name__}: {exc}")


def _check(tx_bytes: bytes, policy: GuardPolicy, expect: Expectation) -> Verdict:
    if len(tx_bytes) > policy.max_tx_bytes:
        return _refuse("tx_too_large", f"{len(tx_bytes)} bytes > {policy.max_tx_bytes}")
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
        return _refuse("undecodable", str(exc))
    for index, program in enumerate(layout.program_indexes):
        if program >= layout.num_static_keys:
            return _refuse("lookup_table_program",
                           "program id is loaded from an address lookup table", index)
    if layout.num_signatures != layout.num_required_signatures:
        return _refuse("undecodable", f"{layout.num_signatures} signatures for "
                       f"{layout.num_required_signatures} required signers")
    try:
        return VersionedTransaction.from_bytes(tx_bytes)
    except (ValueError, TypeError) as exc:
        return _refuse("undecodable", str(exc))


def _check_signers(ctx: _Ctx, num_required: int) -> Verdict | None:
    wallet = ctx.expect.wallet
    if wallet not in ctx.keys[:num_required]:
        return _refuse("wallet_not_signer", f"{wallet} is not a required signer")
    if ctx.keys[0] != wallet:
        return _refuse("fee_payer_mismatch", f"fee payer is {ctx.keys[0]}, not {wallet}")
    if num_required > 1:
        others = ", ".join(str(k) for k in ctx.keys[1:num_required])
        return _refuse("extra_signer", f"other required signers: {others}")
    return None


def _check_blockhash(blockhash: bytes) -> Verdict | None:
    if blockhash == _ZERO_HASH:
        return _refuse("missing_blockhash", "recent blockhash is all zeros")
    return None


def _check_mint(ctx: _Ctx) -> Verdict | None:
    if ctx.expect.mint not in ctx.keys:
        return _refuse("mint_not_touched",
                       f"mint {ctx.expect.mint} is not among the static account keys")
    return None


def _check_instruction(ctx: _Ctx, index: int, ix: CompiledInstruction) -> Verdict | None:
    program = ctx.keys[ix.program_id_index]
    if program not in ctx.policy.programs:
        return _refuse("program_not_allowed", f"program {program} is not allowlisted", index)
    rule = _RULES.get(program)
    return rule(ctx, index, ix) if rule is not None else None


def _check_totals(ctx: _Ctx) -> Verdict | None:
    tally = ctx.tally
    units = tally.cu_limit if tally.cu_limit is not None else min(
        MAX_COMPUTE_UNIT_LIMIT, DEFAULT_UNITS_PER_INSTRUCTION * ctx.num_instructions)
    fee = priority_fee_lamports(tally.cu_price, min(units, MAX_COMPUTE_UNIT_LIMIT))
    if fee > ctx.policy.max_priority_fee_lamports:
        return _refuse("priority_fee_too_high", f"total priority fee {fee} lamports > "
                       f"{ctx.policy.max_priority_fee_lamports}", tally.cu_price_ix)
    if ctx.expect.kind == "mirror_buy":
        spend = tally.spend + tally.tips + fee
        if spend > ctx.expect.max_spend_lamports:
            return _refuse("buy_amount_mismatch", f"visible SOL outlay {spend} lamports > "
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
        return _refuse("undecodable", "system instruction without discriminant", index)
    tag = int.from_bytes(data[:4], "little")
    if tag in _SYS_REFUSED:
        reason, name = _SYS_REFUSED[tag]
        return _refuse(reason, f"system {name} is never signed", index)
    try:
        if tag == 2:
            return _sol_out(ctx, index, ctx.ours(ix, 0), ctx.key(ix, 1), _u64(data, 4))
        if tag == 11:
            ours = ctx.ours(ix, 0) or ctx.ours(ix, 1)
            return _sol_out(ctx, index, ours, ctx.key(ix, 2), _u64(data, 4))
        if tag in (0, 3):
            return _check_create(ctx, index, ix, tag)
    except struct.error:
        return _refuse("undecodable", "system instruction data too short", index)
    return _refuse("system_instruction_unknown", f"system instruction {tag}", index)


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
            return _refuse("tip_too_large", f"tips total {tally.tips} lamports > "
                           f"{ctx.policy.max_tip_lamports}", index)
        return None
    if dest is not None and ctx.expect.kind == "mirror_buy" and dest in _own_wsol(ctx):
        tally.spend += lamports
        return None
    shown = dest if dest is not None else "a lookup-table or missing account"
    return _refuse("foreign_transfer", f"{lamports} lamports from our wallet to {shown}",
                   index)


def _own_wsol(ctx: _Ctx) -> tuple[Pubkey, Pubkey]:
    wallet = ctx.expect.wallet
    return (associated_token_address(wallet, _WSOL, _TOKEN),
            associated_token_address(wallet, _WSOL, _TOKEN_2022))


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
        if ctx.expect.kind != "mirror_buy" or owner not in _TOKEN_PROGRAMS:
            return _refuse("create_account_overfunded", f"funds a new {owner}-owned account "
                           f"with {lamports} lamports ({excess} above rent-exempt)", index)
        ctx.tally.spend += excess
    if owner not in ctx.policy.programs:
        # The owning program may debit the account: what we put in would be its to take.
        return _refuse("create_account_foreign_owner", f"funds a new account owned by "
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
        return _refuse("undecodable", "token instruction without discriminant", index)
    tag = data[0]
    if tag in _TOKEN_REFUSED:
        reason, name, authority = _TOKEN_REFUSED[tag]
        if ctx.ours_from(ix, authority):
            return _refuse(reason, f"token {name} with our wallet as authority", index)
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
    return _refuse("token_instruction_not_allowed",
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
    return _refuse("token_init_foreign_owner",
                   f"initialises the account we funded ({account}) for {shown}", index)


def _token_transfer(ctx: _Ctx, index: int, ix: CompiledInstruction, *, dest_pos: int,
                    mint_pos: int | None, authority: int) -> Verdict | None:
    if not ctx.ours_from(ix, authority):
        return None
    dest = ctx.key(ix, dest_pos)
    program = ctx.keys[ix.program_id_index]
    if mint_pos is None:
        mints: tuple[Pubkey | None, ...] = (ctx.expect.mint, _WSOL, _USD1)
    else:
        mints = (ctx.key(ix, mint_pos),)
    wallet = ctx.expect.wallet
    owned = {associated_token_address(wallet, m, program) for m in mints if m is not None}
    if dest is not None and dest in owned:
        return None
    shown = dest if dest is not None else "a lookup-table or missing account"
    return _refuse("token_transfer_foreign",
                   f"token transfer from our wallet to {shown}, not our ATA", index)


def _token_close(ctx: _Ctx, index: int, ix: CompiledInstruction) -> Verdict | None:
    if not ctx.ours_from(ix, 2) or ctx.ours(ix, 1):
        return None
    dest = ctx.key(ix, 1)
    shown = dest if dest is not None else "a lookup-table or missing account"
    return _refuse("close_to_foreign", f"close_account sends rent to {shown}", index)


# ---------------------------------------------------------------------------
# Associated Token Account, Compute Budget, pump.fun


def _check_ata(ctx: _Ctx, index: int, ix: CompiledInstruction) -> Verdict | None:
    tag = ix.data[0] if ix.data else 0
    if tag == 2:
        return None
    if tag not in (0, 1):
        return _refuse("ata_instruction_unknown", f"ATA instruction {tag}", index)
    if ctx.ours(ix, 0) and not ctx.ours(ix, 2):
        return _refuse("ata_foreign_owner",
                       f"we pay for an ATA owned by {ctx.key(ix, 2)}", index)
    if ctx.ours(ix, 0) and ctx.key(ix, 5) not in _TOKEN_PROGRAMS:
        # The ATA program creates the account owned by whatever program is named here.
        return _refuse("ata_foreign_token_program", f"we pay for an account the ATA program "
                       f"creates for {ctx.key(ix, 5)}, which is not a token program", index)
    return None


_COMPUTE_DATA_SIZES = {1: 5, 2: 5, 3: 9, 4: 5}


def _check_compute(ctx: _Ctx, index: int, ix: CompiledInstruction) -> Verdict | None:
    data = ix.data
    tag = data[0] if data else -1
    if tag not in _COMPUTE_DATA_SIZES:
        return _refuse("compute_budget_unknown", f"compute budget instruction {tag}", index)
    if len(data) != _COMPUTE_DATA_SIZES[tag]:
        return _refuse("undecodable", "compute budget data has the wrong length", index)
    if tag == 2:
        ctx.tally.cu_limit = int.from_bytes(data[1:5], "little")
    elif tag == 3:
        price = int.from_bytes(data[1:9], "little")
        if price > ctx.policy.max_priority_fee:
            return _refuse("priority_fee_too_high", f"{price} micro-lamports/CU > "
                           f"{ctx.policy.max_priority_fee}", index)
        ctx.tally.cu_price = price
        ctx.tally.cu_price_ix = index
    return None


def _check_pump_fun(ctx: _Ctx, index: int, ix: CompiledInstruction) -> Verdict | None:
    data = ix.data
    if len(data) < 24 or data[:8] not in (_PUMP_BUY, _PUMP_BUY_EXACT_SOL_IN):
        return None
    if ctx.expect.kind == "exit":
        return _refuse("exit_contains_buy", "an exit transaction buys on pump.fun", index)
    sol_offset = 16 if data[:8] == _PUMP_BUY else 8
    ctx.tally.spend += _u64(data, sol_offset)
    return None


_RULES: dict[Pubkey, Callable[[_Ctx, int, CompiledInstruction], Verdict | None]] = {
    _SYSTEM: _check_system,
    _TOKEN: _check_token,
    _TOKEN_2022: _check_token,
    _ATA: _check_ata,
    _COMPUTE: _check_compute,
    _PUMP_FUN: _check_pump_fun,
}
