"""The effects verdict (guard/effects.py) over hand-built account states: no sockets."""

from __future__ import annotations

from dataclasses import replace

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from lasersell_bot.guard.effects import (
    AccountState,
    ExitTerms,
    Promise,
    buy_promise,
    expected_proceeds,
    judge,
    routing_fee_allowance,
    token_account,
)
from lasersell_bot.guard.policy import SYSTEM_ID, TOKEN_2022_ID, TOKEN_ID, USD1_ID, WSOL_ID

ME = Keypair().pubkey()
THIEF = Keypair().pubkey()
MINT = Keypair().pubkey()
OTHER_MINT = Keypair().pubkey()
MY_ATA = Keypair().pubkey()
MY_WSOL = Keypair().pubkey()
MY_OTHER = Keypair().pubkey()
POOL = Keypair().pubkey()
RENT = 2_039_280
SOL = 1_000_000_000


def token_data(mint: Pubkey, owner: Pubkey, amount: int, *, delegate: Pubkey | None = None,
               close_authority: Pubkey | None = None, native: bool = False) -> bytes:
    def coption(key: Pubkey | None) -> bytes:
        return b"\x00" * 36 if key is None else b"\x01\x00\x00\x00" + bytes(key)
    is_native = (b"\x01\x00\x00\x00" + RENT.to_bytes(8, "little")) if native else b"\x00" * 12
    data = (bytes(mint) + bytes(owner) + amount.to_bytes(8, "little") + coption(delegate)
            + b"\x01" + is_native + (0).to_bytes(8, "little") + coption(close_authority))
    assert len(data) == 165
    return data


def wallet(lamports: int) -> AccountState:
    return AccountState(lamports, SYSTEM_ID, b"")


def tokens(mint: Pubkey, amount: int, owner: Pubkey = ME, *, lamports: int = RENT,
           program: Pubkey = TOKEN_ID, **extra: Pubkey | None) -> AccountState:
    return AccountState(lamports, program, token_data(mint, owner, amount, **extra))  # type: ignore[arg-type]


EXPECTED = 2 * SOL
COSTS = 1_000_000 + 50_000 + 5000
TERMS = ExitTerms(wallet=ME, mint=MINT, quote_mint=WSOL_ID, sell_tokens=1_000_000,
                  expected_quote=EXPECTED, slippage_bps=500, fee_bps=200,
                  min_fee_lamports=10_000_000, costs_lamports=COSTS)
EXIT = TERMS.promise()
FEE = 40_000_000  # 2 % of 2 SOL


def honest_exit() -> tuple[list[Pubkey], list[AccountState | None], list[AccountState | None]]:
    """Sell all 1e6 tokens for 1.98 SOL gross: 2 % fee and the costs come out of it."""
    received = 1_980_000_000 - FEE - COSTS
    addresses = [ME, MY_ATA, POOL]
    pre = [wallet(5 * SOL), tokens(MINT, 1_000_000), AccountState(100 * SOL, SYSTEM_ID, b"")]
    post = [wallet(5 * SOL + received), tokens(MINT, 0),
            AccountState(100 * SOL - 1_980_000_000, SYSTEM_ID, b"")]
    return addresses, pre, post


def test_an_honest_router_exit_passes_with_its_deltas() -> None:
    verdict = judge(EXIT, *honest_exit())
    assert verdict.ok, verdict
    assert verdict.deltas is not None
    assert (verdict.deltas.mint, verdict.deltas.sol) == (-1_000_000, 1_980_000_000 - FEE - COSTS)


def test_proceeds_paid_to_another_account_are_refused() -> None:
    addresses, pre, post = honest_exit()
    post[0] = wallet(5 * SOL - COSTS)  # our tokens left, the SOL went elsewhere
    assert judge(EXIT, addresses, pre, post).reason == "effects_proceeds_too_low"


