"""What a signal promises, in the guard's terms: pure functions from a signal, the config
and what the session knows to the ``Expectation`` the static rules check and the
``Promise`` the simulated effects must keep.

An exit's value is what the server reports for the position: the entry cost of the tokens
still held (``entry_quote_units`` from ``position_opened``, pro rata to the signal's
``position_tokens`` once a ladder level sold part of them) plus the signal's
``profit_units``, pro rata again for a partial sell (``sell_tokens``).
The guard trusts that valuation: it bounds what a transaction may cost against it, by
the slippage the attempt allows and the routing-fee allowance.
"""

from __future__ import annotations

from dataclasses import replace

from solders.pubkey import Pubkey

from lasersell_bot import protocol
from lasersell_bot.config import Config, GuardConfig
from lasersell_bot.guard import USD1_MINT, Expectation, Verdict
from lasersell_bot.guard.effects import (
    BPS,
    ExitTerms,
    Promise,
    buy_promise,
    expected_proceeds,
    routing_fee_allowance,
)
from lasersell_bot.guard.policy import USD1_ID, WSOL_ID
from lasersell_bot.session import Position

SIGNATURE_FEE_LAMPORTS = 5000
# Rent for a new token account plus signature fees, allowed on top of a mirror buy.
MIRROR_FEE_ALLOWANCE_LAMPORTS = 2_100_000


def sold_tokens(signal: protocol.ExitSignalWithTx) -> int:
    return signal.sell_tokens if signal.sell_tokens is not None else signal.position_tokens


def quote_mint(signal: protocol.ExitSignalWithTx) -> Pubkey:
    """USD1 when the market context says the pool is quoted in USD1; SOL otherwise."""
    context = signal.market_context
    if context is None:
        return WSOL_ID
    for sibling in (context.meteora_dbc, context.raydium_launchpad, context.raydium_cpmm):
        if sibling is not None and sibling.quote_mint == USD1_MINT:
            return USD1_ID
    return WSOL_ID


def entry_basis(position: Position, position_tokens: int) -> int:
    """The entry cost of the tokens still held: ``entry_quote_units`` paid for the tokens
    of ``position_opened``, pro rata once a ladder level has sold part of them."""
    opened = position.opened
    if opened.tokens <= 0 or position_tokens >= opened.tokens:
        return opened.entry_quote_units
    return opened.entry_quote_units * max(position_tokens, 0) // opened.tokens


def expected_quote(signal: protocol.ExitSignalWithTx, position: Position | None) -> int | None:
    """What the signal says the tokens sold are worth; None for an unknown position."""
    if position is None:
        return None
    return expected_proceeds(entry_basis(position, signal.position_tokens), signal.profit_units,
                             signal.position_tokens, sold_tokens(signal))


def exit_expectation(signal: protocol.ExitSignalWithTx, guard: GuardConfig,
                     position: Position | None) -> Expectation:
    """The static rules' expectation; with effects verification on, routing fees to
    strangers may pass up to the allowance on the signal's value."""
    value = expected_quote(signal, position)
    if guard.simulate == "never" or value is None:
        return Expectation.exit(signal.wallet_pubkey, signal.mint)
    if quote_mint(signal) == USD1_ID:
        return Expectation.exit(signal.wallet_pubkey, signal.mint, fee_allowance_usd1=(
            routing_fee_allowance(value, guard.fee_allowance_bps, 0)))
    return Expectation.exit(signal.wallet_pubkey, signal.mint, fee_allowance_lamports=(
        routing_fee_allowance(value, guard.fee_allowance_bps, guard.fee_allowance_min_lamports)))


def costs_lamports(static: Verdict, tip_lamports: int) -> int:
    """Tip, priority and signature fees. A tip paid inside a program we cannot read is
    allowed up to the tip we asked the server for (``tip_lamports``)."""
    tips = static.tips_lamports
    if static.unknown_programs:
        tips = max(tips, tip_lamports)
    return tips + static.priority_fee_lamports + SIGNATURE_FEE_LAMPORTS * static.signatures


def exit_promise(signal: protocol.ExitSignalWithTx, cfg: Config, position: Position | None,
                 slippage_bps: int, static: Verdict) -> Promise | None:
    """The bounds on an exit's effects; None when the position (its entry) is unknown."""
    value = expected_quote(signal, position)
    if value is None:
        return None
    promise = ExitTerms(
        wallet=Pubkey.from_string(signal.wallet_pubkey), mint=Pubkey.from_string(signal.mint),
        quote_mint=quote_mint(signal), sell_tokens=sold_tokens(signal), expected_quote=value,
        slippage_bps=slippage_bps, fee_bps=cfg.guard.fee_allowance_bps,
        min_fee_lamports=cfg.guard.fee_allowance_min_lamports,
        costs_lamports=costs_lamports(static, cfg.send.tip_lamports)).promise()
    return replace(promise, trusted_programs=trusted_programs(cfg.guard))


def trusted_programs(guard: GuardConfig) -> frozenset[Pubkey]:
    """Programs the user trusts (``guard.extra_programs``) with accounts that name them."""
    return frozenset(Pubkey.from_string(p) for p in guard.extra_programs)


def with_slippage(agreed: int, signal_bps: int, cfg: Config) -> int:
    """The agreed buy amount plus its slippage bound (capped at mirror.buy_slippage_bps)."""
    bps = min(signal_bps, cfg.mirror.buy_slippage_bps)
    return agreed + agreed * bps // BPS


def buy_fee_allowance(signal: protocol.MirrorBuySignal, guard: GuardConfig) -> int:
    if guard.simulate == "never":
        return 0
    return routing_fee_allowance(signal.amount_quote_units, guard.fee_allowance_bps,
                                 guard.fee_allowance_min_lamports)


def buy_expectation(signal: protocol.MirrorBuySignal, cfg: Config, agreed: int) -> Expectation:
    """A SOL mirror buy's static expectation: the visible outlay may be the agreed amount
    with slippage, the tip cap, rent and fees, and the routing-fee allowance."""
    fee = buy_fee_allowance(signal, cfg.guard)
    most = (with_slippage(agreed, signal.slippage_bps, cfg) + cfg.guard.max_tip_lamports
            + MIRROR_FEE_ALLOWANCE_LAMPORTS + fee)
    return Expectation.mirror_buy(signal.user_wallet, signal.mint, most,
                                  fee_allowance_lamports=fee)


def mirror_promise(signal: protocol.MirrorBuySignal, cfg: Config, static: Verdict) -> Promise:
    """The bounds on a SOL mirror buy's effects."""
    promise = buy_promise(
        Pubkey.from_string(signal.user_wallet), Pubkey.from_string(signal.mint),
        with_slippage(signal.amount_quote_units, signal.slippage_bps, cfg),
        buy_fee_allowance(signal, cfg.guard),
        costs_lamports(static, cfg.send.tip_lamports) + MIRROR_FEE_ALLOWANCE_LAMPORTS)
    return replace(promise, trusted_programs=trusted_programs(cfg.guard))
