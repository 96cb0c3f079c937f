"""Every LaserSell stream message as a msgspec Struct, and the codec for them.

The Structs are the schema: decoding validates types and reports the path of a
bad field. Unknown keys are ignored; an unknown ``type`` is reported as
``UnknownMessage`` (never an exception) so the server can add types over time.
Integers stay Python ints (u64 / i64 exact).
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec
from msgspec import Struct

SendMode = Literal["rpc", "helius_sender", "astralane"]

LOW_PRIORITY_TYPES: Final = frozenset({"pnl_update", "liquidity_snapshot", "trade_tick"})


# --------------------------------------------------------------------------- shared


class TakeProfitLevel(Struct, omit_defaults=True):
    profit_pct: float
    sell_pct: float
    trailing_stop_pct: float = 0.0


class Strategy(Struct, omit_defaults=True):
    """Server-side exit strategy. ``take_profit_levels`` replaces the single TP."""

    target_profit_pct: float
    stop_loss_pct: float
    trailing_stop_pct: float = 0.0
    sell_on_graduation: bool = False
    take_profit_levels: list[TakeProfitLevel] = []
    liquidity_guard: bool = False
    breakeven_trail_pct: float = 0.0


class PumpFunContext(Struct, omit_defaults=True):
    pass


class PumpSwapContext(Struct, omit_defaults=True):
    pool: str
    global_config: str | None = None


class MeteoraDbcContext(Struct, omit_defaults=True):
    pool: str
    config: str
    quote_mint: str


class MeteoraDammV2Context(Struct, omit_defaults=True):
    pool: str


class RaydiumLaunchpadContext(Struct, omit_defaults=True):
    pool: str
    config: str
    platform: str
    quote_mint: str
    user_quote_account: str


class RaydiumCpmmContext(Struct, omit_defaults=True):
    pool: str
    config: str
    quote_mint: str
    user_quote_account: str


class MarketContext(Struct, omit_defaults=True):
    """``{"market_type": ..., <one sibling>}``; market_type is an open set."""

    market_type: str
    pumpfun: PumpFunContext | None = None
    pumpswap: PumpSwapContext | None = None
    meteora_dbc: MeteoraDbcContext | None = None
    meteora_damm_v2: MeteoraDammV2Context | None = None
    raydium_launchpad: RaydiumLaunchpadContext | None = None
    raydium_cpmm: RaydiumCpmmContext | None = None


class Limits(Struct, omit_defaults=True):
    hi_capacity: int = 0
    pnl_flush_ms: int = 0
    max_positions_per_session: int = 0
    max_wallets_per_session: int = 0
    max_positions_per_wallet: int = 0
    max_sessions_per_api_key: int = 0
    max_watch_wallets_per_session: int = 0


class AutoBuy(Struct, omit_defaults=True):
    wallet_pubkey: str
    amount_quote_units: int
    amount_usd1_units: int | None = None


class WatchWallet(Struct, omit_defaults=True):
    pubkey: str
    auto_buy: AutoBuy | None = None
    mirror_sell: bool = False


class MirrorConfig(Struct):
    """Sent in full, so the user's values apply even if server defaults change."""

    max_positions_per_wallet: int = 1
    cooldown_sec: int = 30
    skip_creator_tokens: bool = False
    max_active_sol: float = 5.0
    buy_slippage_bps: int = 2500
    min_liquidity_sol: float | None = None
    max_entry_drift_pct: float | None = None
    max_consecutive_losses: int | None = None


class SlippageBand(Struct, omit_defaults=True):
    slippage_bps: int
    max_tokens: int
    coverage_pct: float


# --------------------------------------------------------------------------- server -> client


class ServerMessage(Struct, tag_field="type", omit_defaults=True):
    """Base of every server message; ``type`` is the tag."""


class HelloOk(ServerMessage, tag="hello_ok"):
    session_id: int
    server_time_ms: int
    limits: Limits = msgspec.field(default_factory=Limits)


class Pong(ServerMessage, tag="pong"):
    server_time_ms: int


class ErrorMsg(ServerMessage, tag="error"):
    code: str
    message: str = ""


