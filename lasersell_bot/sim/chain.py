"""The local Solana chain the simulator and the tests run on.

``SimChain`` owns a LiteSVM instance (the real Solana runtime, in-process) and
adds what LiteSVM leaves out and a mainnet RPC node shows: slots and block
heights, a window of recent blockhashes, signature statuses with commitment
levels, duplicate-signature rejection, and a price model that settles
simulated DEX swaps by really moving SOL and SPL token balances.

Three kinds of swap instruction are settled, one per transaction:

* the direct-DEX stand-in: a Memo instruction ``lasersell-sim:v1:<side>:<mint>:<in>:<min_out>``
  signed by the user's wallet (see ``SwapOrder``); proceeds go to the wallet's lamports;
* the LaserSell Router (``sim.router``, program ``ROUTER_PROGRAM_ID``): swap, routing fee
  by tier (``router_fees``), referral split to ``referrers``, the rest to ``fee_vault``,
  and the hostile variants; its accounts may come from address lookup tables
  (``create_lookup_table``);
* a Raydium CPMM ``swap_base_input`` (direct DEX) paying WSOL to its output account.

Settlement is applied after LiteSVM ran the transaction (see ``sim.router`` for what
that leaves out). ``simulate`` returns the post-state of every account the transaction
wrote, swap included (``SimulationResult.post``). No asyncio here: callers
(``sim.rpc``, tests) drive the clock with ``advance``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from solders.account import Account
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.token.associated import get_associated_token_address
from solders.token.state import Mint, TokenAccount, TokenAccountState
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import (
    FailedTransactionMetadata,
    SimulatedTransactionInfo,
    TransactionMetadata,
)
from solders.transaction_status import (
    InstructionErrorCustom,
    InstructionErrorFieldless,
    InstructionErrorType,
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
    TransactionErrorType,
    TransactionStatus,
)
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from spl.token.instructions import create_idempotent_associated_token_account, initialize_mint2
from spl.token.instructions import mint_to as spl_mint_to
from spl.token.models import InitializeMint2Params, MintToParams

from lasersell_bot.config import HELIUS_TIP_ACCOUNTS
from lasersell_bot.sim.router import (
    CPMM_PROGRAM_ID,
    MAX_REFERRERS,
    MEMO_V1_PROGRAM_ID,
    NATIVE_MINT,
    ROUTER_PROGRAM_ID,
    TIERS,
    RouterFailure,
    RouterFees,
)
from lasersell_bot.sim.routing import RoutedSwap, failure_logs, routed_swap, sim_address
from lasersell_bot.sim.tables import table_account

MEMO_PROGRAM_ID: Final = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
TOKEN_PROGRAMS: Final = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)

SLIPPAGE_ERROR_CODE: Final = 6003
"""pump.fun ``TooLittleSolReceived``: the swap would pay out less than ``min_out``."""
INSUFFICIENT_FUNDS_ERROR_CODE: Final = 1
"""SPL Token ``InsufficientFunds`` / System ``ResultWithNegativeLamports``."""
LAMPORTS_PER_SIGNATURE: Final = 5000
MAX_PROCESSING_AGE: Final = 150
"""A blockhash is usable for this many blocks after the one that produced it."""
FINALIZE_AFTER_SLOTS: Final = 32

GENESIS_SLOT: Final = 350_000_000
SKIPPED_SLOTS_BEFORE_GENESIS: Final = 21_000_000
"""Block height trails the slot (skipped slots), so code mixing them up fails."""

SWAP_MEMO_PREFIX: Final = "lasersell-sim:v1:"
_SWAP_MEMO = re.compile(r"lasersell-sim:v1:(sell|buy):([1-9A-HJ-NP-Za-km-z]{32,44}):(\d+):(\d+)")
_TOKEN_ACCOUNT_LEN: Final = 165
_MINT_LEN: Final = 82
_AUTHORITY_LAMPORTS: Final = 10**15
POOL_LAMPORTS: Final = 10**16
"""What a simulated pool holds to pay sells (never runs out in a test)."""

_ERROR_MESSAGES: Final = {
    "BlockhashNotFound": "Blockhash not found",
    "AlreadyProcessed": "This transaction has already been processed",
    "SignatureFailure": "Transaction did not pass signature verification",
    "SanitizeFailure": "Transaction failed to sanitize accounts offsets correctly",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
    "InsufficientFundsForFee": "Insufficient funds for fee",
}

Side = Literal["sell", "buy"]


# --------------------------------------------------------------------------- swaps


@dataclass(frozen=True)
class SwapOrder:
    """One simulated swap: sell ``amount_in`` tokens, or buy with ``amount_in`` lamports."""

    side: Side
    mint: Pubkey
    amount_in: int
    min_out: int

    def memo(self) -> str:
        return f"{SWAP_MEMO_PREFIX}{self.side}:{self.mint}:{self.amount_in}:{self.min_out}"

    @classmethod
    def parse(cls, text: str) -> SwapOrder | None:
        """The order in a memo; None for other memos; ValueError if it is malformed."""
        if not text.startswith(SWAP_MEMO_PREFIX):
            return None
        match = _SWAP_MEMO.fullmatch(text)
        if match is None:
            raise ValueError(f"malformed swap memo: {text!r}")
        side: Side = "sell" if match[1] == "sell" else "buy"
        return cls(side, Pubkey.from_string(match[2]), int(match[3]), int(match[4]))


def quote(side: Side, amount_in: int, lamports_per_token: float) -> int:
    """What a swap pays out at a price (lamports per token base unit), rounded down."""
    if side == "sell":
        return math.floor(amount_in * lamports_per_token)
    return math.floor(amount_in / lamports_per_token)


@dataclass(frozen=True)
class Settlement:
    """What a landed swap really moved: ``tokens`` one way, ``lamports`` the other."""

    signature: str
    side: Side
    mint: Pubkey
    wallet: Pubkey
    token_account: Pubkey
    tokens: int
    lamports: int
    price: float
    fee: int = 0
    referrer_payouts: tuple[int, ...] = ()


# --------------------------------------------------------------------------- results


def error_json(err: TransactionErrorType) -> Any:
    """The JSON value mainnet RPC gives for an error.

    E.g. ``{"InstructionError": [2, {"Custom": 6003}]}`` or ``"BlockhashNotFound"``.
    """
    return json.loads(TransactionStatus(0, None, err, err).to_json())["err"]


def error_message(err: TransactionErrorType) -> str:
    """The error's display text, as in ``Transaction simulation failed: <text>``."""
    if isinstance(err, TransactionErrorInstructionError):
        return f"Error processing Instruction {err.index}: {_instruction_error_text(err.err)}"
    name = str(err).rsplit(".", 1)[-1]
    return _ERROR_MESSAGES.get(name, _words(name))