def test_wsol_route_closed_back_to_us_counts_as_sol() -> None:
    addresses, pre, post = honest_exit()
    addresses.append(MY_WSOL)
    pre.append(None)
    received = 1_980_000_000 - FEE - COSTS
    post[0] = wallet(5 * SOL - RENT)  # rent of the WSOL account we opened (still ours)
    post.append(tokens(WSOL_ID, received, lamports=received + RENT, native=True))
    assert judge(EXIT, addresses, pre, post).ok


def test_output_wsol_account_owned_by_someone_else_is_refused() -> None:
    """The DEX pays the output account it is given; if that is the thief's, we get nothing."""
    addresses, pre, post = honest_exit()
    thief_wsol = Keypair().pubkey()
    addresses.append(thief_wsol)
    pre.append(tokens(WSOL_ID, 0, THIEF, native=True))
    post[0] = wallet(5 * SOL - COSTS)
    post.append(tokens(WSOL_ID, 1_980_000_000, THIEF, lamports=RENT + 1_980_000_000,
                       native=True))
    assert judge(EXIT, addresses, pre, post).reason == "effects_proceeds_too_low"


@pytest.mark.parametrize(("change", "reason"), [
    ({"delegate": THIEF}, "effects_delegate_added"),
    ({"close_authority": THIEF}, "effects_close_authority_added"),
])
def test_authorities_added_to_our_token_account_are_refused(change: dict[str, Pubkey],
                                                            reason: str) -> None:
    addresses, pre, post = honest_exit()
    post[1] = tokens(MINT, 0, **change)
    assert judge(EXIT, addresses, pre, post).reason == reason


def test_an_existing_delegate_that_stays_is_not_a_new_one() -> None:
    addresses, pre, post = honest_exit()
    pre[1] = tokens(MINT, 1_000_000, delegate=POOL)
    post[1] = tokens(MINT, 0, delegate=POOL)
    assert judge(EXIT, addresses, pre, post).ok


def test_owner_change_of_our_token_account_is_refused() -> None:
    addresses, pre, post = honest_exit()
    post[1] = tokens(MINT, 0, THIEF)
    assert judge(EXIT, addresses, pre, post).reason == "effects_owner_changed"


def test_token_account_handed_to_another_program_is_an_owner_change() -> None:
    addresses, pre, post = honest_exit()
    post[1] = AccountState(RENT, THIEF, bytes(165))
    assert judge(EXIT, addresses, pre, post).reason == "effects_owner_changed"


def test_a_second_holding_drained_is_refused() -> None:
    addresses, pre, post = honest_exit()
    addresses.append(MY_OTHER)
    pre.append(tokens(OTHER_MINT, 500, program=TOKEN_2022_ID))
    post.append(tokens(OTHER_MINT, 0, program=TOKEN_2022_ID))
    verdict = judge(EXIT, addresses, pre, post)
    assert verdict.reason == "effects_token_drained"
    assert str(OTHER_MINT) in verdict.detail


def test_sol_drained_beyond_every_fee_is_named_a_drain() -> None:
    addresses, pre, post = honest_exit()
    post[0] = wallet(5 * SOL - 3 * SOL)
    assert judge(EXIT, addresses, pre, post).reason == "effects_sol_drained"


@pytest.mark.parametrize(("after", "reason"), [
    (1_000_000, "effects_sells_nothing"),
    (2_000_000, "effects_sells_nothing"),
])
def test_an_exit_must_sell_something(after: int, reason: str) -> None:
    addresses, pre, post = honest_exit()
    post[1] = tokens(MINT, after)
    assert judge(EXIT, addresses, pre, post).reason == reason


def test_selling_more_than_the_signal_allows_is_refused() -> None:
    addresses, pre, post = honest_exit()
    promise = replace(EXIT, max_sell_tokens=400_000)
    assert judge(promise, addresses, pre, post).reason == "effects_sells_too_much"


