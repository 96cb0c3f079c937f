"""TOML configuration: the typed schema (the public interface) and its loader.

Key names here are the documented config keys; keep them stable.

``load_config`` reads one TOML file and returns a checked ``Config``:

1. msgspec converts the TOML tables into the Structs below (types, ranges, unknown
   keys);
2. secrets are overlaid, lowest to highest precedence: TOML value, environment
   variable, systemd credential file in ``$CREDENTIALS_DIRECTORY`` (see
   ``SECRET_SOURCES``); every secret is registered with ``logs.register_secret``;
3. paths are resolved: relative ``keypair_path`` and ``journal.path`` against the
   config file's directory, ``keypair_path = "credential:NAME"`` to the systemd
   credential NAME, an empty ``journal.path`` to ``$STATE_DIRECTORY/journal.sqlite3``
   (or ``lasersell-bot.sqlite3`` beside the config file);
4. cross-field rules are checked (an exit rule is set, pubkeys parse, URL schemes, ...).

Any problem raises ``ConfigError`` whose message starts with the dotted key, e.g.
``strategy.stop_loss_pct: must be >= 0 (got -1)``. An empty ``stream.api_key`` is
accepted only for a loopback stream URL: the local simulator takes any key.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import tomllib
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, NamedTuple, Union, get_args, get_origin
from urllib.parse import urlsplit

import msgspec
import tomli_w
from msgspec import Meta, Struct
from solders.pubkey import Pubkey

from lasersell_bot import protocol
from lasersell_bot.logs import register_secret
from lasersell_bot.tls import is_loopback_host, is_remote_plaintext, parse_pin

U64_MAX: Final = 2**64 - 1
TOML_INT_MAX: Final = 2**63 - 1  # TOML integers are signed 64-bit
LAMPORTS_PER_SOL: Final = 1_000_000_000
USD1_UNITS_PER_USD1: Final = 1_000_000

NonNeg = Annotated[float, Meta(ge=0)]
NonNegInt = Annotated[int, Meta(ge=0, le=TOML_INT_MAX)]
PosInt = Annotated[int, Meta(gt=0, le=TOML_INT_MAX)]
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


class StreamConfig(Struct, **_STRICT):
    url: str = "wss://stream.lasersell.io/v1/ws"
    api_key: str = ""
    api_url: str = "https://api.lasersell.io"
    register_wallets: bool = True
    low_priority_capacity: PosInt = 65_536
    ping_interval_sec: Annotated[float, Meta(gt=0)] = 15.0
    connect_timeout_sec: Annotated[float, Meta(gt=0)] = 10.0
    reconcile_sec: Annotated[float, Meta(gt=0)] = 3.0


class RpcConfig(Struct, **_STRICT):
    url: str = "https://api.mainnet-beta.solana.com"
    urls: list[str] = []
    timeout_ms: PosInt = 2000
    hedge_after_ms: NonNegInt = 250
    probe_interval_sec: Annotated[float, Meta(gt=0)] = 5.0
    status_fanout: Annotated[int, Meta(ge=1, le=4)] = 2
    send_to_all: bool = False

    @property
    def endpoints(self) -> list[str]:
        """The RPC endpoints in order of preference: ``urls``, else ``[url]``."""
        return list(self.urls) if self.urls else [self.url]


class WalletConfig(Struct, **_STRICT):
    keypair_path: str
    label: str = ""


class TakeProfitLevelConfig(Struct, **_STRICT):
    profit_pct: Annotated[float, Meta(gt=0)]
    sell_pct: Annotated[float, Meta(gt=0, le=100)]
    trailing_stop_pct: NonNeg = 0.0


class StrategyConfig(Struct, **_STRICT):
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


class SendConfig(Struct, **_STRICT):
    mode: SendTarget = "rpc"
    targets: list[SendTarget] = []
    tip_lamports: NonNegInt = 1000
    helius_sender_url: str = "https://sender.helius-rpc.com/fast"
    astralane_url: str = "https://fr.gateway.astralane.io/iris"
    astralane_api_key: str = ""
    dry_run: bool = False
    max_retries: NonNegInt = 3
    slippage_base_bps: Bps = 1000
    slippage_bump_bps: Bps = 500
    slippage_max_bps: Bps = 5000
    max_signal_age_ms: NonNegInt = 10_000
    rebroadcast_interval_ms: PosInt = 2000
    confirm_poll_ms: PosInt = 200
    confirm_timeout_sec: Annotated[float, Meta(gt=0)] = 90.0
    request_timeout_ms: PosInt = 3000
    keepalive_interval_sec: Annotated[float, Meta(gt=0)] = 30.0


class GuardConfig(Struct, **_STRICT):
    extra_programs: list[str] = []
    tip_accounts: list[str] = msgspec.field(default_factory=lambda: list(HELIUS_TIP_ACCOUNTS))
    extra_tip_accounts: list[str] = []
    max_tip_lamports: NonNegInt = 5_000_000
    max_priority_fee: NonNegInt = 5_000_000
    max_tx_bytes: PosInt = 1232
    simulate: Literal["always", "unvouched", "never"] = "always"
    fee_allowance_bps: Bps = 200
    fee_allowance_min_lamports: NonNegInt = 10_000_000
    simulation_timeout_ms: PosInt = 1500


class MirrorConfig(Struct, **_STRICT):
    enabled: bool = False
    max_positions_per_wallet: NonNegInt = 1
    cooldown_sec: NonNegInt = 30
    skip_creator_tokens: bool = False
    max_active_sol: NonNeg = 5.0
    buy_slippage_bps: Bps = 2500
    min_liquidity_sol: NonNeg | None = None
    max_entry_drift_pct: NonNeg | None = None
    max_consecutive_losses: NonNegInt | None = None


class WatchWalletConfig(Struct, **_STRICT):
    pubkey: str
    label: str = ""
    auto_buy_sol: NonNeg = 0.0
    auto_buy_usd1: NonNeg = 0.0
    auto_buy_wallet: str = ""
    mirror_sell: bool = False


class JournalConfig(Struct, **_STRICT):
    path: str = ""
    durable: bool = True


class LogConfig(Struct, **_STRICT):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console", "auto"] = "auto"
    syslog_prefix: bool = True
    pnl_summary_sec: Annotated[float, Meta(gt=0)] = 60.0


class HttpConfig(Struct, **_STRICT):
    listen: str = ""
    api: bool = True
    expose_api: bool = False
    api_token_file: str = ""


class NotifyConfig(Struct, **_STRICT):
    webhook_url: str = ""
    telegram_bot_token: str = ""
    telegram_chat_id: str = ""
    min_interval_sec: NonNeg = 1.0
    telegram_commands: bool = False
    telegram_api_url: str = "https://api.telegram.org"


class TlsConfig(Struct, **_STRICT):
    allow_plaintext: bool = False
    pins: list[str] = []


class DaemonConfig(Struct, **_STRICT):
    shutdown_grace_sec: NonNeg = 20.0


class Config(Struct, **_STRICT):
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
    tls: TlsConfig = msgspec.field(default_factory=TlsConfig)
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)


class ConfigError(Exception):
    """A configuration problem; the message starts with the dotted key (or the file)."""


class SecretSource(NamedTuple):
    """Where one secret config key may also come from."""

    section: str
    key: str
    env_var: str
    credential: str

    @property
    def dotted_key(self) -> str:
        return f"{self.section}.{self.key}"


SECRET_SOURCES: Final = (
    SecretSource("stream", "api_key", "LASERSELL_API_KEY", "lasersell-api-key"),
    SecretSource("send", "astralane_api_key", "LASERSELL_ASTRALANE_API_KEY", "astralane-api-key"),
    SecretSource("notify", "telegram_bot_token", "LASERSELL_TELEGRAM_BOT_TOKEN",
                 "telegram-bot-token"),
    SecretSource("notify", "webhook_url", "LASERSELL_WEBHOOK_URL", "webhook-url"),
    SecretSource("rpc", "url", "LASERSELL_RPC_URL", "rpc-url"),
)
CREDENTIAL_PREFIX: Final = "credential:"
DEFAULT_JOURNAL_NAME: Final = "lasersell-bot.sqlite3"
STATE_JOURNAL_NAME: Final = "journal.sqlite3"
DEFAULT_API_TOKEN_NAME: Final = "lasersell-bot.api-token"
STATE_API_TOKEN_NAME: Final = "api-token"

_DEFAULTS: Final = Config()
_SECRET_KEYS: Final = frozenset(source.dotted_key for source in SECRET_SOURCES)


# --------------------------------------------------------------------------- public API


def load_config(
    path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    require_wallets: bool = True,
    require_secrets: bool = True,
) -> Config:
    """Read, convert, overlay secrets, resolve paths and check one TOML config file.

    ``env`` defaults to ``os.environ``; it supplies the secret variables,
    ``CREDENTIALS_DIRECTORY`` and ``STATE_DIRECTORY``. Raises ``ConfigError``.
    """
    environment = os.environ if env is None else env
    config_file = Path(path)
    cfg = _convert(_read_toml(config_file))
    cfg = _apply_secrets(cfg, environment)
    cfg = _resolve_paths(cfg, config_file.absolute().parent, environment)
    cfg = _fill_send_targets(cfg)
    _validate(cfg, require_wallets=require_wallets, require_secrets=require_secrets)
    return cfg


def dump_config(cfg: Config) -> str:
    """``cfg`` as TOML that ``load_config`` reads back to an equal Config.

    Secrets are included; pass the text through ``logs.REDACTOR.clean`` to show it.
    """
    return tomli_w.dumps(_without_empty_values(msgspec.to_builtins(cfg)))


def to_strategy(strategy: StrategyConfig) -> protocol.Strategy:
    """The server-side part of the strategy (the deadline is client-side)."""
    return protocol.Strategy(
        target_profit_pct=strategy.target_profit_pct,
        stop_loss_pct=strategy.stop_loss_pct,
        trailing_stop_pct=strategy.trailing_stop_pct,
        sell_on_graduation=strategy.sell_on_graduation,
        take_profit_levels=[
            protocol.TakeProfitLevel(
                profit_pct=level.profit_pct,
                sell_pct=level.sell_pct,
                trailing_stop_pct=level.trailing_stop_pct,
            )
            for level in strategy.take_profit_levels
        ],
        liquidity_guard=strategy.liquidity_guard,
        breakeven_trail_pct=strategy.breakeven_trail_pct,
    )


def to_mirror_config(mirror: MirrorConfig) -> protocol.MirrorConfig | None:
    """The ``mirror_config`` to send in ``configure``, or None when mirroring is off."""
    if not mirror.enabled:
        return None
    settings = msgspec.structs.asdict(mirror)
    del settings["enabled"]
    return protocol.MirrorConfig(**settings)


def to_watch_wallets(cfg: Config, default_wallet: str) -> list[protocol.WatchWallet]:
    """Watch wallets for ``configure``; auto-buys use ``default_wallet`` unless set."""
    return [_to_watch_wallet(watch, default_wallet) for watch in cfg.watch_wallets]


def _to_watch_wallet(watch: WatchWalletConfig, default_wallet: str) -> protocol.WatchWallet:
    auto_buy = None
    if watch.auto_buy_sol > 0 or watch.auto_buy_usd1 > 0:
        auto_buy = protocol.AutoBuy(
            wallet_pubkey=watch.auto_buy_wallet or default_wallet,
            amount_quote_units=round(watch.auto_buy_sol * LAMPORTS_PER_SOL),
            amount_usd1_units=(
                round(watch.auto_buy_usd1 * USD1_UNITS_PER_USD1) if watch.auto_buy_usd1 > 0
                else None
            ),
        )
    return protocol.WatchWallet(pubkey=watch.pubkey, auto_buy=auto_buy,
                                mirror_sell=watch.mirror_sell)


def _without_empty_values(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_empty_values(item) for key, item in value.items()
                if item is not None and item != ""}
    if isinstance(value, list):
        return [_without_empty_values(item) for item in value]
    return value


# --------------------------------------------------------------------------- reading


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_describe_syntax_error(path, str(exc))) from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise ConfigError(f"{path}: invalid TOML: arrays or inline tables nested too "
                          "deeply") from None


_TOML_POSITION = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def _describe_syntax_error(path: Path, message: str) -> str:
    position = _TOML_POSITION.match(message)
    if position is None:
        return f"{path}: invalid TOML: {message}"
    return (f"{path}, line {position['line']}, column {position['column']}: "
            f"invalid TOML: {position['what']}")


# --------------------------------------------------------------------------- conversion errors

_ERROR_AT = re.compile(r"^(?P<text>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_PATH_PART = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<name>.*)`$", re.DOTALL)
_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<name>.*)`$", re.DOTALL)
_BOUND = re.compile(r"^Expected `[^`]*` (?P<op>[<>]=?) (?P<limit>\S+)$")
_WRONG_TYPE = re.compile(r"^Expected `(?P<expected>[^`]*)`, got `[^`]*`$")
_TYPE_WORDS: Final = {"float": "a number", "int": "an integer", "str": "a string",
                      "bool": "true or false", "array": "a list", "object": "a table"}
_ABSENT: Final = object()
_MAX_SHOWN_CHARS: Final = 60

PathToken = str | int


def _convert(raw: dict[str, Any]) -> Config:
    try:
        return msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain_validation_error(str(exc), raw)) from None


def _explain_validation_error(message: str, raw: dict[str, Any]) -> str:
    parts = _ERROR_AT.match(message)
    assert parts is not None  # the pattern matches any text
    text, tokens = parts["text"], _parse_path(parts["path"] or "")
    if unknown := _UNKNOWN_FIELD.match(text):
        return _explain_unknown_key(tokens, unknown["name"])
    if missing := _MISSING_FIELD.match(text):
        return f"{_dotted([*tokens, missing['name']])}: required"
    explanation = _explain_bad_value(text, _annotation_at(tokens))
    value = _lookup(raw, tokens)
    key = _dotted(tokens)
    if value is not _ABSENT and key not in _SECRET_KEYS:  # never echo a secret
        explanation += f" (got {_show(value)})"
    return f"{key}: {explanation}"


def _explain_unknown_key(tokens: list[PathToken], name: str) -> str:
    known = [field.name for field in _struct_fields(_annotation_at(tokens))]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f'did you mean "{close[0]}"?' if close else "known keys: " + ", ".join(known)
    return f"{_dotted([*tokens, name])}: unknown key ({hint})"


def _explain_bad_value(text: str, annotation: Any) -> str:
    choices = _literal_choices(annotation)
    if choices:
        return "must be one of " + ", ".join(_show(choice) for choice in choices)
    if bound := _BOUND.match(text):
        return f"must be {bound['op']} {_trim_zero_fraction(bound['limit'])}"
    if wrong_type := _WRONG_TYPE.match(text):
        return f"must be {_describe_type(wrong_type['expected'])}"
    if text == "Number out of range":
        return "number out of range"
    return text


def _describe_type(expected: str) -> str:
    names = [name.strip() for name in expected.split("|") if name.strip() != "null"]
    return " or ".join(_TYPE_WORDS.get(name, name) for name in names)


def _parse_path(path: str) -> list[PathToken]:
    return [key if index == "" else int(index) for key, index in _PATH_PART.findall(path)]


def _dotted(tokens: list[PathToken]) -> str:
    text = ""
    for token in tokens:
        if isinstance(token, int):
            text += f"[{token}]"
        else:
            text += f".{token}" if text else token
    return text or "config"


def _lookup(raw: Any, tokens: list[PathToken]) -> Any:
    for token in tokens:
        try:
            raw = raw[token]
        except (KeyError, IndexError, TypeError):
            return _ABSENT
    return raw


def _show(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | list | dict):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = _trim_zero_fraction(str(value))
    return text if len(text) <= _MAX_SHOWN_CHARS else text[: _MAX_SHOWN_CHARS - 3] + "..."


def _trim_zero_fraction(number: str) -> str:
    return number.removesuffix(".0")


def _annotation_at(tokens: list[PathToken]) -> Any:
    annotation: Any = Config
    for token in tokens:
        annotation = _unwrap(annotation)
        if isinstance(token, int):
            annotation = get_args(annotation)[0] if get_origin(annotation) is list else None
        else:
            by_name = {field.name: field.type for field in _struct_fields(annotation)}
            annotation = by_name.get(token)
    return _unwrap(annotation)


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` constraints and ``| None`` from a type annotation."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
        else:
            return annotation


def table_struct(annotation: Any) -> type[Struct] | None:
    """The Struct behind a table or array-of-tables field annotation, else None."""
    annotation = _unwrap(annotation)
    if get_origin(annotation) is list:
        annotation = _unwrap(get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, Struct):
        return annotation
    return None


def unwrap_annotation(annotation: Any) -> Any:
    """A field's value type, without ``Annotated`` constraints or ``| None``."""
    return _unwrap(annotation)


