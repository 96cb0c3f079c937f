"""Address lookup tables on the simulated chain: the account bytes, and a message's keys.

A table account is what the Address Lookup Table program writes (``LookupTableMeta``,
56 bytes, then the addresses), owned by that program, so LiteSVM loads v0 messages
through it and ``getAccountInfo`` returns the real layout. Tables are written directly
(as if created and extended long ago), not by the program's instructions.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Final

from solders.account import Account
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

LOOKUP_TABLE_PROGRAM_ID: Final = Pubkey.from_string("AddressLookupTab1e1111111111111111111111111")
META_SIZE: Final = 56
_U64_MAX: Final = 2**64 - 1
_META: Final = struct.Struct("<IQQB?32sH")


def table_data(addresses: Sequence[Pubkey], authority: Pubkey, last_extended_slot: int) -> bytes:
    """``ProgramState::LookupTable`` bytes: active (never deactivated), every address
    usable from the slot after ``last_extended_slot``."""
    meta = _META.pack(1, _U64_MAX, last_extended_slot, 0, True, bytes(authority), 0)
    return meta + b"".join(bytes(a) for a in addresses)


def table_account(addresses: Sequence[Pubkey], authority: Pubkey, last_extended_slot: int,
                  rent: Callable[[int], int]) -> Account:
    data = table_data(addresses, authority, last_extended_slot)
    return Account(rent(len(data)), data, LOOKUP_TABLE_PROGRAM_ID)


def table_addresses(data: bytes) -> list[Pubkey]:
    """The addresses held in table account data (ValueError if it is not a table)."""
    if len(data) < META_SIZE or int.from_bytes(data[:4], "little") != 1:
        raise ValueError("not a lookup table")
    body = data[META_SIZE:]
    return [Pubkey.from_bytes(body[i:i + 32]) for i in range(0, len(body) - 31, 32)]


def message_keys(tx: VersionedTransaction,
                 load: Callable[[Pubkey], Account | None]) -> list[Pubkey]:
    """Every account key of ``tx`` in runtime order: static keys, then each table's
    writable entries, then each table's read-only entries. ValueError if a table or
    an index is missing (the runtime would refuse the transaction anyway)."""
    message = tx.message
    keys = list(message.account_keys)
    if not isinstance(message, MessageV0):
        return keys
    writable: list[Pubkey] = []
    readonly: list[Pubkey] = []
    for lookup in message.address_table_lookups:
        account = load(lookup.account_key)
        if account is None or account.owner != LOOKUP_TABLE_PROGRAM_ID:
            raise ValueError(f"lookup table {lookup.account_key} not found")
        entries = table_addresses(account.data)
        for indexes, into in ((lookup.writable_indexes, writable),
                              (lookup.readonly_indexes, readonly)):
            for index in indexes:
                if index >= len(entries):
                    raise ValueError(f"lookup table {lookup.account_key} has no index {index}")
                into.append(entries[index])
    return keys + writable + readonly