class BalanceUpdate(ServerMessage, tag="balance_update"):
    wallet_pubkey: str
    mint: str
    tokens: int
    slot: int = 0
    token_account: str | None = None
    token_program: str | None = None


class PositionOpened(ServerMessage, tag="position_opened"):
    """The ``*_quote`` fields are u64 quote atomic units (lamports or USD1 units):
    ``token_price_quote`` per whole token, ``market_cap_quote`` and
    ``pool_liquidity_quote`` in total. Integers on the wire, never floats."""

    position_id: int
    wallet_pubkey: str
    mint: str
    token_account: str
    tokens: int
    entry_quote_units: int
    slot: int = 0
    token_program: str | None = None
    market_context: MarketContext | None = None
    token_name: str | None = None
    token_symbol: str | None = None
    token_decimals: int | None = None
    token_price_quote: int | None = None
    market_cap_quote: int | None = None
    pool_liquidity_quote: int | None = None
    opened_at_ms: int | None = None
    watched: bool = False
    mirror_source: str | None = None


class PositionClosed(ServerMessage, tag="position_closed"):
    position_id: int
    wallet_pubkey: str
    mint: str
    reason: str = ""
    slot: int = 0
    token_account: str | None = None
    mirror_source: str | None = None
    watched: bool = False


class ExitSignalWithTx(ServerMessage, tag="exit_signal_with_tx"):
    session_id: int
    position_id: int
    wallet_pubkey: str
    mint: str
    position_tokens: int
    profit_units: int
    reason: str
    triggered_at_ms: int
    unsigned_tx_b64: str
    token_account: str | None = None
    token_program: str | None = None
    market_context: MarketContext | None = None
    sell_tokens: int | None = None
    level_index: int | None = None
    mirror_source: str | None = None
    watched: bool = False


class MirrorBuySignal(ServerMessage, tag="mirror_buy_signal"):
    session_id: int
    watched_wallet: str
    mint: str
    user_wallet: str
    amount_quote_units: int
    input: str
    unsigned_tx_b64: str
    slippage_bps: int
    send_mode: str | None = None
    tip_lamports: int | None = None
    market_context: MarketContext | None = None


class MirrorBuyFailed(ServerMessage, tag="mirror_buy_failed"):
    watched_wallet: str
    mint: str
    reason: str = ""


class MirrorWalletAutoDisabled(ServerMessage, tag="mirror_wallet_auto_disabled"):
    watched_wallet: str
    reason: str = ""
    loss_count: int = 0


class PnlUpdate(ServerMessage, tag="pnl_update"):
    position_id: int
    profit_units: int
    proceeds_units: int
    server_time_ms: int
    token_price_quote: int | None = None
    market_cap_quote: int | None = None
    watched: bool = False


class LiquiditySnapshot(ServerMessage, tag="liquidity_snapshot"):
    position_id: int
    bands: list[SlippageBand]
    liquidity_trend: str
    server_time_ms: int
    watched: bool = False


class TradeTick(ServerMessage, tag="trade_tick"):
    position_id: int
    time_ms: int
    side: str
    token_amount: int
    quote_amount: int
    price_quote: int
    maker: str | None = None
    tx_signature: str | None = None
    watched: bool = False


AnyServerMessage = (
    HelloOk
    | Pong
    | ErrorMsg
    | BalanceUpdate
    | PositionOpened
    | PositionClosed
    | ExitSignalWithTx
    | MirrorBuySignal
    | MirrorBuyFailed
    | MirrorWalletAutoDisabled
    | PnlUpdate
    | LiquiditySnapshot
    | TradeTick
)


# --------------------------------------------------------------------------- client -> server


class ClientMessage(Struct, tag_field="type", omit_defaults=True):
    """Base of every client message; ``type`` is the tag."""


class Ping(ClientMessage, tag="ping"):
    client_time_ms: int


class Configure(ClientMessage, tag="configure"):
    wallet_pubkeys: list[str]
    strategy: Strategy
    send_mode: SendMode | None = None
    tip_lamports: int | None = None
    watch_wallets: list[WatchWallet] = []
    mirror_config: MirrorConfig | None = None
    deadline_timeout_sec: int | None = None


