"""The guard refuses every hostile transaction for its specific reason and accepts honest ones."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import solders.system_program as sysp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from spl.token import instructions as spl
from spl.token import models as sm
from spl.token.models import AuthorityType

from lasersell_bot.config import HELIUS_TIP_ACCOUNTS, GuardConfig
from lasersell_bot.guard import (
    ASTRALANE_TIP_ACCOUNTS,
    JITO_TIP_ACCOUNTS,
    GuardPolicy,
    Verdict,
    associated_token_address,
    check_transaction,
    priority_fee_lamports,
    rent_exempt_lamports,
)
from lasersell_bot.guard.tables import resolve_keys, static_writable
from tests.txfactory import (
    BUY_LAMPORTS,
    CU_LIMIT,
    CU_PRICE,
    FEE_ALLOWANCE,
    FEE_ALLOWANCE_USD1,
    FEE_VAULT,
    HELIUS_TIP,
    MAX_TIP,
    PUMP_FUN,
    ROUTER,
    ROUTING_FEE,
    TIP_LAMPORTS,
    TOKEN,
    TOKEN_2022,
    WSOL,
    Scenario,
    Variant,
    build,
    close_account,
    compute_budget,
    create_ata,
    exit_pumpfun_ixs,
    fee_transfers,
    honest_variants,
    hostile_variants,
    memo,
    pump_buy,
    pump_sell,
    router,
    sol_transfer,
    tip,
    token_transfer,
    token_transfer_checked,
)

SCENARIO = Scenario()
POLICY = GuardPolicy.from_config(GuardConfig())  # effects verification on (the default)
STATIC = GuardPolicy.from_config(GuardConfig(simulate="never"))
POLICIES = {"effects": POLICY, "static": STATIC}
HONEST = honest_variants(SCENARIO)
HOSTILE = hostile_variants(SCENARIO)
ALL_TIPS = [*HELIUS_TIP_ACCOUNTS, *JITO_TIP_ACCOUNTS, *ASTRALANE_TIP_ACCOUNTS]


def check(variant: Variant, policy: GuardPolicy = POLICY) -> Verdict:
    return check_transaction(variant.tx, policy, variant.expect, variant.tables)


@pytest.mark.parametrize("mode", POLICIES)
@pytest.mark.parametrize("variant", HONEST, ids=lambda v: v.name)
def test_honest_transactions_are_accepted(variant: Variant, mode: str) -> None:
    policy = POLICIES[mode]
    verdict = check(variant, policy)
    expected = variant.reason_for(policy.verify_effects)
    if expected is None:
        assert verdict.ok, verdict.detail
        assert verdict.signatures == 1
        assert verdict.priority_fee_lamports == priority_fee_lamports(CU_PRICE, CU_LIMIT) or \
            variant.name == "exit_memo_no_tip"
    else:  # router-shaped: only the effects stage can vouch for it
        assert (verdict.ok, verdict.reason) == (False, expected), verdict.detail


@pytest.mark.parametrize("mode", POLICIES)
@pytest.mark.parametrize("variant", HOSTILE, ids=lambda v: v.name)
def test_hostile_transactions_are_refused_for_their_reason(variant: Variant, mode: str) -> None:
    policy = POLICIES[mode]
    verdict = check(variant, policy)
    expected = variant.reason_for(policy.verify_effects)
    if expected is None:  # a stranger's program or a small fee: left to the effects stage
        assert verdict.ok and verdict.needs_effects, verdict.detail
        return
    assert not verdict.ok
    assert verdict.reason == expected, verdict.detail
    assert verdict.detail


def test_factory_covers_the_required_attacks() -> None:
    assert len(HOSTILE) >= 25
    assert len({v.name for v in HOSTILE}) == len(HOSTILE)
    reasons = {v.reason for v in HOSTILE} | {v.reason_for(False) for v in HOSTILE}
    required = {"funded_account_not_ours", "funded_account_lookup_table", "exit_contains_buy",
                "dex_instruction_unknown", "wrong_mint_traded", "token_mint_to", "token_freeze",
                "duplicate_account_key", "invalid_header", "compute_budget_duplicate",
                "too_many_instructions", "lookup_table_unavailable", "fee_too_large",
                "create_account_foreign_owner", "invalid_account_index",
                "fee_payer_mismatch", "program_not_allowed", "lookup_table_program",
                "foreign_transfer", "tip_too_large", "token_transfer_foreign", "token_approve",
                "set_authority", "close_to_foreign", "priority_fee_too_high", "system_assign",
                "nonce_advance", "missing_blockhash", "tx_too_large", "extra_signer",
                "mint_not_touched", "buy_amount_mismatch", "undecodable", "token_burn",
                "wallet_not_signer", "nonce_withdraw", "nonce_authorize"}
    assert required <= reasons


def test_verdict_names_the_instruction() -> None:
    drain = next(v for v in HOSTILE if v.name == "drain_sol_transfer")
    verdict = check(drain, STATIC)
    assert verdict.instruction == 3
    assert verdict.detail.startswith("instruction 3:")


def test_policy_from_config_builds_allowlist_and_tips() -> None:
    extra_program = str(Pubkey.new_unique())
    extra_tip = str(Pubkey.new_unique())
    policy = GuardPolicy.from_config(GuardConfig(extra_programs=[extra_program],
                                                 extra_tip_accounts=[extra_tip]))
    assert Pubkey.from_string(extra_program) in policy.programs
    assert len(policy.programs) == 13
    tips = {str(k) for k in policy.tip_accounts}
    assert set(ALL_TIPS) | {extra_tip} == tips
    assert len(JITO_TIP_ACCOUNTS) == 8


def test_extra_program_makes_an_unknown_program_acceptable() -> None:
    unknown = Pubkey.new_unique()
    tx = build(SCENARIO, [*exit_pumpfun_ixs(SCENARIO), Instruction(unknown, b"", [])])
    expect = SCENARIO.exit_expect()
    assert check_transaction(tx, STATIC, expect).reason == "program_not_allowed"
    policy = GuardPolicy.from_config(GuardConfig(extra_programs=[str(unknown)],
                                                 simulate="never"))
    assert check_transaction(tx, policy, expect).ok


def test_replacing_tip_accounts_refuses_the_old_ones() -> None:
    policy = GuardPolicy.from_config(GuardConfig(tip_accounts=[], simulate="never"))
    honest = HONEST[0]
    assert check(honest, policy).reason == "foreign_transfer"
    jito = next(v for v in HONEST if v.name == "exit_pumpswap_wsol_close")
    assert check(jito, policy).ok


def test_total_priority_fee_cap() -> None:
    tx = build(SCENARIO, [*compute_budget(1_400_000, 1_000_000), pump_sell(SCENARIO)])
    expect = SCENARIO.exit_expect()
    assert check_transaction(tx, POLICY, expect).ok
    strict = dataclasses.replace(POLICY, max_priority_fee_lamports=1_000_000)
    verdict = check_transaction(tx, strict, expect)
    assert (verdict.reason, verdict.instruction) == ("priority_fee_too_high", 1)


def test_default_compute_limit_counts_toward_total_priority_fee() -> None:
    tx = build(SCENARIO, [compute_budget(price=1_000_000)[1], pump_sell(SCENARIO)])
    fee = priority_fee_lamports(1_000_000, 2 * 200_000)
    strict = dataclasses.replace(POLICY, max_priority_fee_lamports=fee - 1)
    assert check_transaction(tx, strict, SCENARIO.exit_expect()).reason == "priority_fee_too_high"


def test_max_tx_bytes_is_configurable() -> None:
    honest = HONEST[0]
    small = GuardPolicy.from_config(GuardConfig(max_tx_bytes=len(honest.tx) - 1))
    assert check(honest, small).reason == "tx_too_large"


def test_truncated_transactions_are_never_accepted() -> None:
    tx = HONEST[0].tx
    for cut in range(len(tx)):
        assert check_transaction(tx[:cut], POLICY, HONEST[0].expect).reason == "undecodable"


def test_trailing_bytes_are_refused() -> None:
    verdict = check_transaction(HONEST[0].tx + b"\x00", POLICY, HONEST[0].expect)
    assert (verdict.reason, verdict.detail) == ("undecodable", "1 trailing bytes")


def test_exit_signal_for_a_buy_expectation_is_still_checked() -> None:
    s = SCENARIO
    no_trade = build(s, [*compute_budget(), create_ata(s, s.mint), tip(s)])
    expect = s.buy_expect()
    assert check_transaction(no_trade, POLICY, expect).ok
    assert check_transaction(no_trade, POLICY, dataclasses.replace(
        expect, max_spend_lamports=0)).reason == "buy_amount_mismatch"
    assert check_transaction(HONEST[0].tx, POLICY, expect).reason == "wrong_mint_traded"


def test_associated_token_address_matches_spl() -> None:
    me, mint = SCENARIO.me, SCENARIO.mint
    for program in (TOKEN, TOKEN_2022):
        expected = spl.get_associated_token_address(me, mint, program)
        assert associated_token_address(me, mint, program) == expected


def test_own_token_moves_are_accepted() -> None:
    s = SCENARIO
    ixs = [*exit_pumpfun_ixs(s), token_transfer(s, s.ata(WSOL)),
           token_transfer_checked(s, s.ata()), close_account(s, s.me),
           sol_transfer(s.me, s.me, 5), create_ata(s, s.mint)]
    assert check_transaction(build(s, ixs), POLICY, s.exit_expect()).ok


# ---------------------------------------------------------------------------
# Property: random instruction mixes never move our SOL or tokens to a stranger


_SAFE = {SCENARIO.me, *(Pubkey.from_string(k) for k in ALL_TIPS)}
foreign_keys = st.binary(min_size=32, max_size=32).map(Pubkey).filter(lambda k: k not in _SAFE)
token_programs = st.sampled_from([TOKEN, TOKEN_2022])
tip_accounts = st.sampled_from(ALL_TIPS).map(Pubkey.from_string)

# Each vocabulary word is (instruction, harmful, tip_lamports).
Word = tuple[Instruction, bool, int]


def _harm(ix: Instruction) -> Word:
    return (ix, True, 0)


def _seed_drain(dest: Pubkey, lamports: int) -> Instruction:
    me = SCENARIO.me
    return sysp.transfer_with_seed(sysp.TransferWithSeedParams(
        from_pubkey=Pubkey.create_with_seed(me, "s", sysp.ID), from_base=me, from_seed="s",
        from_owner=sysp.ID, lamports=lamports, to_pubkey=dest))


def _approve(program: Pubkey, delegate: Pubkey) -> Instruction:
    return spl.approve(sm.ApproveParams(program_id=program, source=SCENARIO.ata(program=program),
                                        delegate=delegate, owner=SCENARIO.me, amount=1,
                                        signers=[]))


def _set_owner(program: Pubkey, new: Pubkey) -> Instruction:
    return spl.set_authority(sm.SetAuthorityParams(
        program_id=program, account=SCENARIO.ata(program=program),
        authority=AuthorityType.ACCOUNT_OWNER, current_authority=SCENARIO.me,
        new_authority=new, signers=[]))


lamports = st.integers(min_value=1, max_value=10**12)
harmful_words = st.one_of(
    st.builds(lambda k, n: _harm(sol_transfer(SCENARIO.me, k, n)), foreign_keys, lamports),
    st.builds(lambda k, n: _harm(_seed_drain(k, n)), foreign_keys, lamports),
    st.builds(lambda k, p: _harm(token_transfer(SCENARIO, k, p)), foreign_keys, token_programs),
    st.builds(lambda k, p: _harm(token_transfer_checked(SCENARIO, k, p)), foreign_keys,
              token_programs),
    st.builds(lambda k, p: _harm(close_account(SCENARIO, k, p)), foreign_keys, token_programs),
    st.builds(lambda k, p: _harm(_approve(p, k)), foreign_keys, token_programs),
    st.builds(lambda k, p: _harm(_set_owner(p, k)), foreign_keys, token_programs),
)
benign_words = st.one_of(
    st.builds(lambda a, n: (tip(SCENARIO, n, a), False, n), tip_accounts,
              st.integers(min_value=0, max_value=MAX_TIP // 2)),
    st.builds(lambda t: (memo(t), False, 0), st.text(max_size=40)),
    st.builds(lambda p: (token_transfer(SCENARIO, SCENARIO.ata(program=p), p), False, 0),
              token_programs),
    st.builds(lambda p: (close_account(SCENARIO, SCENARIO.me, p), False, 0), token_programs),
    st.just((create_ata(SCENARIO, SCENARIO.mint), False, 0)),
    st.just((sol_transfer(SCENARIO.me, SCENARIO.me, 1), False, 0)),
)


def _assemble(words: list[Word]) -> tuple[bytes, bool, int]:
    ixs = [*compute_budget(), pump_sell(SCENARIO), *(w[0] for w in words)]
    tx = build(SCENARIO, ixs)
    return tx, any(w[1] for w in words), sum(w[2] for w in words)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(harmful_words, benign_words), min_size=1, max_size=6))
def test_no_mix_moving_our_funds_to_a_stranger_is_accepted(words: list[Word]) -> None:
    tx, harmful, tips = _assemble(words)
    verdict = check_transaction(tx, STATIC, SCENARIO.exit_expect())
    if harmful or tips > MAX_TIP:
        assert not verdict.ok
    else:
        assume(len(tx) <= POLICY.max_tx_bytes)
        assert verdict.ok, verdict.detail


@settings(max_examples=150, deadline=None)
@given(st.lists(benign_words, min_size=0, max_size=5), harmful_words,
       st.lists(benign_words, min_size=0, max_size=5))
def test_one_drain_hidden_among_benign_instructions_is_refused(
        before: list[Word], drain: Word, after: list[Word]) -> None:
    tx, _, _ = _assemble([*before, drain, *after])
    verdict = check_transaction(tx, STATIC, SCENARIO.exit_expect())
    assert not verdict.ok
    effects = check_transaction(tx, POLICY, SCENARIO.exit_expect())
    # With effects verification on, only SOL to a stranger may pass, as a bounded fee.
    if effects.ok:
        assert 0 < effects.fee_lamports <= FEE_ALLOWANCE and effects.needs_effects


def test_tip_sum_is_checked_across_tip_accounts() -> None:
    s = SCENARIO
    tips = [tip(s, MAX_TIP // 2, Pubkey.from_string(a)) for a in ALL_TIPS[:3]]
    verdict = check_transaction(build(s, [*exit_pumpfun_ixs(s)[:3], *tips]), POLICY,
                                s.exit_expect())
    assert (verdict.reason, verdict.instruction) == ("tip_too_large", 5)
    ok = build(s, [*exit_pumpfun_ixs(s)[:3], tip(s, MAX_TIP, HELIUS_TIP)])
    assert check_transaction(ok, POLICY, s.exit_expect()).ok


# ---------------------------------------------------------------------------
# What an accepted verdict carries for the effects stage (issue 9, static part)


def _named(name: str) -> Variant:
    return next(v for v in [*HONEST, *HOSTILE] if v.name == name)


def test_honest_verdict_carries_tips_priority_fee_and_signatures() -> None:
    verdict = check(_named("exit_pumpfun_v0"))
    assert verdict.ok and not verdict.needs_effects
    assert (verdict.tips_lamports, verdict.priority_fee_lamports, verdict.signatures) == (
        TIP_LAMPORTS, priority_fee_lamports(CU_PRICE, CU_LIMIT), 1)
    assert (verdict.unknown_programs, verdict.fee_lamports, verdict.fee_usd1) == ((), 0, 0)


def test_router_programs_are_recorded_once_in_order() -> None:
    s = SCENARIO
    other = Pubkey.new_unique()
    tx = build(s, [*compute_budget(), router(s, pump_sell(s)), Instruction(other, b"", []),
                   router(s, memo("x")), tip(s)])
    verdict = check_transaction(tx, POLICY, s.exit_expect())
    assert verdict.ok and verdict.needs_effects
    assert verdict.unknown_programs == (str(ROUTER), str(other))
    assert check_transaction(tx, STATIC, s.exit_expect()).reason == "program_not_allowed"


def test_routing_fees_are_summed_by_asset() -> None:
    sol = check(_named("exit_direct_swap_fee_transfers"))
    assert (sol.ok, sol.fee_lamports, sol.fee_usd1) == (True, ROUTING_FEE, 0)
    wsol = check(_named("exit_wsol_fee_token_transfer"))
    assert (wsol.ok, wsol.fee_lamports) == (True, ROUTING_FEE)  # half WSOL, half SOL
    usd1 = check(_named("exit_usd1_pair_usd1_fee"))
    assert (usd1.ok, usd1.fee_lamports, usd1.fee_usd1) == (True, 0, FEE_ALLOWANCE_USD1)
    assert sol.needs_effects and wsol.needs_effects and usd1.needs_effects


def test_rent_of_a_strangers_token_account_counts_as_a_fee() -> None:
    vault_ata = check(_named("exit_wsol_fee_into_a_vault_account_we_create"))
    assert vault_ata.ok and vault_ata.fee_lamports == ROUTING_FEE // 2 + rent_exempt_lamports(165)
    s = SCENARIO
    t22 = build(s, [*exit_pumpfun_ixs(s), create_ata(s, s.mint, TOKEN_2022, owner=s.evil)])
    assert check_transaction(t22, POLICY, s.exit_expect()).fee_lamports == \
        rent_exempt_lamports(512)  # a Token-2022 account's size depends on the mint
    assert check_transaction(t22, STATIC, s.exit_expect()).reason == "ata_foreign_owner"


def test_fee_allowance_bounds_fees_exactly() -> None:
    s = SCENARIO
    tx = build(s, [*compute_budget(), pump_sell(s), *fee_transfers(s, FEE_ALLOWANCE), tip(s)])
    assert check_transaction(tx, POLICY, s.exit_expect()).fee_lamports == FEE_ALLOWANCE
    tight = dataclasses.replace(s.exit_expect(), fee_allowance_lamports=FEE_ALLOWANCE - 1)
    verdict = check_transaction(tx, POLICY, tight)
    assert (verdict.reason, verdict.instruction) == ("fee_too_large", 6)  # the last share
    none = dataclasses.replace(s.exit_expect(), fee_allowance_lamports=0)
    assert check_transaction(tx, POLICY, none).reason == "fee_too_large"


def test_lookup_table_keys_are_checked_only_with_the_tables() -> None:
    needed = _named("exit_mint_token_program_tip_in_lookup_table")
    assert check(needed).ok
    unresolved = check_transaction(needed.tx, POLICY, needed.expect)
    assert unresolved.reason == "mint_not_touched"


def test_the_native_mints_token2022_derivation_is_not_our_wsol() -> None:
    """Static only: SOL sent there can never be recovered (issue 10, class 5)."""
    variant = _named("buy_wrap_into_token2022_wsol_derivation")
    assert check(variant, STATIC).reason == "foreign_transfer"
    honest = _named("buy_pumpswap_wsol_wrap")
    assert check(honest, STATIC).ok


def test_our_own_volume_accumulator_may_be_initialised_not_someone_elses() -> None:
    s = SCENARIO
    uva = Pubkey.new_unique()

    def init_for(user: Pubkey) -> Instruction:
        name = b"global:init_user_volume_accumulator"
        return Instruction(PUMP_FUN, hashlib.sha256(name).digest()[:8], [
            AccountMeta(s.me, True, True), AccountMeta(user, False, False),
            AccountMeta(uva, False, True), AccountMeta(sysp.ID, False, False)])

    ours = build(s, [*compute_budget(), create_ata(s, s.mint, TOKEN_2022), init_for(s.me),
                     pump_buy(s, BUY_LAMPORTS, TOKEN_2022), tip(s)])
    assert check_transaction(ours, POLICY, s.buy_expect()).ok
    theirs = build(s, [*compute_budget(), create_ata(s, s.mint, TOKEN_2022), init_for(s.evil),
                       pump_buy(s, BUY_LAMPORTS, TOKEN_2022), tip(s)])
    verdict = check_transaction(theirs, POLICY, s.buy_expect())
    assert (verdict.reason, verdict.instruction) == ("dex_instruction_unknown", 3)


def test_what_only_effects_can_vouch_for_is_flagged() -> None:
    """An exit converting SOL to USD1 passes only with effects verification on, and says so:
    a caller that simulates only what the static stage cannot vouch for must simulate it."""
    conversion = _named("exit_usd1_output_for_sol_pair")
    verdict = check(conversion)
    assert verdict.ok and verdict.effects_only == ("quote_conversion",)
    assert verdict.needs_effects
    assert check(conversion, STATIC).reason == "trade_unverifiable"
    plain = check(_named("exit_pumpfun_v0"))
    assert plain.effects_only == () and not plain.needs_effects
    usd1_buy = check(_named("buy_usd1_pair_paid_in_usd1"))
    assert usd1_buy.ok and usd1_buy.effects_only == ("stable_coin_buy",)


def test_resolved_keys_follow_the_runtime_order_and_writability() -> None:
    """Static keys, then each table's writable entries, then its read-only ones; the
    writable flags computed once from the header agree with ``static_writable``."""
    variant = _named("router_exit_with_lookup_table")
    message = VersionedTransaction.from_bytes(variant.tx).message
    assert variant.tables is not None
    resolved = resolve_keys(message, variant.tables)
    n = len(message.account_keys)
    assert resolved.keys[:n] == tuple(message.account_keys)
    assert list(resolved.writable[:n]) == [static_writable(message.header, i, n)
                                           for i in range(n)]
    (lookup,) = message.address_table_lookups
    table = variant.tables[lookup.account_key]
    loaded = [table[i] for i in lookup.writable_indexes] + [
        table[i] for i in lookup.readonly_indexes]
    assert list(resolved.keys[n:]) == loaded
    assert FEE_VAULT in resolved.writable_keys()