def test_wallet_assigned_to_a_program_is_refused() -> None:
    addresses, pre, post = honest_exit()
    post[0] = AccountState(5 * SOL, THIEF, b"")
    assert judge(EXIT, addresses, pre, post).reason == "effects_wallet_changed"
    post[0] = AccountState(5 * SOL, SYSTEM_ID, b"\x00" * 8)
    assert judge(EXIT, addresses, pre, post).reason == "effects_wallet_changed"


def test_an_account_that_named_us_must_still_name_us() -> None:
    """A mint (or stake account, ...) with our wallet as its authority, handed over."""
    addresses, pre, post = honest_exit()
    our_mint = Keypair().pubkey()
    addresses.append(our_mint)
    pre.append(AccountState(RENT, TOKEN_ID, b"\x01\x00\x00\x00" + bytes(ME) + bytes(46)))
    post.append(AccountState(RENT, TOKEN_ID, b"\x01\x00\x00\x00" + bytes(THIEF) + bytes(46)))
    assert judge(EXIT, addresses, pre, post).reason == "effects_authority_removed"


def test_lamports_moved_into_an_account_that_mentions_us_are_not_ours() -> None:
    """An attacker's account with our key in its data does not make its lamports ours."""
    addresses, pre, post = honest_exit()
    decoy = Keypair().pubkey()
    addresses.append(decoy)
    pre.append(AccountState(RENT, THIEF, bytes(ME)))
    post.append(AccountState(RENT + 1_900_000_000, THIEF, bytes(ME)))
    post[0] = wallet(5 * SOL - COSTS)
    assert judge(EXIT, addresses, pre, post).reason == "effects_proceeds_too_low"


def test_the_wallet_must_be_among_the_simulated_accounts() -> None:
    addresses, pre, post = honest_exit()
    assert judge(EXIT, addresses[1:], pre[1:], post[1:]).reason == "effects_incomplete"
    assert judge(EXIT, addresses, pre, post[:-1]).reason == "effects_incomplete"


def test_a_partial_sell_is_valued_pro_rata() -> None:
    assert expected_proceeds(1_000, 500, 100, 25) == 375
    assert expected_proceeds(1_000, -2_000, 100, 100) == 0
    assert expected_proceeds(1_000, 0, 100, 200) == 1_000


def test_the_fee_allowance_has_a_minimum_for_sol_only() -> None:
    assert routing_fee_allowance(2 * SOL, 200, 10_000_000) == 40_000_000
    assert routing_fee_allowance(1_000, 200, 10_000_000) == 10_000_000
    assert routing_fee_allowance(101, 200, 0) == 3  # rounded up
    usd1 = replace(TERMS, quote_mint=USD1_ID, expected_quote=1_000_000).promise()
    assert usd1.min_quote_gain == 1_000_000 * 95 // 100 - 20_000
    assert usd1.fee_budget == COSTS


def test_a_dust_exit_may_cost_the_minimum_fee() -> None:
    dust = replace(TERMS, expected_quote=1_000_000).promise()
    assert dust.min_quote_gain == 950_000 - 10_000_000 - COSTS < 0
    addresses, pre, post = honest_exit()
    post[0] = wallet(5 * SOL + 990_000 - 10_000_000 - COSTS)
    assert judge(dust, addresses, pre, post).ok
    post[0] = wallet(5 * SOL - 10_000_000 - COSTS - 1)
    assert judge(dust, addresses, pre, post).reason == "effects_sol_drained"


