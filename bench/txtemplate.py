"""Unsigned exit transactions as the LaserSell server builds them, stamped per signal.

One template per position is compiled with solders (like ``lasersell_bot.sim.txbuild``):
fee payer = the bot's wallet (the only signer, slot zero-filled), SetComputeUnitLimit,
SetComputeUnitPrice, ATA ``create_idempotent`` naming the position's mint, a memo
``lsb:<9 digits>`` and a tip to a Helius tip account. ``stamp`` writes the signal's
sequence number into the memo digits, so every signal carries a distinct, real
transaction that the RPC server can map back to its signal.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from spl.token.instructions import create_idempotent_associated_token_account

from bench.common import MEMO_DIGITS, MEMO_PREFIX, message_offset

TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
ATA_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
HELIUS_TIP = Pubkey.from_string("4ACfpUFoaSD9bfPdeu6DBt89gB6ENTeHBXCAi87NhDEE")
TIP_LAMPORTS = 1000
CU_LIMIT = 120_000
CU_PRICE = 50_000
_PLACEHOLDER = MEMO_PREFIX + b"0" * MEMO_DIGITS


@dataclass(frozen=True)
class PositionTx:
    position_id: int
    mint: str
    token_account: str
    template: bytes
    memo_at: int

    def stamp(self, seq: int) -> bytes:
        digits = str(seq).zfill(MEMO_DIGITS).encode()
        if len(digits) != MEMO_DIGITS:
            raise ValueError(f"sequence {seq} does not fit the memo")
        start = self.memo_at + len(MEMO_PREFIX)
        return self.template[:start] + digits + self.template[start + MEMO_DIGITS:]


def ata(owner: Pubkey, mint: Pubkey) -> Pubkey:
    return Pubkey.find_program_address([bytes(owner), bytes(TOKEN_PROGRAM), bytes(mint)],
                                       ATA_PROGRAM)[0]


def build_positions(wallet: Pubkey, count: int) -> list[PositionTx]:
    blockhash = Hash(hashlib.sha256(b"lasersell-bench-blockhash").digest())
    positions = []
    for index in range(count):
        mint = Keypair.from_seed(hashlib.sha256(b"mint%d" % index).digest()).pubkey()
        instructions = [
            set_compute_unit_limit(CU_LIMIT),
            set_compute_unit_price(CU_PRICE),
            create_idempotent_associated_token_account(wallet, wallet, mint, TOKEN_PROGRAM),
            Instruction(MEMO_PROGRAM, _PLACEHOLDER, [AccountMeta(wallet, True, True)]),
            transfer(TransferParams(from_pubkey=wallet, to_pubkey=HELIUS_TIP,
                                    lamports=TIP_LAMPORTS)),
        ]
        message = MessageV0.try_compile(wallet, instructions, [], blockhash)
        slots = [Signature.default()] * message.header.num_required_signatures
        raw = bytes(VersionedTransaction.populate(message, slots))
        memo_at = raw.find(_PLACEHOLDER)
        if memo_at < 0 or raw.find(_PLACEHOLDER, memo_at + 1) >= 0:
            raise RuntimeError("memo placeholder not unique in the template")
        positions.append(PositionTx(index + 1, str(mint), str(ata(wallet, mint)), raw, memo_at))
    return positions


def message_digest(raw_tx: bytes) -> str:
    """sha256 of the message bytes (what is signed), identical before and after signing."""
    return hashlib.sha256(raw_tx[message_offset(raw_tx):]).hexdigest()


def new_wallet_secret() -> bytes:
    return bytes(Keypair.from_seed(os.urandom(32)))
