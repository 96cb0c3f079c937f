"""The simulated LaserSell Router: instruction layout, routing fee, referral split, settlement.

What is modelled. A real LaserSell exit or mirror buy calls the LaserSell Router, an
on-chain program whose id is not published, which CPIs into the DEX and takes a routing
fee from the proceeds, paying up to three referrers in the same transaction
(``shared/PROTOCOL.md``, "What real LaserSell transactions contain"). The simulator puts
a program at ``ROUTER_PROGRAM_ID`` (outside the guard's allowlist) and settles its
instructions with the chain's price model:

* a sell of ``amount_in`` tokens pays ``gross = quote(amount_in)`` lamports out of the
  pool; the DEX's slippage bound applies to ``gross`` (a shortfall fails with the DEX's
  custom error, pump.fun ``TooLittleSolReceived`` 6003 / ``TooMuchSolRequired`` 6002,
  reported at the router's instruction index, as a failed CPI is on chain);
* the routing fee is ``max(gross * bps / 10_000, min_lamports)`` by tier
  (``TIERS``: Personal 2 % min 0.01 SOL, Professional 0.9 % min 0.01 SOL, Advanced
  0.5 % no minimum); referrer ``i`` gets ``REFERRAL_SHARES_BPS[i]`` of the fee
  (30 % / 3 % / 2 %), the fee vault the rest; our wallet gets ``gross - fee`` (a dust
  exit whose fee exceeds its proceeds costs the wallet SOL);
* a buy spends ``amount_in`` lamports into the pool plus the fee on top, and credits
  ``quote(amount_in)`` tokens to our token account.

Hostile variants (``HOSTILE_VARIANTS``) are settled the same way and then do one wrong
thing with the accounts the instruction was given: proceeds (or bought tokens) paid to
another account, a delegate or a new owner left on our token account, a second holding
of ours emptied, SOL drained from our wallet beyond the fee.

What is not modelled. The program's bytes are the SPL Memo v1 program (it accepts any
accounts and any data and does nothing); the swap, fee and hostile effects are applied
by ``SimChain`` after the runtime ran the transaction, so instructions placed after the
router instruction in the same transaction do not see them (a WSOL close after the
swap would close an empty account). The variant is a byte of the instruction data, where
a real malicious program would hide it in its code: the effects are what matters here.
Pool reserves do not move the price, the pool is a system account whose lamports pay
sells and receive buys, and USD1 output is not simulated. The direct Raydium CPMM swap
(``CPMM_PROGRAM_ID``, same stand-in bytes) pays its output as WSOL to whatever output
token account it is given, as the real program does.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, get_args

from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.token.state import TokenAccount
from solders.transaction_status import (
    InstructionErrorCustom,
    InstructionErrorFieldless,
    InstructionErrorType,
)

ROUTER_PROGRAM_ID: Final = Pubkey.from_string("LaserSe11Router1111111111111111111111111111")
"""The simulated router's program id (not the real one, which is not published)."""
CPMM_PROGRAM_ID: Final = Pubkey.from_string("CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C")
PUMP_FUN_PROGRAM_ID: Final = Pubkey.from_string("6EF8rrecthR5Dkzon8Nwu78hRvfCKubJ14M5uBEwF6P")
SYSTEM_PROGRAM_ID: Final = Pubkey.from_string("11111111111111111111111111111111")
NATIVE_MINT: Final = Pubkey.from_string("So11111111111111111111111111111111111111112")
MEMO_V1_PROGRAM_ID: Final = Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")
"""Whose bytes stand in for the router and CPMM programs."""

BPS: Final = 10_000
LAMPORTS_PER_SOL: Final = 1_000_000_000
REFERRAL_SHARES_BPS: Final = (3000, 300, 200)
MAX_REFERRERS: Final = len(REFERRAL_SHARES_BPS)

PUMP_TOO_MUCH_SOL_REQUIRED: Final = 6002
PUMP_TOO_LITTLE_SOL_RECEIVED: Final = 6003
CPMM_EXCEEDED_SLIPPAGE: Final = 6005
INSUFFICIENT_FUNDS: Final = 1
"""SPL Token ``InsufficientFunds``."""

