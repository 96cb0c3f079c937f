"""Address lookup tables: read a table account, keep table contents, resolve a message's keys.

A v0 message may load accounts from lookup tables. The runtime orders a message's
accounts as: static keys, then every table's writable entries (tables in message order),
then every table's read-only entries. ``resolve_keys`` reproduces that order, so an
instruction's account index means the same key here as on chain.

Table entries are append-only (a table can be extended, never rewritten), so a cached
table stays right for every index it already holds; a message that uses an index past
the cached length needs the table fetched again (``LookupTables.missing``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from solders.message import MessageHeader, MessageV0
from solders.pubkey import Pubkey

LOOKUP_TABLE_PROGRAM = "AddressLookupTab1e1111111111111111111111111"
LOOKUP_TABLE_PROGRAM_ID = Pubkey.from_string(LOOKUP_TABLE_PROGRAM)
LOOKUP_TABLE_META_SIZE = 56
_LOOKUP_TABLE_TYPE = 1  # ProgramState::LookupTable (0 is Uninitialized)
MAX_CACHED_TABLES = 4096


class MissingLookupTable(LookupError):
    """A message uses a lookup table (or an index of one) that we do not hold."""

    def __init__(self, table: Pubkey, index: int | None = None) -> None:
        where = f" index {index}" if index is not None else ""
        super().__init__(f"lookup table {table}{where} is not known")
        self.table = table


def parse_lookup_table(data: bytes) -> tuple[Pubkey, ...]:
    """The addresses in a lookup-table account's data; ValueError if it is not a table."""
    if len(data) < LOOKUP_TABLE_META_SIZE:
        raise ValueError(f"lookup table data is {len(data)} bytes, shorter than its header")
    if int.from_bytes(data[:4], "little") != _LOOKUP_TABLE_TYPE:
        raise ValueError("account is not an initialised lookup table")
    body = data[LOOKUP_TABLE_META_SIZE:]
    if len(body) % 32:
        raise ValueError("lookup table addresses are not a whole number of keys")
    return tuple(Pubkey.from_bytes(body[i:i + 32]) for i in range(0, len(body), 32))


@dataclass(frozen=True, slots=True)
class ResolvedKeys:
    """Every account of a message in runtime order, with whether it is writable."""

    keys: tuple[Pubkey, ...]
    writable: tuple[bool, ...]
    num_static: int

    def writable_keys(self) -> list[Pubkey]:
        """Each writable account once, in message order (the only accounts a tx can change)."""
        seen: dict[Pubkey, None] = {}
        for key, writable in zip(self.keys, self.writable, strict=True):
            if writable:
                seen.setdefault(key)
        return list(seen)


def static_writable(header: MessageHeader, index: int, num_static: int) -> bool:
    """Whether static key ``index`` is writable by the header's counts."""
    signed = int(header.num_required_signatures)
    if index < signed:
        return index < signed - int(header.num_readonly_signed_accounts)
    return index < num_static - int(header.num_readonly_unsigned_accounts)


def resolve_keys(message: object, tables: Mapping[Pubkey, Sequence[Pubkey]]) -> ResolvedKeys:
    """All keys of ``message`` (legacy or v0) in runtime order; MissingLookupTable when a
    table or one of its indexes is not in ``tables``."""
    static = tuple(message.account_keys)  # type: ignore[attr-defined]
    n = len(static)
    header = message.header  # type: ignore[attr-defined]  # read once: solders rebuilds it
    signed = int(header.num_required_signatures)
    signed_writable = signed - int(header.num_readonly_signed_accounts)
    unsigned_writable = n - int(header.num_readonly_unsigned_accounts)
    flags = [i < signed_writable if i < signed else i < unsigned_writable for i in range(n)]
    if not isinstance(message, MessageV0) or not message.address_table_lookups:
        return ResolvedKeys(static, tuple(flags), n)
    writable: list[Pubkey] = []
    readonly: list[Pubkey] = []
    for lookup in message.address_table_lookups:
        table = tables.get(lookup.account_key)
        if table is None:
            raise MissingLookupTable(lookup.account_key)
        for indexes, into in ((lookup.writable_indexes, writable),
                              (lookup.readonly_indexes, readonly)):
            for index in indexes:
                if index >= len(table):
                    raise MissingLookupTable(lookup.account_key, index)
                into.append(table[index])
    keys = static + tuple(writable) + tuple(readonly)
    return ResolvedKeys(keys, tuple(flags + [True] * len(writable) + [False] * len(readonly)), n)


def table_addresses(message: object) -> list[Pubkey]:
    """The lookup tables a message uses, in order (none for a legacy message)."""
    if not isinstance(message, MessageV0):
        return []
    return [lookup.account_key for lookup in message.address_table_lookups]


class LookupTables:
    """Table contents fetched over RPC, kept in memory (bounded, oldest dropped first)."""

    def __init__(self, limit: int = MAX_CACHED_TABLES) -> None:
        self._tables: dict[Pubkey, tuple[Pubkey, ...]] = {}
        self._limit = limit

    def __len__(self) -> int:
        return len(self._tables)

    def get(self, table: Pubkey) -> tuple[Pubkey, ...] | None:
        return self._tables.get(table)

    def put(self, table: Pubkey, addresses: tuple[Pubkey, ...]) -> None:
        """Keep the longer of what we hold and ``addresses`` (entries are append-only)."""
        held = self._tables.pop(table, ())
        self._tables[table] = addresses if len(addresses) >= len(held) else held
        while len(self._tables) > self._limit:
            del self._tables[next(iter(self._tables))]

    def as_mapping(self) -> Mapping[Pubkey, Sequence[Pubkey]]:
        return self._tables

    def missing(self, message: object) -> list[Pubkey]:
        """Tables ``message`` needs that are not held, or are shorter than an index it uses."""
        if not isinstance(message, MessageV0):
            return []
        needed = []
        for lookup in message.address_table_lookups:
            held = self._tables.get(lookup.account_key)
            indexes = [*lookup.writable_indexes, *lookup.readonly_indexes]
            if held is None or (indexes and max(indexes) >= len(held)):
                needed.append(lookup.account_key)
        return needed
