"""What the bench RPC answers for the daemon's effects verification (standard shapes).

The bench's exits (``bench.txtemplate``) sell a position's whole 1e9 tokens; their
simulation is answered as a node would for an honest sell: before, the wallet holds
``WALLET_LAMPORTS`` and its token account (the one the template's ATA instruction names)
the tokens; after, the tokens are gone and the wallet holds ``PROCEEDS_LAMPORTS`` more
(for each bench wallet: the tier phase has 200).
Every other account is absent. ``getMultipleAccounts`` and ``simulateTransaction`` (with
the ``accounts`` option) come in one JSON-RPC batch; the token accounts seen in a
simulation are remembered, so a lone ``getMultipleAccounts`` answers the same.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

ATA_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
SYSTEM_PROGRAM = "11111111111111111111111111111111"
WALLET_LAMPORTS = 10_000_000_000
TOKEN_RENT = 2_039_280
POSITION_TOKENS = 1_000_000_000
# entry 0.1 SOL + profit 0.05 SOL (bench.stream_server) less a 2 % routing fee
PROCEEDS_LAMPORTS = 147_000_000


class EffectsRpc:
    """Pre- and post-state for the bench wallets and the token accounts they sell from."""

    def __init__(self, wallets: set[Pubkey]) -> None:
        self.wallets = {str(w) for w in wallets}
        self.holdings: dict[str, tuple[bytes, bytes]] = {}  # token account -> (mint, owner)

    def learn(self, tx_b64: Any) -> None:
        """Remember the token account, mint and owner the transaction's ATA instruction
        names."""
        try:
            message = VersionedTransaction.from_bytes(base64.b64decode(tx_b64)).message
        except (TypeError, ValueError, binascii.Error):
            return
        keys = message.account_keys
        for ix in message.instructions:
            if keys[ix.program_id_index] == ATA_PROGRAM and len(ix.accounts) >= 4:
                self.holdings[str(keys[ix.accounts[1]])] = (bytes(keys[ix.accounts[3]]),
                                                            bytes(keys[ix.accounts[2]]))

    def account(self, address: str, after: bool) -> dict[str, Any] | None:
        if address in self.wallets:
            lamports = WALLET_LAMPORTS + (PROCEEDS_LAMPORTS if after else 0)
            return _account(lamports, SYSTEM_PROGRAM, b"")
        holding = self.holdings.get(address)
        if holding is None:
            return None
        mint, owner = holding
        amount = 0 if after else POSITION_TOKENS
        data = (mint + owner + amount.to_bytes(8, "little")
                + bytes(36) + b"\x01" + bytes(12) + bytes(8) + bytes(36))
        return _account(TOKEN_RENT, TOKEN_PROGRAM, data)

    def multiple_accounts(self, params: list[Any]) -> dict[str, Any]:
        keys = params[0] if params and isinstance(params[0], list) else []
        return {"context": {"slot": 1}, "value": [self.account(k, False) for k in keys]}

    def simulate(self, params: list[Any]) -> dict[str, Any]:
        self.learn(params[0] if params else None)
        config = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        keys = (config.get("accounts") or {}).get("addresses") or []
        return {"context": {"slot": 1}, "value": {
            "err": None, "logs": [], "unitsConsumed": 30_000, "returnData": None,
            "accounts": [self.account(k, True) for k in keys]}}


def _account(lamports: int, owner: str, data: bytes) -> dict[str, Any]:
    return {"lamports": lamports, "owner": owner, "executable": False, "rentEpoch": 0,
            "space": len(data), "data": [base64.b64encode(data).decode(), "base64"]}