Side = Literal["sell", "buy"]
Variant = Literal[
    "honest", "proceeds_elsewhere", "delegate", "owner_change", "drain_holding", "drain_sol",
]
VARIANTS: Final[tuple[Variant, ...]] = get_args(Variant)
HOSTILE_VARIANTS: Final = VARIANTS[1:]
DEFAULT_DRAIN_LAMPORTS: Final = LAMPORTS_PER_SOL // 2


def _discriminator(name: str) -> bytes:
    """Anchor's instruction discriminator: ``sha256("global:<name>")[:8]``."""
    return hashlib.sha256(f"global:{name}".encode()).digest()[:8]


ROUTE_SELL: Final = _discriminator("route_sell")
ROUTE_BUY: Final = _discriminator("route_buy")
CPMM_SWAP_BASE_INPUT: Final = _discriminator("swap_base_input")


# --------------------------------------------------------------------------- fees


@dataclass(frozen=True)
class RouterFees:
    """A tier's routing fee: ``bps`` of the SOL amount, at least ``min_lamports``."""

    bps: int
    min_lamports: int

    def fee(self, lamports: int) -> int:
        return max(lamports * self.bps // BPS, self.min_lamports)


TIERS: Final = {
    "personal": RouterFees(200, LAMPORTS_PER_SOL // 100),
    "professional": RouterFees(90, LAMPORTS_PER_SOL // 100),
    "advanced": RouterFees(50, 0),
}


def split_fee(fee: int, referrers: int) -> tuple[int, tuple[int, ...]]:
    """(fee vault's share, each referrer's share) of ``fee`` for 0-3 referrers."""
    if not 0 <= referrers <= MAX_REFERRERS:
        raise ValueError(f"referrers must be 0..{MAX_REFERRERS}")
    shares = tuple(fee * bps // BPS for bps in REFERRAL_SHARES_BPS[:referrers])
    return fee - sum(shares), shares


# --------------------------------------------------------------------------- instruction


_ORDER: Final = struct.Struct("<8sQQBBQ")


@dataclass(frozen=True)
class RouterOrder:
    """One router call: the swap, how many referrers follow the fixed accounts, and
    the variant (``extra_lamports`` is what ``drain_sol`` takes)."""

    side: Side
    amount_in: int
    min_out: int
    referrers: int = MAX_REFERRERS
    variant: Variant = "honest"
    extra_lamports: int = 0

    def encode(self) -> bytes:
        tag = ROUTE_SELL if self.side == "sell" else ROUTE_BUY
        return _ORDER.pack(tag, self.amount_in, self.min_out, self.referrers,
                           VARIANTS.index(self.variant), self.extra_lamports)

    @classmethod
    def decode(cls, data: bytes) -> RouterOrder:
        """ValueError if ``data`` is not a router order."""
        if len(data) != _ORDER.size:
            raise ValueError(f"router data is {len(data)} bytes, expected {_ORDER.size}")
        tag, amount_in, min_out, referrers, variant, extra = _ORDER.unpack(data)
        if tag not in (ROUTE_SELL, ROUTE_BUY):
            raise ValueError("unknown router instruction")
        if referrers > MAX_REFERRERS or variant >= len(VARIANTS):
            raise ValueError("router data out of range")
        side: Side = "sell" if tag == ROUTE_SELL else "buy"
        return cls(side, amount_in, min_out, referrers, VARIANTS[variant], extra)


# Account positions in a router instruction; referrers follow, then the variant's extra.
WALLET, MINT, TOKEN_ACCOUNT, POOL, FEE_VAULT, TOKEN_PROGRAM, SYSTEM_PROGRAM, DEX_PROGRAM = (
    range(8))
FIXED_ACCOUNTS: Final = 8


@dataclass(frozen=True)
class RouterAccounts:
    """The accounts a router instruction names (``extra``: the variant's target)."""

    wallet: Pubkey
    mint: Pubkey
    token_account: Pubkey
    pool: Pubkey
    fee_vault: Pubkey
    token_program: Pubkey
    referrers: tuple[Pubkey, ...] = ()
    extra: Pubkey | None = None
    dex_program: Pubkey = PUMP_FUN_PROGRAM_ID


def router_instruction(order: RouterOrder, accounts: RouterAccounts) -> Instruction:
    """The top-level router instruction: our wallet signs; the mint, program ids are
    read-only; our token account, the pool, fee vault, referrers and extra are writable."""
    if len(accounts.referrers) != order.referrers:
        raise ValueError("order.referrers must match the referrer accounts given")
    metas = [
        AccountMeta(accounts.wallet, True, True),
        AccountMeta(accounts.mint, False, False),
        AccountMeta(accounts.token_account, False, True),
        AccountMeta(accounts.pool, False, True),
        AccountMeta(accounts.fee_vault, False, True),
        AccountMeta(accounts.token_program, False, False),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
        AccountMeta(accounts.dex_program, False, False),
        *(AccountMeta(r, False, True) for r in accounts.referrers),
    ]
    if accounts.extra is not None:
        metas.append(AccountMeta(accounts.extra, False, True))
    return Instruction(ROUTER_PROGRAM_ID, order.encode(), metas)


@dataclass(frozen=True)
class CpmmSwap:
    """A Raydium CPMM ``swap_base_input`` selling ``amount_in`` of ``input_mint`` for
    WSOL paid to ``output_account`` (whoever owns it)."""

    payer: Pubkey
    pool: Pubkey
    input_account: Pubkey
    output_account: Pubkey
    input_mint: Pubkey
    input_token_program: Pubkey
    amount_in: int
    min_out: int


_CPMM_DATA: Final = struct.Struct("<8sQQ")
# swap_base_input accounts (raydium-cp-swap IDL): payer, authority, amm_config, pool_state,
# input_token_account, output_token_account, input_vault, output_vault, input_token_program,
# output_token_program, input_token_mint, output_token_mint, observation_state.
CPMM_PAYER, CPMM_POOL, CPMM_INPUT, CPMM_OUTPUT, CPMM_INPUT_MINT = 0, 3, 4, 5, 10
CPMM_ACCOUNTS: Final = 13


def cpmm_instruction(swap: CpmmSwap, token_program: Pubkey) -> Instruction:
    def pda(name: str) -> Pubkey:
        return Pubkey(hashlib.sha256(f"cpmm:{name}:{swap.pool}".encode()).digest())

    metas = [
        AccountMeta(swap.payer, True, False),
        AccountMeta(pda("authority"), False, False),
        AccountMeta(pda("amm_config"), False, False),
        AccountMeta(swap.pool, False, True),
        AccountMeta(swap.input_account, False, True),
        AccountMeta(swap.output_account, False, True),
        AccountMeta(pda("input_vault"), False, True),
        AccountMeta(pda("output_vault"), False, True),
        AccountMeta(swap.input_token_program, False, False),
        AccountMeta(token_program, False, False),
        AccountMeta(swap.input_mint, False, False),
        AccountMeta(NATIVE_MINT, False, False),
        AccountMeta(pda("observation"), False, True),
    ]
    data = _CPMM_DATA.pack(CPMM_SWAP_BASE_INPUT, swap.amount_in, swap.min_out)
    return Instruction(CPMM_PROGRAM_ID, data, metas)


def decode_cpmm(data: bytes) -> tuple[int, int]:
    """(amount_in, min_out) of a ``swap_base_input``; ValueError otherwise."""
    if len(data) != _CPMM_DATA.size or data[:8] != CPMM_SWAP_BASE_INPUT:
        raise ValueError("not a CPMM swap_base_input")
    _, amount_in, min_out = _CPMM_DATA.unpack(data)
    return int(amount_in), int(min_out)


# --------------------------------------------------------------------------- settlement


class AccountSource(Protocol):
    """Accounts as the transaction left them (post-state over the chain)."""

    def get(self, pubkey: Pubkey) -> Account | None: ...


@dataclass(frozen=True)
class RouterEffect:
    """What a router (or CPMM) instruction moves: account writes and a summary."""

    writes: tuple[tuple[Pubkey, Account], ...]
    tokens: int
    lamports: int
    fee: int = 0
    referrer_payouts: tuple[int, ...] = ()


@dataclass(frozen=True)
class RouterFailure:
    """The instruction fails with ``err``; ``logs`` are its program log lines."""

    err: InstructionErrorType
    logs: tuple[str, ...] = ()


TOKEN_ACCOUNT_LEN: Final = 165
U64_MAX: Final = 2**64 - 1


def parse_token_account(account: Account | None) -> TokenAccount | None:
    if account is None or len(account.data) < TOKEN_ACCOUNT_LEN:
        return None
    try:
        return TokenAccount.from_bytes(account.data[:TOKEN_ACCOUNT_LEN])
    except ValueError:
        return None


def with_lamports(account: Account, lamports: int) -> Account:
    return Account(lamports, account.data, account.owner, account.executable, account.rent_epoch)


def with_token_state(account: Account, state: TokenAccount, *, amount: int | None = None,
                     owner: Pubkey | None = None, delegate: Pubkey | None = None,
                     delegated_amount: int | None = None, lamports: int | None = None) -> Account:
    """The same token account with some fields changed; extension bytes are kept."""
    updated = TokenAccount(
        state.mint, owner or state.owner, state.amount if amount is None else amount,
        delegate or state.delegate, state.state, state.is_native,
        state.delegated_amount if delegated_amount is None else delegated_amount,
        state.close_authority,
    )
    data = bytes(updated) + account.data[TOKEN_ACCOUNT_LEN:]
    return Account(account.lamports if lamports is None else lamports, data, account.owner,
                   account.executable, account.rent_epoch)


class _Writes:
    """Account edits applied in order over a source (later edits see earlier ones)."""

    def __init__(self, source: AccountSource) -> None:
        self._source = source
        self._edits: dict[Pubkey, Account] = {}

    def get(self, pubkey: Pubkey) -> Account | None:
        edited = self._edits.get(pubkey)
        return edited if edited is not None else self._source.get(pubkey)

    def set(self, pubkey: Pubkey, account: Account) -> None:
        self._edits[pubkey] = account

    def add_lamports(self, pubkey: Pubkey, delta: int) -> bool:
        """Credit (or debit) ``pubkey``; False if that would go negative. A missing
        account is created as a system account."""
        account = self.get(pubkey) or Account(0, b"", SYSTEM_PROGRAM_ID)
        if account.lamports + delta < 0:
            return False
        self.set(pubkey, with_lamports(account, account.lamports + delta))
        return True

    def items(self) -> tuple[tuple[Pubkey, Account], ...]:
        return tuple(self._edits.items())


@dataclass(frozen=True)
class RouterCall:
    """A decoded router instruction with its resolved accounts."""

    order: RouterOrder
    keys: Sequence[Pubkey]

    def key(self, position: int) -> Pubkey:
        return self.keys[position]

    @property
    def referrers(self) -> Sequence[Pubkey]:
        return self.keys[FIXED_ACCOUNTS:FIXED_ACCOUNTS + self.order.referrers]

    @property
    def extra(self) -> Pubkey | None:
        index = FIXED_ACCOUNTS + self.order.referrers
        return self.keys[index] if index < len(self.keys) else None


def settle_router(call: RouterCall, source: AccountSource, price: float,
                  fees: RouterFees) -> RouterEffect | RouterFailure:
    """Settle one router instruction with the price model (pure)."""
    if len(call.keys) < FIXED_ACCOUNTS + call.order.referrers:
        return RouterFailure(InstructionErrorFieldless.NotEnoughAccountKeys)
    if call.order.variant != "honest" and call.extra is None:
        return RouterFailure(InstructionErrorFieldless.NotEnoughAccountKeys)
    writes = _Writes(source)
    settle = _sell if call.order.side == "sell" else _buy
    outcome = settle(call, writes, price, fees)
    if isinstance(outcome, RouterFailure):
        return outcome
    tokens, lamports, fee, payouts = outcome
    failure = _hostile(call, writes)
    if failure is not None:
        return failure
    return RouterEffect(writes.items(), tokens, lamports, fee, payouts)


_Outcome = tuple[int, int, int, tuple[int, ...]] | RouterFailure


def _owned_holding(call: RouterCall, writes: _Writes) -> tuple[Account, TokenAccount] | None:
    account = writes.get(call.key(TOKEN_ACCOUNT))
    state = parse_token_account(account)
    if account is None or state is None:
        return None
    if state.owner != call.key(WALLET) or state.mint != call.key(MINT):
        return None
    return account, state


def _pay_fee(call: RouterCall, writes: _Writes, fee: int) -> tuple[int, ...] | RouterFailure:
    """Take ``fee`` from our wallet into the vault and referrers."""
    vault_share, shares = split_fee(fee, call.order.referrers)
    if not writes.add_lamports(call.key(WALLET), -fee):
        return RouterFailure(InstructionErrorCustom(INSUFFICIENT_FUNDS))
    writes.add_lamports(call.key(FEE_VAULT), vault_share)
    for referrer, share in zip(call.referrers, shares, strict=True):
        writes.add_lamports(referrer, share)
    return shares


def _sell(call: RouterCall, writes: _Writes, price: float, fees: RouterFees) -> _Outcome:
    order = call.order
    holding = _owned_holding(call, writes)
    if holding is None:
        return RouterFailure(InstructionErrorFieldless.InvalidAccountData)
    account, state = holding
    if state.amount < order.amount_in:
        return RouterFailure(InstructionErrorCustom(INSUFFICIENT_FUNDS))
    gross = int(order.amount_in * price)
    if gross < order.min_out:
        return _slippage(PUMP_TOO_LITTLE_SOL_RECEIVED, "sell")
    writes.set(call.key(TOKEN_ACCOUNT),
               with_token_state(account, state, amount=state.amount - order.amount_in))
    if not writes.add_lamports(call.key(POOL), -gross):
        return RouterFailure(InstructionErrorCustom(INSUFFICIENT_FUNDS))
    recipient = call.extra if order.variant == "proceeds_elsewhere" else call.key(WALLET)
    assert recipient is not None
    writes.add_lamports(recipient, gross)
    fee = fees.fee(gross)
    shares = _pay_fee(call, writes, fee)
    if isinstance(shares, RouterFailure):
        return shares
    return order.amount_in, gross, fee, shares


def _buy(call: RouterCall, writes: _Writes, price: float, fees: RouterFees) -> _Outcome:
    order = call.order
    fee = fees.fee(order.amount_in)
    if not writes.add_lamports(call.key(WALLET), -order.amount_in):
        return RouterFailure(InstructionErrorCustom(INSUFFICIENT_FUNDS))
    writes.add_lamports(call.key(POOL), order.amount_in)
    shares = _pay_fee(call, writes, fee)
    if isinstance(shares, RouterFailure):
        return shares
    tokens = int(order.amount_in / price)
    if tokens < order.min_out:
        return _slippage(PUMP_TOO_MUCH_SOL_REQUIRED, "buy")
    target = call.extra if order.variant == "proceeds_elsewhere" else call.key(TOKEN_ACCOUNT)
    assert target is not None
    account = writes.get(target)
    state = parse_token_account(account)
    if account is None or state is None or state.mint != call.key(MINT):
        return RouterFailure(InstructionErrorFieldless.UninitializedAccount)
    writes.set(target, with_token_state(account, state, amount=state.amount + tokens))
    return tokens, order.amount_in, fee, shares


def _hostile(call: RouterCall, writes: _Writes) -> RouterFailure | None:
    """Apply the variant's extra effect after an honest-looking swap."""
    variant, extra = call.order.variant, call.extra
    if variant in ("honest", "proceeds_elsewhere") or extra is None:
        return None
    if variant == "drain_sol":
        amount = call.order.extra_lamports
        if not writes.add_lamports(call.key(WALLET), -amount):
            return RouterFailure(InstructionErrorCustom(INSUFFICIENT_FUNDS))
        writes.add_lamports(extra, amount)
        return None
    target = extra if variant == "drain_holding" else call.key(TOKEN_ACCOUNT)
    account = writes.get(target)
    state = parse_token_account(account)
    if account is None or state is None:
        return RouterFailure(InstructionErrorFieldless.InvalidAccountData)
    if variant == "drain_holding":
        writes.set(target, with_token_state(account, state, amount=0))
    elif variant == "delegate":
        writes.set(target, with_token_state(account, state, delegate=_attacker_of(call),
                                            delegated_amount=U64_MAX))
    else:
        writes.set(target, with_token_state(account, state, owner=_attacker_of(call)))
    return None


def _attacker_of(call: RouterCall) -> Pubkey:
    extra = call.extra
    assert extra is not None
    return extra


def settle_cpmm(keys: Sequence[Pubkey], data: bytes, source: AccountSource,
                price: float) -> RouterEffect | RouterFailure:
    """A direct CPMM sell: tokens out of the input account (the payer must own it), WSOL
    into the output account, whoever owns it (the real program does not check)."""
    try:
        amount_in, min_out = decode_cpmm(data)
    except ValueError:
        return RouterFailure(InstructionErrorFieldless.InvalidInstructionData)
    if len(keys) < CPMM_ACCOUNTS:
        return RouterFailure(InstructionErrorFieldless.NotEnoughAccountKeys)
    writes = _Writes(source)
    source_account = writes.get(keys[CPMM_INPUT])
    state = parse_token_account(source_account)
    if source_account is None or state is None or state.mint != keys[CPMM_INPUT_MINT]:
        return RouterFailure(InstructionErrorFieldless.InvalidAccountData)
    if state.owner != keys[CPMM_PAYER]:
        return RouterFailure(InstructionErrorCustom(4))  # SPL Token OwnerMismatch
    if state.amount < amount_in:
        return RouterFailure(InstructionErrorCustom(INSUFFICIENT_FUNDS))
    out = int(amount_in * price)
    if out < min_out:
        return RouterFailure(InstructionErrorCustom(CPMM_EXCEEDED_SLIPPAGE),
                             _anchor_error("ExceededSlippage", CPMM_EXCEEDED_SLIPPAGE,
                                           "Exceeds desired slippage limit"))
    output = writes.get(keys[CPMM_OUTPUT])
    out_state = parse_token_account(output)
    if output is None or out_state is None or out_state.mint != NATIVE_MINT:
        return RouterFailure(InstructionErrorFieldless.InvalidAccountData)
    if not writes.add_lamports(keys[CPMM_POOL], -out):
        return RouterFailure(InstructionErrorCustom(INSUFFICIENT_FUNDS))
    writes.set(keys[CPMM_INPUT],
               with_token_state(source_account, state, amount=state.amount - amount_in))
    writes.set(keys[CPMM_OUTPUT], with_token_state(
        output, out_state, amount=out_state.amount + out, lamports=output.lamports + out))
    return RouterEffect(writes.items(), amount_in, out)


def _slippage(code: int, side: Side) -> RouterFailure:
    if side == "sell":
        name, text = "TooLittleSolReceived", "Too little SOL received to sell the given amount"
    else:
        name, text = "TooMuchSolRequired", "Too much SOL required to buy the given amount"
    logs = (
        f"Program {PUMP_FUN_PROGRAM_ID} invoke [2]",
        f"Program log: Instruction: {side.capitalize()}",
        *_anchor_error(name, code, f"slippage: {text} of tokens"),
        f"Program {PUMP_FUN_PROGRAM_ID} failed: custom program error: {code:#x}",
    )
    return RouterFailure(InstructionErrorCustom(code), logs)


def _anchor_error(name: str, code: int, message: str) -> tuple[str, ...]:
    return (f"Program log: AnchorError occurred. Error Code: {name}. Error Number: {code}. "
            f"Error Message: {message}.",)
