"""``lasersell-bot init`` through the real CLI: flags, prompts, files, modes and secrets."""

from __future__ import annotations

import argparse
import builtins
import getpass
import json
import re
import stat
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from lasersell_bot import cli, init
from lasersell_bot.cli import main
from lasersell_bot.config import SECRET_SOURCES, Config, dump_config, load_config, table_struct
from lasersell_bot.config_toml import render_config
from lasersell_bot.seed_phrase import keypair_from_phrase
from lasersell_bot.wallet import load_keypair

API_KEY = "init-test-api-key-7f3a9c"
RPC_SECRET = "rpc-key-in-query-5b1e"
RPC_URL = f"https://rpc.example.com/?api-key={RPC_SECRET}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for source in SECRET_SOURCES:
        monkeypatch.delenv(source.env_var, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setattr(init, "stdin_is_tty", lambda: False)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def key_secrets(keypair: Keypair) -> list[str]:
    """Every text form of a secret key that must never be printed."""
    raw = bytes(keypair)
    return [str(keypair), raw.hex(), json.dumps(list(raw)), json.dumps(list(raw),
            separators=(",", ":")), str(list(raw))]


def assert_no_secrets(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["init", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def flags(tmp_path: Path, *extra: str) -> list[str]:
    return ["--non-interactive", "-o", str(tmp_path / "bot.toml"), "--rpc-url", RPC_URL,
            "--stop-loss-pct", "20", *extra]


def write_key(path: Path, keypair: Keypair, mode: int = 0o600) -> Path:
    path.write_text(json.dumps(list(bytes(keypair))))
    path.chmod(mode)
    return path


# --------------------------------------------------------------------------- non-interactive


def test_new_keypair_and_config_are_private_and_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_path = tmp_path / "keys" / "trader.json"
    code, out, err = run(capsys, *flags(tmp_path, "--new-keypair", str(key_path),
                                        "--api-key", API_KEY, "--target-profit-pct", "75"))

    assert code == 0, err
    config_path = tmp_path / "bot.toml"
    assert mode_of(config_path) == 0o600
    assert mode_of(key_path) == 0o600
    assert mode_of(key_path.parent) == 0o700
    keypair = load_keypair(key_path)
    assert len(json.loads(key_path.read_text())) == 64
    cfg = load_config(config_path)
    assert cfg.wallets[0].keypair_path == str(key_path)
    assert (cfg.stream.api_key, cfg.rpc.url) == (API_KEY, RPC_URL)
    assert (cfg.strategy.target_profit_pct, cfg.strategy.stop_loss_pct) == (75, 20)
    assert cfg.send.mode == "rpc"
    assert f"Wallet pubkey: {keypair.pubkey()}" in out
    assert f"lasersell-bot check --config {config_path}" in out
    assert_no_secrets(out + err, API_KEY, RPC_SECRET, *key_secrets(keypair))
    assert "--api-key stays in your shell history" in err


def test_without_api_key_recommends_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, *flags(tmp_path, "--new-keypair", str(tmp_path / "k.json")))

    assert code == 0
    stream = tomllib.loads((tmp_path / "bot.toml").read_text())["stream"]
    assert "api_key" not in stream
    assert "set LASERSELL_API_KEY" in out


@pytest.mark.parametrize("secret_bytes", [64, 32], ids=["secret-key", "seed"])
def test_import_base58_into_a_new_private_json_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], secret_bytes: int
) -> None:
    if secret_bytes == 64:
        keypair = Keypair()
        base58 = str(keypair)
    else:
        seed = bytes(range(1, 33))
        keypair, base58 = Keypair.from_seed(seed), str(Pubkey(seed))
    source = tmp_path / "phantom-export.txt"
    source.write_text(base58 + "\n")
    target = tmp_path / "imported.json"

    code, out, err = run(capsys, *flags(tmp_path, "--import-base58-file", str(source),
                                        "--new-keypair", str(target)))

    assert code == 0, err
    assert mode_of(target) == 0o600
    assert load_keypair(target).pubkey() == keypair.pubkey()
    assert load_config(tmp_path / "bot.toml", require_secrets=False).wallets[0].keypair_path \
        == str(target)
    assert f"Wallet pubkey: {keypair.pubkey()}" in out
    assert f"imported from {source}" in out
    assert_no_secrets(out + err, base58, *key_secrets(keypair))


