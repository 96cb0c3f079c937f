"""JSON-RPC methods real clients call beyond what the daemon needs, over a ``SimChain``.

web3.js and solana-py call these while building, sending and confirming a
transaction: ``getMinimumBalanceForRentExemption``, ``getFeeForMessage``,
``getVersion``, ``requestAirdrop`` and ``getTransaction``. Shapes and errors are
Agave's. ``TransactionHistory`` keeps what ``getTransaction`` answers for every
transaction sent through the RPC (and every airdrop): the wire bytes, the slot, and
the balances before and after, read around ``SimChain.submit``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from solders.hash import Hash
from solders.message import Message, MessageV0, from_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from lasersell_bot.sim.chain import (
    LAMPORTS_PER_SIGNATURE,
    SimChain,
    decode_transaction,
    memo_instruction,
)
from lasersell_bot.sim.encoding import b58encode, ui_amount

FEATURE_SET: Final = 3_294_202_862
COMPUTE_BUDGET_ID: Final = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
DEFAULT_UNITS_PER_INSTRUCTION: Final = 200_000
MAX_COMPUTE_UNITS: Final = 1_400_000
MAX_AIRDROP_LAMPORTS: Final = 1_000 * 10**9
HISTORY_CAPACITY: Final = 5_000
COMMITMENT_RANK: Final = {"processed": 0, "confirmed": 1, "finalized": 2}

INVALID_PARAMS: Final = -32602
UNSUPPORTED_TRANSACTION_VERSION: Final = -32015

Context = Callable[[Any], dict[str, Any]]


class ExtraRpcError(Exception):
    """A JSON-RPC error; ``rpc.py`` turns it into its own ``RpcError``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------- fees


def fee_for_message(message: Any) -> int:
    """Signature fee plus prioritization fee (compute-unit price x limit), as Agave."""
    keys = list(message.account_keys)
    price = 0
    limit: int | None = None
    other = 0
    for ix in message.instructions:
        if keys[ix.program_id_index] != COMPUTE_BUDGET_ID:
            other += 1
            continue
        data = bytes(ix.data)
        if data[:1] == b"\x02" and len(data) >= 5:
            limit = int.from_bytes(data[1:5], "little")
        elif data[:1] == b"\x03" and len(data) >= 9:
            price = int.from_bytes(data[1:9], "little")
    units = min(MAX_COMPUTE_UNITS, limit if limit is not None
                else DEFAULT_UNITS_PER_INSTRUCTION * other)
    priority = (price * units + 999_999) // 1_000_000
    signatures = int(message.header.num_required_signatures)
    return LAMPORTS_PER_SIGNATURE * signatures + priority


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class _TokenBalance:
    index: int
    mint: str
    owner: str
    program: str
    amount: int
    decimals: int

    def json(self) -> dict[str, Any]:
        ui = ui_amount(self.amount, self.decimals)
        return {
            "accountIndex": self.index, "mint": self.mint, "owner": self.owner,
            "programId": self.program,
            "uiTokenAmount": {"amount": str(self.amount), "decimals": self.decimals,
                              "uiAmount": float(ui), "uiAmountString": ui},
        }


@dataclass(frozen=True)
class Recorded:
    """A transaction that executed (successfully or not) and what it changed."""

    raw: bytes
    slot: int
    block_time: int
    pre_balances: list[int]
    post_balances: list[int]
    pre_tokens: list[_TokenBalance]
    post_tokens: list[_TokenBalance]
    fee: int
    logs: list[str]
    units: int


