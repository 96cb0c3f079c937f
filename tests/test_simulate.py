"""The effects stage's RPC I/O (simulate.py) against a scripted JSON-RPC server on loopback:
one batch round trip, the fallback for RPCs without batches, lookup tables, bad answers."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from lasersell_bot.guard.effects import AccountState
from lasersell_bot.guard.policy import SYSTEM_ID, TOKEN_ID
from lasersell_bot.guard.tables import LOOKUP_TABLE_PROGRAM_ID, LookupTables
from lasersell_bot.send import Confirmer, Submitter, make_target
from lasersell_bot.simulate import Simulator, Unverifiable, account_state

ME = Keypair().pubkey()
ATA = Keypair().pubkey()
TABLE = Keypair().pubkey()


def account_json(lamports: int, owner: Pubkey, data: bytes) -> dict[str, Any]:
    return {"lamports": lamports, "owner": str(owner), "executable": False, "rentEpoch": 0,
            "space": len(data), "data": [base64.b64encode(data).decode(), "base64"]}


class ScriptedRpc:
    """Answers getMultipleAccounts and simulateTransaction from dicts; records calls."""

    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        self.post: dict[str, dict[str, Any]] = {}
        self.sim_err: Any = None
        self.batches = True
        self.delay = 0.0
        self.slots = {"getMultipleAccounts": 7, "simulateTransaction": 7}
        self.requests: list[Any] = []
        self.url = ""

    def answer(self, call: dict[str, Any]) -> dict[str, Any]:
        method, params = call["method"], call["params"]
        if method == "getMultipleAccounts":
            value = [self.accounts.get(k) for k in params[0]]
        elif method == "simulateTransaction":
            keys = params[1]["accounts"]["addresses"]
            value = {"err": self.sim_err, "logs": ["Program log: swap"], "unitsConsumed": 9,
                     "accounts": None if self.sim_err else [self.post.get(k) for k in keys]}
        else:
            return {"jsonrpc": "2.0", "id": call["id"],
                    "error": {"code": -32601, "message": "Method not found"}}
        return {"jsonrpc": "2.0", "id": call["id"],
                "result": {"context": {"slot": self.slots[method]}, "value": value}}

    async def handle(self, request: web.Request) -> web.Response:
        payload = json.loads(await request.read())
        self.requests.append(payload)
        await asyncio.sleep(self.delay)
        if isinstance(payload, list):
            if not self.batches:
                return web.json_response({"jsonrpc": "2.0", "id": None, "error": {
                    "code": -32600, "message": "batch requests are disabled"}})
            return web.json_response([self.answer(c) for c in reversed(payload)])
        return web.json_response(self.answer(payload))


@pytest.fixture
async def rpc() -> AsyncIterator[tuple[ScriptedRpc, Simulator]]:
    scripted = ScriptedRpc()
    app = web.Application()
    app.router.add_post("/", scripted.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    target = make_target("rpc", f"http://127.0.0.1:{port}/")
    submitter = Submitter([target], target, request_timeout=2.0)
    await submitter.start(warm=False)
    try:
        yield scripted, Simulator(Confirmer(submitter), timeout_sec=0.5)
    finally:
        await submitter.close()
        await runner.cleanup()


async def test_pre_and_post_state_come_back_in_one_batch(
        rpc: tuple[ScriptedRpc, Simulator]) -> None:
    scripted, simulator = rpc
    scripted.accounts[str(ME)] = account_json(5_000, SYSTEM_ID, b"")
    scripted.post[str(ME)] = account_json(9_000, SYSTEM_ID, b"")
    scripted.post[str(ATA)] = account_json(2_039_280, TOKEN_ID, b"\x07" * 165)
    sim = await simulator.run(b"unsigned tx bytes", [ME, ATA])
    assert len(scripted.requests) == 1 and isinstance(scripted.requests[0], list)
    get, simulate = scripted.requests[0]
    assert get["method"] == "getMultipleAccounts"
    assert get["params"] == [[str(ME), str(ATA)], {"encoding": "base64",
                                                   "commitment": "processed"}]
    assert simulate["params"][0] == base64.b64encode(b"unsigned tx bytes").decode()
    assert simulate["params"][1] == {
        "encoding": "base64", "sigVerify": False, "replaceRecentBlockhash": False,
        "commitment": "processed",
        "accounts": {"encoding": "base64", "addresses": [str(ME), str(ATA)]}}
    assert sim.pre == [AccountState(5_000, SYSTEM_ID, b""), None]
    assert sim.post == [AccountState(9_000, SYSTEM_ID, b""),
                        AccountState(2_039_280, TOKEN_ID, b"\x07" * 165)]
    assert sim.err is None and sim.units == 9 and sim.elapsed_ms > 0


async def test_an_rpc_without_batches_gets_two_parallel_calls_from_then_on(
        rpc: tuple[ScriptedRpc, Simulator]) -> None:
    scripted, simulator = rpc
    scripted.batches = False
    scripted.accounts[str(ME)] = account_json(5_000, SYSTEM_ID, b"")
    scripted.post[str(ME)] = account_json(4_000, SYSTEM_ID, b"")
    first = await simulator.run(b"tx", [ME])
    second = await simulator.run(b"tx", [ME])
    assert first.post == second.post == [AccountState(4_000, SYSTEM_ID, b"")]
    kinds = ["batch" if isinstance(r, list) else r["method"] for r in scripted.requests]
    assert kinds[0] == "batch"
    assert sorted(kinds[1:3]) == sorted(kinds[3:5]) == [
        "getMultipleAccounts", "simulateTransaction"]
    assert len(kinds) == 5


async def test_a_failed_simulation_reports_its_error_and_logs(
        rpc: tuple[ScriptedRpc, Simulator]) -> None:
    scripted, simulator = rpc
    scripted.sim_err = {"InstructionError": [2, {"Custom": 6004}]}
    sim = await simulator.run(b"tx", [ME])
    assert sim.err == {"InstructionError": [2, {"Custom": 6004}]}
    assert sim.post == [] and sim.logs == ["Program log: swap"]


async def test_a_slow_rpc_makes_the_transaction_unverifiable(
        rpc: tuple[ScriptedRpc, Simulator]) -> None:
    scripted, simulator = rpc
    scripted.delay = 1.0
    with pytest.raises(Unverifiable, match=r"no answer within 0\.5 s"):
        await simulator.run(b"tx", [ME])


async def test_a_short_account_list_is_unverifiable(rpc: tuple[ScriptedRpc, Simulator]) -> None:
    scripted, simulator = rpc
    original = scripted.answer

    def truncated(call: dict[str, Any]) -> dict[str, Any]:
        reply = original(call)
        if call["method"] == "simulateTransaction":
            reply["result"]["value"]["accounts"] = []
        return reply

    scripted.answer = truncated  # type: ignore[method-assign]
    with pytest.raises(Unverifiable, match="expected 2 accounts"):
        await simulator.run(b"tx", [ME, ATA])


async def test_lookup_tables_are_fetched_parsed_and_kept(
        rpc: tuple[ScriptedRpc, Simulator]) -> None:
    scripted, simulator = rpc
    entries = [Keypair().pubkey() for _ in range(3)]
    meta = (1).to_bytes(4, "little") + b"\xff" * 8 + bytes(8) + b"\x00" + b"\x00" + bytes(34)
    assert len(meta) == 56
    data = meta + b"".join(bytes(k) for k in entries)
    scripted.accounts[str(TABLE)] = account_json(10**7, LOOKUP_TABLE_PROGRAM_ID, data)
    await simulator.fetch_tables([TABLE])
    assert simulator.tables.get(TABLE) == tuple(entries)
    missing = Keypair().pubkey()
    with pytest.raises(Unverifiable, match=f"lookup table {missing} does not exist"):
        await simulator.fetch_tables([missing])


@pytest.mark.parametrize("value", [
    {"lamports": 5, "owner": "not a key", "data": ["", "base64"]},
    {"lamports": -1, "owner": str(ME), "data": ["", "base64"]},
    {"lamports": 5, "owner": str(ME), "data": ["{}", "jsonParsed"]},
    {"lamports": 5, "owner": str(ME)},
    ["not", "an", "object"],
])
def test_malformed_accounts_are_unverifiable(value: Any) -> None:
    with pytest.raises(Unverifiable):
        account_state(value)


def test_an_empty_account_counts_as_absent() -> None:
    assert account_state(account_json(0, SYSTEM_ID, b"")) is None
    assert account_state(None) is None


def test_the_table_cache_keeps_the_longer_copy_and_is_bounded() -> None:
    tables = LookupTables(limit=2)
    a, b, c = (Keypair().pubkey() for _ in range(3))
    tables.put(a, (ME, ATA))
    tables.put(a, (ME,))
    assert tables.get(a) == (ME, ATA)
    tables.put(b, ())
    tables.put(c, ())
    assert len(tables) == 2 and tables.get(a) is None


async def test_reads_from_two_different_slots_are_asked_again_then_unverifiable(
        rpc: tuple[ScriptedRpc, Simulator]) -> None:
    """Another landing between the two reads would count as this transaction's effect."""
    scripted, simulator = rpc
    scripted.slots["simulateTransaction"] = 8
    with pytest.raises(Unverifiable, match="different slots 3 times"):
        await simulator.run(b"tx", [ME])
    assert len(scripted.requests) == 3
