"""Account reads of the simulated JSON-RPC, in Agave's shapes.

* ``getMultipleAccounts``: ``[[pubkey, ...], {encoding, dataSlice, commitment,
  minContextSlot}]`` -> ``{"context": {slot, apiVersion}, "value": [account | null]}``;
  at most ``MAX_MULTIPLE_ACCOUNTS`` keys; encoding ``base64`` by default (``base58`` /
  ``binary`` only for data up to 128 bytes, as Agave; ``jsonParsed`` falls back to
  base64 for every account, which Agave does only for accounts it cannot parse).
* ``simulateTransaction``'s ``accounts`` option: ``{"addresses": [...], "encoding":
  "base64"}`` -> ``value.accounts``, one entry per address in the order asked: the
  account after the simulated transaction (the chain's swap settlement included), the
  current account for one the transaction does not write, null for none; a list of
  nulls when the simulation failed; base58 refused.

An account object is ``{"data": [<b64>, "base64"], "executable", "lamports", "owner",
"rentEpoch", "space"}``. ``base64+zstd`` is not supported here (no zstd in the
dependencies): it is refused as an invalid param.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any, Final

from solders.account import Account
from solders.pubkey import Pubkey

from lasersell_bot.sim.encoding import b58encode

MAX_MULTIPLE_ACCOUNTS: Final = 100
MAX_BASE58_BYTES: Final = 128
INVALID_PARAMS: Final = -32602
MIN_CONTEXT_SLOT_NOT_REACHED: Final = -32016
_ENCODINGS: Final = ("base64", "base58", "binary", "jsonParsed")


class AccountsError(ValueError):
    """An invalid-params answer (``code``, ``message``, optional ``data``)."""

    def __init__(self, message: str, code: int = INVALID_PARAMS, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def _slice(data: bytes, data_slice: Any) -> bytes:
    if data_slice is None:
        return data
    if (not isinstance(data_slice, dict) or not isinstance(data_slice.get("offset"), int)
            or not isinstance(data_slice.get("length"), int)
            or data_slice["offset"] < 0 or data_slice["length"] < 0):
        raise AccountsError("Invalid params: dataSlice needs integer offset and length")
    offset: int = data_slice["offset"]
    return data[offset:offset + data_slice["length"]]


def account_json(account: Account | None, encoding: str, data_slice: Any = None,
                 ) -> dict[str, Any] | None:
    """One account in the RPC's ``UiAccount`` shape (None for no account)."""
    if account is None:
        return None
    raw = bytes(account.data)
    data = _slice(raw, data_slice)
    encoded: str | list[str]
    if encoding in ("base58", "binary"):
        if len(data) > MAX_BASE58_BYTES:
            raise AccountsError(
                f"Encoded binary (base 58) data should be less than {MAX_BASE58_BYTES} bytes, "
                "please use Base64 encoding.")
        encoded = b58encode(data) if encoding == "binary" else [b58encode(data), "base58"]
    else:
        encoded = [base64.b64encode(data).decode(), "base64"]
    return {
        "data": encoded,
        "executable": account.executable,
        "lamports": account.lamports,
        "owner": str(account.owner),
        "rentEpoch": account.rent_epoch,
        "space": len(raw),
    }


def parse_pubkeys(values: Any, limit: int = MAX_MULTIPLE_ACCOUNTS,
                  what: str = "inputs") -> list[Pubkey]:
    if not isinstance(values, list):
        raise AccountsError("Invalid params: expected an array of base58 public keys")
    if len(values) > limit:
        raise AccountsError(f"Too many {what} provided; max {limit}")
    keys = []
    for value in values:
        try:
            keys.append(Pubkey.from_string(value))
        except (ValueError, TypeError):
            raise AccountsError("Invalid param: Invalid") from None
    return keys


def _encoding(config: Mapping[str, Any], default: str) -> str:
    encoding = config.get("encoding") or default
    if encoding not in _ENCODINGS:
        raise AccountsError(f"Invalid params: unsupported encoding: {encoding}. "
                            f"Supported: {', '.join(_ENCODINGS)}")
    return str(encoding)


def check_min_context_slot(config: Mapping[str, Any], slot: int) -> None:
    wanted = config.get("minContextSlot")
    if isinstance(wanted, int) and wanted > slot:
        raise AccountsError("Minimum context slot has not been reached",
                            MIN_CONTEXT_SLOT_NOT_REACHED, {"contextSlot": slot})


def multiple_accounts(params: list[Any], load: Callable[[Pubkey], Account | None],
                      slot: int) -> list[dict[str, Any] | None]:
    """``getMultipleAccounts``'s ``value``."""
    if not params:
        raise AccountsError("Invalid params: missing pubkeys")
    config = params[1] if len(params) > 1 and params[1] is not None else {}
    if not isinstance(config, dict):
        raise AccountsError("Invalid params: config must be an object")
    keys = parse_pubkeys(params[0])
    check_min_context_slot(config, slot)
    encoding = _encoding(config, "base64")
    return [account_json(load(key), encoding, config.get("dataSlice")) for key in keys]


def simulation_accounts_config(config: Mapping[str, Any]) -> tuple[list[Pubkey], str] | None:
    """The ``accounts`` option of ``simulateTransaction`` (None if absent)."""
    option = config.get("accounts")
    if option is None:
        return None
    if not isinstance(option, dict) or "addresses" not in option:
        raise AccountsError("Invalid params: accounts needs addresses")
    encoding = _encoding(option, "base64")
    if encoding in ("base58", "binary"):
        raise AccountsError("base58 encoding not supported")
    return parse_pubkeys(option["addresses"], what="accounts"), encoding


def simulation_accounts(keys: list[Pubkey], encoding: str, failed: bool,
                        post: Mapping[Pubkey, Account],
                        load: Callable[[Pubkey], Account | None]) -> list[dict[str, Any] | None]:
    """``value.accounts``: post-state of each address, nulls when the simulation failed."""
    if failed:
        return [None] * len(keys)
    return [account_json(post[key] if key in post else load(key), encoding) for key in keys]
