"""The simulated LaserSell Router: honest exits and buys pay the routing fee and referrers
exactly; lookup-table and fee-transfer shapes; hostile variants show their effect both in
``simulateTransaction``'s ``accounts`` post-state and on chain after landing; the RPC's
``getMultipleAccounts`` and batch shapes; ``POST /v1/sell``."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from solders.address_lookup_table_account import AddressLookupTable
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import GetMultipleAccountsResp, SimulateTransactionResp
from solders.token.state import TokenAccount
from solders.transaction import VersionedTransaction

from lasersell_bot.guard.policy import ALLOWED_PROGRAMS
from lasersell_bot.guard.tables import parse_lookup_table
from lasersell_bot.landing import classify_error
from lasersell_bot.sim.chain import SimChain
from lasersell_bot.sim.router import (
    CPMM_OUTPUT,
    CPMM_PROGRAM_ID,
    FIXED_ACCOUNTS,
    NATIVE_MINT,
    PUMP_TOO_LITTLE_SOL_RECEIVED,
    REFERRAL_SHARES_BPS,
    ROUTER_PROGRAM_ID,
    TIERS,
    RouterFees,
    RouterOrder,
    split_fee,
)
from lasersell_bot.sim.routing import sim_address
from lasersell_bot.sim.rpc import SimRpcServer
from lasersell_bot.sim.tables import LOOKUP_TABLE_PROGRAM_ID
from lasersell_bot.sim.txbuild import (
    ATTACKER,
    HOSTILE,
    SWAP_INSTRUCTION_INDEX,
    BuildOptions,
    ChainTxFactory,
    Hostile,
    RouterSwap,
    TxShape,
    build_cpmm_sell_tx,
    build_router_tx,
    default_tx_shape,
    min_out_for,
)
from lasersell_bot.sim.world import SimWorld
from tests.test_sim_chain import HELD, PRICE, Market, expected_fee, make_market, sign_for_tests

SYSTEM = Pubkey.from_string("11111111111111111111111111111111")
SELL = HELD // 2
GROSS = int(SELL * PRICE)  # 30 SOL


@dataclass
class Position:
    wallet: str
    mint: str


def position_of(market: Market) -> Position:
    return Position(str(market.wallet.pubkey()), str(market.mint))


def decode(b64: str) -> VersionedTransaction:
    return VersionedTransaction.from_bytes(base64.b64decode(b64))


def swap_accounts(chain: SimChain, tx: VersionedTransaction) -> list[Pubkey]:
    """The swap instruction's accounts, lookup-table keys resolved."""
    message = tx.message
    keys = list(message.account_keys)
    if isinstance(message, MessageV0):
        for lookup in message.address_table_lookups:
            account = chain.account(lookup.account_key)
            assert account is not None
            table = parse_lookup_table(bytes(account.data))
            keys += [table[i] for i in lookup.writable_indexes]
        for lookup in message.address_table_lookups:
            account = chain.account(lookup.account_key)
            assert account is not None
            table = parse_lookup_table(bytes(account.data))
            keys += [table[i] for i in lookup.readonly_indexes]
    ix = message.instructions[SWAP_INSTRUCTION_INDEX]
    return [keys[i] for i in ix.accounts]


def sell_b64(market: Market, *, shape: TxShape = "router", hostile: Hostile | None = None,
             referrers: int = 3, tokens: int = SELL, slippage_bps: int = 500) -> str:
    factory = ChainTxFactory(market.chain, shape=shape, hostile=hostile, referrers=referrers)
    return factory.build_exit(position_of(market), tokens, slippage_bps, "rpc", 0)


# --------------------------------------------------------------------------- honest