class TransactionHistory:
    """Submits through the chain and remembers the last ``capacity`` transactions that
    executed (older ones are forgotten, so a long soak stays flat; ~1 KB each)."""

    def __init__(self, chain: SimChain, clock: Callable[[], float],
                 capacity: int = HISTORY_CAPACITY) -> None:
        self.chain = chain
        self._clock = clock
        self._capacity = capacity
        self._recorded: dict[str, Recorded] = {}

    def submit(self, raw: bytes) -> None:
        tx = decode_transaction(raw)
        keys = list(tx.message.account_keys)
        pre = [self.chain.balance(key) for key in keys]
        pre_tokens = self._token_balances(keys)
        result = self.chain.submit(raw)
        if result.refused is not None:
            return
        signature = result.signature
        status = self.chain.signature_statuses([signature])[0]
        slot = status["slot"] if status else self.chain.slot
        fee, logs, units = self._meta(tx, signature)
        if len(self._recorded) >= self._capacity:
            del self._recorded[next(iter(self._recorded))]
        self._recorded[signature] = Recorded(
            raw, slot, int(self._clock()), pre, [self.chain.balance(k) for k in keys],
            pre_tokens, self._token_balances(keys), fee, logs, units)

    def get(self, signature: str) -> Recorded | None:
        return self._recorded.get(signature)

    def _meta(self, tx: VersionedTransaction, signature: str) -> tuple[int, list[str], int]:
        meta = self.chain.svm.get_transaction(Signature.from_string(signature))
        if isinstance(meta, FailedTransactionMetadata):
            meta = meta.meta()
        if meta is None:  # failed before LiteSVM ran it (a refused swap): fee only
            return fee_for_message(tx.message), [], 0
        return meta.fee(), list(meta.logs()), meta.compute_units_consumed()

    def _token_balances(self, keys: list[Pubkey]) -> list[_TokenBalance]:
        found = []
        for index, key in enumerate(keys):
            state = self.chain.token_state(key)
            if state is None:
                continue
            account = self.chain.account(key)
            program = str(account.owner) if account is not None else ""
            found.append(_TokenBalance(index, str(state.mint), str(state.owner), program,
                                       state.amount, self.chain.mint_decimals(state.mint)))
        return found


# --------------------------------------------------------------------------- encodings


def message_json(tx: VersionedTransaction) -> dict[str, Any]:
    """The ``json`` encoding of a transaction (``UiTransaction`` with a raw message)."""
    message = tx.message
    header = message.header
    body: dict[str, Any] = {
        "accountKeys": [str(k) for k in message.account_keys],
        "header": {
            "numRequiredSignatures": header.num_required_signatures,
            "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
        },
        "instructions": [
            {"programIdIndex": ix.program_id_index, "accounts": list(bytes(ix.accounts)),
             "data": b58encode(bytes(ix.data)), "stackHeight": None}
            for ix in message.instructions
        ],
        "recentBlockhash": str(message.recent_blockhash),
    }
    if isinstance(message, MessageV0):
        body["addressTableLookups"] = [
            {"accountKey": str(lookup.account_key),
             "writableIndexes": list(bytes(lookup.writable_indexes)),
             "readonlyIndexes": list(bytes(lookup.readonly_indexes))}
            for lookup in message.address_table_lookups
        ]
    return {"signatures": [str(s) for s in tx.signatures], "message": body}


def message_json_parsed(tx: VersionedTransaction) -> dict[str, Any]:
    """The ``jsonParsed`` encoding with every instruction left unparsed (Agave's
    ``UiPartiallyDecodedInstruction``) and annotated account keys."""
    message = tx.message
    keys = [str(k) for k in message.account_keys]
    header = message.header
    signers = header.num_required_signatures
    body: dict[str, Any] = {
        "accountKeys": [
            {"pubkey": key, "signer": i < signers, "source": "transaction",
             "writable": i < signers - header.num_readonly_signed_accounts if i < signers
             else i < len(keys) - header.num_readonly_unsigned_accounts}
            for i, key in enumerate(keys)],
        "instructions": [
            {"programId": keys[ix.program_id_index],
             "accounts": [keys[a] for a in bytes(ix.accounts)],
             "data": b58encode(bytes(ix.data)), "stackHeight": None}
            for ix in message.instructions
        ],
        "recentBlockhash": str(message.recent_blockhash),
    }
    if isinstance(message, MessageV0):
        body["addressTableLookups"] = message_json(tx)["message"]["addressTableLookups"]
    return {"signatures": [str(s) for s in tx.signatures], "message": body}