def test_import_defaults_to_wallet_json_beside_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keypair = Keypair()
    (tmp_path / "secret.txt").write_text(str(keypair))

    code, _, err = run(capsys, *flags(tmp_path, "--import-base58-file",
                                      str(tmp_path / "secret.txt")))

    assert code == 0, err
    assert load_keypair(tmp_path / "wallet.json").pubkey() == keypair.pubkey()


def test_import_of_a_non_base58_file_names_the_flag_and_hides_the_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bad.txt"
    source.write_text("not-base58-0OIl-secretish-content")

    code, out, err = run(capsys, *flags(tmp_path, "--import-base58-file", str(source)))

    assert code == 2
    assert err.startswith("lasersell-bot init: --import-base58-file: ")
    assert "does not hold a base58 secret key" in err
    assert "secretish" not in out + err
    assert not (tmp_path / "bot.toml").exists() and not (tmp_path / "wallet.json").exists()


def test_existing_keypair_is_named_by_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keypair = Keypair()
    key_path = write_key(tmp_path / "mine.json", keypair)

    code, out, err = run(capsys, *flags(tmp_path, "--keypair", str(key_path)))

    assert code == 0, err
    assert load_config(tmp_path / "bot.toml", require_secrets=False).wallets[0].keypair_path \
        == str(key_path)
    assert f"Wallet pubkey: {keypair.pubkey()}" in out
    assert "(existing)" in out
    assert_no_secrets(out + err, *key_secrets(keypair))


def test_existing_keypair_readable_by_others_is_refused_with_chmod_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_path = write_key(tmp_path / "open.json", Keypair(), mode=0o644)

    code, _, err = run(capsys, *flags(tmp_path, "--keypair", str(key_path)))

    assert code == 2
    assert f"--keypair: keypair file {key_path} has permissions 0644" in err
    assert f"chmod 600 {key_path}" in err
    assert not (tmp_path / "bot.toml").exists()


def test_existing_config_is_refused_without_force_and_replaced_0600_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = tmp_path / "bot.toml"
    config_path.write_text("# keep me\n")
    config_path.chmod(0o644)
    key_path = tmp_path / "k.json"

    code, _, err = run(capsys, *flags(tmp_path, "--new-keypair", str(key_path)))

    assert code == 2
    assert "--output" in err and "already exists (pass --force" in err
    assert config_path.read_text() == "# keep me\n"
    assert not key_path.exists()

    code, _, err = run(capsys, *flags(tmp_path, "--new-keypair", str(key_path), "--force"))

    assert code == 0, err
    assert mode_of(config_path) == 0o600
    assert load_config(config_path, require_secrets=False).strategy.stop_loss_pct == 20
    assert not list(tmp_path.glob(".bot.toml.*"))


def test_an_existing_key_file_is_never_overwritten_even_with_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_path = write_key(tmp_path / "k.json", Keypair())
    before = key_path.read_bytes()

    code, _, err = run(capsys, *flags(tmp_path, "--new-keypair", str(key_path), "--force"))

    assert code == 2
    assert "--new-keypair" in err and "never overwrites a key file" in err
    assert key_path.read_bytes() == before


@pytest.mark.parametrize(("drop", "named"), [
    ("--rpc-url", "--rpc-url is required"),
    ("--new-keypair", "--keypair, --new-keypair, --import-base58-file, "
                      "--import-seed-phrase-file or --new-seed-phrase is required"),
    ("--stop-loss-pct", "--target-profit-pct or --stop-loss-pct is required"),
])
def test_missing_required_flag_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], drop: str, named: str
) -> None:
    argv = flags(tmp_path, "--new-keypair", str(tmp_path / "k.json"))
    index = argv.index(drop)
    del argv[index:index + 2]

    code, out, err = run(capsys, *argv)

    assert code == 2
    assert err == f"lasersell-bot init: {named} with --non-interactive\n"
    assert out == ""
    assert list(tmp_path.iterdir()) == []


def test_without_a_tty_init_never_prompts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_prompt(*_: object) -> str:
        raise AssertionError("prompted without a TTY")

    monkeypatch.setattr(builtins, "input", no_prompt)
    monkeypatch.setattr(getpass, "getpass", no_prompt)

    code, _, err = run(capsys, "-o", str(tmp_path / "bot.toml"))

    assert code == 2
    assert "(stdin is not a terminal, so init cannot ask)" in err