def is_table_array(annotation: Any) -> bool:
    """True for an array-of-tables field (``[[wallets]]``)."""
    return get_origin(_unwrap(annotation)) is list and table_struct(annotation) is not None


def _struct_fields(annotation: Any) -> tuple[msgspec.structs.FieldInfo, ...]:
    if isinstance(annotation, type) and issubclass(annotation, Struct):
        return msgspec.structs.fields(annotation)
    return ()


def _literal_choices(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) if get_origin(annotation) is Literal else ()


# --------------------------------------------------------------------------- secrets


def _apply_secrets(cfg: Config, env: Mapping[str, str]) -> Config:
    for source in SECRET_SOURCES:
        section = getattr(cfg, source.section)
        value = _secret_value(source, getattr(section, source.key), env)
        if value and value != _default_of(source):
            register_secret(value)
        section = msgspec.structs.replace(section, **{source.key: value})
        cfg = msgspec.structs.replace(cfg, **{source.section: section})
    return cfg


def _secret_value(source: SecretSource, file_value: str, env: Mapping[str, str]) -> str:
    from_credential = _read_credential(source.credential, env, source.dotted_key)
    return from_credential or env.get(source.env_var) or file_value


def _default_of(source: SecretSource) -> str:
    value: str = getattr(getattr(_DEFAULTS, source.section), source.key)
    return value


