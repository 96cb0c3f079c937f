"""The effects stage's I/O: lookup tables and the one simulation round trip.

``Simulator.run`` asks the RPC, in one JSON-RPC batch on the warm RPC connection, for
the pre-state of every writable account (``getMultipleAccounts``) and for a simulation of
the unsigned transaction that returns the same accounts' post-state
(``simulateTransaction`` with ``sigVerify: false`` and the ``accounts`` option). An RPC
that does not answer batches gets the two requests in parallel instead, from then on.
Lookup tables a transaction loads are fetched once (``getMultipleAccounts``) and kept
(``guard.tables.LookupTables``). Only standard Solana JSON-RPC methods and parameters.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from solders.pubkey import Pubkey

from lasersell_bot.guard.effects import AccountState
from lasersell_bot.guard.tables import LookupTables, parse_lookup_table
from lasersell_bot.rpcpool import BatchUnsupported, RpcError

_COMMITMENT = "processed"


class Unverifiable(Exception):
    """The effects could not be established (RPC down, slow, or answering nonsense)."""


class RpcReader(Protocol):
    async def call(self, method: str, params: Sequence[Any] = ()) -> Any: ...

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class Simulation:
    """What the RPC said the transaction would do to ``addresses``."""

    addresses: list[Pubkey]
    pre: list[AccountState | None]
    post: list[AccountState | None]
    err: Any
    logs: list[str]
    units: int | None
    elapsed_ms: float


class Simulator:
    """Runs simulations and keeps lookup tables, on one RPC reader."""

    def __init__(self, rpc: RpcReader, timeout_sec: float,
                 tables: LookupTables | None = None) -> None:
        self._rpc = rpc
        self.timeout_sec = timeout_sec
        self.tables = tables if tables is not None else LookupTables()
        self._batches = True

    async def fetch_tables(self, addresses: Sequence[Pubkey]) -> None:
        """Fetch lookup tables into ``tables``; Unverifiable when one cannot be had."""
        keys = [str(a) for a in addresses]
        try:
            async with asyncio.timeout(self.timeout_sec):
                result = await self._rpc.call("getMultipleAccounts", [keys, _ENCODING])
        except TimeoutError:
            raise Unverifiable("getMultipleAccounts (lookup tables): timeout") from None
        except RpcError as exc:
            raise Unverifiable(str(exc)) from None
        for address, value in zip(addresses, _values(result, len(keys)), strict=True):
            account = account_state(value)
            if account is None:
                raise Unverifiable(f"lookup table {address} does not exist")
            try:
                self.tables.put(address, parse_lookup_table(account.data))
            except ValueError as exc:
                raise Unverifiable(f"lookup table {address}: {exc}") from None

    async def run(self, tx_bytes: bytes, addresses: Sequence[Pubkey]) -> Simulation:
        """Pre-state and simulated post-state of ``addresses`` in one round trip."""
        keys = [str(a) for a in addresses]
        tx_b64 = base64.b64encode(tx_bytes).decode()
        calls: list[tuple[str, Sequence[Any]]] = [
            ("getMultipleAccounts", [keys, _ENCODING]),
            ("simulateTransaction", [tx_b64, _simulate_config(keys)]),
        ]
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_sec):
                for _ in range(SLOT_TRIES):
                    pre_result, sim_result = await self._ask(calls)
                    if _slot(pre_result) == _slot(sim_result):
                        break
                else:
                    raise Unverifiable(f"the pre-state and the simulation came from different "
                                       f"slots {SLOT_TRIES} times (the chain moved between)")
        except TimeoutError:
            raise Unverifiable(f"simulation: no answer within {self.timeout_sec:g} s") from None
        except RpcError as exc:
            raise Unverifiable(str(exc)) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        return _simulation(list(addresses), pre_result, sim_result, elapsed_ms)

    async def _ask(self, calls: list[tuple[str, Sequence[Any]]]) -> list[Any]:
        if self._batches:
            try:
                return await self._rpc.batch(calls)
            except BatchUnsupported:
                self._batches = False
        return list(await asyncio.gather(*(self._rpc.call(m, p) for m, p in calls)))


_ENCODING = {"encoding": "base64", "commitment": _COMMITMENT}
# Deltas are only ours if both reads saw the same slot: another landing in between (our
# own other exit, say) would otherwise count as this transaction's effect.
SLOT_TRIES = 3


def _slot(result: Any) -> Any:
    context = result.get("context") if isinstance(result, dict) else None
    return context.get("slot") if isinstance(context, dict) else None


def _simulate_config(keys: list[str]) -> dict[str, Any]:
    return {"encoding": "base64", "sigVerify": False, "replaceRecentBlockhash": False,
            "commitment": _COMMITMENT, "accounts": {"encoding": "base64", "addresses": keys}}


def _values(result: Any, expected: int) -> list[Any]:
    value = result.get("value") if isinstance(result, dict) else None
    if not isinstance(value, list) or len(value) != expected:
        raise Unverifiable(f"expected {expected} accounts in the reply, got "
                           f"{len(value) if isinstance(value, list) else type(value).__name__}")
    return value


def _simulation(addresses: list[Pubkey], pre_result: Any, sim_result: Any,
                elapsed_ms: float) -> Simulation:
    pre = [account_state(v) for v in _values(pre_result, len(addresses))]
    value = sim_result.get("value") if isinstance(sim_result, dict) else None
    if not isinstance(value, dict):
        raise Unverifiable("simulateTransaction: the reply has no value")
    err = value.get("err")
    logs = value.get("logs") or []
    units = value.get("unitsConsumed")
    if err is not None:
        return Simulation(addresses, pre, [], err, list(logs), units, elapsed_ms)
    post = [account_state(v) for v in _values({"value": value.get("accounts")}, len(addresses))]
    return Simulation(addresses, pre, post, None, list(logs), units, elapsed_ms)


def account_state(value: Any) -> AccountState | None:
    """An RPC account object (base64 data) as an ``AccountState``; None for a missing or
    empty account; Unverifiable for anything malformed."""
    if value is None:
        return None
    try:
        data_field = value["data"]
        text, encoding = data_field if isinstance(data_field, list) else (data_field, "base64")
        if encoding != "base64":
            raise ValueError(f"data encoding {encoding!r}")
        lamports = value["lamports"]
        if not isinstance(lamports, int) or lamports < 0:
            raise ValueError(f"lamports {lamports!r}")
        account = AccountState(lamports=lamports, owner=Pubkey.from_string(value["owner"]),
                               data=base64.b64decode(text, validate=True),
                               executable=bool(value.get("executable", False)))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise Unverifiable(f"malformed account in the RPC reply: {exc}") from None
    return account if account.lamports else None
