"""Find the router or CPMM instruction of a transaction and settle it (for ``SimChain``).

Pure over an ``AccountSource`` (the transaction's post-state over the chain): resolves
the instruction's accounts through lookup tables, checks the first account signed,
and hands the call to ``sim.router``. ``failure_logs`` renders a failed call's logs the
way a failed top-level instruction (with its failed CPI) shows on chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_status import InstructionErrorFieldless

from lasersell_bot.sim.router import (
    CPMM_INPUT,
    CPMM_INPUT_MINT,
    CPMM_PAYER,
    CPMM_PROGRAM_ID,
    MINT,
    ROUTER_PROGRAM_ID,
    TOKEN_ACCOUNT,
    WALLET,
    AccountSource,
    RouterCall,
    RouterEffect,
    RouterFailure,
    RouterFees,
    RouterOrder,
    Side,
    settle_cpmm,
    settle_router,
)
from lasersell_bot.sim.tables import message_keys

ROUTED_PROGRAMS = (ROUTER_PROGRAM_ID, CPMM_PROGRAM_ID)
_NOBODY = Pubkey.default()


@dataclass(frozen=True)
class RoutedSwap:
    """The routed instruction at ``index`` and what settling it gave."""

    index: int
    program: Pubkey
    outcome: RouterEffect | RouterFailure
    side: Side = "sell"
    wallet: Pubkey = _NOBODY
    mint: Pubkey = _NOBODY
    token_account: Pubkey = _NOBODY


def routed_swap(tx: VersionedTransaction, source: AccountSource,
                prices: Mapping[Pubkey, float], fees: RouterFees,
                other_swaps: int = 0) -> RoutedSwap | None:
    """The router or CPMM instruction of ``tx`` settled (None if it has none); one swap
    per transaction: a second one (``other_swaps`` counts the others) fails it."""
    message = tx.message
    static = message.account_keys
    found = [(i, ix) for i, ix in enumerate(message.instructions)
             if static[ix.program_id_index] in ROUTED_PROGRAMS]
    if not found:
        return None
    index, ix = found[0]
    program = static[ix.program_id_index]
    if len(found) > 1 or other_swaps:
        return RoutedSwap(found[-1][0], static[found[-1][1].program_id_index],
                          RouterFailure(InstructionErrorFieldless.InvalidInstructionData))
    keys = message_keys(tx, source.get)
    accounts = [keys[i] for i in ix.accounts]
    signers = set(static[:message.header.num_required_signatures])
    if not accounts or accounts[0] not in signers:
        return RoutedSwap(index, program,
                          RouterFailure(InstructionErrorFieldless.MissingRequiredSignature))
    outcome = _settle_call(program, accounts, bytes(ix.data), source, prices, fees)
    if isinstance(outcome, RouterFailure):
        return RoutedSwap(index, program, outcome)
    if program == ROUTER_PROGRAM_ID:
        side = RouterOrder.decode(bytes(ix.data)).side
        return RoutedSwap(index, program, outcome, side, accounts[WALLET], accounts[MINT],
                          accounts[TOKEN_ACCOUNT])
    return RoutedSwap(index, program, outcome, "sell", accounts[CPMM_PAYER],
                      accounts[CPMM_INPUT_MINT], accounts[CPMM_INPUT])


def _settle_call(program: Pubkey, accounts: list[Pubkey], data: bytes, source: AccountSource,
                 prices: Mapping[Pubkey, float], fees: RouterFees,
                 ) -> RouterEffect | RouterFailure:
    mint_position = MINT if program == ROUTER_PROGRAM_ID else CPMM_INPUT_MINT
    if len(accounts) <= mint_position:
        return RouterFailure(InstructionErrorFieldless.NotEnoughAccountKeys)
    price = prices.get(accounts[mint_position])
    if price is None:
        return RouterFailure(InstructionErrorFieldless.InvalidAccountData)
    if program == CPMM_PROGRAM_ID:
        return settle_cpmm(accounts, data, source, price)
    try:
        order = RouterOrder.decode(data)
    except ValueError:
        return RouterFailure(InstructionErrorFieldless.InvalidInstructionData)
    return settle_router(RouterCall(order, accounts), source, price, fees)


def failure_logs(logs: list[str], index: int, program: Pubkey, failure: RouterFailure,
                 error_text: str) -> list[str]:
    """The runtime's logs up to the failing instruction, then what the program logged
    and its failure line (``error_text``, e.g. ``custom program error: 0x1773``)."""
    starts = [i for i, line in enumerate(logs) if line.endswith(" invoke [1]")]
    kept = logs[:starts[index]] if index < len(starts) else logs
    return [*kept, f"Program {program} invoke [1]", *failure.logs,
            f"Program {program} failed: {error_text}"]


def sim_address(*parts: object) -> Pubkey:
    """A fixed address for a simulated account named by ``parts``."""
    return Pubkey(hashlib.sha256(":".join(str(p) for p in parts).encode()).digest())