def _read_credential(name: str, env: Mapping[str, str], key: str) -> str:
    """The credential's text without its trailing newline; "" when there is none."""
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return ""
    path = Path(directory) / name
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key}: cannot read systemd credential {path}: {exc}") from None


# --------------------------------------------------------------------------- paths and defaults


def _resolve_paths(cfg: Config, base: Path, env: Mapping[str, str]) -> Config:
    wallets = [
        msgspec.structs.replace(
            wallet, keypair_path=_resolve_keypair_path(f"wallets[{index}].keypair_path",
                                                       wallet.keypair_path, base, env))
        for index, wallet in enumerate(cfg.wallets)
    ]
    journal_path = _resolve_against(cfg.journal.path or _default_journal_path(env), base)
    journal = msgspec.structs.replace(cfg.journal, path=journal_path)
    token_path = _resolve_against(cfg.http.api_token_file or _default_token_path(env), base)
    http = msgspec.structs.replace(cfg.http, api_token_file=token_path)
    return msgspec.structs.replace(cfg, wallets=wallets, journal=journal, http=http)


def _resolve_keypair_path(key: str, raw: str, base: Path, env: Mapping[str, str]) -> str:
    if not raw:
        raise ConfigError(f"{key}: required")
    if raw.startswith(CREDENTIAL_PREFIX):
        return _credential_path(key, raw.removeprefix(CREDENTIAL_PREFIX), env)
    return _resolve_against(raw, base)


