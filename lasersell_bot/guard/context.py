"""What one static check knows while it walks a transaction: the resolved keys, what we
expect, and the running tallies (tips, SOL spend, fees to strangers, accounts we fund).

Shared by the instruction rules in ``static``, ``token`` and ``dex``; pure data, no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from solders.pubkey import Pubkey

from lasersell_bot.guard.policy import (
    TOKEN_ID,
    USD1_ID,
    WSOL_ID,
    Expectation,
    GuardPolicy,
    associated_token_address,
)


def u64(data: bytes, offset: int) -> int:
    """Little-endian u64 at ``offset``; ``struct.error`` when the data is too short."""
    return int(struct.unpack_from("<Q", data, offset)[0])


class Ix:
    """A compiled instruction as plain values: solders builds new objects on every
    attribute read, so the walk converts each instruction once (a plain slots class:
    a frozen dataclass or NamedTuple costs several times more to build)."""

    __slots__ = ("accounts", "data", "program_id_index")

    def __init__(self, program_id_index: int, accounts: bytes, data: bytes) -> None:
        self.program_id_index = program_id_index
        self.accounts = accounts
        self.data = data


@dataclass(slots=True)
class Tally:
    """What the walk adds up, for the totals check and the verdict."""

    tips: int = 0
    wraps: int = 0  # SOL moved into our own WSOL accounts (ATA or a funded temp account)
    trade_in: int = 0  # SOL or WSOL that recognised buys may pull at most
    fee_lamports: int = 0  # SOL / WSOL sent to strangers (effects verification on)
    fee_usd1: int = 0  # USD1 sent to strangers (effects verification on)
    cu_price: int = 0
    cu_price_ix: int | None = None
    cu_limit: int | None = None
    compute_kinds: set[int] = field(default_factory=set)


@dataclass(slots=True)
class Funded:
    """An account this transaction creates with our lamports."""

    instruction: int
    owner: Pubkey


@dataclass(slots=True)
class Ctx:
    """State of one ``check_transaction`` walk.

    ``keys`` holds every account in runtime order (static keys, then lookup-table keys
    when the tables were given); an index past it is a lookup-table key we could not
    resolve, and rules see it as ``None`` (never ours, never a tip account).
    """

    policy: GuardPolicy
    expect: Expectation
    keys: tuple[Pubkey, ...]
    num_static: int
    num_instructions: int
    tally: Tally = field(default_factory=Tally)
    funded: dict[Pubkey, Funded] = field(default_factory=dict)
    own_accounts: dict[Pubkey, Pubkey] = field(default_factory=dict)  # account -> mint
    unknown_programs: dict[str, None] = field(default_factory=dict)
    effects_only: dict[str, None] = field(default_factory=dict)  # Verdict.effects_only

    def key(self, ix: Ix, pos: int) -> Pubkey | None:
        """Account at ``pos`` of ``ix``; None if missing or an unresolved lookup-table key."""
        accounts = ix.accounts
        if pos >= len(accounts) or accounts[pos] >= len(self.keys):
            return None
        return self.keys[accounts[pos]]

    def is_static(self, ix: Ix, pos: int) -> bool:
        accounts = ix.accounts
        return pos < len(accounts) and accounts[pos] < self.num_static

    def ours(self, ix: Ix, pos: int) -> bool:
        return self.key(ix, pos) == self.expect.wallet

    def ours_from(self, ix: Ix, pos: int) -> bool:
        """Our wallet at ``pos`` or later (authority, or a multisig signer after it)."""
        return any(self.ours(ix, p) for p in range(pos, len(ix.accounts)))

    def mentions_us(self, ix: Ix) -> bool:
        return self.ours_from(ix, 0)

    def own_wsol(self, account: Pubkey | None) -> bool:
        """Our WSOL account: the SPL Token ATA (the Token-2022 derivation of the native
        mint can never exist) or a temp account this transaction initialised for us."""
        if account is None:
            return False
        if self.own_accounts.get(account) == WSOL_ID:
            return True
        return account == associated_token_address(self.expect.wallet, WSOL_ID, TOKEN_ID)

    def own_token_account(self, account: Pubkey | None, mint: Pubkey | None,
                          program: Pubkey | None) -> bool:
        """``account`` is our ATA for ``mint`` under ``program``, or a token account of
        that mint this transaction initialised for us."""
        if account is None or mint is None:
            return False
        if self.own_accounts.get(account) == mint:
            return True
        if mint == WSOL_ID:
            return self.own_wsol(account)
        return program is not None and account == associated_token_address(
            self.expect.wallet, mint, program)

    def own_usd1(self, account: Pubkey | None, program: Pubkey) -> bool:
        return self.own_token_account(account, USD1_ID, program)
