"""Tests for the TOML config loader: errors, secrets, paths, helpers, example.toml."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import msgspec
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lasersell_bot import protocol
from lasersell_bot.config import (
    SECRET_SOURCES,
    Config,
    ConfigError,
    SecretSource,
    dump_config,
    is_table_array,
    load_config,
    table_struct,
    to_mirror_config,
    to_strategy,
    to_watch_wallets,
    unwrap_annotation,
)
from lasersell_bot.logs import REDACTOR

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "example.toml"
PUBKEY_A = "BLvHFrtvCWMvBJj5JiGfxvNRv4hk11sQUHWFrh2rvvbC"
PUBKEY_B = "9SuaeSUbXaM3p57GdhMBQQn1Baj87AauZxkttiHDFwtN"
API_KEY_ENV = {"LASERSELL_API_KEY": "example-api-key"}
MINIMAL = '[stream]\napi_key = "test-api-key"\n[strategy]\nstop_loss_pct = 10\n'

PathToken = str | int


def write(directory: Path, text: str, name: str = "config.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(directory: Path, text: str, **kwargs: Any) -> Config:
    kwargs.setdefault("env", {})
    kwargs.setdefault("require_wallets", False)
    return load_config(write(directory, text), **kwargs)


def error_of(directory: Path, text: str, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_text(directory, text, **kwargs)
    return str(caught.value)


def uncommented(text: str) -> str:
    """example.toml with its commented-out tables and keys switched on."""
    return re.sub(r"(?m)^# (?=\[|[a-z0-9_]+ = )", "", text)


# --------------------------------------------------------------------------- example.toml


def test_example_loads_with_defaults_filled() -> None:
    cfg = load_config(EXAMPLE, env=API_KEY_ENV)
    assert cfg.stream.url == "wss://stream.lasersell.io/v1/ws"
    assert cfg.stream.api_key == "example-api-key"
    assert cfg.wallets[0].keypair_path == str(EXAMPLE.parent / "wallet.json")
    assert cfg.send.targets == ["rpc"]
    assert cfg.journal.path == str(EXAMPLE.parent / "lasersell-bot.sqlite3")
    assert cfg.watch_wallets == []
    assert to_mirror_config(cfg.mirror) is None


def test_example_optional_sections_load_when_uncommented(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, uncommented(EXAMPLE.read_text()), env=API_KEY_ENV)
    assert [level.profit_pct for level in cfg.strategy.take_profit_levels] == [100.0]
    assert cfg.watch_wallets[0].pubkey == PUBKEY_A
    assert cfg.mirror.min_liquidity_sol == 10.0
    assert cfg.mirror.max_consecutive_losses == 3


def schema_keys(struct: type[msgspec.Struct], prefix: str = "") -> Iterator[str]:
    """Every documented key: tables by name, array-of-tables items by header name."""
    for field in msgspec.structs.fields(struct):
        key = f"{prefix}{field.name}"
        element = table_struct(field.type)
        if element is not None:
            yield from schema_keys(element, key + ".")
        else:
            yield key


def documented_keys(text: str) -> dict[str, str]:
    """``{dotted key: the line above it}`` for every key line of an example file."""
    keys: dict[str, str] = {}
    table, previous = "", ""
    for line in uncommented(text).splitlines():
        header = re.match(r"^\[\[?([a-z0-9_.]+)\]\]?$", line)
        key = re.match(r"^([a-z0-9_]+) = ", line)
        if header:
            table = header[1]
        elif key:
            keys[f"{table}.{key[1]}"] = previous
        previous = line
    return keys


def test_example_documents_exactly_the_schema_keys() -> None:
    documented = documented_keys(EXAMPLE.read_text())
    expected = set(schema_keys(Config))
    assert {"strategy.take_profit_levels.profit_pct", "watch_wallets.pubkey",
            "wallets.keypair_path", "guard.tip_accounts"} <= expected
    assert sorted(expected - documented.keys()) == []
    assert sorted(documented.keys() - expected) == []


def test_example_comments_every_key() -> None:
    documented = documented_keys(EXAMPLE.read_text())
    uncommented_keys = [key for key, above in documented.items() if not above.startswith("#")]
    assert uncommented_keys == []


# --------------------------------------------------------------------------- file errors


def test_missing_file_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"^.*nope\.toml: config file not found$"):
        load_config(missing, env={})


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file: Is a directory"):
        load_config(tmp_path, env={})


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[stream]\nurl = "wss://x"\nport = = 3\n')
    assert message == (f"{tmp_path / 'config.toml'}, line 3, column 8: "
                       "invalid TOML: Invalid value")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[stream]\napi_key = "\xff"\n')
    with pytest.raises(ConfigError, match=r"config\.toml: not UTF-8 text \(bad byte at offset"):
        load_config(path, env={})


# --------------------------------------------------------------------------- conversion errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[strategy]\nstop_loss_pct = -1",
         "strategy.stop_loss_pct: must be >= 0 (got -1)"),
        ("[strategy]\nstop_loss_pct = 150.5",
         "strategy.stop_loss_pct: must be <= 100 (got 150.5)"),
        ('[send]\nmode = "x"',
         'send.mode: must be one of "rpc", "helius_sender", "astralane" (got "x")'),
        ('[send]\ntargets = ["rpc", 7]',
         'send.targets[1]: must be one of "rpc", "helius_sender", "astralane" (got 7)'),
        ("[[wallets]]\nlabel = \"a\"", "wallets[0].keypair_path: required"),
        ('[[wallets]]\nkeypair_path = ""', "wallets[0].keypair_path: required"),
        ("[strategy]\nstop_loss_pctt = 1",
         'strategy.stop_loss_pctt: unknown key (did you mean "stop_loss_pct"?)'),
        ("[[wallets]]\nkeypair = \"w.json\"",
         'wallets[0].keypair: unknown key (did you mean "keypair_path"?)'),
        ("[straty]\nstop_loss_pct = 1",
         'straty: unknown key (did you mean "strategy"?)'),
        ("[daemon]\nzzz = 1",
         "daemon.zzz: unknown key (known keys: shutdown_grace_sec)"),
        ('[strategy]\nstop_loss_pct = "ten"',
         'strategy.stop_loss_pct: must be a number (got "ten")'),
        ("[send]\ntip_lamports = 1.5",
         "send.tip_lamports: must be an integer (got 1.5)"),
        ("[send]\ntip_lamports = 100000000000000000000",
         "send.tip_lamports: must be <= 9223372036854775807 (got 100000000000000000000)"),
        ('[send]\ndry_run = "yes"', 'send.dry_run: must be true or false (got "yes")'),
        ("[mirror]\nmin_liquidity_sol = [1, 2]",
         "mirror.min_liquidity_sol: must be a number (got [1, 2])"),
        ("[stream]\nurl = 8082", "stream.url: must be a string (got 8082)"),
        ("strategy = 5", "strategy: must be a table (got 5)"),
        ('[guard]\nextra_programs = "x"', 'guard.extra_programs: must be a list (got "x")'),
        ("[stream]\nping_interval_sec = 0", "stream.ping_interval_sec: must be > 0 (got 0)"),
        ("[strategy]\ntarget_profit_pct = 1e400",
         "strategy.target_profit_pct: must be a finite number (got inf)"),
        ("[strategy]\ntake_profit_levels = [{profit_pct = 10}]",
         "strategy.take_profit_levels[0].sell_pct: required"),
    ],
)
def test_conversion_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    assert error_of(tmp_path, text) == message


def test_long_values_are_shortened_in_messages(tmp_path: Path) -> None:
    message = error_of(tmp_path, f'[strategy]\nstop_loss_pct = "{"x" * 500}"')
    assert message == 'strategy.stop_loss_pct: must be a number (got "' + "x" * 56 + "...)"


# --------------------------------------------------------------------------- semantic checks


def test_strategy_without_exit_is_refused(tmp_path: Path) -> None:
    assert error_of(tmp_path, '[stream]\napi_key = "k"\n') == (
        "strategy: no exit rule is set; set at least one of target_profit_pct, "
        "stop_loss_pct, trailing_stop_pct, take_profit_levels, breakeven_trail_pct, "
        "sell_on_graduation or deadline_timeout_sec")


@pytest.mark.parametrize(
    "strategy",
    [
        "[[strategy.take_profit_levels]]\nprofit_pct = 50\nsell_pct = 100",
        "[strategy]\ndeadline_timeout_sec = 120",
        "[strategy]\nsell_on_graduation = true",
        "[strategy]\nbreakeven_trail_pct = 20",
    ],
    ids=["ladder-only", "deadline-only", "graduation-only", "breakeven-only"],
)
def test_single_exit_rule_strategies_are_accepted(tmp_path: Path, strategy: str) -> None:
    cfg = load_text(tmp_path, f'[stream]\napi_key = "k"\n{strategy}\n')
    assert protocol.strategy_has_exit(to_strategy(cfg.strategy),
                                      cfg.strategy.deadline_timeout_sec)


def test_ladder_must_increase(tmp_path: Path) -> None:
    ladder = "".join(f"[[strategy.take_profit_levels]]\nprofit_pct = {pct}\nsell_pct = 50\n"
                     for pct in (50, 100, 100))
    assert error_of(tmp_path, MINIMAL + ladder) == (
        "strategy.take_profit_levels[2].profit_pct: must be greater than the previous "
        "level's profit_pct (100) (got 100)")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[watch_wallets]]\npubkey = "xyz"', "watch_wallets[0].pubkey"),
        (f'[[watch_wallets]]\npubkey = "{PUBKEY_A}"\nauto_buy_wallet = "0OIl"',
         "watch_wallets[0].auto_buy_wallet"),
        ('[guard]\nextra_programs = ["xyz"]', "guard.extra_programs[0]"),
        (f'[guard]\ntip_accounts = ["{PUBKEY_A}", "xyz"]', "guard.tip_accounts[1]"),
        ('[guard]\nextra_tip_accounts = ["xyz"]', "guard.extra_tip_accounts[0]"),
    ],
)
def test_invalid_pubkeys_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    message = error_of(tmp_path, MINIMAL + text)
    assert message.startswith(f"{key}: must be a base58 public key of 32 bytes (got ")


def test_invalid_pubkey_message_gives_the_reason(tmp_path: Path) -> None:
    assert error_of(tmp_path, MINIMAL + '[[watch_wallets]]\npubkey = "0OIl"') == (
        'watch_wallets[0].pubkey: must be a base58 public key of 32 bytes '
        '(got "0OIl": invalid base58 string)')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[stream]\nurl = "https://stream.lasersell.io/v1/ws"',
         'stream.url: must be a URL starting with ws:// or wss:// '
         '(got "https://stream.lasersell.io/v1/ws")'),
        ('[stream]\napi_url = "wss://api.lasersell.io"',
         'stream.api_url: must be a URL starting with http:// or https:// '
         '(got "wss://api.lasersell.io")'),
        ('[send]\nhelius_sender_url = "sender.helius-rpc.com/fast"',
         'send.helius_sender_url: must be a URL starting with http:// or https:// '
         '(got "sender.helius-rpc.com/fast")'),
        ('[send]\nastralane_url = "https://"',
         'send.astralane_url: must be a URL starting with http:// or https:// (got "https://")'),
        ('[rpc]\nurl = "ftp://rpc.example/secret-token"',
         "rpc.url: must be a URL starting with http:// or https:// "
         "(value hidden: it may hold a key)"),
        ('[notify]\nwebhook_url = "hooks.example/secret"',
         "notify.webhook_url: must be a URL starting with http:// or https:// "
         "(value hidden: it may hold a key)"),
    ],
)
def test_url_schemes(tmp_path: Path, text: str, message: str) -> None:
    assert error_of(tmp_path, f"{text}\n[strategy]\nstop_loss_pct = 10\n") == message


def test_wallets_required_unless_told_otherwise(tmp_path: Path) -> None:
    assert error_of(tmp_path, MINIMAL, require_wallets=True) == (
        "wallets: at least one [[wallets]] entry with a keypair_path is required")
    assert load_text(tmp_path, MINIMAL, require_wallets=False).wallets == []


def test_slippage_bump_within_max(tmp_path: Path) -> None:
    text = MINIMAL + ("[send]\nslippage_base_bps = 100\nslippage_bump_bps = 600\n"
                      "slippage_max_bps = 500\n")
    assert error_of(tmp_path, text) == (
        "send.slippage_bump_bps: must be <= send.slippage_max_bps (500) (got 600)")


def test_slippage_base_within_max(tmp_path: Path) -> None:
    text = MINIMAL + "[send]\nslippage_base_bps = 1200\nslippage_max_bps = 1000\n"
    assert error_of(tmp_path, text) == (
        "send.slippage_base_bps: must be <= send.slippage_max_bps (1000) (got 1200)")


def test_watch_wallet_cannot_auto_buy_in_both_currencies(tmp_path: Path) -> None:
    text = MINIMAL + f'[[watch_wallets]]\npubkey = "{PUBKEY_A}"\n'
    text += "auto_buy_sol = 0.1\nauto_buy_usd1 = 5\n"
    assert error_of(tmp_path, text) == (
        "watch_wallets[0].auto_buy_usd1: cannot be combined with auto_buy_sol (0.1); "
        "set one of them")


def test_astralane_target_needs_key(tmp_path: Path) -> None:
    text = MINIMAL + '[send]\nmode = "helius_sender"\ntargets = ["helius_sender", "astralane"]\n'
    assert error_of(tmp_path, text) == (
        'send.astralane_api_key: required when send.targets includes "astralane" '
        "(set it here, in LASERSELL_ASTRALANE_API_KEY or in the systemd credential "
        "astralane-api-key)")
    env = {"LASERSELL_ASTRALANE_API_KEY": "astralane-key-1"}
    assert load_text(tmp_path, text, env=env).send.astralane_api_key == "astralane-key-1"


def test_targets_default_to_mode(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, MINIMAL + '[send]\nmode = "helius_sender"\n')
    assert cfg.send.targets == ["helius_sender"]
    cfg = load_text(tmp_path, MINIMAL + '[send]\nmode = "helius_sender"\ntargets = ["rpc"]\n')
    assert cfg.send.targets == ["rpc"]


def test_api_key_required_for_remote_stream(tmp_path: Path) -> None:
    assert error_of(tmp_path, "[strategy]\nstop_loss_pct = 10\n") == (
        "stream.api_key: required (set it here, in LASERSELL_API_KEY or in the systemd "
        "credential lasersell-api-key); only a loopback stream.url such as the local "
        "simulator may go without")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("ws://127.0.0.1:8082/v1/ws", True),
        ("ws://localhost:8082/v1/ws", True),
        ("ws://[::1]:8082/v1/ws", True),
        ("ws://127.0.0.1.example.com/v1/ws", False),
        ("wss://stream.lasersell.io/v1/ws", False),
    ],
)
def test_api_key_optional_only_on_loopback(tmp_path: Path, url: str, allowed: bool) -> None:
    text = (f'[stream]\nurl = "{url}"\n[tls]\nallow_plaintext = true\n'
            '[strategy]\nstop_loss_pct = 10\n')
    if allowed:
        assert load_text(tmp_path, text).stream.api_key == ""
    else:
        assert error_of(tmp_path, text).startswith("stream.api_key: required")


def test_telegram_needs_both_settings(tmp_path: Path) -> None:
    text = MINIMAL + '[notify]\ntelegram_bot_token = "123:abcdef"\n'
    assert error_of(tmp_path, text) == (
        "notify.telegram_chat_id: required when the other Telegram setting is set")


# --------------------------------------------------------------------------- secrets


def secret_toml(source: SecretSource, value: str) -> str:
    return f'[{source.section}]\n{source.key} = "{value}"\n'


def secret_config(source: SecretSource, file_value: str) -> str:
    text = '[strategy]\nstop_loss_pct = 10\n[stream]\nurl = "ws://127.0.0.1:8082/v1/ws"\n'
    if source.section == "stream":
        text = '[strategy]\nstop_loss_pct = 10\n'
    text += secret_toml(source, file_value)
    if source.key == "telegram_bot_token":
        text += 'telegram_chat_id = "42"\n'
    return text


def secret_of(cfg: Config, source: SecretSource) -> str:
    value: str = getattr(getattr(cfg, source.section), source.key)
    return value


def unique(source: SecretSource, origin: str) -> str:
    token = f"{origin}-{uuid.uuid4().hex}"
    is_url = source.key.endswith("url")
    return f"https://{origin}.example/{token}" if is_url else token


@pytest.mark.parametrize("source", SECRET_SOURCES, ids=lambda s: s.dotted_key)
def test_secret_precedence_file_env_credential(tmp_path: Path, source: SecretSource) -> None:
    from_file, from_env, from_credential = (unique(source, o) for o in ("file", "env", "cred"))
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    text = secret_config(source, from_file)
    env = {source.env_var: from_env, "CREDENTIALS_DIRECTORY": str(credentials)}

    assert secret_of(load_text(tmp_path, text, env={}), source) == from_file
    assert secret_of(load_text(tmp_path, text, env=env), source) == from_env
    (credentials / source.credential).write_text(from_credential + "\n")
    assert secret_of(load_text(tmp_path, text, env=env), source) == from_credential


@pytest.mark.parametrize("source", SECRET_SOURCES, ids=lambda s: s.dotted_key)
def test_empty_env_and_credential_do_not_override(tmp_path: Path, source: SecretSource) -> None:
    from_file = unique(source, "file")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / source.credential).write_text("\n")
    env = {source.env_var: "", "CREDENTIALS_DIRECTORY": str(credentials)}
    cfg = load_text(tmp_path, secret_config(source, from_file), env=env)
    assert secret_of(cfg, source) == from_file


@pytest.mark.parametrize("origin", ["file", "env", "cred"])
@pytest.mark.parametrize("source", SECRET_SOURCES, ids=lambda s: s.dotted_key)
def test_every_secret_is_registered(tmp_path: Path, source: SecretSource, origin: str) -> None:
    secret = unique(source, origin)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    env = {"CREDENTIALS_DIRECTORY": str(credentials)}
    if origin == "env":
        env[source.env_var] = secret
    if origin == "cred":
        (credentials / source.credential).write_text(secret)
    file_value = secret if origin == "file" else unique(source, "unused")
    assert REDACTOR.clean(secret) == secret
    load_text(tmp_path, secret_config(source, file_value), env=env)
    assert REDACTOR.clean(f"value={secret};") == "value=[REDACTED];"


def test_public_default_rpc_url_is_not_treated_as_secret(tmp_path: Path) -> None:
    load_text(tmp_path, MINIMAL)
    assert REDACTOR.clean("https://api.mainnet-beta.solana.com") == (
        "https://api.mainnet-beta.solana.com")


def test_unreadable_credential_names_the_key(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    (credentials / "lasersell-api-key").mkdir(parents=True)
    message = error_of(tmp_path, MINIMAL, env={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert message.startswith(
        f"stream.api_key: cannot read systemd credential {credentials / 'lasersell-api-key'}: ")


# --------------------------------------------------------------------------- paths


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    text = MINIMAL + '[[wallets]]\nkeypair_path = "keys/../keys/main.json"\n'
    text += '[[wallets]]\nkeypair_path = "/abs/second.json"\n[journal]\npath = "data/j.db"\n'
    cfg = load_text(tmp_path, text)
    assert [w.keypair_path for w in cfg.wallets] == [str(tmp_path / "keys" / "main.json"),
                                                    "/abs/second.json"]
    assert cfg.journal.path == str(tmp_path / "data" / "j.db")


def test_home_in_keypair_path_is_expanded(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/trader")
    cfg = load_text(tmp_path, MINIMAL + '[[wallets]]\nkeypair_path = "~/w.json"\n')
    assert cfg.wallets[0].keypair_path == "/home/trader/w.json"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "{config_dir}/lasersell-bot.sqlite3"),
        ({"STATE_DIRECTORY": "/var/lib/lasersell-bot"}, "/var/lib/lasersell-bot/journal.sqlite3"),
        ({"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}, "/var/lib/a/journal.sqlite3"),
    ],
)
def test_journal_default(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    cfg = load_text(tmp_path, MINIMAL, env=env)
    assert cfg.journal.path == expected.format(config_dir=tmp_path)


def test_keypair_from_systemd_credential(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "wallet-keypair").write_text("[1, 2, 3]")
    (credentials / "second").write_text("[4, 5, 6]")
    text = MINIMAL + '[[wallets]]\nkeypair_path = "credential:wallet-keypair"\n'
    text += '[[wallets]]\nkeypair_path = "credential:second"\n'
    cfg = load_text(tmp_path, text, env={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert [w.keypair_path for w in cfg.wallets] == [str(credentials / "wallet-keypair"),
                                                    str(credentials / "second")]


@pytest.mark.parametrize(
    ("keypair_path", "env", "message"),
    [
        ("credential:wallet-keypair", {},
         "wallets[0].keypair_path: credential 'wallet-keypair' needs $CREDENTIALS_DIRECTORY "
         "(systemd sets it for LoadCredential=/SetCredential=)"),
        ("credential:wallet-keypair", {"CREDENTIALS_DIRECTORY": "/nonexistent-creds"},
         "wallets[0].keypair_path: systemd credential /nonexistent-creds/wallet-keypair "
         "not found"),
        ("credential:../etc/passwd", {"CREDENTIALS_DIRECTORY": "/run/creds"},
         'wallets[0].keypair_path: "credential:../etc/passwd" is not a valid credential name'),
        ("credential:", {"CREDENTIALS_DIRECTORY": "/run/creds"},
         'wallets[0].keypair_path: "credential:" is not a valid credential name'),
    ],
)
def test_keypair_credential_errors(tmp_path: Path, keypair_path: str, env: dict[str, str],
                                   message: str) -> None:
    text = MINIMAL + f'[[wallets]]\nkeypair_path = "{keypair_path}"\n'
    assert error_of(tmp_path, text, env=env) == message


# --------------------------------------------------------------------------- helpers


def test_dump_config_round_trips(tmp_path: Path) -> None:
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    text = uncommented(EXAMPLE.read_text()).replace('api_key = ""', 'api_key = "k-123456"')
    cfg = load_text(first_dir, text)
    dumped = dump_config(cfg)
    assert '= ""' not in dumped
    assert load_text(second_dir, dumped) == cfg


def test_dump_config_omits_unset_optionals(tmp_path: Path) -> None:
    dumped = dump_config(load_text(tmp_path, MINIMAL))
    assert "min_liquidity_sol" not in dumped
    assert "label" not in dumped


def test_to_strategy_maps_every_server_field(tmp_path: Path) -> None:
    text = ('[stream]\napi_key = "k"\n[strategy]\ntarget_profit_pct = 40\nstop_loss_pct = 15\n'
            "trailing_stop_pct = 5\nsell_on_graduation = true\nliquidity_guard = true\n"
            "breakeven_trail_pct = 8\ndeadline_timeout_sec = 60\n"
            "[[strategy.take_profit_levels]]\nprofit_pct = 20\nsell_pct = 30\n"
            "trailing_stop_pct = 2\n")
    assert to_strategy(load_text(tmp_path, text).strategy) == protocol.Strategy(
        target_profit_pct=40, stop_loss_pct=15, trailing_stop_pct=5, sell_on_graduation=True,
        take_profit_levels=[protocol.TakeProfitLevel(profit_pct=20, sell_pct=30,
                                                     trailing_stop_pct=2)],
        liquidity_guard=True, breakeven_trail_pct=8)


def test_to_mirror_config(tmp_path: Path) -> None:
    text = MINIMAL + "[mirror]\nenabled = true\ncooldown_sec = 5\nmin_liquidity_sol = 12.5\n"
    assert to_mirror_config(load_text(tmp_path, text).mirror) == protocol.MirrorConfig(
        max_positions_per_wallet=1, cooldown_sec=5, skip_creator_tokens=False,
        max_active_sol=5.0, buy_slippage_bps=2500, min_liquidity_sol=12.5)
    assert to_mirror_config(load_text(tmp_path, MINIMAL).mirror) is None


def test_to_watch_wallets_converts_amounts_exactly(tmp_path: Path) -> None:
    text = MINIMAL + "".join([
        f'[[watch_wallets]]\npubkey = "{PUBKEY_A}"\nauto_buy_sol = 0.3\nmirror_sell = true\n',
        f'[[watch_wallets]]\npubkey = "{PUBKEY_B}"\nauto_buy_usd1 = 2.5\n',
        f'auto_buy_wallet = "{PUBKEY_A}"\n',
        f'[[watch_wallets]]\npubkey = "{PUBKEY_B}"\n',
    ])
    default_wallet = "11111111111111111111111111111111"
    assert to_watch_wallets(load_text(tmp_path, text), default_wallet) == [
        protocol.WatchWallet(pubkey=PUBKEY_A, mirror_sell=True, auto_buy=protocol.AutoBuy(
            wallet_pubkey=default_wallet, amount_quote_units=300_000_000)),
        protocol.WatchWallet(pubkey=PUBKEY_B, auto_buy=protocol.AutoBuy(
            wallet_pubkey=PUBKEY_A, amount_quote_units=0, amount_usd1_units=2_500_000)),
        protocol.WatchWallet(pubkey=PUBKEY_B),
    ]


@pytest.mark.parametrize("sol", [0.1, 0.2, 0.3, 0.7, 1.1, 2.675, 0.000000001, 123.456789])
def test_sol_to_lamports_is_exact(tmp_path: Path, sol: float) -> None:
    text = MINIMAL + f'[[watch_wallets]]\npubkey = "{PUBKEY_A}"\nauto_buy_sol = {sol!r}\n'
    [watch] = to_watch_wallets(load_text(tmp_path, text), PUBKEY_B)
    assert watch.auto_buy is not None
    expected = int(f"{sol:.9f}".replace(".", ""))
    assert watch.auto_buy.amount_quote_units == expected


# --------------------------------------------------------------------------- wrong types everywhere

VALID_RAW: dict[str, Any] = {
    "stream": {"api_key": "test-api-key"},
    "strategy": {"stop_loss_pct": 10, "take_profit_levels": [{"profit_pct": 50, "sell_pct": 50}]},
    "wallets": [{"keypair_path": "w.json"}],
    "watch_wallets": [{"pubkey": PUBKEY_A}],
}


def leaves(
    struct: type[msgspec.Struct], prefix: list[PathToken]
) -> Iterator[tuple[list[PathToken], Any]]:
    """``(path, annotation)`` of every scalar or list-of-scalars key; arrays at index 0."""
    for field in msgspec.structs.fields(struct):
        path = [*prefix, field.name]
        element = table_struct(field.type)
        if element is None:
            yield path, unwrap_annotation(field.type)
        elif is_table_array(field.type):
            yield from leaves(element, [*path, 0])
        else:
            yield from leaves(element, path)


LEAVES = list(leaves(Config, []))


def dotted(path: list[PathToken]) -> str:
    text = ""
    for token in path:
        text += f"[{token}]" if isinstance(token, int) else (f".{token}" if text else token)
    return text


def with_value(path: list[PathToken], value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(VALID_RAW)
    node: Any = raw
    for token in path[:-1]:
        node = node.setdefault(token, {}) if isinstance(node, dict) else node[token]
    node[path[-1]] = value
    return raw


def wrong_values(annotation: Any) -> st.SearchStrategy[Any]:
    """Values of a wrong type (or out of range) for a field of ``annotation``."""
    text = st.text(st.characters(codec="utf-8"), max_size=20)
    containers = st.lists(st.integers(), max_size=3) | st.dictionaries(
        st.text("abcxyz", min_size=1, max_size=5), st.integers(), max_size=2)
    if annotation is bool:
        return text | st.integers() | st.floats() | containers
    if annotation is int:
        return (text | containers | st.booleans() | st.integers(min_value=2**63)
                | st.integers(max_value=-1) | st.floats(allow_nan=False).filter(
                    lambda x: not x.is_integer()))
    if annotation is float:
        return (text | containers | st.booleans() | st.integers(min_value=10**309)
                | st.integers(max_value=-1) | st.floats(max_value=-1e-9))
    if annotation is str:
        return st.integers() | st.floats() | st.booleans() | containers
    if get_origin(annotation) is Literal:
        return text.filter(lambda t: t not in get_args(annotation)) | st.integers() | containers
    assert get_origin(annotation) is list, annotation
    return text | st.integers() | st.lists(st.integers(), min_size=1)


def first_wrong_values(annotation: Any) -> list[Any]:
    if annotation is float:
        return ["1", [], {"a": 1}, True, 10**400, -1, -0.5]
    if annotation is int:
        return ["1", [], {"a": 1}, True, 2**64, -1, 1.5]
    if annotation is bool:
        return ["true", 1, [], {"a": 1}]
    if annotation is str:
        return [1, 1.5, True, ["a"], {"a": "b"}]
    if get_origin(annotation) is Literal:
        return ["nope", 1, ["rpc"]]
    return ["x", 1, {"a": 1}, [1]]


def assert_error_names_key(path: Path, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={}, require_wallets=False)
    message = str(caught.value)
    assert message.startswith(key), message
    assert message[len(key)] in ":[", message


def test_every_leaf_is_covered() -> None:
    keys = {dotted(path) for path, _ in LEAVES}
    assert {"stream.api_key", "wallets[0].keypair_path", "send.targets", "guard.tip_accounts",
            "strategy.take_profit_levels[0].sell_pct", "watch_wallets[0].mirror_sell",
            "mirror.max_consecutive_losses", "daemon.shutdown_grace_sec"} <= keys


def test_valid_raw_base_loads(tmp_path: Path) -> None:
    path = write(tmp_path, tomli_w.dumps(VALID_RAW))
    assert load_config(path, env={}, require_wallets=False).watch_wallets[0].pubkey == PUBKEY_A


@pytest.mark.parametrize(("path", "annotation"), LEAVES, ids=[dotted(p) for p, _ in LEAVES])
def test_each_leaf_rejects_wrong_values(tmp_path: Path, path: list[PathToken],
                                        annotation: Any) -> None:
    for value in first_wrong_values(annotation):
        file = write(tmp_path, tomli_w.dumps(with_value(path, value)))
        assert_error_names_key(file, dotted(path))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hypothesis")


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_wrong_value_gives_config_error_naming_key(scratch: Path, data: st.DataObject) -> None:
    path, annotation = data.draw(st.sampled_from(LEAVES), label="key")
    value = data.draw(wrong_values(annotation), label="value")
    file = write(scratch, tomli_w.dumps(with_value(path, value)))
    assert_error_names_key(file, dotted(path))


def test_tip_above_the_guard_cap_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + "[send]\ntip_lamports = 6000000\n[guard]\nmax_tip_lamports = 5000000\n"
    assert error_of(tmp_path, text) == (
        "send.tip_lamports: above guard.max_tip_lamports (5000000), so the guard would "
        "refuse every transaction (got 6000000)")
