"""The simulator's RPC as real clients use it: the methods web3.js and solana-py call
while building, sending and confirming (rent, fees, version, airdrop, getTransaction)
and the websocket PubSub API they confirm with, parsed by solana-py/solders."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized
from solana.rpc.models import TxOpts
from solana.rpc.websocket_api import SolanaWsClient
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.keypair import Keypair
from solders.message import Message, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.rpc.responses import (
    AccountNotification,
    GetTransactionResp,
    SignatureNotification,
    SlotNotification,
)
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionErrorInstructionError

from lasersell_bot.sim.rpc import SimRpcServer
from lasersell_bot.sim.rpc_extra import fee_for_message
from tests.test_sim_chain import HELD, Market, make_market


@pytest.fixture
def market() -> Market:
    return make_market()


@pytest.fixture
async def server(market: Market) -> AsyncIterator[SimRpcServer]:
    async with SimRpcServer(market.chain, slot_ms=None) as srv:
        yield srv


async def call(url: str, method: str, params: list[Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, json={
            "jsonrpc": "2.0", "id": 1, "method": method, "params": params}) as resp:
        answer: dict[str, Any] = await resp.json()
        return answer


def transfer_tx(market: Market, to: Pubkey, lamports: int, *, price: int = 0) -> bytes:
    payer = market.wallet.pubkey()
    instructions = [transfer(TransferParams(from_pubkey=payer, to_pubkey=to, lamports=lamports))]
    if price:
        instructions = [set_compute_unit_limit(10_000), set_compute_unit_price(price),
                        *instructions]
    blockhash, _ = market.chain.latest_blockhash()
    message = Message.new_with_blockhash(instructions, payer, blockhash)
    return bytes(VersionedTransaction(message, [market.wallet]))


async def test_rent_fee_version_and_airdrop_through_solana_py(
    market: Market, server: SimRpcServer
) -> None:
    chain = market.chain
    stranger = Keypair().pubkey()
    async with AsyncClient(server.url) as client:
        rent = (await client.get_minimum_balance_for_rent_exemption(165)).value
        assert rent == chain.svm.minimum_balance_for_rent_exemption(165) > 0
        version = (await client.get_version()).value
        assert version.solana_core and version.feature_set
        priced = VersionedTransaction.from_bytes(
            transfer_tx(market, stranger, 10**6, price=250_000))
        fee = (await client.get_fee_for_message(priced.message)).value
        assert fee == 5000 + 2500 == fee_for_message(priced.message)
        sent = await client.send_raw_transaction(bytes(priced), TxOpts(skip_preflight=True))
        chain.advance()
        got = await client.get_transaction(sent.value, commitment=Confirmed)
        assert got.value is not None and got.value.transaction.meta is not None
        assert got.value.transaction.meta.fee == fee  # what the runtime really charged
        airdrop = await client.request_airdrop(stranger, 2 * 10**9)
        chain.advance()
        confirmed = await client.confirm_transaction(airdrop.value, Confirmed, sleep_seconds=0.05)
        assert confirmed.value[0] is not None and confirmed.value[0].err is None
        assert (await client.get_balance(stranger)).value == 2 * 10**9 + 10**6


async def test_fee_for_message_with_an_expired_blockhash_is_null(
    market: Market, server: SimRpcServer
) -> None:
    message = VersionedTransaction.from_bytes(transfer_tx(market, Keypair().pubkey(), 1)).message
    market.chain.advance(200)
    answer = await call(server.url, "getFeeForMessage",
                        [base64.b64encode(to_bytes_versioned(message)).decode()])
    assert answer["result"]["value"] is None


async def test_get_transaction_shapes_commitment_and_versions(
    market: Market, server: SimRpcServer
) -> None:
    chain = market.chain
    signed = market.sell(HELD // 4, 0)  # a v0 transaction
    signature = str(VersionedTransaction.from_bytes(signed).signatures[0])
    payer_before = chain.balance(market.wallet.pubkey())
    async with AsyncClient(server.url) as client:
        await client.send_raw_transaction(signed, TxOpts(skip_preflight=True))
        chain.advance()
        sig = Signature.from_string(signature)
        assert (await client.get_transaction(sig, max_supported_transaction_version=0)
                ).value is None  # finalized is the default commitment
        legacy_client = await call(server.url, "getTransaction",
                                   [signature, {"commitment": "confirmed"}])
        assert legacy_client["error"]["code"] == -32015
        for encoding in ("json", "base64"):
            got = await client.get_transaction(sig, encoding, Confirmed, 0)
            assert got.value is not None, encoding
            meta = got.value.transaction.meta
            assert meta is not None and meta.err is None
            assert meta.pre_balances[0] == payer_before
            assert meta.post_balances[0] == chain.balance(market.wallet.pubkey())
            assert meta.log_messages
            tokens = {b.ui_token_amount.amount for b in meta.post_token_balances or []}
            assert str(HELD - HELD // 4) in tokens
        chain.advance(40)
        assert (await client.get_transaction(sig, "json", Finalized, 0)).value is not None
    raw = await call(server.url, "getTransaction",
                     [signature, {"encoding": "base64", "maxSupportedTransactionVersion": 0}])
    assert base64.b64decode(raw["result"]["transaction"][0]) == signed
    assert raw["result"]["version"] == 0
    assert GetTransactionResp.from_json(_text(raw)).value is not None


def _text(answer: dict[str, Any]) -> str:
    return json.dumps(answer)


async def test_failed_swap_is_in_get_transaction_with_its_error(
    market: Market, server: SimRpcServer
) -> None:
    signed = market.sell(HELD // 4, 10**18)  # min_out unreachable: slippage error
    async with AsyncClient(server.url) as client:
        sent = await client.send_raw_transaction(signed, TxOpts(skip_preflight=True))
        market.chain.advance()
        got = await client.get_transaction(sent.value, "json", Confirmed, 0)
    assert got.value is not None and got.value.transaction.meta is not None
    assert isinstance(got.value.transaction.meta.err, TransactionErrorInstructionError)


async def test_pubsub_signature_slot_and_account_notifications(
    market: Market, server: SimRpcServer
) -> None:
    """solana-py's websocket client on the RPC port + 1 (where web3.js looks)."""
    chain = market.chain
    stranger = Keypair().pubkey()
    signed = transfer_tx(market, stranger, 5_000_000)
    sig = VersionedTransaction.from_bytes(signed).signatures[0]
    assert server.ws_url.endswith(f":{int(server.url.rsplit(':', 1)[1]) + 1}")
    async with SolanaWsClient(server.ws_url) as ws, AsyncClient(server.url) as client:
        await ws.signature_subscribe(signature=sig, commitment=Confirmed)
        await ws.slot_subscribe()
        await ws.account_subscribe(pubkey=stranger, commitment=Confirmed, encoding="base64")
        await client.send_raw_transaction(signed, TxOpts(skip_preflight=True))
        chain.advance()
        seen: dict[str, list[Any]] = {}
        async with asyncio.timeout(5):
            while "signature" not in seen or "slot" not in seen \
                    or "account" not in seen:
                note = await ws.recv()
                kind = {SignatureNotification: "signature", SlotNotification: "slot",
                        AccountNotification: "account"}[type(note)]
                seen.setdefault(kind, []).append(note.result)
        [landed] = seen["signature"]
        assert landed.value.err is None
        assert seen["slot"][0].slot == chain.slot
        assert seen["account"][0].value.lamports == 5_000_000
    assert server.pubsub.subscription_count() == 0


