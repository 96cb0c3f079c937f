"""Hostile transactions for issue 10's static classes and for routing-fee abuse.

Each is tagged with the reason the guard must give with effects verification on (the
default) and, where it differs, with it off. Built on ``txbuild``; collected by
``txfactory.hostile_variants``.
"""

from __future__ import annotations

import struct

from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import CompiledInstruction, Instruction
from solders.message import MessageHeader, MessageV0
from solders.pubkey import Pubkey
from spl.token import instructions as spl
from spl.token import models as sm

from lasersell_bot.guard import rent_exempt_lamports
from tests.txbuild import (
    BUY_LAMPORTS,
    CU_LIMIT,
    DAMM_V2,
    DBC,
    FEE_ALLOWANCE,
    FEE_ALLOWANCE_USD1,
    FEE_VAULT,
    MEMO,
    PUMP_FUN,
    PUMP_SWAP,
    RAYDIUM_CPMM,
    SELL_TOKENS,
    TOKEN,
    TOKEN_2022,
    USD1,
    WSOL,
    Scenario,
    Variant,
    amm_swap,
    anchor,
    authority_ixs,
    build,
    buy_tx,
    close_account,
    compute_budget,
    cpmm_swap,
    create_ata,
    dex_lookup_table,
    exit_pumpfun_ixs,
    exit_with,
    fee_transfers,
    key_for,
    launchlab,
    memo,
    meteora_swap,
    pump_buy,
    pump_sell,
    pump_swap,
    pump_v2,
    seed_account,
    sol_transfer,
    table_map,
    tip,
    token_fee,
    token_ix,
    unsigned,
    v0,
    with_raw_instruction,
)

# ---------------------------------------------------------------------------
# Issue 10: the static holes, one class at a time


def _funded_attacks(s: Scenario) -> list[Variant]:
    exit_, buy = s.exit_expect(), s.buy_expect()
    plain = [*compute_budget(), pump_sell(s)]
    rent512 = rent_exempt_lamports(512)
    six = [seed_account(s, f"rent{i}", TOKEN_2022, rent512, 512)[1] for i in range(3)]
    parked, park = seed_account(s, "park", TOKEN, rent_exempt_lamports(165) + BUY_LAMPORTS)
    alt_account = Pubkey.create_with_seed(s.me, "alt", TOKEN)
    alt = AddressLookupTableAccount(key_for("alt-funded"), [alt_account])
    mint_acct, fund_mint = seed_account(s, "mint", TOKEN_2022, rent_exempt_lamports(234), 234)
    close_authority = token_ix(TOKEN_2022, bytes([25, 1]) + bytes(s.evil),
                                (mint_acct, False, True))
    init_mint = token_ix(TOKEN_2022, bytes([20, 6]) + bytes(s.me) + bytes([0]),
                          (mint_acct, False, True))
    return [
        Variant("rent_parked_in_uninitialised_token2022_accounts",
                build(s, [*plain, *six, tip(s)]), exit_, "funded_account_not_ours"),
        Variant("buy_budget_parked_in_uninitialised_account",
                build(s, [*compute_budget(), park, create_ata(s, s.mint),
                          pump_swap(s, "buy", 10**9, BUY_LAMPORTS, extra=[parked]), tip(s)]),
                buy, "funded_account_not_ours"),
        Variant("funded_account_from_lookup_table",
                build(s, [*plain, seed_account(s, "alt", TOKEN, rent_exempt_lamports(165))[1],
                          spl.initialize_account3(sm.InitializeAccount3Params(
                              program_id=TOKEN, account=alt_account, mint=WSOL, owner=s.me))],
                      tables=[alt]), exit_, "funded_account_lookup_table",
                tables=table_map(alt)),
        Variant("funded_account_turned_into_mint_with_foreign_close_authority",
                build(s, [*plain, fund_mint, close_authority, init_mint]), exit_,
                "funded_account_not_ours"),
        Variant("account_created_under_memo",
                build(s, [*plain, seed_account(s, "memo", MEMO, rent_exempt_lamports(0), 0)[1]]),
                exit_, "create_account_foreign_owner"),
        Variant("account_created_under_a_dex",
                build(s, [*plain, seed_account(s, "dex", PUMP_SWAP, rent_exempt_lamports(64),
                                               64)[1]]), exit_, "create_account_foreign_owner"),
    ]