def test_a_usd1_exit_is_paid_in_usd1_and_may_cost_only_fees_in_sol() -> None:
    promise = replace(TERMS, quote_mint=USD1_ID, expected_quote=10_000_000).promise()
    my_usd1 = Keypair().pubkey()
    addresses = [ME, MY_ATA, my_usd1]
    pre = [wallet(SOL), tokens(MINT, 1_000_000), tokens(USD1_ID, 0)]
    post = [wallet(SOL - COSTS), tokens(MINT, 0), tokens(USD1_ID, 9_700_000)]
    assert judge(promise, addresses, pre, post).ok
    post[2] = tokens(USD1_ID, 9_000_000)
    assert judge(promise, addresses, pre, post).reason == "effects_proceeds_too_low"
    post[2] = tokens(USD1_ID, 9_700_000)
    post[0] = wallet(SOL - COSTS - 1)
    assert judge(promise, addresses, pre, post).reason == "effects_sol_drained"


BUY = buy_promise(ME, MINT, max_spend_lamports=SOL + SOL // 4, fee_allowance=20_000_000,
                  costs_lamports=COSTS + 2_100_000)


def test_an_honest_buy_passes_and_overspending_is_refused() -> None:
    addresses = [ME, MY_ATA, POOL]
    pre: list[AccountState | None] = [wallet(5 * SOL), None, AccountState(SOL, SYSTEM_ID, b"")]
    post: list[AccountState | None] = [wallet(4 * SOL - 20_000_000 - COSTS - RENT),
                                       tokens(MINT, 777), AccountState(2 * SOL, SYSTEM_ID, b"")]
    assert judge(BUY, addresses, pre, post).ok
    post[0] = wallet(2 * SOL)
    assert judge(BUY, addresses, pre, post).reason == "effects_spend_too_high"


def test_a_buy_whose_tokens_go_elsewhere_is_refused() -> None:
    addresses = [ME, MY_ATA]
    pre: list[AccountState | None] = [wallet(5 * SOL), None]
    post: list[AccountState | None] = [wallet(4 * SOL), tokens(MINT, 777, THIEF)]
    assert judge(BUY, addresses, pre, post).reason == "effects_buy_receives_nothing"


def test_token_account_parsing_rejects_what_is_not_an_account() -> None:
    assert token_account(tokens(MINT, 5)) is not None
    assert token_account(AccountState(RENT, TOKEN_ID, bytes(82))) is None  # a mint
    assert token_account(AccountState(RENT, TOKEN_ID, bytes(165))) is None  # uninitialised
    extended_mint = bytes(165) + b"\x01" + bytes(10)
    assert token_account(AccountState(RENT, TOKEN_2022_ID, extended_mint)) is None
    extended = token_data(MINT, ME, 9) + b"\x02" + bytes(10)
    parsed = token_account(AccountState(RENT, TOKEN_2022_ID, extended))
    assert parsed is not None and parsed.amount == 9
    assert token_account(AccountState(RENT, THIEF, token_data(MINT, ME, 9))) is None


def test_promise_defaults_are_strict() -> None:
    bare = Promise(ME, "exit", MINT)
    addresses, pre, post = honest_exit()
    assert judge(bare, addresses, pre, post).reason == "effects_sells_too_much"


def test_a_payout_in_another_quote_asset_cannot_be_valued() -> None:
    """A SOL position paid out in USD1: no price to compare with, so refused, and named."""
    addresses, pre, post = honest_exit()
    my_usd1 = Keypair().pubkey()
    addresses.append(my_usd1)
    pre.append(None)
    post.append(tokens(USD1_ID, 300_000_000))
    post[0] = wallet(5 * SOL - RENT - COSTS)
    verdict = judge(EXIT, addresses, pre, post)
    assert verdict.reason == "effects_quote_unvalued"
    assert str(USD1_ID) in verdict.detail


# ---------------------------------------------------------------- adversarial review cases


def test_an_account_handed_to_us_keeps_none_of_its_old_owners_authorities() -> None:
    """A WSOL account the thief set up (delegate and close authority: the thief) is handed
    to us in the transaction and takes the proceeds: the thief could still close it."""
    addresses, pre, post = honest_exit()
    handed = Keypair().pubkey()
    addresses.append(handed)
    pre.append(tokens(WSOL_ID, 0, POOL, delegate=THIEF, close_authority=THIEF, native=True))
    post[0] = wallet(5 * SOL - COSTS)
    post.append(tokens(WSOL_ID, 1_900_000_000, ME, lamports=RENT + 1_900_000_000,
                       delegate=THIEF, close_authority=THIEF, native=True))
    assert judge(EXIT, addresses, pre, post).reason == "effects_delegate_added"


