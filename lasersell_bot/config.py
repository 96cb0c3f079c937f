"""TOML configuration: the typed schema (the public interface) and its loader.

Key names here are the documented config keys; keep them stable.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

NonNeg = Annotated[float, Meta(ge=0)]
NonNegInt = Annotated[int, Meta(ge=0)]
PosInt = Annotated[int, Meta(gt=0)]
Percent = Annotated[float, Meta(ge=0, le=100)]
Bps = Annotated[int, Meta(ge=0, le=10_000)]

HELIUS_TIP_ACCOUNTS = [
    "4ACfpUFoaSD9bfPdeu6DBt89gB6ENTeHBXCAi87NhDEE",
    "D2L6yPZ2FmmmTKPgzaMKdhu6EWZcTpLy1Vhx8uvZe7NZ",
    "9bnz4RShgq1hAnLnZbP8kbgBg1kEmcJBYQq3gQbmnSta",
    "5VY91ws6B2hMmBFRsXkoAAdsPHBJwRfBht4DXox3xkwn",
    "2nyhqdwKcJZR2vcqCyrYsaPVdAnFoJjiksCXJ7hfEYgD",
    "2q5pghRs6arqVjRvT5gfgWfWcHWmw1ZuCzphgd5KfWGJ",
    "wyvPkWjVZz1M8fHQnMMCDTQDbkManefNNhweYk5WkcF",
    "3KCKozbAaF75qEU33jtzozcJ29yJuaLJTy2jFdzUY8bT",
    "4vieeGHPYPG2MmyPRcYjdiDmmhN3ww7hsFNap8pVN3Ey",
    "4TQLFNWK8AovT1gFvda5jfw2oJeRMKEmw7aH6MGBJ3or",
]

_STRICT = {"forbid_unknown_fields": True, "kw_only": True}


class StreamConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    url: str = "wss://stream.lasersell.io/v1/ws"
    api_key: str = ""
    api_url: str = "https://api.lasersell.io"
    register_wallets: bool = True
    low_priority_capacity: PosInt = 1024
    ping_interval_sec: Annotated[float, Meta(gt=0)] = 15.0
    connect_timeout_sec: Annotated[float, Meta(gt=0)] = 10.0
    reconcile_sec: Annotated[float, Meta(gt=0)] = 3.0


class RpcConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    url: str = "https://api.mainnet-beta.solana.com"


class WalletConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    keypair_path: str
    label: str = ""


class TakeProfitLevelConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    profit_pct: Annotated[float, Meta(gt=0)]
    sell_pct: Annotated[float, Meta(gt=0, le=100)]
    trailing_stop_pct: NonNeg = 0.0


class StrategyConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    target_profit_pct: NonNeg = 0.0
    stop_loss_pct: Percent = 0.0
    trailing_stop_pct: Percent = 0.0
    sell_on_graduation: bool = False
    deadline_timeout_sec: NonNeg = 0.0
    deadline_retry_sec: Annotated[float, Meta(gt=0)] = 30.0
    liquidity_guard: bool = False
    breakeven_trail_pct: NonNeg = 0.0
    take_profit_levels: list[TakeProfitLevelConfig] = []


SendTarget = Literal["rpc", "helius_sender", "astralane"]


class SendConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    mode: SendTarget = "rpc"
    targets: list[SendTarget] = []
    tip_lamports: NonNegInt = 1000
    helius_sender_url: str = "https://sender.helius-rpc.com/fast"
    astralane_url: str = "https://fr.gateway.astralane.io/iris"
    astralane_api_key: str = ""
    dry_run: bool = False
    max_retries: NonNegInt = 3
    slippage_bump_bps: Bps = 500
    slippage_max_bps: Bps = 5000
    max_signal_age_ms: NonNegInt = 10_000
    rebroadcast_interval_ms: PosInt = 2000
    confirm_poll_ms: PosInt = 200
    confirm_timeout_sec: Annotated[float, Meta(gt=0)] = 90.0
    request_timeout_ms: PosInt = 3000
    keepalive_interval_sec: Annotated[float, Meta(gt=0)] = 30.0


class GuardConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    extra_programs: list[str] = []
    tip_accounts: list[str] = msgspec.field(default_factory=lambda: list(HELIUS_TIP_ACCOUNTS))
    extra_tip_accounts: list[str] = []
    max_tip_lamports: NonNegInt = 5_000_000
    max_priority_fee: NonNegInt = 5_000_000
    max_tx_bytes: PosInt = 1232


class MirrorConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    enabled: bool = False
    max_positions_per_wallet: NonNegInt = 1
    cooldown_sec: NonNegInt = 30
    skip_creator_tokens: bool = False
    max_active_sol: NonNeg = 5.0
    buy_slippage_bps: Bps = 2500
    min_liquidity_sol: NonNeg | None = None
    max_entry_drift_pct: NonNeg | None = None
    max_consecutive_losses: NonNegInt | None = None


class WatchWalletConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    pubkey: str
    label: str = ""
    auto_buy_sol: NonNeg = 0.0
    auto_buy_usd1: NonNeg = 0.0
    auto_buy_wallet: str = ""
    mirror_sell: bool = False


class JournalConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    path: str = ""


class LogConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console", "auto"] = "auto"
    syslog_prefix: bool = True
    pnl_summary_sec: Annotated[float, Meta(gt=0)] = 60.0


class HttpConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    listen: str = ""


class NotifyConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    webhook_url: str = ""
    telegram_bot_token: str = ""
    telegram_chat_id: str = ""
    min_interval_sec: NonNeg = 1.0


class DaemonConfig(Struct, **_STRICT):  # type: ignore[call-arg]
    shutdown_grace_sec: NonNeg = 20.0


class Config(Struct, **_STRICT):  # type: ignore[call-arg]
    stream: StreamConfig = msgspec.field(default_factory=StreamConfig)
    rpc: RpcConfig = msgspec.field(default_factory=RpcConfig)
    wallets: list[WalletConfig] = []
    strategy: StrategyConfig = msgspec.field(default_factory=StrategyConfig)
    send: SendConfig = msgspec.field(default_factory=SendConfig)
    guard: GuardConfig = msgspec.field(default_factory=GuardConfig)
    mirror: MirrorConfig = msgspec.field(default_factory=MirrorConfig)
    watch_wallets: list[WatchWalletConfig] = []
    journal: JournalConfig = msgspec.field(default_factory=JournalConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)
    notify: NotifyConfig = msgspec.field(default_factory=NotifyConfig)
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