def _buy_attacks(s: Scenario) -> list[Variant]:
    exit_, buy = s.exit_expect(), s.buy_expect()
    other = key_for("other-coin")
    ten = 10 * BUY_LAMPORTS

    def exit_plus(trade: Instruction) -> bytes:
        return build(s, [*compute_budget(), pump_sell(s), trade, tip(s)])

    def exit_plus_v2(name: str, amount: int, limit: int) -> Variant:
        """pump.fun v2 takes 27 accounts: the server would load them from a table."""
        trade = pump_v2(s, name, amount, limit, mint=other)
        alt = AddressLookupTableAccount(key_for("v2-alt"), list(dict.fromkeys(
            m.pubkey for m in trade.accounts if m.pubkey not in (s.me, PUMP_FUN))))
        return Variant(f"exit_with_{name}_of_another_coin",
                       build(s, [*compute_budget(), pump_sell(s), trade, tip(s)], tables=[alt]),
                       exit_, "exit_contains_buy", tables=table_map(alt))

    return [
        exit_plus_v2("buy_v2", 10**9, ten),
        exit_plus_v2("buy_exact_quote_in_v2", ten, 1),
        Variant("exit_with_pumpswap_buy", exit_plus(pump_swap(s, "buy", 10**9, ten)), exit_,
                "exit_contains_buy"),
        Variant("exit_with_launchlab_buy", exit_plus(launchlab(s, "buy_exact_in", ten, 1,
                                                               mint=other)),
                exit_, "exit_contains_buy"),
        Variant("exit_with_cpmm_buy_of_another_coin", exit_plus(cpmm_swap(
            s, "swap_base_input", ten, sell=WSOL, buy=other)), exit_, "exit_contains_buy"),
        Variant("exit_with_dbc_buy", exit_plus(meteora_swap(s, DBC, "swap", ten, buy=True,
                                                            mint=other)),
                exit_, "exit_contains_buy"),
        Variant("exit_with_damm_v2_swap2_buy", exit_plus(meteora_swap(
            s, DAMM_V2, "swap2", ten, buy=True, mint=other, mode=2)), exit_,
            "exit_contains_buy"),
        Variant("buy_v2_more_than_agreed",
                buy_tx(s, pump_v2(s, "buy_v2", 10**9, ten), 0, TOKEN_2022), buy,
                "buy_amount_mismatch"),
        Variant("buy_exact_quote_in_v2_more_than_agreed",
                buy_tx(s, pump_v2(s, "buy_exact_quote_in_v2", ten, 1), 0, TOKEN_2022), buy,
                "buy_amount_mismatch"),
        Variant("buy_cpmm_drains_existing_wsol",
                buy_tx(s, cpmm_swap(s, "swap_base_output", ten, sell=WSOL, buy=s.mint)), buy,
                "buy_amount_mismatch"),
        Variant("buy_dbc_swap2_exact_out_more_than_agreed",
                buy_tx(s, meteora_swap(s, DBC, "swap2", ten, buy=True, mode=2)), buy,
                "buy_amount_mismatch"),
        Variant("buy_launchlab_more_than_agreed",
                buy_tx(s, launchlab(s, "buy_exact_in", ten, 1)), buy, "buy_amount_mismatch"),
        Variant("exit_creates_a_pool_with_our_position",
                exit_plus(Instruction(PUMP_SWAP, anchor("create_pool") + struct.pack(
                    "<HQQ", 0, SELL_TOKENS, 1) + bytes(s.evil) + bytes(2),
                    pump_swap(s, "sell", 1, 1).accounts)), exit_, "dex_instruction_unknown"),
        Variant("exit_deposits_into_a_pool",
                exit_plus(Instruction(PUMP_SWAP, anchor("deposit") + struct.pack(
                    "<QQQ", 1, SELL_TOKENS, 10**9), pump_swap(s, "sell", 1, 1).accounts)),
                exit_, "dex_instruction_unknown"),
        Variant("exit_with_cpmm_deposit",
                exit_plus(Instruction(RAYDIUM_CPMM, anchor("deposit") + bytes(24), cpmm_swap(
                    s, "swap_base_input", 1, sell=s.mint, buy=WSOL).accounts)),
                exit_, "dex_instruction_unknown"),
    ]


def _wrong_coin_attacks(s: Scenario) -> list[Variant]:
    other = key_for("other-coin")
    return [
        Variant("buy_of_another_mint_signal_mint_only_in_ata_create",
                build(s, [*compute_budget(), create_ata(s, s.mint),
                          pump_buy(s, BUY_LAMPORTS, mint=other), tip(s)]), s.buy_expect(),
                "wrong_mint_traded"),
        Variant("buy_v2_of_another_mint", buy_tx(s, pump_v2(s, "buy_v2", 10**9, BUY_LAMPORTS,
                                                          mint=other), 0, TOKEN_2022),
                s.buy_expect(), "wrong_mint_traded"),
        Variant("exit_sells_a_different_position",
                build(s, [*compute_budget(), create_ata(s, s.mint), pump_sell(s, mint=other),
                          tip(s)]), s.exit_expect(), "wrong_mint_traded"),
        Variant("exit_sells_a_different_position_on_damm_v2",
                build(s, [*compute_budget(), create_ata(s, s.mint), meteora_swap(
                    s, DAMM_V2, "swap", SELL_TOKENS, buy=False, mint=other), tip(s)]),
                s.exit_expect(), "wrong_mint_traded"),
    ]


def _authority_attacks(s: Scenario) -> list[Variant]:
    reasons = {"mint_to": "token_mint_to", "mint_to_checked": "token_mint_to",
               "freeze_account": "token_freeze", "thaw_account": "token_freeze"}
    return [Variant(f"{name}_with_our_authority", exit_with(s, ix), s.exit_expect(),
                    reasons[name]) for name, ix in authority_ixs(s).items()]