def _instruction_error_text(err: InstructionErrorType) -> str:
    if isinstance(err, InstructionErrorCustom):
        return f"custom program error: {err.code:#x}"
    return _words(str(err).rsplit(".", 1)[-1])


def _words(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", camel).lower()


@dataclass(frozen=True)
class ChainError:
    """A transaction error as the chain reports it."""

    err: TransactionErrorType

    @property
    def json(self) -> Any:
        return error_json(self.err)

    @property
    def message(self) -> str:
        return error_message(self.err)


@dataclass(frozen=True)
class SubmitResult:
    """``refused`` is set when the chain dropped the transaction unexecuted (no fee,
    no status). Otherwise it executed and has a status, which may carry an error."""

    signature: str
    refused: ChainError | None = None


@dataclass(frozen=True)
class SimulationResult:
    """``post``: every account the transaction wrote, as it left them (swap included);
    empty when it failed."""

    err: ChainError | None
    logs: list[str]
    units_consumed: int
    fee: int
    post: Mapping[Pubkey, Account] = field(default_factory=dict)


@dataclass(frozen=True)
class _Landed:
    slot: int
    err: Any


@dataclass(frozen=True)
class _SwapEffect:
    settlement: Settlement
    writes: tuple[tuple[Pubkey, Account], ...]


@dataclass(frozen=True)
class _Plan:
    """A dry run of a transaction: LiteSVM's simulation plus the swap it settles."""

    sim: SimulationResult
    swap: _SwapEffect | None = None
    swap_error: ChainError | None = None


# --------------------------------------------------------------------------- chain


class SimChain:
    """LiteSVM plus slots, a 150-block blockhash window, statuses and swap settlement.

    Blockhash validity: LiteSVM's own check accepts only its single latest
    blockhash, so a transaction built one slot ago would fail. We turn that check
    off (``with_blockhash_check(False)``) and enforce the mainnet rule ourselves:
    a blockhash produced at block height ``h`` is valid while
    ``block_height <= h + MAX_PROCESSING_AGE``. Each ``advance`` rotates LiteSVM's
    blockhash (``expire_blockhash``) and records the new one at the new height.
    Signature verification stays on.
    """

    def __init__(
        self,
        *,
        confirm_after_slots: int = 1,
        finalize_after_slots: int = FINALIZE_AFTER_SLOTS,
        tip_accounts: Sequence[str] = HELIUS_TIP_ACCOUNTS,
    ) -> None:
        self.svm = LiteSVM().with_blockhash_check(False).with_sigverify(True)
        self.confirm_after_slots = confirm_after_slots
        self.finalize_after_slots = finalize_after_slots
        self.authority = Keypair()
        self.dropped: dict[str, ChainError] = {}
        self._slot = GENESIS_SLOT
        self._blockhashes: dict[Hash, int] = {}
        self._statuses: dict[str, _Landed] = {}
        self._settlements: dict[str, Settlement] = {}
        self._prices: dict[Pubkey, float] = {}
        self._setup_nonce = 0
        self.svm.warp_to_slot(self._slot)
        self._blockhashes[self.svm.latest_blockhash()] = self.block_height
        self.fund(self.authority.pubkey(), _AUTHORITY_LAMPORTS)
        for tip in tip_accounts:
            self.fund(Pubkey.from_string(tip), self.svm.minimum_balance_for_rent_exemption(0))
        self.router_fees: RouterFees = TIERS["personal"]
        self.fee_vault = sim_address("lasersell-fee-vault")
        self.referrers = tuple(sim_address(f"lasersell-referrer-{i}")
                               for i in range(MAX_REFERRERS))
        self._tables: dict[tuple[Pubkey, ...], Pubkey] = {}
        self._install_router()

    def _install_router(self) -> None:
        """The router and CPMM stand-ins (Memo v1's bytes), the native mint, and the
        fee vault and referrer wallets (rent-exempt, as real wallets are)."""
        stand_in = self.svm.get_account(MEMO_V1_PROGRAM_ID)
        if stand_in is None:
            raise RuntimeError("LiteSVM has no Memo v1 program to stand in for the router")
        for program in (ROUTER_PROGRAM_ID, CPMM_PROGRAM_ID):
            self.svm.add_program(program, bytes(stand_in.data))
        mint = bytes(Mint(None, 0, 9, True, None))
        self.svm.set_account(NATIVE_MINT, Account(
            self.svm.minimum_balance_for_rent_exemption(_MINT_LEN), mint, TOKEN_PROGRAM_ID))
        for wallet in (self.fee_vault, *self.referrers):
            self.fund(wallet, self.svm.minimum_balance_for_rent_exemption(0))

    # ----------------------------------------------------------------- clock

    @property
    def slot(self) -> int:
        return self._slot

    @property
    def block_height(self) -> int:
        return self._slot - SKIPPED_SLOTS_BEFORE_GENESIS

    def advance(self, n_slots: int = 1) -> None:
        """Move the clock ``n_slots`` forward and produce a new blockhash."""
        if n_slots < 1:
            raise ValueError("n_slots must be >= 1")
        self._slot += n_slots
        self.svm.warp_to_slot(self._slot)
        self.svm.expire_blockhash()
        self._blockhashes[self.svm.latest_blockhash()] = self.block_height
        self._forget_expired_blockhashes()

    def _forget_expired_blockhashes(self) -> None:
        oldest = self.block_height - MAX_PROCESSING_AGE
        for blockhash in [h for h, height in self._blockhashes.items() if height < oldest]:
            del self._blockhashes[blockhash]

    def latest_blockhash(self) -> tuple[Hash, int]:
        """The newest blockhash and the last block height at which it is valid."""
        blockhash = self.svm.latest_blockhash()
        return blockhash, self._blockhashes[blockhash] + MAX_PROCESSING_AGE

    def is_blockhash_valid(self, blockhash: Hash) -> bool:
        produced_at = self._blockhashes.get(blockhash)
        return produced_at is not None and self.block_height <= produced_at + MAX_PROCESSING_AGE

    # ----------------------------------------------------------------- accounts

    def account(self, pubkey: Pubkey) -> Account | None:
        return self.svm.get_account(pubkey)

    def balance(self, pubkey: Pubkey) -> int:
        account = self.svm.get_account(pubkey)
        return 0 if account is None else account.lamports

    def fund(self, pubkey: Pubkey, lamports: int) -> None:
        """Add lamports to an account, creating a system account if there is none."""
        current = self.svm.get_account(pubkey)
        if current is None:
            self.svm.set_account(pubkey, Account(lamports, b"", Pubkey.default()))
            return
        self.svm.set_account(pubkey, _with_lamports(current, current.lamports + lamports))

    def create_mint(self, decimals: int = 6, token_program: Pubkey = TOKEN_PROGRAM_ID) -> Pubkey:
        """A new SPL (or Token-2022) mint, created by real instructions; the chain
        authority is its mint authority."""
        mint = Keypair()
        rent = self.svm.minimum_balance_for_rent_exemption(_MINT_LEN)
        payer = self.authority.pubkey()
        self._run_setup(
            [
                create_account(
                    CreateAccountParams(
                        from_pubkey=payer, to_pubkey=mint.pubkey(), lamports=rent,
                        space=_MINT_LEN, owner=token_program,
                    )
                ),
                initialize_mint2(
                    InitializeMint2Params(
                        decimals=decimals, program_id=token_program,
                        mint=mint.pubkey(), mint_authority=payer, freeze_authority=None,
                    )
                ),
            ],
            [self.authority, mint],
        )
        return mint.pubkey()

    def mint_to(self, owner: Pubkey, mint: Pubkey, amount: int) -> Pubkey:
        """Mint ``amount`` into the owner's associated token account (created if
        missing) with the real ATA and token programs; returns that account."""
        program = self.token_program_of(mint)
        payer = self.authority.pubkey()
        token_account = get_associated_token_address(owner, mint, program)
        self._run_setup(
            [
                create_idempotent_associated_token_account(payer, owner, mint, program),
                spl_mint_to(
                    MintToParams(
                        program_id=program, mint=mint, dest=token_account,
                        mint_authority=payer, amount=amount,
                    )
                ),
            ],
            [self.authority],
        )
        return token_account

    def token_account(self, owner: Pubkey, mint: Pubkey) -> Pubkey:
        """The owner's associated token account address for ``mint``."""
        return get_associated_token_address(owner, mint, self.token_program_of(mint))

    def token_program_of(self, mint: Pubkey) -> Pubkey:
        account = self.svm.get_account(mint)
        if account is None or account.owner not in TOKEN_PROGRAMS:
            raise ValueError(f"{mint} is not a token mint")
        return account.owner

    def mint_decimals(self, mint: Pubkey) -> int:
        account = self.svm.get_account(mint)
        if account is None or account.owner not in TOKEN_PROGRAMS:
            raise ValueError(f"{mint} is not a token mint")
        return Mint.from_bytes(account.data[:_MINT_LEN]).decimals

    def token_state(self, token_account: Pubkey) -> TokenAccount | None:
        """The SPL token account at an address, or None if there is none."""
        return _parse_token_account(self.svm.get_account(token_account))

    def token_balance(self, token_account: Pubkey) -> int:
        state = self.token_state(token_account)
        return 0 if state is None else state.amount

    def token_accounts_of(self, owner: Pubkey) -> list[Pubkey]:
        """Every token account ``owner`` owns (both token programs)."""
        found = []
        for program in TOKEN_PROGRAMS:
            for pubkey, account in self.svm.get_program_accounts(program):
                state = _parse_token_account(account)
                if state is not None and state.owner == owner:
                    found.append(pubkey)
        return found

    def create_token_account(self, owner: Pubkey, mint: Pubkey) -> Pubkey:
        """A token account (not an ATA) of ``owner`` for ``mint``, written directly; a
        WSOL one is native, holding its rent reserve."""
        program = self.token_program_of(mint)
        address = Keypair().pubkey()
        rent = self.svm.minimum_balance_for_rent_exemption(_TOKEN_ACCOUNT_LEN)
        state = TokenAccount(mint, owner, 0, None, TokenAccountState.Initialized,
                             rent if mint == NATIVE_MINT else None, 0, None)
        self.svm.set_account(address, Account(rent, bytes(state), program))
        return address

    def ensure_pool(self, pool: Pubkey) -> None:
        """A pool account that can pay sells (a system account with ``POOL_LAMPORTS``)."""
        if self.svm.get_account(pool) is None:
            self.fund(pool, POOL_LAMPORTS)

    def create_lookup_table(self, addresses: Sequence[Pubkey]) -> Pubkey:
        """An active address lookup table holding ``addresses`` (the same list gives
        the same table)."""
        key = tuple(addresses)
        table = self._tables.get(key)
        if table is None:
            table = sim_address("lookup-table", *key)
            account = table_account(key, self.authority.pubkey(), self._slot - 1,
                                    self.svm.minimum_balance_for_rent_exemption)
            self.svm.set_account(table, account)
            self._tables[key] = table
        return table

    def _run_setup(self, instructions: list[Instruction], signers: list[Keypair]) -> None:
        self._setup_nonce += 1
        nonce = memo_instruction(f"sim-setup:{self._setup_nonce}", self.authority.pubkey())
        message = Message.new_with_blockhash(
            [*instructions, nonce], self.authority.pubkey(), self.svm.latest_blockhash()
        )
        result = self.svm.send_transaction(VersionedTransaction(message, signers))
        if isinstance(result, FailedTransactionMetadata):
            raise RuntimeError(f"setup transaction failed: {result.err()}")

    # ----------------------------------------------------------------- prices

    def set_price(self, mint: Pubkey, lamports_per_token: float) -> None:
        """Price of one token base unit in lamports, used to settle swaps."""
        if not lamports_per_token > 0:
            raise ValueError("price must be > 0")
        self._prices[mint] = lamports_per_token

    def price(self, mint: Pubkey) -> float | None:
        return self._prices.get(mint)

    # ----------------------------------------------------------------- transactions

    def submit(self, tx_bytes: bytes) -> SubmitResult:
        """Execute a signed transaction as a leader would.

        Refused (``SubmitResult.refused``, recorded in ``dropped``): bad signature,
        expired or unknown blockhash, signature already processed. Otherwise it
        executes: a failing one is charged its fee and gets a status with ``err``.
        Raises ValueError if the bytes are not a transaction.
        """
        tx = decode_transaction(tx_bytes)
        signature = str(tx.signatures[0])
        refusal = self._admission_error(tx, verify_signatures=True, check_blockhash=True)
        if refusal is not None:
            return self._refuse(signature, refusal)
        plan = self._plan(tx, sig_verify=False)
        if plan.swap_error is not None:
            return self._fail_swap(tx, signature, plan.swap_error, plan.sim.fee)
        return self._execute(tx, signature, plan.swap)

    def simulate(
        self, tx_bytes: bytes, *, sig_verify: bool = True, replace_blockhash: bool = False
    ) -> SimulationResult:
        """Dry-run a transaction (like ``simulateTransaction``); nothing changes."""
        tx = decode_transaction(tx_bytes)
        refusal = self._admission_error(
            tx, verify_signatures=sig_verify, check_blockhash=not replace_blockhash
        )
        if refusal is not None:
            return SimulationResult(refusal, [], 0, 0)
        return self._plan(tx, sig_verify=sig_verify).sim

    def signature_statuses(self, signatures: Sequence[str]) -> list[dict[str, Any] | None]:
        """Statuses in the ``getSignatureStatuses`` JSON shape (None = unknown)."""
        return [self._status_json(sig) for sig in signatures]

    def settlement(self, signature: str) -> Settlement | None:
        """What the swap in a landed transaction moved, or None."""
        return self._settlements.get(signature)

    def _status_json(self, signature: str) -> dict[str, Any] | None:
        landed = self._statuses.get(signature)
        if landed is None:
            return None
        age = self._slot - landed.slot
        finalized = age >= self.finalize_after_slots
        if finalized:
            level = "finalized"
        else:
            level = "confirmed" if age >= self.confirm_after_slots else "processed"
        return {
            "slot": landed.slot,
            "confirmations": None if finalized else age,
            "status": {"Ok": None} if landed.err is None else {"Err": landed.err},
            "err": landed.err,
            "confirmationStatus": level,
        }

    def _admission_error(
        self, tx: VersionedTransaction, *, verify_signatures: bool, check_blockhash: bool
    ) -> ChainError | None:
        """The checks a leader makes before executing, in mainnet's order."""
        try:
            tx.sanitize()
        except ValueError:
            return ChainError(TransactionErrorFieldless.SanitizeFailure)
        if verify_signatures and not all(tx.verify_with_results()):
            return ChainError(TransactionErrorFieldless.SignatureFailure)
        if check_blockhash and not self.is_blockhash_valid(tx.message.recent_blockhash):
            return ChainError(TransactionErrorFieldless.BlockhashNotFound)
        if str(tx.signatures[0]) in self._statuses:
            return ChainError(TransactionErrorFieldless.AlreadyProcessed)
        return None

    def _plan(self, tx: VersionedTransaction, *, sig_verify: bool) -> _Plan:
        self.svm.with_sigverify(sig_verify)
        try:
            result = self.svm.simulate_transaction(tx)
        finally:
            self.svm.with_sigverify(True)
        if isinstance(result, FailedTransactionMetadata):
            return _Plan(_simulation(result.meta(), ChainError(result.err())))
        return self._plan_swap(tx, result)

    def _plan_swap(self, tx: VersionedTransaction, result: SimulatedTransactionInfo) -> _Plan:
        post = dict(result.post_accounts())
        view = _AccountView(self.svm, post)
        meta = result.meta()
        routed = routed_swap(tx, view, self._prices, self.router_fees,
                             len(_swap_instructions(tx)))
        outcome = _settle_swaps(tx, view, self._prices) if routed is None else (
            _routed_outcome(str(tx.signatures[0]), routed, self._prices))
        if isinstance(outcome, RoutedSwap):
            assert isinstance(outcome.outcome, RouterFailure)
            failure = outcome.outcome
            error = ChainError(_ix_error(outcome.index, failure.err))
            logs = failure_logs(list(meta.logs()), outcome.index, outcome.program, failure,
                                _instruction_error_text(failure.err))
            sim = SimulationResult(error, logs, meta.compute_units_consumed(), meta.fee())
            return _Plan(sim, swap_error=error)
        if isinstance(outcome, TransactionErrorInstructionError):
            error = ChainError(outcome)
            return _Plan(_simulation(meta, error), swap_error=error)
        if outcome is not None:
            post.update(outcome.writes)
        sim = SimulationResult(None, list(meta.logs()), meta.compute_units_consumed(),
                               meta.fee(), post)
        return _Plan(sim, swap=outcome)

    def _refuse(self, signature: str, refusal: ChainError) -> SubmitResult:
        self.dropped[signature] = refusal
        return SubmitResult(signature, refusal)

    def _fail_swap(
        self, tx: VersionedTransaction, signature: str, error: ChainError, fee: int
    ) -> SubmitResult:
        """The swap's program fails: state rolls back, the fee payer still pays."""
        self.fund(tx.message.account_keys[0], -fee)
        self._statuses[signature] = _Landed(self._slot, error.json)
        return SubmitResult(signature)

    def _execute(
        self, tx: VersionedTransaction, signature: str, swap: _SwapEffect | None
    ) -> SubmitResult:
        payer = tx.message.account_keys[0]
        payer_before = self.balance(payer)
        result = self.svm.send_transaction(tx)
        if isinstance(result, TransactionMetadata):
            self._statuses[signature] = _Landed(self._slot, None)
            if swap is not None:
                self._apply_swap(swap)
            return SubmitResult(signature)
        error = ChainError(result.err())
        if self.balance(payer) < payer_before:
            self._statuses[signature] = _Landed(self._slot, error.json)
            return SubmitResult(signature)
        return self._refuse(signature, error)

    def _apply_swap(self, swap: _SwapEffect) -> None:
        for pubkey, account in swap.writes:
            self.svm.set_account(pubkey, account)
        self._settlements[swap.settlement.signature] = swap.settlement


# --------------------------------------------------------------------------- settlement


class _AccountView:
    """Accounts as a transaction left them: its simulated post-state over the chain."""

    def __init__(self, svm: LiteSVM, post: dict[Pubkey, Account]) -> None:
        self._svm = svm
        self._post = post

    def get(self, pubkey: Pubkey) -> Account | None:
        if pubkey in self._post:
            return self._post[pubkey]
        return self._svm.get_account(pubkey)


@dataclass(frozen=True)
class _SwapInstruction:
    index: int
    wallet: Pubkey | None
    order: SwapOrder | None


def _swap_instructions(tx: VersionedTransaction) -> list[_SwapInstruction]:
    """The swap memos in a transaction; ``order`` None = malformed."""
    keys = tx.message.account_keys
    found = []
    for index, ix in enumerate(tx.message.instructions):
        if keys[ix.program_id_index] != MEMO_PROGRAM_ID:
            continue
        text = bytes(ix.data).decode("utf-8", errors="replace")
        try:
            order = SwapOrder.parse(text)
        except ValueError:
            found.append(_SwapInstruction(index, None, None))
            continue
        if order is not None:
            wallet = keys[ix.accounts[0]] if ix.accounts else None
            found.append(_SwapInstruction(index, wallet, order))
    return found


def _settle_swaps(
    tx: VersionedTransaction, view: _AccountView, prices: dict[Pubkey, float]
) -> _SwapEffect | TransactionErrorInstructionError | None:
    """The effect of the one swap in ``tx`` (None if it has none), or its error."""
    swaps = _swap_instructions(tx)
    if not swaps:
        return None
    if len(swaps) > 1:
        return _ix_error(swaps[1].index, InstructionErrorFieldless.InvalidInstructionData)
    swap = swaps[0]
    if swap.order is None:
        return _ix_error(swap.index, InstructionErrorFieldless.InvalidInstructionData)
    if swap.wallet is None:
        return _ix_error(swap.index, InstructionErrorFieldless.MissingRequiredSignature)
    mint_account = view.get(swap.order.mint)
    price = prices.get(swap.order.mint)
    if mint_account is None or mint_account.owner not in TOKEN_PROGRAMS or price is None:
        return _ix_error(swap.index, InstructionErrorFieldless.InvalidAccountData)
    token_account = get_associated_token_address(swap.wallet, swap.order.mint, mint_account.owner)
    swap_ctx = _SwapContext(str(tx.signatures[0]), swap, swap.wallet, token_account, price)
    if swap.order.side == "sell":
        return _settle_sell(swap_ctx, swap.order, view)
    return _settle_buy(swap_ctx, swap.order, view)


@dataclass(frozen=True)
class _SwapContext:
    signature: str
    swap: _SwapInstruction
    wallet: Pubkey
    token_account: Pubkey
    price: float

    def error(self, err: InstructionErrorType) -> TransactionErrorInstructionError:
        return _ix_error(self.swap.index, err)

    def settlement(self, order: SwapOrder, tokens: int, lamports: int) -> Settlement:
        return Settlement(
            self.signature, order.side, order.mint, self.wallet, self.token_account,
            tokens, lamports, self.price,
        )


def _settle_sell(
    ctx: _SwapContext, order: SwapOrder, view: _AccountView
) -> _SwapEffect | TransactionErrorInstructionError:
    holding = view.get(ctx.token_account)
    state = _parse_token_account(holding)
    wallet = view.get(ctx.wallet)
    if holding is None or state is None or wallet is None:
        return ctx.error(InstructionErrorFieldless.UninitializedAccount)
    if state.amount < order.amount_in:
        return ctx.error(InstructionErrorCustom(INSUFFICIENT_FUNDS_ERROR_CODE))
    proceeds = quote("sell", order.amount_in, ctx.price)
    if proceeds < order.min_out:
        return ctx.error(InstructionErrorCustom(SLIPPAGE_ERROR_CODE))
    writes = (
        (ctx.token_account, _with_token_amount(holding, state, state.amount - order.amount_in)),
        (ctx.wallet, _with_lamports(wallet, wallet.lamports + proceeds)),
    )
    return _SwapEffect(ctx.settlement(order, order.amount_in, proceeds), writes)


def _settle_buy(
    ctx: _SwapContext, order: SwapOrder, view: _AccountView
) -> _SwapEffect | TransactionErrorInstructionError:
    wallet = view.get(ctx.wallet)
    holding = view.get(ctx.token_account)
    state = _parse_token_account(holding)
    if wallet is None or wallet.lamports < order.amount_in:
        return ctx.error(InstructionErrorCustom(INSUFFICIENT_FUNDS_ERROR_CODE))
    if holding is None or state is None:
        return ctx.error(InstructionErrorFieldless.UninitializedAccount)
    tokens = quote("buy", order.amount_in, ctx.price)
    if tokens < order.min_out:
        return ctx.error(InstructionErrorCustom(SLIPPAGE_ERROR_CODE))
    writes = (
        (ctx.wallet, _with_lamports(wallet, wallet.lamports - order.amount_in)),
        (ctx.token_account, _with_token_amount(holding, state, state.amount + tokens)),
    )
    return _SwapEffect(ctx.settlement(order, tokens, order.amount_in), writes)


def _routed_outcome(signature: str, routed: RoutedSwap, prices: dict[Pubkey, float],
                    ) -> _SwapEffect | RoutedSwap:
    """A settled router/CPMM call as a swap effect; the call itself when it failed."""
    effect = routed.outcome
    if isinstance(effect, RouterFailure):
        return routed
    settlement = Settlement(signature, routed.side, routed.mint, routed.wallet,
                            routed.token_account, effect.tokens, effect.lamports,
                            prices[routed.mint], effect.fee, effect.referrer_payouts)
    return _SwapEffect(settlement, effect.writes)


# --------------------------------------------------------------------------- helpers


def decode_transaction(raw: bytes) -> VersionedTransaction:
    """Wire bytes to a transaction; ValueError if they are not one."""
    try:
        return VersionedTransaction.from_bytes(raw)
    except ValueError as exc:
        raise ValueError(f"failed to deserialize VersionedTransaction: {exc}") from None


def memo_instruction(text: str, signer: Pubkey) -> Instruction:
    """A Memo program instruction carrying ``text``, signed by ``signer``."""
    return Instruction(MEMO_PROGRAM_ID, text.encode(), [AccountMeta(signer, True, True)])


def _ix_error(index: int, err: InstructionErrorType) -> TransactionErrorInstructionError:
    return TransactionErrorInstructionError(index, err)


def _simulation(meta: TransactionMetadata, err: ChainError | None) -> SimulationResult:
    return SimulationResult(err, list(meta.logs()), meta.compute_units_consumed(), meta.fee())


def _parse_token_account(account: Account | None) -> TokenAccount | None:
    if account is None or account.owner not in TOKEN_PROGRAMS:
        return None
    if len(account.data) < _TOKEN_ACCOUNT_LEN:
        return None
    return TokenAccount.from_bytes(account.data[:_TOKEN_ACCOUNT_LEN])


def _with_lamports(account: Account, lamports: int) -> Account:
    return Account(lamports, account.data, account.owner, account.executable, account.rent_epoch)


def _with_token_amount(account: Account, state: TokenAccount, amount: int) -> Account:
    """The same token account holding ``amount``; extension bytes are kept."""
    updated = TokenAccount(
        state.mint, state.owner, amount, state.delegate, state.state,
        state.is_native, state.delegated_amount, state.close_authority,
    )
    data = bytes(updated) + account.data[_TOKEN_ACCOUNT_LEN:]
    return Account(account.lamports, data, account.owner, account.executable, account.rent_epoch)
