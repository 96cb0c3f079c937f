"""The guard: what stands between a server-built transaction and the user's signature.

``static`` checks the bytes against the policy with no I/O (the walk, System and Compute
Budget rules), with ``token`` (SPL Token, Token-2022, ATA rules) and ``dex`` (each DEX's
known trade forms, buy accounting, traded-mint checks) sharing ``context`` (the walk's
state); ``layout`` walks the wire format; ``tables`` resolves address lookup tables;
``policy`` holds the program ids, tip accounts, policy, expectation and verdict.
"""

from lasersell_bot.guard.layout import MalformedTransaction, TxLayout, read_layout
from lasersell_bot.guard.policy import (
    ACCEPTED,
    ALLOWED_PROGRAMS,
    ASTRALANE_TIP_ACCOUNTS,
    ATA_PROGRAM,
    COMPUTE_BUDGET_PROGRAM,
    JITO_TIP_ACCOUNTS,
    MEMO_PROGRAM,
    METEORA_DAMM_V2_PROGRAM,
    METEORA_DBC_PROGRAM,
    PUMP_FUN_PROGRAM,
    PUMP_SWAP_PROGRAM,
    RAYDIUM_CPMM_PROGRAM,
    RAYDIUM_LAUNCHPAD_PROGRAM,
    SYSTEM_PROGRAM,
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
    USD1_MINT,
    WSOL_MINT,
    Expectation,
    GuardPolicy,
    Kind,
    Verdict,
    associated_token_address,
    priority_fee_lamports,
    rent_exempt_lamports,
)
from lasersell_bot.guard.static import check_transaction

__all__ = [
    "ACCEPTED", "ALLOWED_PROGRAMS", "ASTRALANE_TIP_ACCOUNTS", "ATA_PROGRAM",
    "COMPUTE_BUDGET_PROGRAM", "JITO_TIP_ACCOUNTS", "MEMO_PROGRAM", "METEORA_DAMM_V2_PROGRAM",
    "METEORA_DBC_PROGRAM", "PUMP_FUN_PROGRAM", "PUMP_SWAP_PROGRAM", "RAYDIUM_CPMM_PROGRAM",
    "RAYDIUM_LAUNCHPAD_PROGRAM", "SYSTEM_PROGRAM", "TOKEN_2022_PROGRAM", "TOKEN_PROGRAM",
    "USD1_MINT", "WSOL_MINT", "Expectation", "GuardPolicy", "Kind", "MalformedTransaction",
    "TxLayout", "Verdict", "associated_token_address", "check_transaction",
    "priority_fee_lamports", "read_layout", "rent_exempt_lamports",
]