def _landing_attacks(s: Scenario) -> list[Variant]:
    exit_ = s.exit_expect()
    honest = v0(s.me, exit_pumpfun_ixs(s), s.blockhash)
    keys = list(honest.account_keys)

    def patched(header: MessageHeader | None = None, keys: list[Pubkey] = keys) -> bytes:
        h = header or honest.header
        return unsigned(MessageV0(h, keys, honest.recent_blockhash, list(honest.instructions),
                                  []))

    alt = dex_lookup_table(s)
    with_me = AddressLookupTableAccount(alt.key, [s.me, *alt.addresses[1:]])
    n = len(keys)
    return [
        Variant("duplicate_static_key", patched(keys=[*keys[:-1], keys[1]]), exit_,
                "duplicate_account_key"),
        Variant("wallet_loaded_again_through_lookup_table",
                build(s, exit_pumpfun_ixs(s), tables=[alt]), exit_, "duplicate_account_key",
                tables=table_map(with_me)),
        Variant("fee_payer_read_only", patched(MessageHeader(1, 1, 0)), exit_,
                "invalid_header"),
        Variant("more_read_only_keys_than_keys", patched(MessageHeader(1, 0, n)), exit_,
                "invalid_header"),
        Variant("two_compute_unit_limits", build(s, [set_compute_unit_limit(CU_LIMIT),
                                                     *exit_pumpfun_ixs(s)]), exit_,
                "compute_budget_duplicate"),
        Variant("two_compute_unit_prices", build(s, [*exit_pumpfun_ixs(s),
                                                     set_compute_unit_price(1)]), exit_,
                "compute_budget_duplicate"),
        Variant("more_instructions_than_the_runtime_allows",
                build(s, [*exit_pumpfun_ixs(s), *[memo("") for _ in range(61)]]), exit_,
                "too_many_instructions"),
        Variant("fee_payer_as_program",
                with_raw_instruction(honest, CompiledInstruction(0, b"", bytes([1]))),
                exit_, "invalid_account_index"),
        Variant("account_index_past_the_keys",
                with_raw_instruction(honest, CompiledInstruction(n - 1, b"", bytes([200]))),
                exit_, "invalid_account_index"),
        Variant("lookup_table_not_fetched",
                build(s, exit_pumpfun_ixs(s), tables=[alt]), exit_, "lookup_table_unavailable",
                tables={}),
        Variant("lookup_table_shorter_than_its_index",
                build(s, exit_pumpfun_ixs(s), tables=[alt]), exit_, "lookup_table_unavailable",
                tables={alt.key: list(alt.addresses[:1])}),
    ]


def issue10_attacks(s: Scenario) -> list[Variant]:
    buy_t22_wsol = build(s, [*compute_budget(), create_ata(s, s.mint),
                             sol_transfer(s.me, s.ata(WSOL, TOKEN_2022), BUY_LAMPORTS),
                             amm_swap(s, PUMP_SWAP, "buy"), tip(s)])
    return [*_funded_attacks(s), *_buy_attacks(s), *_wrong_coin_attacks(s),
            *_authority_attacks(s), *_landing_attacks(s),
            Variant("buy_wrap_into_token2022_wsol_derivation", buy_t22_wsol, s.buy_expect(),
                    "foreign_transfer")]


def fee_attacks(s: Scenario) -> list[Variant]:
    """Routing fees above the allowance, and a fee in a mint that is not a quote asset."""
    exit_ = s.exit_expect()
    cb = compute_budget()
    over = FEE_ALLOWANCE + 1
    return [
        Variant("sol_fee_over_allowance", build(s, [*cb, pump_sell(s), *fee_transfers(s, over),
                                                    tip(s)]), exit_, "fee_too_large",
                "foreign_transfer"),
        Variant("wsol_fee_over_allowance",
                build(s, [*cb, create_ata(s, WSOL), amm_swap(s, PUMP_SWAP, "sell"),
                          token_fee(s, WSOL, over), close_account(s, s.me), tip(s)]),
                exit_, "fee_too_large", "token_transfer_foreign"),
        Variant("usd1_fee_over_allowance",
                build(s, [*cb, pump_swap(s, "sell", SELL_TOKENS, 1, quote=USD1),
                          token_fee(s, USD1, FEE_ALLOWANCE_USD1 + 1), tip(s)]),
                exit_, "fee_too_large", "token_transfer_foreign"),
        Variant("fee_paid_in_the_position_token",
                build(s, [*cb, pump_sell(s), token_fee(s, s.mint, 1), tip(s)]), exit_,
                "token_transfer_foreign"),
        Variant("fee_sol_and_wsol_together_over_allowance",
                build(s, [*cb, create_ata(s, WSOL), amm_swap(s, PUMP_SWAP, "sell"),
                          token_fee(s, WSOL, FEE_ALLOWANCE), close_account(s, s.me),
                          sol_transfer(s.me, FEE_VAULT, 1), tip(s)]), exit_, "fee_too_large",
                "token_transfer_foreign"),
    ]