@pytest.mark.parametrize(("extra", "message"), [
    (["--stop-loss-pct", "150"], "--stop-loss-pct: must be <= 100 (got 150)"),
    (["--target-profit-pct", "-5"], "--target-profit-pct: must be >= 0 (got -5)"),
    (["--stop-loss-pct", "0"], "strategy: no exit rule is set"),
    (["--rpc-url", "ftp://rpc.example.com"], "--rpc-url: must be a URL starting with http://"),
    (["--keypair", "x.json"], "--keypair cannot be combined with --new-keypair"),
    (["--send-mode", "astralane"], "--astralane-api-key: astralane needs an API key"),
])
def test_bad_values_are_refused_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code, _, err = run(capsys, *flags(tmp_path, "--new-keypair", str(tmp_path / "k.json")),
                       *extra)

    assert code == 2
    assert message in err
    assert not (tmp_path / "bot.toml").exists()


def test_send_modes_astralane_key_and_helius_tip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    astralane_key = "astralane-secret-9d2e"
    code, out, err = run(capsys, *flags(tmp_path, "--new-keypair", str(tmp_path / "a.json"),
                                        "--send-mode", "astralane",
                                        "--astralane-api-key", astralane_key))
    assert code == 0, err
    cfg = load_config(tmp_path / "bot.toml", require_secrets=False)
    assert (cfg.send.mode, cfg.send.astralane_api_key) == ("astralane", astralane_key)
    assert astralane_key not in out + err

    code, out, err = run(capsys, *flags(tmp_path, "--new-keypair", str(tmp_path / "h.json"),
                                        "--send-mode", "helius_sender", "--force"))
    assert code == 0, err
    cfg = load_config(tmp_path / "bot.toml", require_secrets=False)
    assert (cfg.send.mode, cfg.send.tip_lamports) == ("helius_sender", 1_000_000)


# --------------------------------------------------------------------------- interactive


@dataclass
class Terminal:
    """Scripted answers for ``input``/``getpass``: (prompt fragment, answer, hidden)."""

    script: list[tuple[str, str, bool]]
    prompts: list[str] = field(default_factory=list)

    def read(self, prompt: str, hidden: bool) -> str:
        assert self.script, f"unexpected prompt {prompt!r}"
        fragment, answer, want_hidden = self.script.pop(0)
        assert fragment in prompt, (fragment, prompt)
        assert hidden == want_hidden, prompt
        self.prompts.append(prompt)
        return answer


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Terminal]:
    term = Terminal([])
    monkeypatch.setattr(init, "stdin_is_tty", lambda: True)
    monkeypatch.setattr(builtins, "input", lambda prompt="": term.read(prompt, False))
    monkeypatch.setattr(getpass, "getpass",
                        lambda prompt="Password: ", stream=None: term.read(prompt, True))
    yield term
    assert term.script == [], "not every scripted answer was asked for"


def test_interactive_prompts_validate_and_re_ask(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], terminal: Terminal
) -> None:
    taken = tmp_path / "taken.toml"
    taken.write_text("# keep\n")
    output = tmp_path / "bot.toml"
    terminal.script = [
        ("Config file to write [lasersell-bot.toml]", str(taken), False),
        ("exists. Overwrite it? [y/N]", "n", False),
        ("Config file to write", str(output), False),
        ("LaserSell API key", API_KEY, True),
        ("Solana RPC URL", "ftp://rpc.example.com", True),
        ("Solana RPC URL", RPC_URL, True),
        ("Wallet keypair: (e)xisting file, (n)ew keypair, (i)mport", "", False),
        (f"Write the new keypair file to [{tmp_path / 'wallet.json'}]", "", False),
        ("Take profit", "lots", False),
        ("Take profit", "", False),
        ("Stop loss", "150", False),
        ("Stop loss", "10", False),
        ("Send mode (rpc, helius_sender, astralane) [rpc]", "helius_sender", False),
    ]

    code, out, err = run(capsys)

    assert code == 0, err
    assert taken.read_text() == "# keep\n"
    cfg = load_config(output)
    assert (cfg.stream.api_key, cfg.rpc.url) == (API_KEY, RPC_URL)
    assert (cfg.strategy.target_profit_pct, cfg.strategy.stop_loss_pct) == (50, 10)
    assert (cfg.send.mode, cfg.send.tip_lamports) == ("helius_sender", 1_000_000)
    keypair = load_keypair(tmp_path / "wallet.json")
    assert f"Wallet pubkey: {keypair.pubkey()}" in out
    assert err.count("try again") == 4
    assert "rpc.url" not in err and "must be a URL starting with http://" in err
    assert "must be a number (got 'lots')" in err
    assert "must be <= 100 (got 150)" in err
    assert_no_secrets(out + err + "".join(terminal.prompts), API_KEY, RPC_SECRET,
                      *key_secrets(keypair))


