"""Builds honest and hostile LaserSell-shaped transactions in code, for guard and signing tests.

Every transaction is compiled with solders (and the ``spl`` / ``solders.system_program``
instruction builders, so instruction data layouts are the canonical ones, not ours).
Honest ones mirror what the LaserSell server sends: v0 (or legacy), compute-unit limit
and price, DEX instruction naming the mint, tip transfer to a tip account, zero-filled
signature slots. Each hostile one is tagged with the exact ``reason`` the guard must give
with effects verification on (the default) and, where it differs, ``static_reason`` with
it off (``guard.simulate = "never"``). DEX instructions use each program's published
account layout (``guard/dex.py`` cites the IDLs). Router-shaped variants stand for the real
service: an unknown "LaserSell Router" program wrapping the swap (its id is not
published), or a direct swap plus top-level routing-fee transfers to a fee vault and up to
three referrers; they pass only with effects verification on.

Use ``honest_variants()`` / ``hostile_variants()``; ``Scenario`` holds the keys. The
builders live in ``txbuild`` (re-exported here), issue 10's attacks in ``txattacks``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import solders.system_program as sysp
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.compute_budget import set_compute_unit_limit
from solders.hash import Hash
from solders.instruction import AccountMeta, CompiledInstruction, Instruction
from solders.pubkey import Pubkey
from spl.token import instructions as spl
from spl.token import models as sm
from spl.token.models import AuthorityType

from lasersell_bot.config import HELIUS_TIP_ACCOUNTS
from lasersell_bot.guard import Expectation
from tests.txattacks import fee_attacks, issue10_attacks
from tests.txbuild import (
    ASTRALANE_TIP,
    BUY_LAMPORTS,
    CU_LIMIT,
    CU_PRICE,
    DAMM_V2,
    DBC,
    FEE_ALLOWANCE,
    FEE_ALLOWANCE_USD1,
    FEE_VAULT,
    HELIUS_TIP,
    JITO_TIP,
    MAX_PRIORITY_FEE,
    MAX_TIP,
    MEMO,
    PUMP_FUN,
    PUMP_SWAP,
    REFERRERS,
    ROUTER,
    ROUTING_FEE,
    SELL_TOKENS,
    TIP_LAMPORTS,
    TOKEN,
    TOKEN_2022,
    USD1,
    WSOL,
    Scenario,
    Variant,
    amm_swap,
    authority_ixs,
    build,
    buy_seed_account_ixs,
    buy_tx,
    buy_wsol_ixs,
    close_account,
    compute_budget,
    cpmm_swap,
    create_ata,
    dex_lookup_table,
    exit_pumpfun_ixs,
    exit_pumpswap_ixs,
    exit_with,
    fee_transfers,
    key_for,
    launchlab,
    legacy,
    memo,
    meteora_swap,
    pump_buy,
    pump_buy_exact_sol_in,
    pump_sell,
    pump_swap,
    pump_v2,
    router,
    sell_tx,
    sol_transfer,
    sync_native,
    table_map,
    tip,
    token_fee,
    token_transfer,
    token_transfer_checked,
    unsigned,
    v0,
    with_raw_instruction,
    wrap_ixs,
)


def honest_variants(s: Scenario | None = None) -> list[Variant]:
    s = s or Scenario()
    exit_ = s.exit_expect()
    return [
        Variant("exit_pumpfun_v0", build(s, exit_pumpfun_ixs(s)), exit_),
        Variant("exit_pumpfun_legacy", unsigned(legacy(s.me, exit_pumpfun_ixs(s), s.blockhash)),
                exit_),
        Variant("exit_token2022_mint", build(s, exit_pumpfun_ixs(s, TOKEN_2022)), exit_),
        Variant("exit_pumpswap_wsol_close", build(s, exit_pumpswap_ixs(s)), exit_),
        Variant("exit_with_lookup_table",
                build(s, exit_pumpfun_ixs(s), tables=[dex_lookup_table(s)]), exit_,
                tables=table_map(dex_lookup_table(s))),
        Variant("exit_memo_no_tip", build(s, [*compute_budget(), memo(f"lasersell:{s.mint}"),
                                              meteora_swap(s, DAMM_V2, "swap", SELL_TOKENS,
                                                           buy=False)]), exit_),
        Variant("exit_partial_ladder_astralane_tip",
                build(s, [*compute_budget(), pump_sell(s), tip(s, 2_000_000, ASTRALANE_TIP)]),
                exit_),
        Variant("buy_pumpfun", build(s, [*compute_budget(), create_ata(s, s.mint, TOKEN_2022),
                                         pump_buy(s, BUY_LAMPORTS, TOKEN_2022), tip(s)]),
                s.buy_expect()),
        Variant("buy_pumpfun_exact_sol_in",
                build(s, [*compute_budget(), create_ata(s, s.mint, TOKEN_2022),
                          pump_buy_exact_sol_in(s, BUY_LAMPORTS), tip(s)]), s.buy_expect()),
        Variant("buy_pumpswap_wsol_wrap", build(s, buy_wsol_ixs(s)), s.buy_expect()),
        Variant("buy_pumpswap_legacy", unsigned(legacy(s.me, buy_wsol_ixs(s), s.blockhash)),
                s.buy_expect()),
        Variant("buy_cpmm_seed_account", build(s, buy_seed_account_ixs(s)), s.buy_expect()),
        *router_variants(s), *dex_variants(s), *table_variants(s),
    ]


# ---------------------------------------------------------------------------
# The real service's shape: the LaserSell Router (unpublished id) and routing fees

def router_variants(s: Scenario) -> list[Variant]:
    """Honest with effects verification on; refused on sight without it."""
    exit_, buy = s.exit_expect(), s.buy_expect()
    cb = compute_budget()
    wsol_fee = ROUTING_FEE // 2
    router_alt = AddressLookupTableAccount(key_for("router-alt"), [
        FEE_VAULT, *REFERRERS, key_for(f"{PUMP_FUN}-global"), key_for(f"{PUMP_FUN}-fee"),
        key_for(f"{PUMP_FUN}-pool-{s.mint}"), key_for(f"{PUMP_FUN}-vault-{s.mint}")])
    router_exit = [*cb, router(s, pump_sell(s)), tip(s)]
    return [
        Variant("router_exit_pumpfun", build(s, router_exit), exit_, None,
                "program_not_allowed"),
        Variant("router_exit_pumpswap_wsol_one_referrer",
                build(s, [*cb, create_ata(s, WSOL), router(s, amm_swap(s, PUMP_SWAP, "sell"), 1),
                          close_account(s, s.me), tip(s, account=JITO_TIP)]),
                exit_, None, "program_not_allowed"),
        Variant("router_exit_with_lookup_table", build(s, router_exit, tables=[router_alt]),
                exit_, None, "program_not_allowed", tables=table_map(router_alt)),
        Variant("router_buy_pumpfun",
                build(s, [*cb, create_ata(s, s.mint, TOKEN_2022),
                          router(s, pump_buy(s, BUY_LAMPORTS, TOKEN_2022)), tip(s)]),
                buy, None, "program_not_allowed"),
        Variant("exit_direct_swap_fee_transfers",
                build(s, [*cb, pump_sell(s), *fee_transfers(s), tip(s)]), exit_, None,
                "foreign_transfer"),
        Variant("buy_direct_swap_fee_transfers",
                build(s, [*cb, create_ata(s, s.mint, TOKEN_2022),
                          pump_buy(s, BUY_LAMPORTS, TOKEN_2022), *fee_transfers(s, referrers=2),
                          tip(s)]), buy, None, "foreign_transfer"),
        Variant("exit_wsol_fee_token_transfer",
                build(s, [*cb, create_ata(s, WSOL), amm_swap(s, PUMP_SWAP, "sell"),
                          token_fee(s, WSOL, wsol_fee), close_account(s, s.me),
                          *fee_transfers(s, ROUTING_FEE - wsol_fee, 0), tip(s)]),
                exit_, None, "token_transfer_foreign"),
        Variant("exit_wsol_fee_into_a_vault_account_we_create",
                build(s, [*cb, create_ata(s, WSOL), amm_swap(s, PUMP_SWAP, "sell"),
                          create_ata(s, WSOL, owner=FEE_VAULT), token_fee(s, WSOL, wsol_fee),
                          close_account(s, s.me), tip(s)]),
                exit_, None, "ata_foreign_owner"),
        Variant("exit_usd1_pair_usd1_fee",
                build(s, [*cb, create_ata(s, USD1), pump_swap(s, "sell", SELL_TOKENS, 1,
                                                              quote=USD1),
                          token_fee(s, USD1, FEE_ALLOWANCE_USD1, checked=True), tip(s)]),
                exit_, None, "token_transfer_foreign"),
    ]


# ---------------------------------------------------------------------------
# Every DEX's trade forms, and the transactions issue 10 found refused or mis-read


def dex_variants(s: Scenario) -> list[Variant]:
    exit_, buy = s.exit_expect(), s.buy_expect()
    return [
        Variant("exit_pumpfun_sell_v2", build(s, [*compute_budget(), pump_v2(
            s, "sell_v2", SELL_TOKENS, 1), tip(s)]), exit_),
        Variant("exit_launchlab_sell_exact_in", sell_tx(s, launchlab(s, "sell_exact_in",
                                                                   SELL_TOKENS, 1)), exit_),
        Variant("exit_cpmm_swap_base_input",
                sell_tx(s, cpmm_swap(s, "swap_base_input", SELL_TOKENS, sell=s.mint, buy=WSOL)),
                exit_),
        Variant("exit_dbc_swap", sell_tx(s, meteora_swap(s, DBC, "swap", SELL_TOKENS, buy=False)),
                exit_),
        Variant("exit_damm_v2_swap2", sell_tx(s, meteora_swap(s, DAMM_V2, "swap2", SELL_TOKENS,
                                                            buy=False)), exit_),
        Variant("exit_usd1_output_for_sol_pair", build(s, [
            *compute_budget(), pump_sell(s), *wrap_ixs(s, BUY_LAMPORTS), create_ata(s, USD1),
            cpmm_swap(s, "swap_base_input", BUY_LAMPORTS, sell=WSOL, buy=USD1),
            close_account(s, s.me), tip(s)]), exit_, None, "trade_unverifiable"),
        Variant("buy_pumpfun_v2", buy_tx(s, pump_v2(s, "buy_v2", 10**9, BUY_LAMPORTS), 0,
                                       TOKEN_2022), buy),
        Variant("buy_pumpfun_exact_quote_in_v2", buy_tx(s, pump_v2(
            s, "buy_exact_quote_in_v2", BUY_LAMPORTS, 1), 0, TOKEN_2022), buy),
        Variant("buy_pumpswap_exact_quote_in",
                buy_tx(s, pump_swap(s, "buy_exact_quote_in", BUY_LAMPORTS, 1)), buy),
        Variant("buy_launchlab_exact_out",
                buy_tx(s, launchlab(s, "buy_exact_out", 10**9, BUY_LAMPORTS)), buy),
        Variant("buy_cpmm_swap_base_output", buy_tx(s, cpmm_swap(
            s, "swap_base_output", BUY_LAMPORTS, sell=WSOL, buy=s.mint)), buy),
        Variant("buy_dbc_swap2_exact_out",
                buy_tx(s, meteora_swap(s, DBC, "swap2", BUY_LAMPORTS, buy=True, mode=2)), buy),
        Variant("buy_damm_v2_swap", buy_tx(s, meteora_swap(s, DAMM_V2, "swap", BUY_LAMPORTS,
                                                         buy=True)), buy),
        Variant("buy_usd1_pair_paid_in_usd1",
                buy_tx(s, pump_swap(s, "buy", 10**9, 20_000_000, quote=USD1), 0), buy, None,
                "buy_input_unverifiable"),
    ]


def table_variants(s: Scenario) -> list[Variant]:
    """Lookup tables that hold the keys the guard needs (passed as ``tables``)."""
    alt = AddressLookupTableAccount(key_for("alt-needed"), [s.mint, TOKEN_2022, JITO_TIP])
    ixs = [*compute_budget(), create_ata(s, s.mint, TOKEN_2022), pump_sell(s, TOKEN_2022),
           tip(s, account=JITO_TIP)]
    return [Variant("exit_mint_token_program_tip_in_lookup_table",
                    build(s, ixs, tables=[alt]), s.exit_expect(), tables=table_map(alt))]


# ---------------------------------------------------------------------------
# Hostile transactions: each is an honest exit (or buy) plus one attack


def _drains(s: Scenario) -> dict[str, tuple[Callable[[], bytes], str]]:
    evil, me = s.evil, s.me
    evil_ata = s.ata(owner=evil)
    evil_ata22 = s.ata(program=TOKEN_2022, owner=evil)
    seed_from = Pubkey.create_with_seed(me, "vault", sysp.ID)
    return {
        "drain_sol_transfer": (lambda: exit_with(s, sol_transfer(me, evil, 10**9)),
                               "foreign_transfer"),
        "drain_sol_transfer_with_seed": (lambda: exit_with(s, sysp.transfer_with_seed(
            sysp.TransferWithSeedParams(from_pubkey=seed_from, from_base=me, from_seed="vault",
                                        from_owner=sysp.ID, lamports=10**9, to_pubkey=evil))),
            "foreign_transfer"),
        "drain_tokens_transfer": (lambda: exit_with(s, token_transfer(s, evil_ata)),
                                  "token_transfer_foreign"),
        "drain_tokens_transfer_checked": (
            lambda: exit_with(s, token_transfer_checked(s, evil_ata)), "token_transfer_foreign"),
        "drain_tokens_transfer_token2022": (
            lambda: exit_with(s, token_transfer(s, evil_ata22, TOKEN_2022)),
            "token_transfer_foreign"),
        "drain_tokens_transfer_checked_token2022": (
            lambda: exit_with(s, token_transfer_checked(s, evil_ata22, TOKEN_2022)),
            "token_transfer_foreign"),
        "drain_tokens_via_multisig_signer": (
            lambda: exit_with(s, token_transfer(s, evil_ata, owner=key_for("msig"), signers=[me])),
            "token_transfer_foreign"),
        "drain_tokens_to_lookup_table_dest": (
            lambda: build(s, [*compute_budget(), pump_sell(s), token_transfer(s, evil_ata), tip(s)],
                          tables=[dex_lookup_table(s, [evil_ata])]), "token_transfer_foreign"),
        "drain_sol_to_lookup_table_dest": (
            lambda: build(s, [*compute_budget(), pump_sell(s), sol_transfer(me, evil, 10**9)],
                          tables=[dex_lookup_table(s, [evil])]), "foreign_transfer"),
        "approve_delegate": (lambda: exit_with(s, spl.approve(sm.ApproveParams(
            program_id=TOKEN, source=s.ata(), delegate=evil, owner=me, amount=2**64 - 1,
            signers=[]))), "token_approve"),
        "approve_checked_token2022": (lambda: exit_with(s, spl.approve_checked(
            sm.ApproveCheckedParams(program_id=TOKEN_2022, source=s.ata(program=TOKEN_2022),
                                     mint=s.mint, delegate=evil, owner=me, amount=2**64 - 1,
                                     decimals=6, signers=[]))), "token_approve"),
        "set_authority_owner": (lambda: exit_with(s, spl.set_authority(sm.SetAuthorityParams(
            program_id=TOKEN, account=s.ata(), authority=AuthorityType.ACCOUNT_OWNER,
            current_authority=me, new_authority=evil, signers=[]))), "set_authority"),
        "set_authority_close_token2022": (lambda: exit_with(s, spl.set_authority(
            sm.SetAuthorityParams(program_id=TOKEN_2022, account=s.ata(program=TOKEN_2022),
                                   authority=AuthorityType.CLOSE_ACCOUNT, current_authority=me,
                                   new_authority=evil, signers=[]))), "set_authority"),
        "close_to_foreign": (lambda: exit_with(s, close_account(s, evil)), "close_to_foreign"),
        "close_to_foreign_token2022": (
            lambda: exit_with(s, close_account(s, evil, TOKEN_2022)), "close_to_foreign"),
        "burn": (lambda: exit_with(s, spl.burn(sm.BurnParams(
            program_id=TOKEN, account=s.ata(), mint=s.mint, owner=me, amount=SELL_TOKENS,
            signers=[]))), "token_burn"),
        "burn_checked_token2022": (lambda: exit_with(s, spl.burn_checked(sm.BurnCheckedParams(
            program_id=TOKEN_2022, mint=s.mint, account=s.ata(program=TOKEN_2022), owner=me,
            amount=SELL_TOKENS, decimals=6, signers=[]))), "token_burn"),
    }


def _system_attacks(s: Scenario) -> dict[str, tuple[Callable[[], bytes], str]]:
    evil, me = s.evil, s.me
    nonce = key_for("nonce")
    return {
        "system_assign": (lambda: exit_with(s, sysp.assign(sysp.AssignParams(
            pubkey=me, owner=key_for("evil-program")))), "system_assign"),
        "system_allocate": (lambda: exit_with(s, sysp.allocate(sysp.AllocateParams(
            pubkey=me, space=10_000_000))), "system_allocate"),
        "nonce_advance": (lambda: build(s, [sysp.advance_nonce_account(
            sysp.AdvanceNonceAccountParams(nonce_pubkey=nonce, authorized_pubkey=me)),
            *exit_pumpfun_ixs(s)]), "nonce_advance"),
        "nonce_authorize": (lambda: exit_with(s, sysp.authorize_nonce_account(
            sysp.AuthorizeNonceAccountParams(nonce_pubkey=nonce, authorized_pubkey=me,
                                             new_authority=evil))), "nonce_authorize"),
        "nonce_withdraw": (lambda: exit_with(s, sysp.withdraw_nonce_account(
            sysp.WithdrawNonceAccountParams(nonce_pubkey=nonce, authorized_pubkey=me,
                                            to_pubkey=evil, lamports=10**9))), "nonce_withdraw"),
        "create_account_overfunded": (lambda: exit_with(s, sysp.create_account_with_seed(
            sysp.CreateAccountWithSeedParams(
                from_pubkey=me, to_pubkey=Pubkey.create_with_seed(me, "x", key_for("evil-program")),
                base=me, seed="x", lamports=10**9, space=0, owner=key_for("evil-program")))),
            "create_account_overfunded"),
        "exit_contains_buy": (lambda: exit_with(s, pump_buy(s, 10**9)), "exit_contains_buy"),
        "ata_for_foreign_owner": (lambda: exit_with(s, create_ata(s, s.mint, owner=evil)),
                                  "ata_foreign_owner"),
    }


def _tip_and_fee_attacks(s: Scenario) -> dict[str, tuple[Callable[[], bytes], str]]:
    return {
        "tip_too_large": (lambda: build(s, [*compute_budget(), pump_sell(s),
                                            tip(s, MAX_TIP + 1)]), "tip_too_large"),
        "tip_split_over_cap": (lambda: build(s, [*compute_budget(), pump_sell(s), *[
            tip(s, 1_000_000, Pubkey.from_string(a)) for a in HELIUS_TIP_ACCOUNTS[:6]]]),
            "tip_too_large"),
        "tip_to_non_tip_account": (lambda: build(s, [*compute_budget(), pump_sell(s),
                                                     tip(s, TIP_LAMPORTS, key_for("not-a-tip"))]),
                                   "foreign_transfer"),
        "priority_fee_too_high": (lambda: build(s, [*compute_budget(price=MAX_PRIORITY_FEE + 1),
                                                    pump_sell(s), tip(s)]),
                                  "priority_fee_too_high"),
        "compute_budget_unknown": (lambda: build(s, [Instruction(
            set_compute_unit_limit(1).program_id, bytes([0]) + bytes(8), []),
            *exit_pumpfun_ixs(s)]), "compute_budget_unknown"),
    }


def _shape_attacks(s: Scenario) -> dict[str, tuple[Callable[[], bytes], str]]:
    me, evil = s.me, s.evil
    return {
        "foreign_fee_payer": (lambda: build(s, exit_pumpfun_ixs(s), payer=evil),
                              "fee_payer_mismatch"),
        "extra_signer": (lambda: exit_with(s, memo("co-sign", [evil])), "extra_signer"),
        "wallet_not_required_signer": (lambda: build(
            s, [*compute_budget(), pump_sell(s, signer=False)], payer=evil), "wallet_not_signer"),
        "program_not_allowlisted": (lambda: exit_with(s, Instruction(
            key_for("evil-program"), b"drain", [AccountMeta(me, True, True)])),
            "program_not_allowed"),
        "program_via_lookup_table": (lambda: with_raw_instruction(
            v0(me, exit_pumpfun_ixs(s), s.blockhash, [dex_lookup_table(s)]),
            CompiledInstruction(len(v0(me, exit_pumpfun_ixs(s), s.blockhash,
                                       [dex_lookup_table(s)]).account_keys), b"x", bytes([0]))),
            "lookup_table_program"),
        "zero_blockhash": (lambda: build(s, exit_pumpfun_ixs(s), blockhash=Hash.default()),
                           "missing_blockhash"),
        "oversize_tx": (lambda: exit_with(s, memo("x" * 1200)), "tx_too_large"),
        "signature_count_mismatch": (lambda: unsigned(v0(me, exit_pumpfun_ixs(s), s.blockhash),
                                                      slots=2), "undecodable"),
        "garbage_bytes": (lambda: b"\x01" + bytes(64) + b"\x80\x01\x00\x00", "undecodable"),
    }


def _wrong_target_attacks(s: Scenario) -> list[Variant]:
    other = Scenario(mint=key_for("other-mint"))
    exit_ = s.exit_expect()
    return [
        Variant("wrong_mint", build(other, exit_pumpfun_ixs(other)), exit_, "mint_not_touched"),
        Variant("wrong_wallet", build(s, exit_pumpfun_ixs(s)),
                Expectation.exit(key_for("someone-else"), s.mint), "wallet_not_signer"),
        Variant("buy_more_than_agreed_wsol", build(s, buy_wsol_ixs(s, 10 * BUY_LAMPORTS)),
                s.buy_expect(), "buy_amount_mismatch"),
        Variant("buy_more_than_agreed_pumpfun",
                build(s, [*compute_budget(), pump_buy(s, 10 * BUY_LAMPORTS), tip(s)]),
                s.buy_expect(), "buy_amount_mismatch"),
        Variant("buy_more_than_agreed_seed_account",
                build(s, buy_seed_account_ixs(s, 10 * BUY_LAMPORTS)), s.buy_expect(),
                "buy_amount_mismatch"),
        Variant("buy_to_wrong_wallet", build(s, buy_wsol_ixs(s, wsol_owner=s.evil)),
                s.buy_expect(), "ata_foreign_owner"),
        Variant("buy_wrap_into_foreign_wsol",
                build(s, [*compute_budget(), sol_transfer(s.me, s.ata(WSOL, owner=s.evil),
                                                          BUY_LAMPORTS),
                          amm_swap(s, PUMP_SWAP, "buy"), tip(s)]),
                s.buy_expect(), "foreign_transfer"),
    ]


# Reasons with effects verification on, where they differ from the static-only ones:
# SOL to a stranger is a routing fee (refused above the allowance, else left to the
# effects stage), and an unknown program is left to the effects stage.
EFFECTS_REASONS: dict[str, str | None] = {
    "drain_sol_transfer": "fee_too_large",
    "drain_sol_transfer_with_seed": "fee_too_large",
    "drain_sol_to_lookup_table_dest": "fee_too_large",
    "tip_to_non_tip_account": None,
    "program_not_allowlisted": None,
    "buy_wrap_into_foreign_wsol": "fee_too_large",
    "buy_wrap_into_token2022_wsol_derivation": "fee_too_large",
    "ata_for_foreign_owner": None,  # its rent counts as a fee, within the allowance
    "buy_to_wrong_wallet": "fee_too_large",
}


def _tagged(variants: list[Variant]) -> list[Variant]:
    return [dataclasses.replace(v, reason=EFFECTS_REASONS[v.name], static_reason=v.reason)
            if v.name in EFFECTS_REASONS else v for v in variants]


def hostile_variants(s: Scenario | None = None) -> list[Variant]:
    s = s or Scenario()
    tables = {**_drains(s), **_system_attacks(s), **_tip_and_fee_attacks(s), **_shape_attacks(s)}
    made = [Variant(name, make(), s.exit_expect(), reason)
            for name, (make, reason) in tables.items()]
    return _tagged(made + _wrong_target_attacks(s) + issue10_attacks(s) + fee_attacks(s))


__all__ = [
    "BUY_LAMPORTS",
    "CU_LIMIT",
    "CU_PRICE",
    "DAMM_V2",
    "DBC",
    "EFFECTS_REASONS",
    "FEE_ALLOWANCE",
    "FEE_ALLOWANCE_USD1",
    "FEE_VAULT",
    "HELIUS_TIP",
    "JITO_TIP",
    "MAX_PRIORITY_FEE",
    "MAX_TIP",
    "MEMO",
    "PUMP_FUN",
    "PUMP_SWAP",
    "ROUTER",
    "ROUTING_FEE",
    "TIP_LAMPORTS",
    "TOKEN",
    "TOKEN_2022",
    "WSOL",
    "Scenario",
    "Variant",
    "amm_swap",
    "authority_ixs",
    "build",
    "buy_wsol_ixs",
    "close_account",
    "compute_budget",
    "cpmm_swap",
    "create_ata",
    "dex_lookup_table",
    "dex_variants",
    "exit_pumpfun_ixs",
    "fee_transfers",
    "honest_variants",
    "hostile_variants",
    "launchlab",
    "memo",
    "meteora_swap",
    "pump_buy",
    "pump_buy_exact_sol_in",
    "pump_sell",
    "pump_swap",
    "pump_v2",
    "router",
    "router_variants",
    "sol_transfer",
    "sync_native",
    "table_variants",
    "tip",
    "token_transfer",
    "token_transfer_checked",
    "unsigned",
    "v0",
    "with_raw_instruction",
]