@pytest.mark.parametrize("tier", sorted(TIERS))
@pytest.mark.parametrize("referrers", [0, 1, 3])
def test_router_sell_pays_fee_and_referrers_exactly(tier: str, referrers: int) -> None:
    market = make_market()
    chain = market.chain
    chain.router_fees = TIERS[tier]
    wallet = market.wallet.pubkey()
    b64 = sell_b64(market, referrers=referrers)
    tx = decode(b64)
    program = tx.message.account_keys[tx.message.instructions[SWAP_INSTRUCTION_INDEX]
                                      .program_id_index]
    assert program == ROUTER_PROGRAM_ID and str(program) not in ALLOWED_PROGRAMS
    pool = swap_accounts(chain, tx)[3]
    payees = [chain.fee_vault, *chain.referrers]
    before = {key: chain.balance(key) for key in [wallet, pool, *payees]}

    result = chain.submit(sign_for_tests(b64, market.wallet))

    assert result.refused is None
    assert chain.signature_statuses([result.signature])[0]["err"] is None  # type: ignore[index]
    fee = TIERS[tier].fee(GROSS)
    vault_share, shares = split_fee(fee, referrers)
    assert shares == tuple(fee * bps // 10_000 for bps in REFERRAL_SHARES_BPS[:referrers])
    assert chain.balance(wallet) - before[wallet] == GROSS - fee - expected_fee()
    assert chain.balance(pool) - before[pool] == -GROSS
    assert chain.balance(chain.fee_vault) - before[chain.fee_vault] == vault_share
    for referrer, share in zip(chain.referrers, (*shares, 0, 0, 0), strict=False):
        assert chain.balance(referrer) - before[referrer] == share
    assert chain.token_balance(market.holding) == HELD - SELL
    settlement = chain.settlement(result.signature)
    assert settlement is not None and (settlement.fee, settlement.lamports) == (fee, GROSS)


def test_tier_fees_follow_the_vendor_table() -> None:
    sol = 10**9
    assert TIERS["personal"].fee(10 * sol) == sol // 5  # 2 %
    assert TIERS["personal"].fee(sol // 10) == sol // 100  # 0.01 SOL minimum
    assert TIERS["professional"].fee(10 * sol) == 90_000_000  # 0.9 %
    assert TIERS["professional"].fee(sol // 10) == sol // 100
    assert TIERS["advanced"].fee(sol // 10) == 500_000  # 0.5 %, no minimum
    assert split_fee(10_000_000, 3) == (6_500_000, (3_000_000, 300_000, 200_000))


def test_dust_exit_costs_the_wallet_the_minimum_fee() -> None:
    market = make_market()
    chain, wallet = market.chain, market.wallet.pubkey()
    tokens = 10_000_000  # 300 lamports of proceeds
    before = chain.balance(wallet)
    result = chain.submit(sign_for_tests(sell_b64(market, tokens=tokens), market.wallet))
    assert chain.signature_statuses([result.signature])[0]["err"] is None  # type: ignore[index]
    proceeds = int(tokens * PRICE)
    assert chain.balance(wallet) - before == proceeds - 10_000_000 - expected_fee()


def test_router_buy_pays_the_fee_on_top_and_credits_tokens() -> None:
    market = make_market()
    chain = market.chain
    buyer = Keypair()
    chain.fund(buyer.pubkey(), 2 * 10**9)
    lamports = 10**9
    factory = ChainTxFactory(chain, shape="router")
    b64 = factory.build_mirror_buy(str(buyer.pubkey()), str(market.mint), lamports, 500,
                                   "rpc", 0)
    vault_before = chain.balance(chain.fee_vault)
    result = chain.submit(sign_for_tests(b64, buyer))
    assert chain.signature_statuses([result.signature])[0]["err"] is None  # type: ignore[index]
    fee = TIERS["personal"].fee(lamports)
    rent = chain.svm.minimum_balance_for_rent_exemption(165)
    assert chain.balance(buyer.pubkey()) == 2 * 10**9 - lamports - fee - rent - expected_fee()
    assert chain.token_balance(chain.token_account(buyer.pubkey(), market.mint)) == int(
        lamports / PRICE)
    assert chain.balance(chain.fee_vault) - vault_before == split_fee(fee, 3)[0]


def test_lookup_table_shape_loads_pool_vault_and_referrers_from_a_real_table() -> None:
    market = make_market()
    chain = market.chain
    b64 = sell_b64(market, shape="router_lookup_table")
    tx = decode(b64)
    message = tx.message
    assert isinstance(message, MessageV0) and len(message.address_table_lookups) == 1
    table_key = message.address_table_lookups[0].account_key
    account = chain.account(table_key)
    assert account is not None and account.owner == LOOKUP_TABLE_PROGRAM_ID
    table = AddressLookupTable.deserialize(bytes(account.data))
    assert list(table.addresses) == list(parse_lookup_table(bytes(account.data)))
    static = set(message.account_keys)
    assert chain.fee_vault not in static and not static & set(chain.referrers)
    assert {market.mint, market.holding, market.wallet.pubkey()} <= static
    accounts = swap_accounts(chain, tx)
    assert accounts[4] == chain.fee_vault and accounts[FIXED_ACCOUNTS:] == list(chain.referrers)
    before = chain.balance(chain.referrers[0])
    result = chain.submit(sign_for_tests(b64, market.wallet))
    assert chain.signature_statuses([result.signature])[0]["err"] is None  # type: ignore[index]
    fee = TIERS["personal"].fee(GROSS)
    assert chain.balance(chain.referrers[0]) - before == fee * 3000 // 10_000


def test_fee_transfer_shape_is_a_direct_swap_plus_system_transfers() -> None:
    market = make_market()
    chain, wallet = market.chain, market.wallet.pubkey()
    b64 = sell_b64(market, shape="fee_transfers", referrers=2)
    message = decode(b64).message
    programs = [message.account_keys[ix.program_id_index] for ix in message.instructions]
    assert ROUTER_PROGRAM_ID not in programs
    assert programs[SWAP_INSTRUCTION_INDEX + 1:] == [SYSTEM, SYSTEM, SYSTEM]
    before = chain.balance(wallet)
    result = chain.submit(sign_for_tests(b64, market.wallet))
    assert chain.signature_statuses([result.signature])[0]["err"] is None  # type: ignore[index]
    fee = TIERS["personal"].fee(GROSS)
    assert chain.balance(wallet) - before == GROSS - fee - expected_fee()


def test_direct_shape_keeps_the_swap_memo() -> None:
    market = make_market()
    message = decode(sell_b64(market, shape="direct")).message
    assert len(message.instructions) == 4
    assert ROUTER_PROGRAM_ID not in message.account_keys


def test_router_slippage_fails_with_the_dex_code_at_the_router_index() -> None:
    market = make_market()
    chain = market.chain
    b64 = sell_b64(market)
    chain.set_price(market.mint, PRICE / 2)
    signed = sign_for_tests(b64, market.wallet)
    sim = chain.simulate(signed)
    assert sim.err is not None
    assert sim.err.json == {"InstructionError": [SWAP_INSTRUCTION_INDEX,
                                                 {"Custom": PUMP_TOO_LITTLE_SOL_RECEIVED}]}
    assert sim.logs[-1] == f"Program {ROUTER_PROGRAM_ID} failed: custom program error: 0x1773"
    assert classify_error(sim.err.json, None, sim.logs) == "slippage"
    vault_before = chain.balance(chain.fee_vault)
    result = chain.submit(signed)
    assert chain.signature_statuses([result.signature])[0]["err"] == sim.err.json  # type: ignore[index]
    assert chain.token_balance(market.holding) == HELD
    assert chain.balance(chain.fee_vault) == vault_before


def test_router_data_round_trips_and_rejects_garbage() -> None:
    order = RouterOrder("buy", 5, 7, 2, "drain_sol", 9)
    assert RouterOrder.decode(order.encode()) == order
    with pytest.raises(ValueError):
        RouterOrder.decode(b"\0" * len(order.encode()))
    with pytest.raises(ValueError):
        RouterOrder.decode(order.encode()[:-1])


def test_custom_fee_schedule_applies() -> None:
    market = make_market()
    chain = market.chain
    chain.router_fees = RouterFees(bps=100, min_lamports=0)
    swap = RouterSwap("sell", market.wallet.pubkey(), market.mint, SELL,
                      min_out_for(SELL, PRICE, 100), sim_address("some-pool"), referrers=1)
    b64 = build_router_tx(chain, swap, BuildOptions())
    before = chain.balance(chain.referrers[0])
    chain.submit(sign_for_tests(b64, market.wallet))
    assert chain.balance(chain.referrers[0]) - before == GROSS // 100 * 3000 // 10_000


# --------------------------------------------------------------------------- RPC


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


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> Any:
    async with http.post(url, json=body) as resp:
        assert resp.status == 200
        return await resp.json()


async def call(http: aiohttp.ClientSession, url: str, method: str, params: list[Any]) -> Any:
    answer = await post(http, url, {"jsonrpc": "2.0", "id": 1, "method": method,
                                    "params": params})
    assert "error" not in answer, answer
    return answer["result"]


def accounts_option(keys: list[Pubkey]) -> dict[str, Any]:
    return {"encoding": "base64", "addresses": [str(k) for k in keys]}


async def simulate(http: aiohttp.ClientSession, url: str, b64: str, keys: list[Pubkey],
                   **config: Any) -> dict[str, Any]:
    params = [b64, {"encoding": "base64", "sigVerify": False, "replaceRecentBlockhash": False,
                    "commitment": "processed", "accounts": accounts_option(keys), **config}]
    result = await call(http, url, "simulateTransaction", params)
    body = {"jsonrpc": "2.0", "id": 1, "result": result}
    SimulateTransactionResp.from_json(json.dumps(body))  # standard shape
    value: dict[str, Any] = result["value"]
    return value


async def multiple(http: aiohttp.ClientSession, url: str, keys: list[Pubkey]) -> list[Any]:
    result = await call(http, url, "getMultipleAccounts",
                        [[str(k) for k in keys], {"encoding": "base64"}])
    value: list[Any] = result["value"]
    return value


def token_state(account: dict[str, Any]) -> TokenAccount:
    return TokenAccount.from_bytes(base64.b64decode(account["data"][0])[:165])


async def test_unsigned_router_exit_simulates_the_exact_post_state_that_lands(
        market: Market, server: SimRpcServer, http: aiohttp.ClientSession) -> None:
    chain = market.chain
    b64 = sell_b64(market)
    tx = decode(b64)
    assert all(bytes(s) == bytes(64) for s in tx.signatures)
    keys = swap_accounts(chain, tx)
    watched = [keys[0], keys[2], keys[3], keys[4], *keys[FIXED_ACCOUNTS:], Pubkey.new_unique()]
    value = await simulate(http, server.url, b64, watched)
    assert value["err"] is None
    post = value["accounts"]
    assert len(post) == len(watched) and post[-1] is None
    assert set(post[0]) == {"lamports", "owner", "data", "executable", "rentEpoch", "space"}
    assert post[0]["lamports"] == chain.balance(keys[0]) + GROSS - TIERS["personal"].fee(
        GROSS) - expected_fee()
    assert token_state(post[1]).amount == HELD - SELL
    assert await multiple(http, server.url, watched) != post  # nothing changed yet
    chain.submit(sign_for_tests(b64, market.wallet))
    assert await multiple(http, server.url, watched) == post


async def test_failed_simulation_gives_null_accounts_error_and_logs(
        market: Market, server: SimRpcServer, http: aiohttp.ClientSession) -> None:
    b64 = sell_b64(market)
    market.chain.set_price(market.mint, PRICE / 2)
    value = await simulate(http, server.url, b64, [market.wallet.pubkey(), market.holding])
    assert value["err"] == {"InstructionError": [SWAP_INSTRUCTION_INDEX, {"Custom": 6003}]}
    assert value["accounts"] == [None, None]
    assert any("TooLittleSolReceived" in line for line in value["logs"])


async def test_replace_recent_blockhash_simulates_a_stale_transaction(
        market: Market, server: SimRpcServer, http: aiohttp.ClientSession) -> None:
    b64 = sell_b64(market)
    market.chain.advance(200)
    stale = await simulate(http, server.url, b64, [market.holding])
    assert stale["err"] == "BlockhashNotFound" and stale["accounts"] == [None]
    fresh = await simulate(http, server.url, b64, [market.holding],
                           replaceRecentBlockhash=True)
    assert fresh["err"] is None and fresh["replacementBlockhash"] is not None
    assert token_state(fresh["accounts"][0]).amount == HELD - SELL


async def test_simulate_accounts_option_errors(market: Market, server: SimRpcServer,
                                               http: aiohttp.ClientSession) -> None:
    b64 = sell_b64(market)
    for option, message in (
        ({"encoding": "base58", "addresses": [str(market.holding)]}, "base58"),
        ({"encoding": "base64", "addresses": [str(market.holding)] * 101}, "max 100"),
        ({"encoding": "base64", "addresses": ["not-a-key"]}, "Invalid"),
    ):
        answer = await post(http, server.url, {
            "jsonrpc": "2.0", "id": 3, "method": "simulateTransaction",
            "params": [b64, {"encoding": "base64", "accounts": option}]})
        assert answer["error"]["code"] == -32602 and message in answer["error"]["message"]


async def test_get_multiple_accounts_shape(market: Market, server: SimRpcServer,
                                           http: aiohttp.ClientSession) -> None:
    keys = [str(market.holding), str(Pubkey.new_unique()), str(market.wallet.pubkey())]
    answer = await post(http, server.url, {"jsonrpc": "2.0", "id": 2,
                                           "method": "getMultipleAccounts", "params": [keys]})
    parsed = GetMultipleAccountsResp.from_json(json.dumps(answer))
    assert parsed.context.slot == market.chain.slot == answer["result"]["context"]["slot"]
    value = answer["result"]["value"]
    assert value[1] is None and value[0]["data"][1] == "base64"  # base64 is the default
    assert token_state(value[0]).amount == HELD and value[0]["space"] == 165
    assert value[2]["lamports"] == market.chain.balance(market.wallet.pubkey())
    sliced = await call(http, server.url, "getMultipleAccounts",
                        [keys[:1], {"encoding": "base64", "dataSlice": {"offset": 64,
                                                                         "length": 8}}])
    assert base64.b64decode(sliced["value"][0]["data"][0]) == HELD.to_bytes(8, "little")
    for params, code in (([["x"]], -32602), ([[keys[0]] * 101], -32602),
                         ([keys, {"minContextSlot": market.chain.slot + 5}], -32016),
                         ([[keys[0]], {"encoding": "base58"}], -32602)):
        answer = await post(http, server.url, {"jsonrpc": "2.0", "id": 2,
                                               "method": "getMultipleAccounts",
                                               "params": params})
        assert answer["error"]["code"] == code


async def test_batch_answers_in_order_with_ids(market: Market, server: SimRpcServer,
                                               http: aiohttp.ClientSession) -> None:
    b64 = sell_b64(market)
    keys = [str(market.wallet.pubkey()), str(market.holding)]
    batch = [
        {"jsonrpc": "2.0", "id": "sim", "method": "simulateTransaction",
         "params": [b64, {"encoding": "base64", "sigVerify": False,
                          "accounts": {"encoding": "base64", "addresses": keys}}]},
        {"jsonrpc": "2.0", "id": 9, "method": "getMultipleAccounts",
         "params": [keys, {"encoding": "base64"}]},
        {"jsonrpc": "2.0", "id": 10, "method": "noSuchMethod", "params": []},
        {"jsonrpc": "2.0", "method": "getSlot"},  # a notification: no answer
        17,
    ]
    answers = await post(http, server.url, batch)
    assert [a["id"] for a in answers] == ["sim", 9, 10, None]
    assert token_state(answers[0]["result"]["value"]["accounts"][1]).amount == HELD - SELL
    assert token_state(answers[1]["result"]["value"][1]).amount == HELD
    assert answers[2]["error"]["code"] == -32601
    assert answers[3]["error"]["code"] == -32600
    assert server.counts["getMultipleAccounts"] == 1
    empty = await post(http, server.url, [])
    assert empty["error"]["code"] == -32600


async def test_batch_http_fault_spoils_the_whole_batch(market: Market, server: SimRpcServer,
                                                       http: aiohttp.ClientSession) -> None:
    server.faults.add("getMultipleAccounts", "http_500")
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
             {"jsonrpc": "2.0", "id": 2, "method": "getMultipleAccounts", "params": [[]]}]
    async with http.post(server.url, json=batch) as resp:
        assert resp.status == 500
    server.faults.add("getSlot", "rpc_error")
    answers = await post(http, server.url, batch)
    assert answers[0]["error"]["code"] == -32005 and answers[1]["result"]["value"] == []


async def test_lookup_table_is_readable_over_rpc(market: Market, server: SimRpcServer,
                                                 http: aiohttp.ClientSession) -> None:
    message = decode(sell_b64(market, shape="router_lookup_table")).message
    assert isinstance(message, MessageV0)
    table = message.address_table_lookups[0].account_key
    info = await call(http, server.url, "getAccountInfo", [str(table), {"encoding": "base64"}])
    assert info["value"]["owner"] == str(LOOKUP_TABLE_PROGRAM_ID)
    addresses = parse_lookup_table(base64.b64decode(info["value"]["data"][0]))
    assert market.chain.fee_vault in addresses and market.chain.referrers[2] in addresses


# --------------------------------------------------------------------------- hostile


def existing(accounts: list[Any]) -> list[Any]:
    """Accounts with a 0-lamport, data-less entry as None: a simulation shows a writable
    account that does not exist as such an entry (as Agave does), the chain as null."""
    return [None if a is not None and a["lamports"] == 0 and a["space"] == 0 else a
            for a in accounts]


def _token(account: dict[str, Any] | None) -> TokenAccount:
    assert account is not None
    return token_state(account)


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("shape", ["router", "router_lookup_table"])
async def test_hostile_exit_shows_in_simulation_and_on_chain(
        hostile: Hostile, shape: TxShape, market: Market, server: SimRpcServer,
        http: aiohttp.ClientSession) -> None:
    chain, wallet = market.chain, market.wallet.pubkey()
    b64 = sell_b64(market, shape=shape, hostile=hostile)
    tx = decode(b64)
    accounts = swap_accounts(chain, tx)
    extra = accounts[CPMM_OUTPUT] if hostile == "output_not_ours" else accounts[-1]
    watched = [wallet, market.holding, extra]
    wallet_before = chain.balance(wallet)
    simulated = await simulate(http, server.url, b64, watched)
    assert simulated["err"] is None
    chain.submit(sign_for_tests(b64, market.wallet))
    landed = await multiple(http, server.url, watched)
    assert landed == existing(simulated["accounts"])
    post_wallet, post_holding, post_extra = landed
    fee = TIERS["personal"].fee(GROSS)
    assert _token(post_holding).amount == HELD - SELL
    honest_wallet = wallet_before + GROSS - fee - expected_fee()
    if hostile == "proceeds_elsewhere":
        assert post_extra["lamports"] >= GROSS and extra == ATTACKER
        assert post_wallet["lamports"] == wallet_before - fee - expected_fee()
    elif hostile == "delegate":
        assert _token(post_holding).delegate == ATTACKER
        assert post_wallet["lamports"] == honest_wallet
    elif hostile == "owner_change":
        assert _token(post_holding).owner == ATTACKER
    elif hostile == "drain_holding":
        drained = _token(post_extra)
        assert drained.owner == wallet and drained.amount == 0
        assert drained.mint != market.mint
    elif hostile == "drain_sol":
        assert post_wallet["lamports"] < honest_wallet - 10**8
        assert post_extra["lamports"] >= honest_wallet - post_wallet["lamports"]
    else:
        assert tx.message.account_keys[tx.message.instructions[SWAP_INSTRUCTION_INDEX]
                                       .program_id_index] == CPMM_PROGRAM_ID
        theirs = _token(post_extra)
        assert (theirs.mint, theirs.owner, theirs.amount) == (NATIVE_MINT, ATTACKER, GROSS)
        assert post_wallet["lamports"] < wallet_before


@pytest.mark.parametrize("hostile", ["proceeds_elsewhere", "delegate", "owner_change",
                                     "drain_sol"])
async def test_hostile_mirror_buy_shows_in_simulation_and_on_chain(
        hostile: Hostile, market: Market, server: SimRpcServer,
        http: aiohttp.ClientSession) -> None:
    chain = market.chain
    buyer = Keypair()
    chain.fund(buyer.pubkey(), 3 * 10**9)
    factory = ChainTxFactory(chain, shape="router", hostile=hostile)
    b64 = factory.build_mirror_buy(str(buyer.pubkey()), str(market.mint), 10**9, 500, "rpc", 0)
    ours = chain.token_account(buyer.pubkey(), market.mint)
    extra = swap_accounts(chain, decode(b64))[-1]
    watched = [buyer.pubkey(), ours, extra]
    simulated = await simulate(http, server.url, b64, watched)
    assert simulated["err"] is None
    chain.submit(sign_for_tests(b64, buyer))
    landed = await multiple(http, server.url, watched)
    assert landed == existing(simulated["accounts"])
    tokens = int(10**9 / PRICE)
    if hostile == "proceeds_elsewhere":
        assert _token(landed[1]).amount == 0 and _token(landed[2]).amount == tokens
        assert _token(landed[2]).owner == ATTACKER
    elif hostile == "delegate":
        assert _token(landed[1]).delegate == ATTACKER
    elif hostile == "owner_change":
        assert _token(landed[1]).owner == ATTACKER
    else:
        assert landed[2]["lamports"] >= 10**8


async def test_honest_direct_cpmm_sell_pays_our_wsol_account(
        market: Market, server: SimRpcServer, http: aiohttp.ClientSession) -> None:
    chain, wallet = market.chain, market.wallet.pubkey()
    b64 = build_cpmm_sell_tx(chain, wallet, market.mint, SELL, 0)
    ours = chain.token_account(wallet, NATIVE_MINT)
    assert swap_accounts(chain, decode(b64))[CPMM_OUTPUT] == ours
    chain.submit(sign_for_tests(b64, market.wallet))
    (wsol,) = await multiple(http, server.url, [ours])
    state = _token(wsol)
    assert (state.owner, state.amount, state.is_native is not None) == (wallet, GROSS, True)


# --------------------------------------------------------------------------- REST and world


@pytest.fixture
async def world() -> AsyncIterator[SimWorld]:
    async with SimWorld(slot_ms=None, require_registration=False) as sim:  # type: ignore[arg-type]
        yield sim


async def sell_request(http: aiohttp.ClientSession, world: SimWorld, body: Any,
                       key: str = "k") -> tuple[int, dict[str, Any]]:
    async with http.post(world.api_url + "/v1/sell", json=body,
                         headers={"x-api-key": key}) as resp:
        answer: dict[str, Any] = await resp.json()
        return resp.status, answer


async def test_rest_sell_builds_a_router_sell_that_lands(world: SimWorld,
                                                         http: aiohttp.ClientSession) -> None:
    world.tx_shape = "router"
    keypair = world.new_wallet(sol=1.0)
    opened = await world.open_position(keypair.pubkey(), 1_000_000, 10**8)
    body = {"mint": str(opened.mint), "user_pubkey": str(keypair.pubkey()),
            "amount_tokens": 400_000, "output": "SOL", "slippage_bps": 300}
    status, answer = await sell_request(http, world, body)
    assert status == 200 and answer["status"] == "ok"
    assert answer["route"]["market_type"] == "pump_swap"
    tx = decode(answer["tx"])
    assert tx.message.account_keys[0] == keypair.pubkey()
    assert ROUTER_PROGRAM_ID in tx.message.account_keys
    assert str(swap_accounts(world.chain, tx)[3]) == answer["route"]["pool_id"]
    world.chain.submit(sign_for_tests(answer["tx"], keypair))
    assert world.chain.token_balance(opened.token_account) == 600_000


async def test_rest_sell_errors_are_clear(world: SimWorld, http: aiohttp.ClientSession) -> None:
    keypair = world.new_wallet(sol=1.0)
    opened = await world.open_position(keypair.pubkey(), 1_000, 10**8)
    good = {"mint": str(opened.mint), "user_pubkey": str(keypair.pubkey()),
            "amount_tokens": 500, "output": "SOL", "slippage_bps": 300}
    cases = [
        ({**good, "amount_tokens": 5_000}, 400, "insufficient_balance"),
        ({**good, "mint": str(Pubkey.new_unique())}, 404, "unknown_mint"),
        ({**good, "user_pubkey": "nope"}, 400, "invalid_pubkey"),
        ({**good, "output": "USD1"}, 400, "unsupported_output"),
        ({**good, "output": "BTC"}, 400, "invalid_output"),
        ({**good, "slippage_bps": 20_000}, 400, "invalid_slippage_bps"),
        ({**good, "amount_tokens": 0}, 400, "invalid_amount_tokens"),
        ({k: v for k, v in good.items() if k != "mint"}, 400, "invalid_body"),
    ]
    for body, status, reason in cases:
        got_status, answer = await sell_request(http, world, body)
        assert (got_status, answer["status"]) == (status, "error"), body
        assert answer["reason"].startswith(reason), answer
    status, answer = await sell_request(http, world, good, key="")
    assert (status, answer["status"]) == (200, "ok")  # an open simulator takes any key


async def test_world_knobs_select_shape_hostility_and_tier(world: SimWorld) -> None:
    assert world.tx_shape == default_tx_shape() and world.hostile is None
    world.tx_shape = "router"
    assert world.router_tier == "personal"
    world.router_tier = "advanced"
    assert world.chain.router_fees == TIERS["advanced"]
    keypair = world.new_wallet(sol=1.0)
    opened = await world.open_position(keypair.pubkey(), 1_000_000, 10**8)
    position = Position(str(keypair.pubkey()), str(opened.mint))
    world.hostile = "owner_change"
    world.referrers = 1
    tx = decode(world.factory.build_exit(position, 10, 100, "rpc", 0))
    order = RouterOrder.decode(bytes(tx.message.instructions[SWAP_INSTRUCTION_INDEX].data))
    assert (order.variant, order.referrers) == ("owner_change", 1)
    world.hostile = None
    world.tx_shape = "direct"
    tx = decode(world.factory.build_exit(position, 10, 100, "rpc", 0))
    assert ROUTER_PROGRAM_ID not in tx.message.account_keys
    with pytest.raises(ValueError):
        world.router_tier = "gold"


def test_default_shape_is_the_router_and_the_environment_overrides_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LASERSELL_SIM_TX_SHAPE", raising=False)
    assert default_tx_shape() == "router"
    monkeypatch.setenv("LASERSELL_SIM_TX_SHAPE", "router_lookup_table")
    assert ChainTxFactory(SimChain()).shape == "router_lookup_table"
    monkeypatch.setenv("LASERSELL_SIM_TX_SHAPE", "zigzag")
    with pytest.raises(ValueError, match="LASERSELL_SIM_TX_SHAPE"):
        default_tx_shape()


def test_a_router_theft_is_router_shaped_whatever_the_shape() -> None:
    market = make_market()
    message = decode(sell_b64(market, shape="direct", hostile="drain_sol")).message
    assert ROUTER_PROGRAM_ID in message.account_keys