def test_interactive_uses_given_flags_and_re_asks_for_an_exit_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], terminal: Terminal
) -> None:
    key_path = write_key(tmp_path / "mine.json", Keypair())
    terminal.script = [
        ("LaserSell API key (recommended: leave empty", "", True),
        ("Stop loss", "0", False),
        ("Stop loss", "5", False),
        ("Send mode", "", False),
    ]

    code, _, err = run(capsys, "-o", str(tmp_path / "bot.toml"), "--rpc-url", RPC_URL,
                       "--keypair", str(key_path), "--target-profit-pct", "0")

    assert code == 0, err
    assert "strategy: no exit rule is set" in err
    cfg = load_config(tmp_path / "bot.toml", require_secrets=False)
    assert (cfg.strategy.target_profit_pct, cfg.strategy.stop_loss_pct) == (0, 5)
    assert cfg.send.mode == "rpc"


def test_interactive_end_of_input_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def closed(*_: object) -> str:
        raise EOFError

    monkeypatch.setattr(init, "stdin_is_tty", lambda: True)
    monkeypatch.setattr(builtins, "input", closed)
    monkeypatch.setattr(getpass, "getpass", closed)

    code, _, err = run(capsys, "-o", str(tmp_path / "bot.toml"))

    assert code == 2
    assert "input ended before init finished; nothing was written" in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the written TOML


README_SNIPPETS = """
[[wallets]]
keypair_path = "second.json"
label = "second"

[[watch_wallets]]
pubkey = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"
auto_buy_sol = 0.1

[[strategy.take_profit_levels]]
profit_pct = 100.0
sell_pct = 50.0
"""


def written_keys(text: str) -> dict[str, set[str]]:
    """``{table path: keys}`` of a written config; ``# key =`` comment lines count."""
    tables: dict[str, set[str]] = {}
    current: set[str] = set()
    for raw in text.splitlines():
        line = raw.removeprefix("# ").strip()
        header = re.fullmatch(r"\[\[?([a-z_.]+)\]\]?.*", line)
        if header:
            current = tables.setdefault(header.group(1), set())
        elif re.match(r"[a-z0-9_]+ =", line):
            current.add(line.split(" =", 1)[0])
    return tables


def schema_keys(struct: type[msgspec.Struct] = Config, path: str = "") -> dict[str, set[str]]:
    tables: dict[str, set[str]] = {}
    for info in msgspec.structs.fields(struct):
        nested = table_struct(info.type)
        dotted = f"{path}.{info.name}" if path else info.name
        if nested is not None:
            tables.update(schema_keys(nested, dotted))
        elif path:
            tables.setdefault(path, set()).add(info.name)
    return tables


def test_init_writes_every_key_as_tables_the_readme_snippets_can_extend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, *flags(tmp_path, "--new-keypair", str(tmp_path / "k.json")))
    assert code == 0, err
    config_path = tmp_path / "bot.toml"
    text = config_path.read_text()
    assert written_keys(text) == schema_keys()
    assert "wallets = [" not in text and "watch_wallets = []" not in text
    write_key(tmp_path / "second.json", Keypair())
    config_path.write_text(text + README_SNIPPETS)

    cfg = load_config(config_path, env={"LASERSELL_API_KEY": API_KEY})
    assert [w.label for w in cfg.wallets] == ["main", "second"]
    assert [w.auto_buy_sol for w in cfg.watch_wallets] == [0.1]
    assert [(lv.profit_pct, lv.sell_pct) for lv in cfg.strategy.take_profit_levels] == [
        (100.0, 50.0)]


def test_rendered_config_round_trips_with_every_section_filled(tmp_path: Path) -> None:
    cfg = msgspec.convert({
        "stream": {"api_key": "k", "url": "ws://127.0.0.1:1/v1/ws"},
        "wallets": [{"keypair_path": str(write_key(tmp_path / "a.json", Keypair()))}],
        "strategy": {"stop_loss_pct": 10.0,
                     "take_profit_levels": [{"profit_pct": 20.0, "sell_pct": 50.0}]},
        "mirror": {"min_liquidity_sol": 3.0},
        "watch_wallets": [{"pubkey": "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"}],
        "notify": {"webhook_url": "https://hooks.example/x"},
    }, Config)
    path = tmp_path / "c.toml"
    path.write_text(render_config(cfg))
    path.chmod(0o600)
    assert load_config(path, env={}) == load_config(
        _dumped(tmp_path, cfg), env={})


def _dumped(tmp_path: Path, cfg: Config) -> Path:
    path = tmp_path / "dumped.toml"
    path.write_text(dump_config(cfg))
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------- seed phrases


