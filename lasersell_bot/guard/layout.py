"""The wire layout of a serialized transaction, walked without building objects:
used by the guard before solders decodes, and by wallet signing to find our slot."""

from __future__ import annotations

from dataclasses import dataclass


class MalformedTransaction(ValueError):
    """The bytes are not a well-formed serialized VersionedTransaction."""


@dataclass(frozen=True, slots=True)
class TxLayout:
    """Offsets and counts of a serialized transaction, read without building objects."""

    num_signatures: int
    signatures_offset: int
    message_offset: int
    version: int | None
    num_required_signatures: int
    static_keys_offset: int
    num_static_keys: int
    program_indexes: tuple[int, ...]


def _compact_u16(raw: bytes, pos: int) -> tuple[int, int]:
    """Decode a compact-u16 at ``pos``; return (value, next position). IndexError if cut."""
    byte = raw[pos]
    if byte < 0x80:
        return byte, pos + 1
    value = byte & 0x7F
    byte = raw[pos + 1]
    if byte < 0x80:
        if byte == 0:
            raise MalformedTransaction("non-canonical compact-u16")
        return value | byte << 7, pos + 2
    value |= (byte & 0x7F) << 7
    byte = raw[pos + 2]
    if byte >= 0x80:
        raise MalformedTransaction("compact-u16 longer than 3 bytes")
    if byte == 0 or byte > 0x03:
        raise MalformedTransaction("non-canonical compact-u16")
    return value | byte << 14, pos + 3


def _skip_sized(raw: bytes, pos: int) -> int:
    length, pos = _compact_u16(raw, pos)
    return pos + length


def read_layout(raw: bytes) -> TxLayout:
    """Walk the whole wire format; raise ``MalformedTransaction`` on any defect."""
    try:
        return _walk(raw)
    except IndexError:
        raise MalformedTransaction(f"truncated ({len(raw)} bytes)") from None


def _walk(raw: bytes) -> TxLayout:
    num_sigs, sig_offset = _compact_u16(raw, 0)
    msg_offset = pos = sig_offset + 64 * num_sigs
    version: int | None = None
    if raw[pos] & 0x80:
        version = raw[pos] & 0x7F
        if version != 0:
            raise MalformedTransaction(f"unsupported message version {version}")
        pos += 1
    num_required = raw[pos]
    num_keys, keys_offset = _compact_u16(raw, pos + 3)
    count, pos = _compact_u16(raw, keys_offset + 32 * num_keys + 32)
    programs = []
    for _ in range(count):  # the hot loop: one-byte lengths skip the call (guard latency)
        programs.append(raw[pos])
        length = raw[pos + 1]  # accounts
        pos = pos + 2 + length if length < 0x80 else _skip_sized(raw, pos + 1)
        length = raw[pos]  # data
        pos = pos + 1 + length if length < 0x80 else _skip_sized(raw, pos)
    if version is not None:
        count, pos = _compact_u16(raw, pos)
        for _ in range(count):
            pos = _skip_sized(raw, _skip_sized(raw, pos + 32))
    if pos != len(raw):
        if pos > len(raw):
            raise IndexError(pos)
        raise MalformedTransaction(f"{len(raw) - pos} trailing bytes")
    return TxLayout(num_sigs, sig_offset, msg_offset, version, num_required, keys_offset,
                    num_keys, tuple(programs))