async def test_pubsub_received_then_landed_on_the_rpc_port_itself(
    market: Market, server: SimRpcServer
) -> None:
    """Agave's shapes, raw: ``"receivedSignature"`` first (solders cannot parse that
    one, so solana-py users leave it off), then ``{"err": ...}`` at the commitment."""
    signed = market.sell(HELD // 4, 10**18)  # lands with a slippage error
    sig = str(VersionedTransaction.from_bytes(signed).signatures[0])
    async with aiohttp.ClientSession() as http, http.ws_connect(server.url) as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "signatureSubscribe",
                            "params": [sig, {"commitment": "confirmed",
                                             "enableReceivedNotification": True}]})
        sub = (await ws.receive_json(timeout=3))["result"]
        await call(server.url, "sendTransaction", [base64.b64encode(signed).decode(),
                                                   {"encoding": "base64", "skipPreflight": True}])
        first = await ws.receive_json(timeout=3)
        assert first["method"] == "signatureNotification"
        assert first["params"] == {"result": {"context": {"slot": market.chain.slot},
                                              "value": "receivedSignature"},
                                   "subscription": sub}
        market.chain.advance()
        landed = (await ws.receive_json(timeout=3))["params"]["result"]
        assert landed["value"]["err"] == {"InstructionError": [2, {"Custom": 6003}]} or \
            "InstructionError" in landed["value"]["err"]
    assert server.pubsub.subscription_count() == 0


async def test_pubsub_errors_and_unsubscribe(server: SimRpcServer) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(server.url) as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "slotSubscribe"})
        sub = (await ws.receive_json(timeout=3))["result"]
        for request, expected in [
            ({"method": "signatureSubscribe", "params": ["nope"]}, -32602),
            ({"method": "rootSubscribe"}, -32601),
            ({"method": "accountUnsubscribe", "params": [sub]}, -32602),
        ]:
            await ws.send_json({"jsonrpc": "2.0", "id": 2, **request})
            assert (await ws.receive_json(timeout=3))["error"]["code"] == expected
        await ws.send_json({"jsonrpc": "2.0", "id": 3, "method": "slotUnsubscribe",
                            "params": [sub]})
        assert (await ws.receive_json(timeout=3))["result"] is True
    assert server.pubsub.subscription_count() == 0


async def test_pubsub_refuses_an_unsupported_account_encoding(server: SimRpcServer) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url) as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 4, "method": "accountSubscribe",
                            "params": [str(server.chain.authority.pubkey()),
                                       {"encoding": "base64+zstd"}]})
        answer = await ws.receive_json(timeout=3)
        assert answer["id"] == 4 and answer["error"]["code"] == -32602
        await ws.send_json({"jsonrpc": "2.0", "id": 5, "method": "slotSubscribe"})
        assert isinstance((await ws.receive_json(timeout=3))["result"], int)


def test_history_keeps_the_newest_transactions_up_to_its_capacity(market: Market) -> None:
    from lasersell_bot.sim.rpc_extra import TransactionHistory

    history = TransactionHistory(market.chain, lambda: 0.0, capacity=2)
    signatures = []
    for lamports in (10**6, 10**6 + 1, 10**6 + 2):
        raw = transfer_tx(market, Keypair().pubkey(), lamports)
        history.submit(raw)
        signatures.append(str(VersionedTransaction.from_bytes(raw).signatures[0]))
    assert history.get(signatures[0]) is None
    assert all(history.get(s) is not None for s in signatures[1:])