def _credential_path(key: str, name: str, env: Mapping[str, str]) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f'{key}: "{CREDENTIAL_PREFIX}{name}" is not a valid credential name')
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError(f"{key}: credential {name!r} needs $CREDENTIALS_DIRECTORY "
                          f"(systemd sets it for LoadCredential=/SetCredential=)")
    path = Path(directory) / name
    if not path.is_file():
        raise ConfigError(f"{key}: systemd credential {path} not found")
    return str(path)


def _default_journal_path(env: Mapping[str, str]) -> str:
    state_directories = env.get("STATE_DIRECTORY", "")
    if state_directories:
        return str(Path(state_directories.split(":")[0]) / STATE_JOURNAL_NAME)
    return DEFAULT_JOURNAL_NAME


def _default_token_path(env: Mapping[str, str]) -> str:
    state_directories = env.get("STATE_DIRECTORY", "")
    if state_directories:
        return str(Path(state_directories.split(":")[0]) / STATE_API_TOKEN_NAME)
    return DEFAULT_API_TOKEN_NAME


def _resolve_against(raw: str, base: Path) -> str:
    path = Path(raw).expanduser()
    return os.path.normpath(path if path.is_absolute() else base / path)


def _fill_send_targets(cfg: Config) -> Config:
    if cfg.send.targets:
        return cfg
    send = msgspec.structs.replace(cfg.send, targets=[cfg.send.mode])
    return msgspec.structs.replace(cfg, send=send)