def _encoded_transaction(record: Recorded, encoding: str) -> Any:
    if encoding == "jsonParsed":
        return message_json_parsed(decode_transaction(record.raw))
    if encoding == "json":
        return message_json(decode_transaction(record.raw))
    if encoding == "base64":
        return [base64.b64encode(record.raw).decode(), "base64"]
    if encoding == "base58":
        return [b58encode(record.raw), "base58"]
    raise ExtraRpcError(INVALID_PARAMS, f"Invalid params: unknown encoding: {encoding}")


def transaction_json(record: Recorded, status: dict[str, Any], encoding: str,
                     max_version: int | None) -> dict[str, Any]:
    """A ``getTransaction`` result (Agave's ``EncodedConfirmedTransactionWithStatusMeta``)."""
    versioned = isinstance(decode_transaction(record.raw).message, MessageV0)
    if versioned and max_version is None:
        raise ExtraRpcError(
            UNSUPPORTED_TRANSACTION_VERSION,
            "Transaction version (0) is not supported by the requesting client. Please try "
            "the request again with the following configuration parameter: "
            "\"maxSupportedTransactionVersion\": 0")
    err = status["err"]
    result: dict[str, Any] = {
        "slot": record.slot,
        "blockTime": record.block_time,
        "transaction": _encoded_transaction(record, encoding),
        "meta": {
            "err": err,
            "status": {"Ok": None} if err is None else {"Err": err},
            "fee": record.fee,
            "preBalances": record.pre_balances,
            "postBalances": record.post_balances,
            "innerInstructions": [],
            "logMessages": record.logs,
            "preTokenBalances": [t.json() for t in record.pre_tokens],
            "postTokenBalances": [t.json() for t in record.post_tokens],
            "rewards": [],
            "loadedAddresses": {"writable": [], "readonly": []},
            "computeUnitsConsumed": record.units,
        },
    }
    if max_version is not None:
        result["version"] = 0 if versioned else "legacy"
    return result


# --------------------------------------------------------------------------- methods


def _config(params: list[Any], index: int) -> dict[str, Any]:
    if len(params) <= index or params[index] is None:
        return {}
    if not isinstance(params[index], dict):
        raise ExtraRpcError(INVALID_PARAMS, "Invalid params: config must be an object")
    config: dict[str, Any] = params[index]
    return config


def _arg(params: list[Any], index: int, kind: type, name: str) -> Any:
    if len(params) <= index or not isinstance(params[index], kind) \
            or isinstance(params[index], bool):
        raise ExtraRpcError(INVALID_PARAMS, f"Invalid params: missing or invalid {name}")
    return params[index]


def _pubkey(text: str) -> Pubkey:
    try:
        return Pubkey.from_string(text)
    except ValueError:
        raise ExtraRpcError(INVALID_PARAMS, "Invalid param: Invalid") from None


def commitment_level(config: dict[str, Any], default: str = "finalized") -> str:
    """``processed``/``confirmed``/``finalized`` from a config (deprecated names mapped)."""
    level = config.get("commitment") or default
    if level in ("recent", "single", "singleGossip"):
        return "processed"
    if level in ("root", "max"):
        return "finalized"
    if level not in COMMITMENT_RANK:
        raise ExtraRpcError(INVALID_PARAMS, f"Invalid params: unknown commitment {level!r}")
    return str(level)


