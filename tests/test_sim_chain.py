"""SimChain and the tx builder: real LiteSVM execution, balances, statuses, blockhash window."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import pytest
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.associated import get_associated_token_address
from solders.token.state import Mint, TokenAccount
from solders.transaction import VersionedTransaction
from solders.transaction_status import (
    InstructionErrorCustom,
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
)
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from lasersell_bot.config import HELIUS_TIP_ACCOUNTS
from lasersell_bot.sim.chain import (
    LAMPORTS_PER_SIGNATURE,
    MAX_PROCESSING_AGE,
    MEMO_PROGRAM_ID,
    SLIPPAGE_ERROR_CODE,
    SimChain,
    SwapOrder,
    error_json,
    error_message,
)
from lasersell_bot.sim.txbuild import (
    DEFAULT_CU_LIMIT,
    DEFAULT_CU_PRICE_MICRO_LAMPORTS,
    SWAP_INSTRUCTION_INDEX,
    ChainTxFactory,
    build_buy_tx,
    build_sell_tx,
    min_out_for,
    min_tokens_out_for,
)

COMPUTE_BUDGET = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
SYSTEM = Pubkey.from_string("11111111111111111111111111111111")
TIP = Pubkey.from_string(HELIUS_TIP_ACCOUNTS[3])
PRICE = 0.00003  # lamports per token base unit: 1 token (6 decimals) = 30 lamports
HELD = 2_000_000_000_000
ATA_RENT = 2_039_280


def sign_for_tests(b64: str, keypair: Keypair) -> bytes:
    """Sign an unsigned base64 transaction from the server the way the daemon must."""
    unsigned = VersionedTransaction.from_bytes(base64.b64decode(b64))
    return bytes(VersionedTransaction(unsigned.message, [keypair]))


def expected_fee(cu_limit: int = DEFAULT_CU_LIMIT,
                 cu_price: int = DEFAULT_CU_PRICE_MICRO_LAMPORTS) -> int:
    return LAMPORTS_PER_SIGNATURE + math.ceil(cu_limit * cu_price / 1_000_000)


@dataclass
class Market:
    chain: SimChain
    wallet: Keypair
    mint: Pubkey
    holding: Pubkey

    def sell(self, tokens: int, min_out: int, tip: int = 0) -> bytes:
        b64 = build_sell_tx(self.chain, self.wallet.pubkey(), self.mint, tokens, min_out, tip, TIP)
        return sign_for_tests(b64, self.wallet)


def make_market(chain: SimChain | None = None, token_program: Pubkey = TOKEN_PROGRAM_ID) -> Market:
    """A funded wallet holding ``HELD`` units of a fresh mint priced at ``PRICE``."""
    chain = chain or SimChain()
    wallet = Keypair()
    chain.fund(wallet.pubkey(), 10 * 10**9)
    mint = chain.create_mint(6, token_program)
    holding = chain.mint_to(wallet.pubkey(), mint, HELD)
    chain.set_price(mint, PRICE)
    return Market(chain, wallet, mint, holding)


@pytest.fixture
def market() -> Market:
    return make_market()


def raw_token_amount(chain: SimChain, token_account: Pubkey) -> int:
    account = chain.svm.get_account(token_account)
    assert account is not None
    return TokenAccount.from_bytes(account.data[:165]).amount


# --------------------------------------------------------------------------- setup


def test_create_mint_and_mint_to_make_real_spl_accounts(market: Market) -> None:
    mint_account = market.chain.svm.get_account(market.mint)
    assert mint_account is not None and mint_account.owner == TOKEN_PROGRAM_ID
    mint = Mint.from_bytes(mint_account.data)
    assert (mint.decimals, mint.supply, mint.is_initialized) == (6, HELD, True)
    assert market.holding == get_associated_token_address(market.wallet.pubkey(), market.mint)
    assert market.holding == market.chain.token_account(market.wallet.pubkey(), market.mint)
    holding_account = market.chain.svm.get_account(market.holding)
    assert holding_account is not None and holding_account.owner == TOKEN_PROGRAM_ID
    holding = TokenAccount.from_bytes(holding_account.data)
    assert (holding.owner, holding.mint, holding.amount) == (
        market.wallet.pubkey(), market.mint, HELD)
    market.chain.mint_to(market.wallet.pubkey(), market.mint, 5)
    market.chain.mint_to(market.wallet.pubkey(), market.mint, 5)
    assert market.chain.token_balance(market.holding) == HELD + 10


def test_fund_adds_lamports() -> None:
    chain = SimChain()
    who = Pubkey.new_unique()
    chain.fund(who, 7)
    chain.fund(who, 5)
    assert chain.balance(who) == 12


# --------------------------------------------------------------------------- tx shape


def test_sell_tx_is_unsigned_v0_with_wallet_as_only_signer(market: Market) -> None:
    b64 = build_sell_tx(market.chain, market.wallet.pubkey(), market.mint, 10, 0, 1000)
    tx = VersionedTransaction.from_bytes(base64.b64decode(b64, validate=True))
    message = tx.message
    assert isinstance(message, MessageV0) and message.address_table_lookups == []
    assert message.header.num_required_signatures == 1
    assert tx.signatures == [Signature.default()]
    assert message.account_keys[0] == market.wallet.pubkey()
    programs = [message.account_keys[ix.program_id_index] for ix in message.instructions]
    assert programs == [COMPUTE_BUDGET, COMPUTE_BUDGET, ASSOCIATED_TOKEN_PROGRAM_ID,
                        MEMO_PROGRAM_ID, SYSTEM]
    # Like a real DEX sell, the mint is a static account key (the guard requires it).
    assert {market.mint, market.holding} <= set(message.account_keys)
    assert str(message.account_keys[message.instructions[4].accounts[1]]) in HELIUS_TIP_ACCOUNTS
    memo = bytes(message.instructions[SWAP_INSTRUCTION_INDEX].data).decode()
    assert memo == f"lasersell-sim:v1:sell:{market.mint}:10:0"


def test_buy_tx_creates_ata_before_the_swap_and_tip_is_optional(market: Market) -> None:
    b64 = build_buy_tx(market.chain, market.wallet.pubkey(), market.mint, 10**6, 1, 0)
    message = VersionedTransaction.from_bytes(base64.b64decode(b64)).message
    programs = [message.account_keys[ix.program_id_index] for ix in message.instructions]
    assert programs == [COMPUTE_BUDGET, COMPUTE_BUDGET, ASSOCIATED_TOKEN_PROGRAM_ID,
                        MEMO_PROGRAM_ID]
    assert bytes(message.instructions[2].data) == b"\x01"  # create_idempotent


def test_legacy_flag_builds_legacy_message(market: Market) -> None:
    b64 = build_sell_tx(market.chain, market.wallet.pubkey(), market.mint, 10, 0, legacy=True)
    tx = VersionedTransaction.from_bytes(base64.b64decode(b64))
    assert str(tx.version()) == "Legacy.Legacy"
    assert market.chain.submit(sign_for_tests(b64, market.wallet)).refused is None


def test_min_out_math() -> None:
    assert min_out_for(1_000_000, 0.5, 100) == 495_000
    assert min_tokens_out_for(1_000, 0.5, 0) == 2_000
    with pytest.raises(ValueError):
        min_out_for(1, 1.0, 10_001)


def test_swap_order_memo_round_trips() -> None:
    order = SwapOrder("buy", Pubkey.new_unique(), 5, 7)
    assert SwapOrder.parse(order.memo()) == order
    assert SwapOrder.parse("hello") is None
    with pytest.raises(ValueError):
        SwapOrder.parse("lasersell-sim:v1:sell:nope:1:2")


# --------------------------------------------------------------------------- sells


def test_sell_lands_and_moves_real_balances(market: Market) -> None:
    chain, wallet = market.chain, market.wallet.pubkey()
    tokens = HELD // 4
    min_out = min_out_for(tokens, PRICE, 100)
    signed = market.sell(tokens, min_out, tip=1_000_000)
    lamports_before, tip_before = chain.balance(wallet), chain.balance(TIP)

    result = chain.submit(signed)

    assert result.refused is None
    proceeds = math.floor(tokens * PRICE)
    assert raw_token_amount(chain, market.holding) == HELD - tokens
    assert chain.balance(wallet) == lamports_before + proceeds - expected_fee() - 1_000_000
    assert chain.balance(TIP) == tip_before + 1_000_000
    settlement = chain.settlement(result.signature)
    assert settlement is not None
    assert (settlement.side, settlement.tokens, settlement.lamports) == ("sell", tokens, proceeds)
    [status] = chain.signature_statuses([result.signature])
    assert status == {"slot": chain.slot, "confirmations": 0, "status": {"Ok": None},
                      "err": None, "confirmationStatus": "processed"}


def test_status_goes_processed_confirmed_finalized(market: Market) -> None:
    signature = market.chain.submit(market.sell(10, 0)).signature
    levels = []
    for _ in range(3):
        status = market.chain.signature_statuses([signature])[0]
        assert status is not None
        levels.append((status["confirmationStatus"], status["confirmations"]))
        market.chain.advance(1 if len(levels) == 1 else 40)
    assert levels == [("processed", 0), ("confirmed", 1), ("finalized", None)]
    assert market.chain.signature_statuses(["1" * 64]) == [None]


def test_unsigned_tx_is_refused_by_signature_verification(market: Market) -> None:
    b64 = build_sell_tx(market.chain, market.wallet.pubkey(), market.mint, 10, 0)
    before = market.chain.balance(market.wallet.pubkey())
    result = market.chain.submit(base64.b64decode(b64))
    assert result.refused is not None
    assert result.refused.json == "SignatureFailure"
    assert market.chain.balance(market.wallet.pubkey()) == before
    assert market.chain.token_balance(market.holding) == HELD


def test_tx_signed_by_another_key_is_refused(market: Market) -> None:
    b64 = build_sell_tx(market.chain, market.wallet.pubkey(), market.mint, 10, 0)
    message = VersionedTransaction.from_bytes(base64.b64decode(b64)).message
    forged = Keypair().sign_message(to_bytes_versioned(message))
    result = market.chain.submit(bytes(VersionedTransaction.populate(message, [forged])))
    assert result.refused is not None and result.refused.json == "SignatureFailure"
    assert market.chain.signature_statuses([str(forged)]) == [None]
    assert market.chain.token_balance(market.holding) == HELD


def test_landed_signature_on_an_altered_message_fails_verification_first(market: Market) -> None:
    signed = market.sell(10, 0)
    assert market.chain.submit(signed).refused is None
    altered = signed.replace(b":v1:sell:", b":v1:sale:")
    result = market.chain.submit(altered)
    assert result.signature == signature_of_bytes(signed)
    assert result.refused is not None and result.refused.json == "SignatureFailure"


def signature_of_bytes(raw: bytes) -> str:
    return str(VersionedTransaction.from_bytes(raw).signatures[0])


def test_blockhash_valid_for_150_blocks_then_refused(market: Market) -> None:
    chain = market.chain
    blockhash, last_valid = chain.latest_blockhash()
    assert last_valid == chain.block_height + MAX_PROCESSING_AGE
    assert chain.block_height < chain.slot
    signed_late, signed_expired = market.sell(10, 0), market.sell(11, 0)
    chain.advance(MAX_PROCESSING_AGE)
    assert chain.is_blockhash_valid(blockhash)
    assert chain.submit(signed_late).refused is None
    chain.advance()
    assert not chain.is_blockhash_valid(blockhash)
    result = chain.submit(signed_expired)
    assert result.refused is not None and result.refused.json == "BlockhashNotFound"
    assert chain.dropped[result.signature] == result.refused
    assert chain.token_balance(market.holding) == HELD - 10


def test_slippage_failure_charges_fee_and_reports_custom_6003(market: Market) -> None:
    chain, wallet = market.chain, market.wallet.pubkey()
    tokens = HELD // 2
    signed = market.sell(tokens, min_out_for(tokens, PRICE, 100), tip=1_000_000)
    chain.set_price(market.mint, PRICE * 0.9)
    lamports_before, tip_before = chain.balance(wallet), chain.balance(TIP)

    result = chain.submit(signed)

    assert result.refused is None
    [status] = chain.signature_statuses([result.signature])
    assert status is not None
    assert status["err"] == {
        "InstructionError": [SWAP_INSTRUCTION_INDEX, {"Custom": SLIPPAGE_ERROR_CODE}]}
    assert status["status"] == {"Err": status["err"]}
    assert chain.balance(wallet) == lamports_before - expected_fee()
    assert chain.balance(TIP) == tip_before
    assert chain.token_balance(market.holding) == HELD
    assert chain.settlement(result.signature) is None


def test_duplicate_submission_settles_once(market: Market) -> None:
    chain, wallet = market.chain, market.wallet.pubkey()
    signed = market.sell(1_000_000, 0)
    first = chain.submit(signed)
    balance_after_first = chain.balance(wallet)
    chain.advance()
    second = chain.submit(signed)
    assert first.refused is None
    assert second.refused is not None and second.refused.json == "AlreadyProcessed"
    assert chain.token_balance(market.holding) == HELD - 1_000_000
    assert chain.balance(wallet) == balance_after_first


def test_duplicate_of_failed_tx_is_not_charged_twice(market: Market) -> None:
    signed = market.sell(10**9, 10**12)
    before = market.chain.balance(market.wallet.pubkey())
    assert market.chain.submit(signed).refused is None
    refused = market.chain.submit(signed).refused
    assert refused is not None and refused.json == "AlreadyProcessed"
    assert market.chain.balance(market.wallet.pubkey()) == before - expected_fee()


def test_selling_more_than_held_fails_like_spl_token(market: Market) -> None:
    result = market.chain.submit(market.sell(HELD + 1, 0))
    status = market.chain.signature_statuses([result.signature])[0]
    assert status is not None
    assert status["err"] == {"InstructionError": [SWAP_INSTRUCTION_INDEX, {"Custom": 1}]}


def test_malformed_swap_memo_fails_with_invalid_instruction_data(market: Market) -> None:
    b64 = build_sell_tx(market.chain, market.wallet.pubkey(), market.mint, 1, 0)
    unsigned = base64.b64decode(b64)
    assert b":v1:sell:" in unsigned
    broken = base64.b64encode(unsigned.replace(b":v1:sell:", b":v1:sale:")).decode()
    result = market.chain.submit(sign_for_tests(broken, market.wallet))
    status = market.chain.signature_statuses([result.signature])[0]
    assert status is not None
    assert status["err"] == {"InstructionError": [SWAP_INSTRUCTION_INDEX,
                                                  "InvalidInstructionData"]}


def test_token_2022_sell_keeps_account_extensions() -> None:
    market = make_market(token_program=TOKEN_2022_PROGRAM_ID)
    account_before = market.chain.svm.get_account(market.holding)
    assert account_before is not None and len(account_before.data) > 165
    assert market.chain.submit(market.sell(1000, 0)).refused is None
    account_after = market.chain.svm.get_account(market.holding)
    assert account_after is not None
    assert account_after.data[165:] == account_before.data[165:]
    assert market.chain.token_balance(market.holding) == HELD - 1000


# --------------------------------------------------------------------------- buys


def test_buy_creates_ata_and_credits_tokens(market: Market) -> None:
    chain, buyer = market.chain, Keypair()
    chain.fund(buyer.pubkey(), 10**9)
    lamports_in = 50_000_000
    ata = get_associated_token_address(buyer.pubkey(), market.mint)
    assert chain.svm.get_account(ata) is None
    b64 = build_buy_tx(chain, buyer.pubkey(), market.mint, lamports_in,
                       min_tokens_out_for(lamports_in, PRICE, 100), 1000, TIP)

    result = chain.submit(sign_for_tests(b64, buyer))

    assert result.refused is None
    tokens = math.floor(lamports_in / PRICE)
    assert raw_token_amount(chain, ata) == tokens
    assert chain.balance(buyer.pubkey()) == (
        10**9 - lamports_in - expected_fee() - 1000 - ATA_RENT)
    settlement = chain.settlement(result.signature)
    assert settlement is not None and (settlement.tokens, settlement.lamports) == (
        tokens, lamports_in)


def test_buy_slippage_failure_rolls_back_ata_creation(market: Market) -> None:
    chain, buyer = market.chain, Keypair()
    chain.fund(buyer.pubkey(), 10**9)
    b64 = build_buy_tx(chain, buyer.pubkey(), market.mint, 10**7,
                       min_tokens_out_for(10**7, PRICE, 0))
    chain.set_price(market.mint, PRICE * 1.5)
    result = chain.submit(sign_for_tests(b64, buyer))
    status = chain.signature_statuses([result.signature])[0]
    assert status is not None
    assert status["err"] == {
        "InstructionError": [SWAP_INSTRUCTION_INDEX, {"Custom": SLIPPAGE_ERROR_CODE}]}
    assert chain.svm.get_account(chain.token_account(buyer.pubkey(), market.mint)) is None
    assert chain.balance(buyer.pubkey()) == 10**9 - expected_fee()


def test_chain_tx_factory_builds_settleable_signals(market: Market) -> None:
    @dataclass
    class Position:
        wallet: str
        mint: str

    factory = ChainTxFactory(market.chain)
    position = Position(str(market.wallet.pubkey()), str(market.mint))
    exit_b64 = factory.build_exit(position, 1000, 500, "helius_sender", 2000)
    message = VersionedTransaction.from_bytes(base64.b64decode(exit_b64)).message
    assert len(message.instructions) == 5  # with the tip
    result = market.chain.submit(sign_for_tests(exit_b64, market.wallet))
    assert market.chain.settlement(result.signature) is not None
    buy_b64 = factory.build_mirror_buy(str(market.wallet.pubkey()), str(market.mint), 10**6,
                                       500, "rpc", 2000)
    assert len(VersionedTransaction.from_bytes(base64.b64decode(buy_b64)).message
               .instructions) == 4  # no tip for rpc


# --------------------------------------------------------------------------- errors


def test_error_json_and_messages_match_mainnet() -> None:
    slippage = TransactionErrorInstructionError(2, InstructionErrorCustom(6003))
    assert error_json(slippage) == {"InstructionError": [2, {"Custom": 6003}]}
    assert error_message(slippage) == "Error processing Instruction 2: custom program error: 0x1773"
    assert error_json(TransactionErrorFieldless.BlockhashNotFound) == "BlockhashNotFound"
    assert error_message(TransactionErrorFieldless.BlockhashNotFound) == "Blockhash not found"


def test_simulate_changes_nothing_and_reports_swap_failure(market: Market) -> None:
    signed = market.sell(HELD // 2, 10**15)
    sim = market.chain.simulate(signed)
    assert sim.err is not None
    assert sim.err.json == {
        "InstructionError": [SWAP_INSTRUCTION_INDEX, {"Custom": SLIPPAGE_ERROR_CODE}]}
    assert sim.fee == expected_fee()
    assert any("lasersell-sim:v1:sell" in line for line in sim.logs)
    assert market.chain.token_balance(market.holding) == HELD
    assert market.chain.signature_statuses([str(VersionedTransaction.from_bytes(signed)
                                                .signatures[0])]) == [None]
