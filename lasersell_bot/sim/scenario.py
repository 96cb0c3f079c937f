"""Simulated positions and the exit-strategy engine of the simulator stream server.

Everything here is pure or touches only a ``SimPosition``: no sockets, no clocks
(times are arguments). ``stream_server`` moves the resulting messages on the wire.

Engine semantics (all percentages are percent of the cost basis of the tokens
still held; ``basis = entry_quote_units * tokens / initial_tokens``):

* ``stop_loss``      profit <= -stop_loss_pct (checked first).
* ``tp``             next ladder level reached (profit >= level.profit_pct, or, when
                     the level has its own trailing_stop_pct, the peak reached the
                     level and profit fell trailing_stop_pct points from the peak);
                     ``sell_tokens`` = sell_pct of the *remaining* tokens. A level that
                     fires as soon as the previous level's sell lands is ``chained_tp``.
* ``target_profit``  profit >= target_profit_pct (only without a ladder).
* ``trailing_stop``  peak profit > 0 and profit <= peak - trailing_stop_pct.
* ``breakeven``      peak profit >= breakeven_trail_pct and profit <= 0.
* ``graduation``     sell_on_graduation and the token graduated.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from lasersell_bot.protocol import (
    BalanceUpdate,
    ExitSignalWithTx,
    LiquiditySnapshot,
    MarketContext,
    MeteoraDammV2Context,
    MeteoraDbcContext,
    PnlUpdate,
    PositionClosed,
    PositionOpened,
    PumpFunContext,
    PumpSwapContext,
    RaydiumCpmmContext,
    RaydiumLaunchpadContext,
    SlippageBand,
    Strategy,
    TakeProfitLevel,
    TradeTick,
    strategy_has_exit,
)

TOKEN_PROGRAM: Final = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
ATA_PROGRAM: Final = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
MEMO_PROGRAM: Final = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
WSOL_MINT: Final = "So11111111111111111111111111111111111111112"
HELIUS_TIP_ACCOUNT: Final = Pubkey.from_string("4ACfpUFoaSD9bfPdeu6DBt89gB6ENTeHBXCAi87NhDEE")
BAND_BPS: Final = (100, 200, 500, 1000)
SIM_SUPPLY_WHOLE_TOKENS: Final = 1_000_000_000
"""Total supply of a simulated token in whole tokens (pump.fun's), for market caps."""
_PCT_SCALE: Final = 1_000_000


# --------------------------------------------------------------------------- addresses


def derived_address(*parts: object) -> str:
    """A deterministic, valid base58 address for simulated pools, makers, configs."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return str(Pubkey(digest))


def associated_token_account(wallet: str, mint: str, token_program: str = TOKEN_PROGRAM) -> str:
    """The real associated token account address of ``wallet`` for ``mint``."""
    seeds = [bytes(Pubkey.from_string(s)) for s in (wallet, token_program, mint)]
    return str(Pubkey.find_program_address(seeds, ATA_PROGRAM)[0])


def market_context_for(market_type: str, mint: str, wallet: str) -> MarketContext:
    """A well-formed ``market_context`` for ``market_type`` with simulated pool keys."""
    pool = derived_address("pool", market_type, mint)
    config = derived_address("config", market_type)
    quote_ata = derived_address("quote", wallet, mint)
    contexts: dict[str, MarketContext] = {
        "pump_fun": MarketContext(market_type, pumpfun=PumpFunContext()),
        "pump_swap": MarketContext(market_type, pumpswap=PumpSwapContext(pool=pool)),
        "meteora_dbc": MarketContext(
            market_type, meteora_dbc=MeteoraDbcContext(pool, config, WSOL_MINT)
        ),
        "meteora_damm_v2": MarketContext(
            market_type, meteora_damm_v2=MeteoraDammV2Context(pool=pool)
        ),
        "raydium_launchpad": MarketContext(
            market_type,
            raydium_launchpad=RaydiumLaunchpadContext(
                pool, config, derived_address("platform"), WSOL_MINT, quote_ata
            ),
        ),
        "raydium_cpmm": MarketContext(
            market_type, raydium_cpmm=RaydiumCpmmContext(pool, config, WSOL_MINT, quote_ata)
        ),
    }
    return contexts.get(market_type, MarketContext(market_type))


# --------------------------------------------------------------------------- positions


@dataclass(frozen=True)
class ExitDecision:
    """One exit the engine (or a client request) wants signalled."""

    reason: str
    sell_tokens: int | None = None
    level_index: int | None = None


@dataclass
class PendingExit:
    """An exit signal sent and not yet resolved by a balance change."""

    decision: ExitDecision
    sent_at: float


@dataclass
class SimPosition:
    """One tracked holding: its tokens, cost, price path and engine progress."""

    position_id: int
    wallet: str
    mint: str
    token_account: str
    tokens: int
    entry_quote_units: int
    market_context: MarketContext
    opened_at_ms: int
    slot: int = 0
    token_program: str = TOKEN_PROGRAM
    token_decimals: int = 6
    mirror_source: str | None = None
    pool_depth: float = 10.0
    initial_tokens: int = 0
    proceeds_units: int = 0
    price_path: list[int] = field(default_factory=list)
    peak_profit_pct: float = 0.0
    next_level: int = 0
    strategy_override: Strategy | None = None
    pending: PendingExit | None = None
    last_exit_reason: str | None = None
    graduated: bool = False
    ticks: int = 0

    def __post_init__(self) -> None:
        self.initial_tokens = self.initial_tokens or self.tokens
        self.proceeds_units = self.proceeds_units or self.entry_quote_units
        self.price_path = self.price_path or [self.proceeds_units]

    # ---- valuation

    def basis_units(self) -> int:
        """Cost basis of the tokens still held."""
        if self.initial_tokens <= 0:
            return 0
        return self.entry_quote_units * self.tokens // self.initial_tokens

    def profit_units(self) -> int:
        return self.proceeds_units - self.basis_units()

    def profit_pct(self) -> float:
        basis = self.basis_units()
        return (self.proceeds_units - basis) * 100.0 / basis if basis > 0 else 0.0

    def price_quote(self) -> int:
        """Quote atomic units per whole token (``10**token_decimals`` base units)."""
        if not self.tokens:
            return 0
        whole: int = 10**self.token_decimals
        return self.proceeds_units * whole // self.tokens

    def market_cap_quote(self) -> int:
        return self.price_quote() * SIM_SUPPLY_WHOLE_TOKENS

    def pool_liquidity_quote(self) -> int:
        return round(self.proceeds_units * self.pool_depth)

    # ---- state changes

    def observe(self, proceeds_units: int) -> None:
        """A new price: proceeds of selling every token held now."""
        self.proceeds_units = max(0, proceeds_units)
        self.price_path.append(self.proceeds_units)
        self.ticks += 1
        self.peak_profit_pct = max(self.peak_profit_pct, self.profit_pct())

    def apply_balance(self, tokens: int) -> PendingExit | None:
        """New token balance; returns the pending exit it resolved (if any).

        Proceeds scale with the balance (same price per token). A decrease while a
        ladder level is pending completes that level.
        """
        old = self.tokens
        self.proceeds_units = self.proceeds_units * tokens // old if old else 0
        self.tokens = max(0, tokens)
        resolved, self.pending = self.pending, None
        if resolved is not None and tokens < old and resolved.decision.level_index is not None:
            self.next_level = resolved.decision.level_index + 1
        return resolved

    def mark_signalled(self, decision: ExitDecision, now: float) -> None:
        self.pending = PendingExit(decision, now)
        self.last_exit_reason = decision.reason

    # ---- messages

    def balance_message(self) -> BalanceUpdate:
        return BalanceUpdate(
            wallet_pubkey=self.wallet, mint=self.mint, tokens=self.tokens, slot=self.slot,
            token_account=self.token_account, token_program=self.token_program,
        )

    def opened_message(self) -> PositionOpened:
        return PositionOpened(
            position_id=self.position_id, wallet_pubkey=self.wallet, mint=self.mint,
            token_account=self.token_account, tokens=self.tokens,
            entry_quote_units=self.entry_quote_units, slot=self.slot,
            token_program=self.token_program, market_context=self.market_context,
            token_decimals=self.token_decimals, token_price_quote=self.price_quote(),
            market_cap_quote=self.market_cap_quote(),
            pool_liquidity_quote=self.pool_liquidity_quote(),
            opened_at_ms=self.opened_at_ms, mirror_source=self.mirror_source,
        )

    def closed_message(self, reason: str) -> PositionClosed:
        return PositionClosed(
            position_id=self.position_id, wallet_pubkey=self.wallet, mint=self.mint,
            reason=reason, slot=self.slot, token_account=self.token_account,
            mirror_source=self.mirror_source,
        )

    def pnl_message(self, now_ms: int) -> PnlUpdate:
        return PnlUpdate(
            position_id=self.position_id, profit_units=self.profit_units(),
            proceeds_units=self.proceeds_units, server_time_ms=now_ms,
            token_price_quote=self.price_quote(), market_cap_quote=self.market_cap_quote(),
        )

    def liquidity_message(self, now_ms: int) -> LiquiditySnapshot:
        return LiquiditySnapshot(
            position_id=self.position_id, bands=slippage_bands(self.tokens, self.pool_depth),
            liquidity_trend=liquidity_trend(self.price_path), server_time_ms=now_ms,
        )

    def trade_message(self, now_ms: int) -> TradeTick:
        rising = len(self.price_path) < 2 or self.price_path[-1] >= self.price_path[-2]
        amount = max(1, self.tokens // 20)
        return TradeTick(
            position_id=self.position_id, time_ms=now_ms, side="buy" if rising else "sell",
            token_amount=amount,
            quote_amount=amount * self.proceeds_units // self.tokens if self.tokens else 0,
            price_quote=self.price_quote(),
            maker=derived_address("maker", self.mint, self.ticks),
            tx_signature=str(Signature(hashlib.sha512(f"{self.mint}{self.ticks}".encode())
                                       .digest())),
        )

    def exit_message(
        self, session_id: int, decision: ExitDecision, unsigned_tx_b64: str, now_ms: int
    ) -> ExitSignalWithTx:
        return ExitSignalWithTx(
            session_id=session_id, position_id=self.position_id, wallet_pubkey=self.wallet,
            mint=self.mint, position_tokens=self.tokens, profit_units=self.profit_units(),
            reason=decision.reason, triggered_at_ms=now_ms, unsigned_tx_b64=unsigned_tx_b64,
            token_account=self.token_account, token_program=self.token_program,
            market_context=self.market_context, sell_tokens=decision.sell_tokens,
            level_index=decision.level_index, mirror_source=self.mirror_source,
        )


def slippage_bands(tokens: int, pool_depth: float) -> list[SlippageBand]:
    """Constant-product bands: tokens sellable within each slippage threshold.

    The pool holds ``pool_depth`` times the position; selling ``dx`` into reserve
    ``x`` moves the price by about ``dx / (x + dx)``.
    """
    reserve = tokens * pool_depth
    bands = []
    for bps in BAND_BPS:
        impact = bps / 10_000
        sellable = min(tokens, int(reserve * impact / (1 - impact)))
        coverage = round(sellable * 100.0 / tokens, 2) if tokens else 0.0
        bands.append(SlippageBand(slippage_bps=bps, max_tokens=sellable, coverage_pct=coverage))
    return bands


def liquidity_trend(path: list[int], window: int = 3, threshold_pct: float = 1.0) -> str:
    """``growing``/``stable``/``draining`` from the change over the last ``window`` prices."""
    recent = path[-window:]
    if len(recent) < 2 or recent[0] <= 0:
        return "stable"
    change = (recent[-1] - recent[0]) * 100.0 / recent[0]
    if change > threshold_pct:
        return "growing"
    return "draining" if change < -threshold_pct else "stable"


def price_path(entry_quote_units: int, profit_pcts: Iterable[float]) -> list[int]:
    """Proceeds for a sequence of profit percentages relative to ``entry_quote_units``."""
    return [int(entry_quote_units * (100.0 + pct) / 100.0) for pct in profit_pcts]


# --------------------------------------------------------------------------- strategy engine


def validate_strategy(strategy: Strategy, deadline_timeout_sec: float = 0) -> str | None:
    """The real server's ``invalid_strategy`` message for ``strategy``, or None if valid."""
    for name in ("target_profit_pct", "stop_loss_pct", "trailing_stop_pct",
                 "breakeven_trail_pct"):
        if getattr(strategy, name) < 0:
            return f"{name} must be >= 0"
    problem = _validate_levels(strategy.take_profit_levels)
    if problem is not None:
        return problem
    if not strategy_has_exit(strategy, deadline_timeout_sec):
        return "strategy must set at least one exit (take profit, stop loss, trailing stop, "\
               "take_profit_levels, breakeven_trail_pct, sell_on_graduation or a deadline)"
    return None


def _validate_levels(levels: list[TakeProfitLevel]) -> str | None:
    previous = 0.0
    for i, level in enumerate(levels):
        if level.profit_pct <= 0:
            return f"take_profit_levels[{i}].profit_pct must be > 0"
        if not 0 < level.sell_pct <= 100:
            return f"take_profit_levels[{i}].sell_pct must be in (0, 100]"
        if level.trailing_stop_pct < 0:
            return f"take_profit_levels[{i}].trailing_stop_pct must be >= 0"
        if level.profit_pct <= previous:
            return f"take_profit_levels[{i}].profit_pct must be above the previous level"
        previous = level.profit_pct
    return None


def evaluate(position: SimPosition, strategy: Strategy, *, chained: bool = False) -> (
    ExitDecision | None
):
    """The exit ``strategy`` calls for on ``position`` now, or None (pure)."""
    if position.tokens <= 0:
        return None
    profit = position.profit_pct()
    peak = position.peak_profit_pct
    if strategy.stop_loss_pct > 0 and profit <= -strategy.stop_loss_pct:
        return ExitDecision("stop_loss")
    level = _ladder_decision(position, strategy.take_profit_levels, profit, chained)
    if level is not None:
        return level
    if (not strategy.take_profit_levels and strategy.target_profit_pct > 0
            and profit >= strategy.target_profit_pct):
        return ExitDecision("target_profit")
    if strategy.trailing_stop_pct > 0 and peak > 0 and profit <= peak - strategy.trailing_stop_pct:
        return ExitDecision("trailing_stop")
    if (strategy.breakeven_trail_pct > 0 and peak >= strategy.breakeven_trail_pct
            and profit <= 0):
        return ExitDecision("breakeven")
    if strategy.sell_on_graduation and position.graduated:
        return ExitDecision("graduation")
    return None


def _ladder_decision(
    position: SimPosition, levels: list[TakeProfitLevel], profit: float, chained: bool
) -> ExitDecision | None:
    if position.next_level >= len(levels):
        return None
    level = levels[position.next_level]
    peak = position.peak_profit_pct
    if level.trailing_stop_pct > 0:
        hit = peak >= level.profit_pct and profit <= peak - level.trailing_stop_pct
    else:
        hit = profit >= level.profit_pct
    if not hit:
        return None
    return ExitDecision(
        "chained_tp" if chained else "tp",
        sell_tokens=share_of(position.tokens, level.sell_pct),
        level_index=position.next_level,
    )


def share_of(tokens: int, pct: float) -> int:
    """``pct`` percent of ``tokens`` in exact integer math (at least 1 token)."""
    if pct >= 100:
        return tokens
    return max(1, tokens * round(pct * _PCT_SCALE) // (100 * _PCT_SCALE))


# --------------------------------------------------------------------------- transactions


class TxFactory(Protocol):
    """Builds the unsigned transactions the server puts in its signals (base64)."""

    def build_exit(
        self, position: SimPosition, sell_tokens: int, slippage_bps: int, send_mode: str,
        tip_lamports: int,
    ) -> str: ...

    def build_mirror_buy(
        self, user_wallet: str, mint: str, amount_lamports: int, slippage_bps: int,
        send_mode: str, tip_lamports: int,
    ) -> str: ...


@dataclass(frozen=True)
class SellQuote:
    """What ``POST /v1/sell`` answers: the transaction and its route."""

    tx_b64: str
    market_type: str
    pool_id: str


class SellRefused(ValueError):
    """A ``/v1/sell`` request the server cannot build: ``reason`` and HTTP ``status``."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@runtime_checkable
class SellBuilder(Protocol):
    """A ``TxFactory`` that can also answer ``POST /v1/sell`` (needs a chain)."""

    def build_sell(self, user_pubkey: str, mint: str, amount_tokens: int, slippage_bps: int,
                   send_mode: str = "rpc", tip_lamports: int = 0) -> SellQuote: ...


class MemoTxFactory:
    """Protocol-level stand-in for runs without a chain.

    Builds real, decodable v0 transactions (fee payer = the user's wallet, zeroed
    signature slot) holding the compute budget, the Helius tip transfer when
    ``send_mode`` is ``helius_sender``, and a memo naming the trade. There is no swap
    instruction: for chain-backed runs pass the LiteSVM factory instead.
    """

    def __init__(self, compute_unit_limit: int = 200_000, micro_lamports: int = 10_000) -> None:
        self._cu_limit = compute_unit_limit
        self._cu_price = micro_lamports
        self._counter = itertools.count()

    def build_exit(
        self, position: SimPosition, sell_tokens: int, slippage_bps: int, send_mode: str,
        tip_lamports: int,
    ) -> str:
        memo = f"lasersell-sim:sell:{position.mint}:{sell_tokens}:{slippage_bps}"
        return self._build(position.wallet, memo, send_mode, tip_lamports)

    def build_mirror_buy(
        self, user_wallet: str, mint: str, amount_lamports: int, slippage_bps: int,
        send_mode: str, tip_lamports: int,
    ) -> str:
        memo = f"lasersell-sim:buy:{mint}:{amount_lamports}:{slippage_bps}"
        return self._build(user_wallet, memo, send_mode, tip_lamports)

    def _build(self, wallet: str, memo: str, send_mode: str, tip_lamports: int) -> str:
        payer = Pubkey.from_string(wallet)
        instructions = [set_compute_unit_limit(self._cu_limit),
                        set_compute_unit_price(self._cu_price)]
        if send_mode == "helius_sender" and tip_lamports > 0:
            instructions.append(transfer(TransferParams(
                from_pubkey=payer, to_pubkey=HELIUS_TIP_ACCOUNT, lamports=tip_lamports)))
        instructions.append(
            Instruction(MEMO_PROGRAM, memo.encode(), [AccountMeta(payer, True, False)])
        )
        blockhash = Hash.hash(f"sim-blockhash-{next(self._counter)}".encode())
        message = MessageV0.try_compile(payer, instructions, [], blockhash)
        slots = [Signature.default()] * message.header.num_required_signatures
        tx = VersionedTransaction.populate(message, slots)
        return base64.b64encode(bytes(tx)).decode()
