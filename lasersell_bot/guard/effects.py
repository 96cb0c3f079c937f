"""The effects stage: judge a transaction by what it does to our accounts.

Pure: account states before (``getMultipleAccounts``) and after (``simulateTransaction``
with ``accounts``) the transaction, and what the signal promised, in; a verdict out.
The RPC round trip that feeds it lives in ``lasersell_bot.simulate``.

Only the accounts a transaction marks writable can change, so the caller asks for every
writable account (static and lookup-table loaded). Of those, these are *ours*: the
wallet, and every token account whose owner field is the wallet, before or after.
What is judged:

* the wallet stays a System-owned account with no data;
* a token account of ours keeps its owner, gains no delegate, delegated amount or close
  authority (one handed to us keeps none of its old owner's), and is not newly frozen;
  only an exact 165-byte SPL Token account (or a Token-2022 one, never 355 bytes: a
  multisig) counts as a token account;
* an account that named our wallet before (an authority field: a mint, a stake account,
  a program's user record) still names it at the same place after, and unless a token
  program, a built-in DEX or a program the user trusts owns it, it does not change;
* an exit lowers our balance of the position's mint by more than zero and by no more
  than the signal's tokens; no other token balance of ours falls (wrapped SOL is counted
  with SOL, through lamports);
* what we receive in the quote asset reaches the promised minimum (see ``Promise``);
  a SOL loss beyond every fee the trade may pay is named as a drain;
* a mirror buy spends no more than the promised maximum and leaves us holding more of
  the signalled mint.

SOL is counted as the lamports of the wallet and of every token account of ours (so
rent parked in our own new token account, and wrapped SOL, stay ours), plus any loss
(never a gain) of lamports from an existing account that named our wallet: lamports
added to an account merely because it mentions us are not counted as ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from solders.pubkey import Pubkey

from lasersell_bot.guard.policy import (
    DEX_PROGRAM_IDS,
    SYSTEM_ID,
    TOKEN_2022_ID,
    TOKEN_PROGRAM_IDS,
    USD1_ID,
    WSOL_ID,
    Kind,
)

BPS = 10_000
USDC_ID = Pubkey.from_string("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")
QUOTE_MINTS = frozenset({WSOL_ID, USD1_ID, USDC_ID})
TOKEN_ACCOUNT_SIZE = 165
_ACCOUNT_TYPE_ACCOUNT = 2  # Token-2022: byte 165 of an extended account says what it is
_STATE_UNINITIALIZED = 0
_STATE_FROZEN = 2
MULTISIG_SIZE = 355


@dataclass(frozen=True, slots=True)
class AccountState:
    """One account as the RPC reports it (``None`` stands for an account that does not
    exist, or holds no lamports)."""

    lamports: int
    owner: Pubkey
    data: bytes
    executable: bool = False


@dataclass(frozen=True, slots=True)
class TokenAccount:
    """The base fields of an SPL Token / Token-2022 account."""

    mint: Pubkey
    owner: Pubkey
    amount: int
    delegate: Pubkey | None
    close_authority: Pubkey | None
    frozen: bool = False
    delegated_amount: int = 0


def _coption_key(data: bytes, offset: int) -> Pubkey | None:
    if data[offset:offset + 4] == b"\x00\x00\x00\x00":
        return None
    return Pubkey.from_bytes(data[offset + 4:offset + 36])


def token_account(state: AccountState | None) -> TokenAccount | None:
    """The token account in ``state``, or None when it is not an initialised one."""
    if state is None or state.owner not in TOKEN_PROGRAM_IDS:
        return None
    data = state.data
    size = len(data)
    if size != TOKEN_ACCOUNT_SIZE and (
            state.owner != TOKEN_2022_ID or size < TOKEN_ACCOUNT_SIZE
            or size == MULTISIG_SIZE or data[TOKEN_ACCOUNT_SIZE] != _ACCOUNT_TYPE_ACCOUNT):
        # SPL Token accounts are exactly 165 bytes; Token-2022 pads extended accounts so
        # that none is a multisig's 355 (a multisig's bytes could otherwise pass as ours).
        return None
    if data[108] == _STATE_UNINITIALIZED:
        return None
    return TokenAccount(
        mint=Pubkey.from_bytes(data[0:32]), owner=Pubkey.from_bytes(data[32:64]),
        amount=int.from_bytes(data[64:72], "little"), delegate=_coption_key(data, 72),
        close_authority=_coption_key(data, 129), frozen=data[108] == _STATE_FROZEN,
        delegated_amount=int.from_bytes(data[121:129], "little"))


# ---------------------------------------------------------------------------
# What the signal promised


@dataclass(frozen=True, slots=True)
class Promise:
    """The bounds a transaction's effects must stay within.

    ``quote_mint`` is the asset proceeds are paid in (``WSOL_ID`` for SOL). For an exit,
    ``min_quote_gain`` is the least our quote balance (lamports, for SOL) may rise by (it
    may be negative: a dust exit can cost more in fees than it returns);
    ``max_sell_tokens`` bounds the tokens of ``mint`` that may leave us. For a mirror buy,
    ``max_spend`` bounds what leaves us in the quote asset (SOL: lamports, fees included).
    ``fee_budget`` is every fee the trade may pay (routing fee allowance, tip, priority and
    signature fees): a SOL loss larger than that is a drain, not a bad price.
    """

    wallet: Pubkey
    kind: Kind
    mint: Pubkey
    quote_mint: Pubkey = WSOL_ID
    max_sell_tokens: int = 0
    min_quote_gain: int = 0
    max_spend: int = 0
    fee_budget: int = 0
    trusted_programs: frozenset[Pubkey] = frozenset()


def routing_fee_allowance(value: int, fee_bps: int, min_fee: int) -> int:
    """The most a trade worth ``value`` quote units may pay in routing fees."""
    return max(-(-max(value, 0) * fee_bps // BPS), min_fee)


def expected_proceeds(entry_quote_units: int, profit_units: int, position_tokens: int,
                      sold_tokens: int) -> int:
    """Position value the signal reports (entry + profit), pro rata for a partial sell."""
    value = max(entry_quote_units + profit_units, 0)
    if position_tokens <= 0 or sold_tokens >= position_tokens:
        return value
    return value * sold_tokens // position_tokens


@dataclass(frozen=True, slots=True)
class ExitTerms:
    """An exit signal's numbers and the user's bounds, turned into a ``Promise``."""

    wallet: Pubkey
    mint: Pubkey
    quote_mint: Pubkey
    sell_tokens: int
    expected_quote: int
    slippage_bps: int
    fee_bps: int
    min_fee_lamports: int
    costs_lamports: int

    def promise(self) -> Promise:
        sol_quote = self.quote_mint == WSOL_ID
        fee = routing_fee_allowance(self.expected_quote, self.fee_bps,
                                    self.min_fee_lamports if sol_quote else 0)
        after_slippage = self.expected_quote * (BPS - min(self.slippage_bps, BPS)) // BPS
        if sol_quote:
            return Promise(self.wallet, "exit", self.mint, self.quote_mint,
                           max_sell_tokens=self.sell_tokens,
                           min_quote_gain=after_slippage - fee - self.costs_lamports,
                           fee_budget=fee + self.costs_lamports)
        return Promise(self.wallet, "exit", self.mint, self.quote_mint,
                       max_sell_tokens=self.sell_tokens, min_quote_gain=after_slippage - fee,
                       fee_budget=self.costs_lamports)


def buy_promise(wallet: Pubkey, mint: Pubkey, max_spend_lamports: int, fee_allowance: int,
                costs_lamports: int) -> Promise:
    """A SOL mirror buy: at most the agreed spend (slippage included), the routing-fee
    allowance, and tip, priority, signature fees and rent (``costs_lamports``)."""
    budget = fee_allowance + costs_lamports
    return Promise(wallet, "mirror_buy", mint, WSOL_ID,
                   max_spend=max_spend_lamports + budget, fee_budget=budget)


# ---------------------------------------------------------------------------
# The verdict


@dataclass(frozen=True, slots=True)
class Deltas:
    """Net changes to our holdings: lamports, the traded mint, the quote asset."""

    sol: int
    mint: int
    quote: int

    def text(self) -> str:
        return f"sol {self.sol:+d} lamports, mint {self.mint:+d}, quote {self.quote:+d}"


@dataclass(frozen=True, slots=True)
class EffectsVerdict:
    ok: bool
    reason: str = ""
    detail: str = ""
    deltas: Deltas | None = None


def _refuse(reason: str, detail: str, deltas: Deltas | None = None) -> EffectsVerdict:
    return EffectsVerdict(False, reason, detail, deltas)


@dataclass(slots=True)
class _Ledger:
    """Our holdings before and after, summed over the accounts that are ours."""

    sol: int = 0
    tokens: dict[Pubkey, int] | None = None

    def add_tokens(self, mint: Pubkey, amount: int) -> None:
        if self.tokens is None:
            self.tokens = {}
        self.tokens[mint] = self.tokens.get(mint, 0) + amount

    def token(self, mint: Pubkey) -> int:
        return (self.tokens or {}).get(mint, 0)


def judge(promise: Promise, addresses: Sequence[Pubkey], pre: Sequence[AccountState | None],
          post: Sequence[AccountState | None]) -> EffectsVerdict:
    """Decide from the pre- and post-state of ``addresses`` (every writable account)."""
    if not len(addresses) == len(pre) == len(post):
        return _refuse("effects_incomplete", f"{len(addresses)} addresses, {len(pre)} "
                       f"pre-states, {len(post)} post-states")
    if promise.wallet not in addresses:
        return _refuse("effects_incomplete", "our wallet is not among the simulated accounts")
    before, after = _Ledger(), _Ledger()
    trusted = TOKEN_PROGRAM_IDS | DEX_PROGRAM_IDS | promise.trusted_programs
    for address, old, new in zip(addresses, pre, post, strict=True):
        refusal = _account_rule(promise.wallet, address, old, new, trusted)
        if refusal is not None:
            return refusal
        _count(promise.wallet, address, old, before, after, new)
    return _balances(promise, before, after)


_AUTHORITIES_ADDED = (("delegate", "effects_delegate_added"),
                      ("close_authority", "effects_close_authority_added"))


def _account_rule(wallet: Pubkey, address: Pubkey, old: AccountState | None,
                  new: AccountState | None, trusted: frozenset[Pubkey]) -> EffectsVerdict | None:
    if address == wallet:
        if new is not None and (new.owner != SYSTEM_ID or new.data):
            return _refuse("effects_wallet_changed", f"our wallet would be owned by "
                           f"{new.owner} with {len(new.data)} data bytes")
        return None
    old_token, new_token = token_account(old), token_account(new)
    if old_token is not None and old_token.owner == wallet and new is not None and (
            new_token is None or new_token.owner != wallet):
        shown = new_token.owner if new_token is not None else f"program {new.owner}"
        return _refuse("effects_owner_changed",
                       f"our token account {address} would belong to {shown}")
    if new_token is not None and new_token.owner == wallet:
        was_ours = old_token if old_token is not None and old_token.owner == wallet else None
        return _our_account_rule(address, was_ours, new_token)
    if old_token is None and old is not None and new is not None:
        return _authority_rule(wallet, address, old, new, trusted)
    return None


def _our_account_rule(address: Pubkey, was: TokenAccount | None,
                      now: TokenAccount) -> EffectsVerdict | None:
    """A token account of ours after the transaction: no authority it did not already
    have while it was ours (one handed to us keeps nothing of its old owner's), no larger
    delegated amount, and not newly frozen."""
    for field, reason in _AUTHORITIES_ADDED:
        value = getattr(now, field)
        if value is not None and (was is None or getattr(was, field) != value):
            return _refuse(reason, f"our token account {address} would get {field} {value}")
    if was is not None and now.delegated_amount > was.delegated_amount:
        return _refuse("effects_delegate_added", f"our token account {address}: its delegate "
                       f"could move {now.delegated_amount} tokens, {was.delegated_amount} "
                       "before")
    if now.frozen and (was is None or not was.frozen):
        return _refuse("effects_frozen", f"our token account {address} would be frozen")
    return None


def _authority_rule(wallet: Pubkey, address: Pubkey, old: AccountState,
                    new: AccountState, trusted: frozenset[Pubkey]) -> EffectsVerdict | None:
    """An account that named our wallet (e.g. as its authority, or a user record in a
    lending or perps program holding our value) must still name it there; and unless a
    trusted program (token, built-in DEX, ``guard.extra_programs``) owns it, its data must
    not change at all: we cannot tell what such a change is worth."""
    needle = bytes(wallet)
    if needle in old.data and new.data != old.data and old.owner not in trusted:
        return _refuse("effects_foreign_state_changed", f"account {address} (owned by "
                       f"{old.owner}) names our wallet and would change; a program we "
                       "cannot read may be moving value we control")
    start = old.data.find(needle)
    while start != -1:
        if new.data[start:start + 32] != needle:
            return _refuse("effects_authority_removed", f"account {address} (owned by "
                           f"{old.owner}) would stop naming our wallet at byte {start}")
        start = old.data.find(needle, start + 1)
    return None


def _count(wallet: Pubkey, address: Pubkey, old: AccountState | None, before: _Ledger,
           after: _Ledger, new: AccountState | None) -> None:
    old_lamports = old.lamports if old is not None else 0
    new_lamports = new.lamports if new is not None else 0
    if address == wallet:
        before.sol += old_lamports
        after.sol += new_lamports
        return
    old_token, new_token = token_account(old), token_account(new)
    old_ours = old_token is not None and old_token.owner == wallet
    new_ours = new_token is not None and new_token.owner == wallet
    if old_ours or new_ours:
        before.sol += old_lamports
        after.sol += new_lamports
        if old_ours and old_token is not None:
            before.add_tokens(old_token.mint, old_token.amount)
        if new_ours and new_token is not None:
            after.add_tokens(new_token.mint, new_token.amount)
    elif (old is not None and bytes(wallet) in old.data and new_lamports < old_lamports
          and old.owner not in DEX_PROGRAM_IDS):
        # A pool or curve may name us (as its coin's creator): its lamports are not ours.
        before.sol += old_lamports - new_lamports


def _balances(promise: Promise, before: _Ledger, after: _Ledger) -> EffectsVerdict:
    sol = after.sol - before.sol
    mint = after.token(promise.mint) - before.token(promise.mint)
    sol_quote = promise.quote_mint == WSOL_ID
    quote = sol if sol_quote else after.token(promise.quote_mint) - before.token(
        promise.quote_mint)
    deltas = Deltas(sol=sol, mint=mint, quote=quote)
    drained = _drained_token(promise, before, after)
    if drained is not None:
        return _refuse("effects_token_drained", drained, deltas)
    if promise.kind == "exit":
        return _exit_balances(promise, deltas, sol_quote, before, after)
    return _buy_balances(promise, deltas, sol_quote)


def _drained_token(promise: Promise, before: _Ledger, after: _Ledger) -> str | None:
    """A fall in any token of ours but the traded mint, wrapped SOL and the quote asset."""
    spared = {promise.mint, WSOL_ID, promise.quote_mint}
    for token_mint, amount in (before.tokens or {}).items():
        if token_mint in spared:
            continue
        fall = amount - after.token(token_mint)
        if fall > 0:
            return f"our balance of {token_mint} would fall by {fall}"
    return None


def _exit_balances(promise: Promise, deltas: Deltas, sol_quote: bool, before: _Ledger,
                   after: _Ledger) -> EffectsVerdict:
    if deltas.mint >= 0:
        return _refuse("effects_sells_nothing", f"our balance of {promise.mint} would not "
                       f"fall ({deltas.mint:+d})", deltas)
    if -deltas.mint > promise.max_sell_tokens:
        return _refuse("effects_sells_too_much", f"would sell {-deltas.mint} tokens, the "
                       f"signal allows {promise.max_sell_tokens}", deltas)
    if deltas.sol < -promise.fee_budget:
        return _refuse("effects_sol_drained", f"we would lose {-deltas.sol} lamports, more "
                       f"than every fee allowed ({promise.fee_budget})", deltas)
    if deltas.quote < promise.min_quote_gain:
        unit = "lamports" if sol_quote else f"units of {promise.quote_mint}"
        other = _other_quote_gained(promise, before, after)
        if other is not None:
            return _refuse("effects_quote_unvalued", f"paid {other} instead of the "
                           f"position's quote asset ({deltas.quote:+d} {unit}); the guard "
                           "has no price to value it against the signal", deltas)
        return _refuse("effects_proceeds_too_low", f"we would receive {deltas.quote:+d} "
                       f"{unit}, at least {promise.min_quote_gain} expected", deltas)
    return EffectsVerdict(True, deltas=deltas)


def _other_quote_gained(promise: Promise, before: _Ledger, after: _Ledger) -> str | None:
    """A quote asset other than the position's that our balance of would rise in."""
    for mint in QUOTE_MINTS - {promise.quote_mint}:
        gained = after.token(mint) - before.token(mint)
        if gained > 0 and mint != WSOL_ID:
            return f"{gained} units of {mint}"
    return None


def _buy_balances(promise: Promise, deltas: Deltas, sol_quote: bool) -> EffectsVerdict:
    spent = -deltas.quote
    if spent > promise.max_spend:
        return _refuse("effects_spend_too_high", f"the buy would spend {spent}, at most "
                       f"{promise.max_spend} agreed", deltas)
    if not sol_quote and deltas.sol < -promise.fee_budget:
        return _refuse("effects_sol_drained", f"we would lose {-deltas.sol} lamports, more "
                       f"than every fee allowed ({promise.fee_budget})", deltas)
    if deltas.mint <= 0:
        return _refuse("effects_buy_receives_nothing", f"our balance of {promise.mint} would "
                       f"not rise ({deltas.mint:+d})", deltas)
    return EffectsVerdict(True, deltas=deltas)