def test_a_larger_delegated_amount_on_an_existing_delegate_is_refused() -> None:
    addresses, pre, post = honest_exit()
    data = bytearray(token_data(MINT, ME, 1_000_000, delegate=THIEF))
    pre[1] = AccountState(RENT, TOKEN_ID, bytes(data))
    data[64:72] = (0).to_bytes(8, "little")
    data[121:129] = (2**64 - 1).to_bytes(8, "little")
    post[1] = AccountState(RENT, TOKEN_ID, bytes(data))
    verdict = judge(EXIT, addresses, pre, post)
    assert verdict.reason == "effects_delegate_added"
    assert "could move" in verdict.detail


def test_a_multisig_cannot_pass_as_our_token_account() -> None:
    """355 bytes whose 'owner' bytes are our key and byte 165 is 2: a multisig, never a
    token account, so the lamports put in it are lost, not ours."""
    addresses, pre, post = honest_exit()
    fake = bytearray(355)
    fake[32:64] = bytes(ME)
    fake[108] = 1
    fake[165] = 2
    sink = Keypair().pubkey()
    addresses.append(sink)
    pre.append(None)
    post.append(AccountState(4 * SOL, TOKEN_ID, bytes(fake)))
    post[0] = wallet(5 * SOL + 1_980_000_000 - FEE - COSTS - 4 * SOL)
    assert token_account(post[-1]) is None
    assert token_account(AccountState(RENT, TOKEN_2022_ID, bytes(fake))) is None
    assert judge(EXIT, addresses, pre, post).reason == "effects_sol_drained"


def test_value_moved_out_of_a_program_record_naming_us_is_refused() -> None:
    """A lending or perps user record (not a token or DEX account) that names our wallet
    changes: a program we cannot read may be withdrawing value we control."""
    addresses, pre, post = honest_exit()
    record = Keypair().pubkey()
    addresses.append(record)
    pre.append(AccountState(RENT, THIEF, bytes(8) + bytes(ME) + (50_000).to_bytes(8, "little")))
    post.append(AccountState(RENT, THIEF, bytes(8) + bytes(ME) + (0).to_bytes(8, "little")))
    assert judge(EXIT, addresses, pre, post).reason == "effects_foreign_state_changed"
    trusted = replace(EXIT, trusted_programs=frozenset({THIEF}))
    assert judge(trusted, addresses, pre, post).ok  # guard.extra_programs trusts it


def test_selling_a_coin_we_created_does_not_count_the_curve_as_ours() -> None:
    """A pump.fun curve names its coin's creator: paying out of it is not our SOL loss."""
    from lasersell_bot.guard.policy import PUMP_FUN_ID

    addresses, pre, post = honest_exit()
    curve_data = bytes(49) + bytes(ME) + bytes(20)
    pre[2] = AccountState(100 * SOL, PUMP_FUN_ID, curve_data)
    post[2] = AccountState(100 * SOL - 1_980_000_000, PUMP_FUN_ID, curve_data)
    assert judge(EXIT, addresses, pre, post).ok


def test_a_newly_frozen_account_of_ours_is_refused() -> None:
    addresses, pre, post = honest_exit()
    pre[1] = tokens(MINT, 1_000_000)
    frozen = bytearray(token_data(MINT, ME, 400_000))
    frozen[108] = 2
    post[1] = AccountState(RENT, TOKEN_ID, bytes(frozen))
    partial = replace(EXIT, max_sell_tokens=600_000)
    assert judge(partial, addresses, pre, post).reason == "effects_frozen"