class ExtraMethods:
    """``method name -> handler(params)`` for the methods of this module."""

    def __init__(self, chain: SimChain, history: TransactionHistory, context: Context,
                 version: str) -> None:
        self.chain = chain
        self.history = history
        self.version = version
        self._context = context
        self._airdrops = 0

    def table(self) -> dict[str, Callable[[list[Any]], Any]]:
        return {
            "getMinimumBalanceForRentExemption": self.minimum_balance_for_rent_exemption,
            "getFeeForMessage": self.fee_for_message,
            "getVersion": lambda _: {"solana-core": self.version, "feature-set": FEATURE_SET},
            "getTransaction": self.get_transaction,
            "requestAirdrop": self.request_airdrop,
            "getGenesisHash": lambda _: str(Hash.default()),
            "getEpochInfo": self.epoch_info,
        }

    def minimum_balance_for_rent_exemption(self, params: list[Any]) -> int:
        size = _arg(params, 0, int, "data length")
        if size < 0:
            raise ExtraRpcError(INVALID_PARAMS, "Invalid params: data length must be >= 0")
        return int(self.chain.svm.minimum_balance_for_rent_exemption(size))

    def fee_for_message(self, params: list[Any]) -> dict[str, Any]:
        text = _arg(params, 0, str, "message")
        try:
            message = from_bytes_versioned(base64.b64decode(text, validate=True))
        except (ValueError, binascii.Error) as exc:
            raise ExtraRpcError(INVALID_PARAMS, f"invalid message: {exc}") from None
        if not self.chain.is_blockhash_valid(message.recent_blockhash):
            return self._context(None)
        return self._context(fee_for_message(message))

    def get_transaction(self, params: list[Any]) -> dict[str, Any] | None:
        signature = _arg(params, 0, str, "signature")
        try:
            Signature.from_string(signature)
        except ValueError:
            raise ExtraRpcError(INVALID_PARAMS, "Invalid param: Invalid") from None
        config = _config(params, 1)
        wanted = commitment_level(config)
        if wanted == "processed":
            raise ExtraRpcError(INVALID_PARAMS,
                                "Method does not support commitment below `confirmed`")
        record = self.history.get(signature)
        status = self.chain.signature_statuses([signature])[0]
        if record is None or status is None:
            return None
        if COMMITMENT_RANK[status["confirmationStatus"]] < COMMITMENT_RANK[wanted]:
            return None
        max_version = config.get("maxSupportedTransactionVersion")
        if max_version is not None and max_version != 0:
            raise ExtraRpcError(INVALID_PARAMS,
                                f"Invalid params: unsupported version {max_version}")
        return transaction_json(record, status, str(config.get("encoding") or "json"),
                                max_version)

    def request_airdrop(self, params: list[Any]) -> str:
        """A real transfer from the chain's authority, so it gets a status to confirm."""
        recipient = _pubkey(_arg(params, 0, str, "pubkey"))
        lamports = _arg(params, 1, int, "lamports")
        if not 0 < lamports <= MAX_AIRDROP_LAMPORTS:
            raise ExtraRpcError(INVALID_PARAMS,
                                f"Invalid params: lamports must be 1..{MAX_AIRDROP_LAMPORTS}")
        authority = self.chain.authority
        blockhash, _ = self.chain.latest_blockhash()
        self._airdrops += 1
        message = Message.new_with_blockhash(
            [transfer(TransferParams(from_pubkey=authority.pubkey(), to_pubkey=recipient,
                                     lamports=lamports)),
             memo_instruction(f"sim-airdrop:{self._airdrops}", authority.pubkey())],
            authority.pubkey(), blockhash)
        tx = VersionedTransaction(message, [authority])
        self.history.submit(bytes(tx))
        return str(tx.signatures[0])

    def epoch_info(self, _: list[Any]) -> dict[str, Any]:
        slot = self.chain.slot
        return {"absoluteSlot": slot, "blockHeight": self.chain.block_height,
                "epoch": slot // 432_000, "slotIndex": slot % 432_000,
                "slotsInEpoch": 432_000, "transactionCount": None}