# --------------------------------------------------------------------------- cross-field checks


def _validate(cfg: Config, *, require_wallets: bool, require_secrets: bool) -> None:
    _check_finite(cfg)
    _check_strategy(cfg.strategy)
    _check_urls(cfg)
    _check_tls(cfg)
    _check_pubkeys(cfg)
    _check_wallets(cfg, require_wallets=require_wallets)
    _check_send(cfg.send)
    _check_tip_within_guard(cfg)
    _check_watch_wallets(cfg.watch_wallets)
    if require_secrets:
        _check_api_key(cfg.stream)
    _check_notify(cfg.notify)
    _check_listen(cfg.http)


def _check_finite(cfg: Config) -> None:
    first = next(_non_finite_floats(cfg, ""), None)
    if first is not None:
        key, value = first
        raise ConfigError(f"{key}: must be a finite number (got {value})")


def _non_finite_floats(value: object, key: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, Struct):
        for name in value.__struct_fields__:
            yield from _non_finite_floats(getattr(value, name), f"{key}.{name}" if key else name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite_floats(item, f"{key}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        yield key, value


def _check_strategy(strategy: StrategyConfig) -> None:
    if not protocol.strategy_has_exit(to_strategy(strategy), strategy.deadline_timeout_sec):
        raise ConfigError(
            "strategy: no exit rule is set; set at least one of target_profit_pct, "
            "stop_loss_pct, trailing_stop_pct, take_profit_levels, breakeven_trail_pct, "
            "sell_on_graduation or deadline_timeout_sec")
    levels = strategy.take_profit_levels
    for index in range(1, len(levels)):
        previous, current = levels[index - 1].profit_pct, levels[index].profit_pct
        if current <= previous:
            raise ConfigError(
                f"strategy.take_profit_levels[{index}].profit_pct: must be greater than the "
                f"previous level's profit_pct ({_show(previous)}) (got {_show(current)})")


_HTTP: Final = ("http", "https")
_URL_RULES: Final = (
    ("stream.url", ("ws", "wss")),
    ("stream.api_url", _HTTP),
    ("rpc.url", _HTTP),
    ("send.helius_sender_url", _HTTP),
    ("send.astralane_url", _HTTP),
    ("notify.webhook_url", _HTTP),
    ("notify.telegram_api_url", _HTTP),
)
_OPTIONAL_URLS: Final = frozenset({"notify.webhook_url"})


def _check_urls(cfg: Config) -> None:
    for key, schemes, url in _urls(cfg):
        if (url or key not in _OPTIONAL_URLS) and not _has_scheme_and_host(url, schemes):
            wanted = " or ".join(f"{scheme}://" for scheme in schemes)
            raise ConfigError(f"{key}: must be a URL starting with {wanted}{_shown(key, url)}")
        if url and not cfg.tls.allow_plaintext and is_remote_plaintext(url):
            secure = urlsplit(url).scheme + "s"
            raise ConfigError(
                f"{key}: plaintext {urlsplit(url).scheme}:// to a host that is not loopback is "
                f"refused: use {secure}://, or set tls.allow_plaintext = true to accept "
                f"that keys and transactions cross the network unencrypted{_shown(key, url)}")


def _shown(key: str, url: str) -> str:
    secret = key in _SECRET_KEYS or key.startswith("rpc.urls")
    return " (value hidden: it may hold a key)" if secret else f" (got {_show(url)})"


def _urls(cfg: Config) -> Iterator[tuple[str, tuple[str, ...], str]]:
    """(key, allowed schemes, value) of every URL in the config."""
    for key, schemes in _URL_RULES:
        yield key, schemes, _value_at(cfg, key)
    for index, url in enumerate(cfg.rpc.urls):
        yield f"rpc.urls[{index}]", _HTTP, url


def plaintext_urls(cfg: Config) -> list[str]:
    """Keys of the URLs that go unencrypted to a host that is not loopback (accepted only
    with ``tls.allow_plaintext``; the daemon warns about each at start)."""
    return [key for key, _, url in _urls(cfg) if url and is_remote_plaintext(url)]


def _check_tls(cfg: Config) -> None:
    for index, pin in enumerate(cfg.tls.pins):
        try:
            parse_pin(pin)
        except ValueError as exc:
            raise ConfigError(f"tls.pins[{index}]: must be the base64 SHA-256 hash of a "
                              f"SubjectPublicKeyInfo ({exc}; got {_show(pin)})") from None
    if cfg.tls.pins:
        for key in ("stream.url", "stream.api_url"):
            if urlsplit(_value_at(cfg, key)).scheme in ("ws", "http"):
                raise ConfigError(f"{key}: tls.pins is set, so it must use TLS "
                                  f"(wss:// or https://)")


_URL_FORBIDDEN: Final = re.compile(r"[\x00-\x20\x7f]")  # control characters and spaces


def _has_scheme_and_host(url: str, schemes: tuple[str, ...]) -> bool:
    """Scheme, host, and a port (if any) in 0-65535: urlsplit alone accepts
    ``ws://host:99999`` and hosts with spaces or NULs, which only fail at connect time."""
    if _URL_FORBIDDEN.search(url):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # ValueError when out of range or not a number
        return parts.scheme in schemes and bool(parts.hostname)
    except ValueError:
        return False


def _value_at(cfg: Config, dotted_key: str) -> str:
    section, key = dotted_key.split(".")
    value: str = getattr(getattr(cfg, section), key)
    return value


def _check_pubkeys(cfg: Config) -> None:
    for key, text in _pubkey_fields(cfg):
        try:
            Pubkey.from_string(text)
        except ValueError as exc:
            raise ConfigError(f"{key}: must be a base58 public key of 32 bytes "
                              f"(got {_show(text)}: {str(exc).lower()})") from None


def _pubkey_fields(cfg: Config) -> Iterator[tuple[str, str]]:
    for index, watch in enumerate(cfg.watch_wallets):
        yield f"watch_wallets[{index}].pubkey", watch.pubkey
        if watch.auto_buy_wallet:
            yield f"watch_wallets[{index}].auto_buy_wallet", watch.auto_buy_wallet
    for name in ("extra_programs", "tip_accounts", "extra_tip_accounts"):
        for index, text in enumerate(getattr(cfg.guard, name)):
            yield f"guard.{name}[{index}]", text


def _check_wallets(cfg: Config, *, require_wallets: bool) -> None:
    if require_wallets and not cfg.wallets:
        raise ConfigError("wallets: at least one [[wallets]] entry with a keypair_path "
                          "is required")


def _check_listen(http: HttpConfig) -> None:
    from lasersell_bot.ops import ListenAddressError, parse_listen

    try:
        parse_listen(http.listen)
    except ListenAddressError as exc:
        raise ConfigError(str(exc)) from None


def _check_tip_within_guard(cfg: Config) -> None:
    if cfg.send.tip_lamports > cfg.guard.max_tip_lamports:
        raise ConfigError(f"send.tip_lamports: above guard.max_tip_lamports "
                          f"({cfg.guard.max_tip_lamports}), so the guard would refuse every "
                          f"transaction (got {cfg.send.tip_lamports})")


def _check_send(send: SendConfig) -> None:
    if send.slippage_base_bps > send.slippage_max_bps:
        raise ConfigError(f"send.slippage_base_bps: must be <= send.slippage_max_bps "
                          f"({send.slippage_max_bps}) (got {send.slippage_base_bps})")
    if send.slippage_bump_bps > send.slippage_max_bps:
        raise ConfigError(f"send.slippage_bump_bps: must be <= send.slippage_max_bps "
                          f"({send.slippage_max_bps}) (got {send.slippage_bump_bps})")
    if "astralane" in send.targets and not send.astralane_api_key:
        raise ConfigError('send.astralane_api_key: required when send.targets includes '
                          '"astralane" (set it here, in LASERSELL_ASTRALANE_API_KEY or in '
                          "the systemd credential astralane-api-key)")


def _check_watch_wallets(watch_wallets: list[WatchWalletConfig]) -> None:
    for index, watch in enumerate(watch_wallets):
        key = f"watch_wallets[{index}]"
        if watch.auto_buy_sol > 0 and watch.auto_buy_usd1 > 0:
            raise ConfigError(f"{key}.auto_buy_usd1: cannot be combined with auto_buy_sol "
                              f"({_show(watch.auto_buy_sol)}); set one of them")
        if round(watch.auto_buy_sol * LAMPORTS_PER_SOL) > U64_MAX:
            raise ConfigError(f"{key}.auto_buy_sol: too large (got {_show(watch.auto_buy_sol)})")
        if round(watch.auto_buy_usd1 * USD1_UNITS_PER_USD1) > U64_MAX:
            raise ConfigError(
                f"{key}.auto_buy_usd1: too large (got {_show(watch.auto_buy_usd1)})")


def _check_api_key(stream: StreamConfig) -> None:
    if not stream.api_key and not _is_loopback_url(stream.url):
        raise ConfigError(
            "stream.api_key: required (set it here, in LASERSELL_API_KEY or in the systemd "
            "credential lasersell-api-key); only a loopback stream.url such as the local "
            "simulator may go without")


def _is_loopback_url(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname or "")


def _check_notify(notify: NotifyConfig) -> None:
    if bool(notify.telegram_bot_token) != bool(notify.telegram_chat_id):
        missing = "telegram_chat_id" if notify.telegram_bot_token else "telegram_bot_token"
        raise ConfigError(f"notify.{missing}: required when the other Telegram setting is set")
    if notify.telegram_commands and not notify.telegram_bot_token:
        raise ConfigError("notify.telegram_commands: needs telegram_bot_token and "
                          "telegram_chat_id")