OKX_PHRASE = "famous grow judge chair narrow auction order repeat hungry endless market taxi"
OKX_SECRET_B58 = ("42gxtUbib5ETVJAX8aMYrLG3XahGnMXvAHXa4TkhWZJ6ev64bzPXsRQzYEmQvriQwHeWjEu8"
                  "JqwpyRYCR7hYUnAG")  # tests/test_seed_phrase.py says where it comes from


def test_import_seed_phrase_file_writes_phantoms_wallet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    phrase_file = tmp_path / "phrase.txt"
    phrase_file.write_text(OKX_PHRASE + "\n")
    key_path = tmp_path / "restored.json"
    code, out, err = run(capsys, *flags(tmp_path, "--import-seed-phrase-file", str(phrase_file),
                                        "--new-keypair", str(key_path)))

    assert code == 0, err
    expected = Keypair.from_base58_string(OKX_SECRET_B58)
    assert load_keypair(key_path) == expected and mode_of(key_path) == 0o600
    assert f"Wallet pubkey: {expected.pubkey()}" in out
    assert f"imported from {phrase_file}" in out
    assert_no_secrets(out + err + (tmp_path / "bot.toml").read_text(), OKX_PHRASE,
                      *OKX_PHRASE.split()[3:6], *key_secrets(expected))


def test_a_bad_seed_phrase_file_names_the_flag_not_the_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    phrase_file = tmp_path / "phrase.txt"
    phrase_file.write_text(OKX_PHRASE.replace("famous grow", "grow famous"))
    code, out, err = run(capsys, *flags(tmp_path, "--import-seed-phrase-file", str(phrase_file)))

    assert code == 2 and out == ""
    assert err.startswith(f"lasersell-bot init: --import-seed-phrase-file: {phrase_file}: "
                          "the checksum does not match")
    assert not any(word in err for word in ("famous", "narrow", "taxi"))
    assert not (tmp_path / "wallet.json").exists()


def test_no_flag_takes_a_seed_phrase_itself() -> None:
    """The phrase comes from a hidden prompt or a file, never from argv."""
    parser = cli._parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            init_parser = action.choices["init"]
    taking_values = [a.option_strings for a in init_parser._actions
                     if "phrase" in a.dest and a.nargs != 0]
    assert taking_values == [["--import-seed-phrase-file"]]


def test_interactive_seed_phrase_is_hidden_and_re_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], terminal: Terminal
) -> None:
    terminal.script = [
        ("Wallet keypair:", "s", False),
        ("Seed phrase, 12 or 24 words (input hidden)", OKX_PHRASE.replace("taxi", "taxo"), True),
        ("Seed phrase", OKX_PHRASE, True),
        ("BIP39 passphrase, only if your wallet set one", "", True),
        ("Write the new keypair file to", "", False),
    ]
    code, out, err = run(capsys, "-o", str(tmp_path / "bot.toml"), "--rpc-url", RPC_URL,
                         "--api-key", API_KEY, "--target-profit-pct", "50",
                         "--stop-loss-pct", "20", "--send-mode", "rpc")

    assert code == 0, err
    assert load_keypair(tmp_path / "wallet.json") == Keypair.from_base58_string(OKX_SECRET_B58)
    assert "word 12 is not in the BIP39 English word list; try again" in err
    assert_no_secrets(out + err + "".join(terminal.prompts), OKX_PHRASE, "taxo")


def test_new_seed_phrase_is_shown_once_and_restores_the_written_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(init, "stdout_is_tty", lambda: True)
    code, out, err = run(capsys, *flags(tmp_path, "--new-seed-phrase"))

    assert code == 0, err
    words = re.findall(r"\b\d{1,2}\. ([a-z]+)", out)
    assert len(words) == 12 and "shown only now and stored nowhere" in out
    written = load_keypair(tmp_path / "wallet.json")
    assert written == keypair_from_phrase(" ".join(words))
    assert len(re.findall(r"(?<!\d)1\. [a-z]+", out)) == 1  # the list is printed once
    files = (tmp_path / "bot.toml").read_text() + (tmp_path / "wallet.json").read_text()
    assert " ".join(words) not in files and err == ""


def test_new_seed_phrase_is_refused_when_stdout_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *flags(tmp_path, "--new-seed-phrase"))
    assert code == 2 and out == ""
    assert "--new-seed-phrase shows the new phrase once, on a terminal" in err
    assert not (tmp_path / "wallet.json").exists() and not (tmp_path / "bot.toml").exists()