class UpdateStrategy(ClientMessage, tag="update_strategy"):
    strategy: Strategy


class ClosePosition(ClientMessage, tag="close_position"):
    position_id: int | None = None
    token_account: str | None = None


class RequestExitSignal(ClientMessage, tag="request_exit_signal"):
    position_id: int | None = None
    token_account: str | None = None
    slippage_bps: int | None = None


class UpdateWallets(ClientMessage, tag="update_wallets"):
    wallet_pubkeys: list[str]


class UpdateWatchWallets(ClientMessage, tag="update_watch_wallets"):
    watch_wallets: list[WatchWallet]


class UpdatePositionStrategy(ClientMessage, tag="update_position_strategy"):
    position_id: int
    strategy: Strategy


class MirrorBuyResult(ClientMessage, tag="mirror_buy_result"):
    mint: str
    success: bool


AnyClientMessage = (
    Ping
    | Configure
    | UpdateStrategy
    | ClosePosition
    | RequestExitSignal
    | UpdateWallets
    | UpdateWatchWallets
    | UpdatePositionStrategy
    | MirrorBuyResult
)


# --------------------------------------------------------------------------- codec


class UnknownMessage(Struct, frozen=True):
    """A well-formed frame whose ``type`` this client does not know."""

    type: str


class MalformedFrame(Struct, frozen=True):
    """A frame that failed to decode; ``error`` names the field path."""

    error: str
    type: str | None = None


class _TypeOnly(Struct):
    type: str | None = None


class Decoder:
    """One reusable decoder per direction. ``decode`` never raises."""

    def __init__(self, union: type[AnyServerMessage] | type[AnyClientMessage]) -> None:
        self._decoder: msgspec.json.Decoder[AnyServerMessage | AnyClientMessage] = (
            msgspec.json.Decoder(union)
        )
        self._known = {cls.__struct_config__.tag for cls in _members(union)}
        self._peek = msgspec.json.Decoder(_TypeOnly)

    def decode(
        self, frame: bytes | str
    ) -> AnyServerMessage | AnyClientMessage | UnknownMessage | MalformedFrame:
        try:
            return self._decoder.decode(frame)
        except _DECODE_ERRORS as exc:
            return self._classify(frame, exc)

    def _classify(
        self, frame: bytes | str, exc: Exception
    ) -> UnknownMessage | MalformedFrame:
        try:
            kind = self._peek.decode(frame).type
        except _DECODE_ERRORS:
            return MalformedFrame(error=_describe(exc))
        if kind is not None and kind not in self._known:
            return UnknownMessage(type=kind)
        return MalformedFrame(error=_describe(exc), type=kind)


# Beyond msgspec's own errors: nesting deeper than the interpreter's recursion limit
# raises RecursionError, and a ``str`` frame holding a lone surrogate UnicodeEncodeError.
_DECODE_ERRORS: Final = (msgspec.ValidationError, msgspec.DecodeError, RecursionError,
                         UnicodeError)


def _describe(exc: Exception) -> str:
    if isinstance(exc, msgspec.MsgspecError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _members(union: object) -> tuple[type[Struct], ...]:
    return tuple(getattr(union, "__args__", (union,)))


def server_decoder() -> Decoder:
    return Decoder(AnyServerMessage)  # type: ignore[arg-type]


def client_decoder() -> Decoder:
    return Decoder(AnyClientMessage)  # type: ignore[arg-type]


_encoder = msgspec.json.Encoder()


def encode(message: ServerMessage | ClientMessage) -> bytes:
    """JSON bytes for one message, optional fields left out when unset."""
    return _encoder.encode(message)


def strategy_has_exit(strategy: Strategy, deadline_timeout_sec: float = 0) -> bool:
    """True when at least one exit rule is set (ladder-only strategies count)."""
    return bool(
        strategy.target_profit_pct > 0
        or strategy.stop_loss_pct > 0
        or strategy.trailing_stop_pct > 0
        or strategy.take_profit_levels
        or strategy.breakeven_trail_pct > 0
        or strategy.sell_on_graduation
        or deadline_timeout_sec > 0
    )
