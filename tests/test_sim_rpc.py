"""SimRpcServer over loopback: mainnet response shapes (checked by solana-py/solders
parsers), sendTransaction semantics, Sender/Astralane paths, and every fault kind."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.models import TxOpts
from solders.pubkey import Pubkey
from solders.rpc.requests import IsBlockhashValid
from solders.rpc.responses import IsBlockhashValidResp
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus
from spl.token.constants import TOKEN_PROGRAM_ID

from lasersell_bot.sim.chain import MAX_PROCESSING_AGE, SLIPPAGE_ERROR_CODE
from lasersell_bot.sim.encoding import b58decode, b58encode
from lasersell_bot.sim.rpc import SimRpcServer
from lasersell_bot.sim.txbuild import SWAP_INSTRUCTION_INDEX, build_sell_tx
from tests.test_sim_chain import HELD, PRICE, Market, make_market


@pytest.fixture
def market() -> Market:
    return make_market()


@pytest.fixture
async def server(market: Market) -> AsyncIterator[SimRpcServer]:
    async with SimRpcServer(market.chain, slot_ms=None) as srv:
        yield srv


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def rpc(http: aiohttp.ClientSession, url: str, method: str, params: Any = None,
              **kw: Any) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params or []}
    async with http.post(url, json=body, **kw) as resp:
        assert resp.status == 200
        answer: dict[str, Any] = await resp.json()
    assert answer["jsonrpc"] == "2.0" and answer["id"] == 7
    return answer


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def signature_of(raw: bytes) -> str:
    return str(VersionedTransaction.from_bytes(raw).signatures[0])


def send_params(raw: bytes, skip_preflight: bool = True) -> list[Any]:
    return [b64(raw), {"encoding": "base64", "skipPreflight": skip_preflight, "maxRetries": 0,
                       "preflightCommitment": "processed"}]


# --------------------------------------------------------------------------- shapes


async def test_solana_py_reads_chain_state(market: Market, server: SimRpcServer) -> None:
    chain = market.chain
    async with AsyncClient(server.url) as client:
        latest = (await client.get_latest_blockhash()).value
        assert (latest.blockhash, latest.last_valid_block_height) == chain.latest_blockhash()
        assert (await client.get_block_height()).value == chain.block_height
        assert (await client.get_slot()).value == chain.slot
        assert (await client.get_balance(market.wallet.pubkey())).value == chain.balance(
            market.wallet.pubkey())
        amount = (await client.get_token_account_balance(market.holding)).value
        assert (amount.amount, amount.decimals, amount.ui_amount_string) == (
            str(HELD), 6, "2000000")
        info = (await client.get_account_info(market.holding)).value
        assert info is not None and info.owner == TOKEN_PROGRAM_ID
        assert info.data == chain.svm.get_account(market.holding).data  # type: ignore[union-attr]
        assert await client.is_connected()


async def test_is_blockhash_valid_shape(market: Market, server: SimRpcServer,
                                        http: aiohttp.ClientSession) -> None:
    blockhash, _ = market.chain.latest_blockhash()
    body = IsBlockhashValid(blockhash, id=7).to_json()
    async def ask() -> bool:
        async with http.post(server.url, data=body,
                             headers={"content-type": "application/json"}) as resp:
            answer = IsBlockhashValidResp.from_json(await resp.text())
            assert isinstance(answer, IsBlockhashValidResp)
            return answer.value
    assert await ask() is True
    market.chain.advance(MAX_PROCESSING_AGE + 1)
    assert await ask() is False


async def test_send_and_confirm_through_solana_py(market: Market, server: SimRpcServer) -> None:
    signed = market.sell(HELD // 2, 0)
    async with AsyncClient(server.url) as client:
        sent = await client.send_raw_transaction(signed, TxOpts(skip_preflight=True))
        assert str(sent.value) == signature_of(signed)
        [status] = (await client.get_signature_statuses([sent.value],
                                                        search_transaction_history=True)).value
        assert status is not None and status.err is None
        assert status.confirmation_status == TransactionConfirmationStatus.Processed
        market.chain.advance()
        [status] = (await client.get_signature_statuses([sent.value])).value
        assert status is not None
        assert status.confirmation_status == TransactionConfirmationStatus.Confirmed
    assert market.chain.token_balance(market.holding) == HELD // 2


# --------------------------------------------------------------------------- sendTransaction


async def test_preflight_rejects_unsigned_tx_with_32003(market: Market, server: SimRpcServer,
                                                       http: aiohttp.ClientSession) -> None:
    unsigned = base64.b64decode(build_sell_tx(market.chain, market.wallet.pubkey(),
                                              market.mint, 10, 0))
    answer = await rpc(http, server.url, "sendTransaction", send_params(unsigned, False))
    assert answer["error"] == {"code": -32003,
                               "message": "Transaction signature verification failure"}
    assert market.chain.token_balance(market.holding) == HELD


async def test_preflight_rejects_expired_blockhash_with_32002(
    market: Market, server: SimRpcServer, http: aiohttp.ClientSession
) -> None:
    signed = market.sell(10, 0)
    market.chain.advance(MAX_PROCESSING_AGE + 1)
    answer = await rpc(http, server.url, "sendTransaction", send_params(signed, False))
    error = answer["error"]
    assert error["code"] == -32002
    assert error["message"] == "Transaction simulation failed: Blockhash not found"
    assert error["data"]["err"] == "BlockhashNotFound"


async def test_skip_preflight_expired_is_answered_but_dropped(
    market: Market, server: SimRpcServer, http: aiohttp.ClientSession
) -> None:
    signed = market.sell(10, 0)
    market.chain.advance(MAX_PROCESSING_AGE + 1)
    answer = await rpc(http, server.url, "sendTransaction", send_params(signed))
    signature = signature_of(signed)
    assert answer["result"] == signature
    assert market.chain.dropped[signature].json == "BlockhashNotFound"
    status = await rpc(http, server.url, "getSignatureStatuses", [[signature]])
    assert status["result"]["value"] == [None]


async def test_slippage_failure_is_reported_in_status(
    market: Market, server: SimRpcServer, http: aiohttp.ClientSession
) -> None:
    signed = market.sell(HELD // 2, int(HELD // 2 * PRICE))
    market.chain.set_price(market.mint, PRICE / 2)
    preflight = await rpc(http, server.url, "sendTransaction", send_params(signed, False))
    slippage = {"InstructionError": [SWAP_INSTRUCTION_INDEX, {"Custom": SLIPPAGE_ERROR_CODE}]}
    assert preflight["error"]["code"] == -32002
    assert preflight["error"]["data"]["err"] == slippage
    assert preflight["error"]["message"] == (
        "Transaction simulation failed: Error processing Instruction 3: "
        "custom program error: 0x1773")
    await rpc(http, server.url, "sendTransaction", send_params(signed))
    answer = await rpc(http, server.url, "getSignatureStatuses",
                       [[signature_of(signed)], {"searchTransactionHistory": True}])
    [status] = answer["result"]["value"]
    assert status["err"] == slippage and status["status"] == {"Err": slippage}
    assert answer["result"]["context"]["slot"] == market.chain.slot


async def test_duplicate_send_settles_once(market: Market, server: SimRpcServer,
                                           http: aiohttp.ClientSession) -> None:
    signed = market.sell(1000, 0)
    first = await rpc(http, server.url, "sendTransaction", send_params(signed))
    again = await rpc(http, server.url, "sendTransaction", send_params(signed))
    assert first["result"] == again["result"] == signature_of(signed)
    preflight = await rpc(http, server.url, "sendTransaction", send_params(signed, False))
    assert preflight["error"]["data"]["err"] == "AlreadyProcessed"
    assert market.chain.token_balance(market.holding) == HELD - 1000
    assert server.counts["sendTransaction"] == 3


async def test_base58_and_preflight_are_the_defaults(market: Market, server: SimRpcServer,
                                              http: aiohttp.ClientSession) -> None:
    signed = market.sell(1000, 0)
    assert b58decode(b58encode(b"\0\0abc")) == b"\0\0abc"
    unsigned = VersionedTransaction.populate(VersionedTransaction.from_bytes(signed).message,
                                             [Signature.default()])
    preflighted = await rpc(http, server.url, "sendTransaction", [b58encode(bytes(unsigned))])
    assert preflighted["error"]["code"] == -32003  # preflight is on unless skipped
    answer = await rpc(http, server.url, "sendTransaction", [b58encode(signed)])
    assert answer["result"] == signature_of(signed)
    assert market.chain.token_balance(market.holding) == HELD - 1000


async def test_sender_and_astralane_paths_ping_and_receive_log(
    market: Market, server: SimRpcServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(server.url + "/ping") as resp:
        assert (resp.status, await resp.text()) == (200, "pong")
    first, second = market.sell(1, 0), market.sell(2, 0)
    started = time.monotonic()
    for path, signed in (("/fast", first), ("/iris?api-key=x", second)):
        answer = await rpc(http, server.url + path, "sendTransaction", send_params(signed))
        assert answer["result"] == signature_of(signed)
    assert [(r.path, r.raw, r.fault) for r in server.received] == [
        ("/fast", b64(first), None), ("/iris", b64(second), None)]
    times = [r.received_at for r in server.received]
    assert started <= times[0] <= times[1] <= time.monotonic()
    assert server.counts["ping"] == 1


async def test_json_rpc_errors_use_real_codes(market: Market, server: SimRpcServer,
                                              http: aiohttp.ClientSession) -> None:
    url = server.url
    assert (await rpc(http, url, "getFoo"))["error"]["code"] == -32601
    assert (await rpc(http, url, "getBalance", ["not-a-key"]))["error"]["code"] == -32602
    assert (await rpc(http, url, "sendTransaction", ["@@"]))["error"]["code"] == -32602
    too_many = [[str(Signature.default())] * 257]
    assert (await rpc(http, url, "getSignatureStatuses", too_many))["error"]["code"] == -32602
    wallet = str(market.wallet.pubkey())
    not_token = await rpc(http, url, "getTokenAccountBalance", [wallet])
    assert not_token["error"] == {"code": -32602, "message": "Invalid param: not a Token account"}
    async with http.post(url, data=b"{oops") as resp:
        assert (await resp.json())["error"]["code"] == -32700
    assert (await rpc(http, url, "getHealth"))["result"] == "ok"


async def test_get_account_info_encodings(market: Market, server: SimRpcServer,
                                          http: aiohttp.ClientSession) -> None:
    data = market.chain.svm.get_account(market.holding).data  # type: ignore[union-attr]
    key = str(market.holding)
    base64_answer = await rpc(http, server.url, "getAccountInfo", [key, {"encoding": "base64"}])
    value = base64_answer["result"]["value"]
    assert value["data"] == [b64(data), "base64"] and value["space"] == len(data)
    binary = await rpc(http, server.url, "getAccountInfo", [key])
    assert b58decode(binary["result"]["value"]["data"]) == data
    missing = await rpc(http, server.url, "getAccountInfo", [str(Pubkey.new_unique())])
    assert missing["result"]["value"] is None


async def test_simulate_transaction(market: Market, server: SimRpcServer,
                                    http: aiohttp.ClientSession) -> None:
    unsigned = base64.b64decode(build_sell_tx(market.chain, market.wallet.pubkey(),
                                              market.mint, 10, 0))
    config = {"encoding": "base64"}
    plain = await rpc(http, server.url, "simulateTransaction", [b64(unsigned), config])
    assert plain["result"]["value"]["err"] is None
    assert plain["result"]["value"]["unitsConsumed"] > 0
    verified = await rpc(http, server.url, "simulateTransaction",
                         [b64(unsigned), {**config, "sigVerify": True}])
    assert verified["result"]["value"]["err"] == "SignatureFailure"
    market.chain.advance(MAX_PROCESSING_AGE + 1)
    replaced = await rpc(http, server.url, "simulateTransaction",
                         [b64(unsigned), {**config, "replaceRecentBlockhash": True}])
    assert replaced["result"]["value"]["err"] is None
    replacement = replaced["result"]["value"]["replacementBlockhash"]
    assert replacement["blockhash"] == str(market.chain.latest_blockhash()[0])
    both = await rpc(http, server.url, "simulateTransaction",
                     [b64(unsigned), {**config, "sigVerify": True,
                                      "replaceRecentBlockhash": True}])
    assert both["error"]["code"] == -32602
    assert market.chain.token_balance(market.holding) == HELD


async def test_clock_advances_slots_and_blockhashes(market: Market) -> None:
    async with SimRpcServer(market.chain, slot_ms=5) as server:
        slot, (blockhash, _) = market.chain.slot, market.chain.latest_blockhash()
        await asyncio.sleep(0.1)
        assert market.chain.slot >= slot + 5
        assert market.chain.latest_blockhash()[0] != blockhash
        assert market.chain.is_blockhash_valid(blockhash)
    stopped_at = market.chain.slot
    await asyncio.sleep(0.03)
    assert market.chain.slot == stopped_at
    assert server.url.startswith("http://127.0.0.1:")


# --------------------------------------------------------------------------- faults


async def test_fault_http_429_has_retry_after_and_is_consumed(
    server: SimRpcServer, http: aiohttp.ClientSession
) -> None:
    server.faults.add("getSlot", "http_429", retry_after=2)
    body = {"jsonrpc": "2.0", "id": 7, "method": "getSlot"}
    async with http.post(server.url, json=body) as resp:
        assert (resp.status, resp.headers["Retry-After"]) == (429, "2")
    assert "result" in await rpc(http, server.url, "getSlot")
    assert len(server.faults) == 0


async def test_fault_http_500(server: SimRpcServer, http: aiohttp.ClientSession) -> None:
    server.faults.add("getSlot", "http_500")
    async with http.post(server.url, json={"jsonrpc": "2.0", "id": 7, "method": "getSlot"}) as r:
        assert r.status == 500


async def test_fault_rpc_error(server: SimRpcServer, http: aiohttp.ClientSession) -> None:
    server.faults.add("getLatestBlockhash", "rpc_error", code=-32005, message="Node is behind")
    answer = await rpc(http, server.url, "getLatestBlockhash")
    assert answer["error"] == {"code": -32005, "message": "Node is behind"}


async def test_fault_reset_drops_the_send_unprocessed(
    market: Market, server: SimRpcServer, http: aiohttp.ClientSession
) -> None:
    server.faults.add("sendTransaction", "reset")
    signed = market.sell(1000, 0)
    body = {"jsonrpc": "2.0", "id": 7, "method": "sendTransaction",
            "params": send_params(signed)}
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.post(server.url, json=body) as resp:
            await resp.read()
    assert server.received[-1].fault == "reset"
    assert market.chain.signature_statuses([signature_of(signed)]) == [None]
    assert market.chain.token_balance(market.holding) == HELD


async def test_fault_timeout_lands_the_send_but_never_answers_in_time(
    market: Market, server: SimRpcServer, http: aiohttp.ClientSession
) -> None:
    server.faults.add("sendTransaction", "timeout", delay=30)
    signed = market.sell(1000, 0)
    with pytest.raises(asyncio.TimeoutError):
        await rpc(http, server.url, "sendTransaction", send_params(signed),
                  timeout=aiohttp.ClientTimeout(total=0.2))
    [status] = market.chain.signature_statuses([signature_of(signed)])
    assert status is not None and status["err"] is None
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 2


async def test_fault_accept_no_land(market: Market, server: SimRpcServer,
                                    http: aiohttp.ClientSession) -> None:
    server.faults.add("sendTransaction", "accept_no_land", count=2)
    signed = market.sell(1000, 0)
    for _ in range(2):
        answer = await rpc(http, server.url, "sendTransaction", send_params(signed))
        assert answer["result"] == signature_of(signed)
    market.chain.advance(5)
    assert market.chain.signature_statuses([signature_of(signed)]) == [None]
    assert market.chain.token_balance(market.holding) == HELD
    await rpc(http, server.url, "sendTransaction", send_params(signed))
    assert market.chain.token_balance(market.holding) == HELD - 1000


async def test_faults_apply_fifo_per_method_and_wildcard(
    server: SimRpcServer, http: aiohttp.ClientSession
) -> None:
    server.faults.add("getSlot", "rpc_error", code=-1, message="first")
    server.faults.add("*", "rpc_error", code=-2, message="any")
    server.faults.add("getSlot", "rpc_error", code=-3, message="third")
    codes = [(await rpc(http, server.url, method)).get("error", {}).get("code")
             for method in ("getSlot", "getBlockHeight", "getSlot", "getSlot")]
    assert codes == [-1, -2, -3, None]
    with pytest.raises(ValueError):
        server.faults.add("getSlot", "explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        server.faults.add("getSlot", "accept_no_land")


async def test_fault_delay_postpones_the_answer(server: SimRpcServer,
                                                http: aiohttp.ClientSession) -> None:
    server.faults.add("getSlot", "http_500", delay=0.15)
    started = time.monotonic()
    async with http.post(server.url, json={"jsonrpc": "2.0", "id": 7, "method": "getSlot"}) as r:
        assert r.status == 500
    assert time.monotonic() - started >= 0.15
