"""``lasersell-bot init``: write a new config file, by asking on a TTY or from flags.

Owns gathering the answers (output path, API key, RPC URL, keypair, take profit and
stop loss, send mode), checking each one with the config loader's own rules, writing
the key file and the TOML with mode 0600 from the moment they exist, and proving the
written file loads. Flags answer questions up front; ``--non-interactive`` (or a stdin
that is not a terminal) never prompts and names the missing flag instead.

Secrets are read with ``getpass`` and never printed: the wallet shows up by pubkey only.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar, cast, get_args
from urllib.parse import urlsplit

import msgspec
from solders.keypair import Keypair

from lasersell_bot.config import (
    Config,
    ConfigError,
    RpcConfig,
    SendConfig,
    SendTarget,
    StrategyConfig,
    StreamConfig,
    WalletConfig,
    dump_config,
    load_config,
)
from lasersell_bot.config_toml import render_config
from lasersell_bot.logs import register_secret
from lasersell_bot.seed_phrase import (
    SOLANA_PATH,
    SeedPhraseError,
    check_phrase,
    keypair_from_phrase,
    new_phrase,
)
from lasersell_bot.wallet import WalletError, b58decode, load_keypair

EXIT_OK: Final = 0
EXIT_BAD_INPUT: Final = 2
DEFAULT_OUTPUT: Final = "lasersell-bot.toml"
DEFAULT_KEY_NAME: Final = "wallet.json"
DEFAULT_RPC_URL: Final = RpcConfig().url
DEFAULT_TAKE_PROFIT: Final = "50"
DEFAULT_STOP_LOSS: Final = "20"
# Helius Sender drops transactions whose tip is below 0.001 SOL (see PROTOCOL.md).
HELIUS_MIN_TIP_LAMPORTS: Final = 1_000_000
API_KEY_ENV: Final = "LASERSELL_API_KEY"
ASTRALANE_KEY_ENV: Final = "LASERSELL_ASTRALANE_API_KEY"
KEY_FLAGS: Final = ("--keypair, --new-keypair, --import-base58-file, --import-seed-phrase-file "
                    "or --new-seed-phrase")
SEND_MODES: Final[tuple[str, ...]] = get_args(SendTarget)
_KEY_CHOICES: Final = {"e": "existing", "existing": "existing", "n": "new", "new": "new",
                       "i": "import", "import": "import", "s": "seed", "seed": "seed",
                       "p": "new_phrase", "phrase": "new_phrase"}
_HEADER: Final = (
    "# lasersell-bot config written by `lasersell-bot init`.\n"
    "# Every key is documented in config/example.toml. Secrets can live outside this\n"
    "# file: LASERSELL_API_KEY, LASERSELL_RPC_URL or systemd credentials (see README).\n\n"
)

T = TypeVar("T")


class InitError(Exception):
    """Bad input; the message names the flag or the config key."""


# --------------------------------------------------------------------------- prompting


def stdin_is_tty() -> bool:
    return sys.stdin.isatty()


class Prompter:
    """Answers from flags, else from the user on a TTY; bad answers re-prompt or raise."""

    def __init__(self, interactive: bool, why_not: str) -> None:
        self.interactive = interactive
        self._why_not = why_not

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> Prompter:
        if args.non_interactive:
            return cls(False, "with --non-interactive")
        if not stdin_is_tty():
            return cls(False, "(stdin is not a terminal, so init cannot ask)")
        return cls(True, "")

    def missing(self, flags: str) -> InitError:
        return InitError(f"{flags} is required {self._why_not}")

    def value(self, flag: str, given: object, parse: Callable[[str], T], *, prompt: str,
              default: str | None, secret: bool = False) -> T:
        """The flag's value if given; else the user's answer, or ``default`` when not asking.

        ``default`` None makes the flag required when not asking.
        """
        if given is not None:
            return _parse_flag(flag, str(given), parse)
        if not self.interactive:
            if default is None:
                raise self.missing(flag)
            return _parse_flag(flag, default, parse)
        return self._ask(prompt, default, parse, secret)

    def _ask(self, prompt: str, default: str | None, parse: Callable[[str], T],
             secret: bool) -> T:
        shown = f" [{default}]" if default else (" [empty]" if default == "" else "")
        while True:
            text = self.read(f"{prompt}{shown}: ", secret=secret).strip()
            try:
                return parse(text or default or "")
            except ValueError as exc:
                self.complain(str(exc))

    def read(self, prompt: str, *, secret: bool = False) -> str:
        try:
            return getpass.getpass(prompt) if secret else input(prompt)
        except EOFError:
            raise InitError("input ended before init finished; nothing was written") from None

    def confirm(self, question: str) -> bool:
        return self.read(f"{question} [y/N]: ").strip().lower() in ("y", "yes")

    def complain(self, problem: str) -> None:
        print(f"  {problem}; try again", file=sys.stderr)

    def retry(self, flag_given: bool, flag: str, problem: str) -> None:
        """Re-ask (on a TTY, for a prompted answer) or raise naming ``flag``."""
        if self.interactive and not flag_given:
            self.complain(problem)
            return
        raise InitError(f"{flag}: {problem}")


def _parse_flag(flag: str, text: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(text)
    except ValueError as exc:
        raise InitError(f"{flag}: {exc}") from None


# --------------------------------------------------------------------------- config rules

_DRAFT: Final = Config(strategy=StrategyConfig(stop_loss_pct=float(DEFAULT_STOP_LOSS)))


def config_problem(cfg: Config) -> str | None:
    """What ``load_config`` says about ``cfg`` (no env overlay, no wallets needed)."""
    with tempfile.TemporaryDirectory(prefix="lasersell-init-") as directory:
        path = Path(directory) / "check.toml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(dump_config(cfg))
        try:
            load_config(path, env={}, require_wallets=False, require_secrets=False)
        except ConfigError as exc:
            return str(exc)
    return None


def field_problem(key: str, **sections: object) -> str | None:
    """The config rules' complaint about ``key`` alone, with the other sections valid."""
    problem = config_problem(msgspec.structs.replace(_DRAFT, **sections))
    if problem is None or not problem.startswith(f"{key}:"):
        return None
    return problem.removeprefix(f"{key}:").strip()


# --------------------------------------------------------------------------- answers


def absolute_path(text: str) -> Path:
    """A user-typed path (``~`` expanded) made absolute; empty text is refused."""
    if not text:
        raise ValueError("a file path is required")
    return Path(os.path.abspath(Path(text).expanduser()))


def parse_output(text: str) -> Path:
    path = absolute_path(text)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file path")
    return path


def parse_api_key(text: str) -> str:
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ValueError("must not contain spaces or control characters")
    if text:
        register_secret(text)
    return text


def parse_rpc_url(text: str) -> str:
    problem = field_problem("rpc.url", rpc=RpcConfig(url=text))
    if problem:
        raise ValueError(problem)
    return text


def percent_parser(key: str) -> Callable[[str], float]:
    """Parse a strategy percentage and check its range with the config rules."""
    name = key.rsplit(".", 1)[1]

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"must be a number (got {text!r})") from None
        strategy = msgspec.structs.replace(StrategyConfig(), **{name: value})
        problem = field_problem(key, strategy=strategy)
        if problem:
            raise ValueError(problem)
        return value

    return parse


def parse_send_mode(text: str) -> SendTarget:
    if text not in SEND_MODES:
        raise ValueError(f"must be one of {', '.join(SEND_MODES)} (got {text!r})")
    return cast(SendTarget, text)


def parse_key_choice(text: str) -> str:
    choice = _KEY_CHOICES.get(text.lower())
    if choice is None:
        raise ValueError("answer e (existing file), n (new keypair), i (import base58), "
                         "s (restore from a seed phrase) or p (new wallet with a seed phrase)")
    return choice


# --------------------------------------------------------------------------- keypairs


@dataclass(frozen=True)
class KeySource:
    """The key file the config names; ``new`` is set when init must write it."""

    path: Path
    pubkey: str
    new: Keypair | None = None
    imported_from: Path | None = None
    # A new wallet's seed phrase, shown once after the files are written, never stored.
    new_phrase: str | None = field(default=None, repr=False)


def parse_existing_key(text: str) -> KeySource:
    path = absolute_path(text)
    try:
        keypair = load_keypair(path)
    except WalletError as exc:
        raise ValueError(str(exc)) from None
    return KeySource(path, str(keypair.pubkey()))


def parse_new_key_path(text: str) -> Path:
    path = absolute_path(text)
    if path.exists():
        raise ValueError(f"{path} already exists; init never overwrites a key file")
    return path


def parse_base58_file(text: str) -> tuple[Path, Keypair]:
    """Read a base58 secret (64-byte key or 32-byte seed) without showing any of it."""
    path = absolute_path(text)
    try:
        secret_text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    register_secret(secret_text)
    secret = b58decode(secret_text) if secret_text else None
    if secret is None or len(secret) not in (32, 64):
        raise ValueError(f"{path} does not hold a base58 secret key (64 bytes) or seed (32)")
    register_secret(secret)
    try:
        keypair = Keypair.from_seed(secret) if len(secret) == 32 else Keypair.from_bytes(secret)
    except ValueError:
        raise ValueError(f"{path}: the public half does not match the secret key") from None
    return path, keypair


def _key_source_from_flags(args: argparse.Namespace) -> str | None:
    given = [name for name, flag in (
        ("existing", args.keypair), ("import", args.import_base58_file),
        ("seed", args.import_seed_phrase_file), ("new_phrase", args.new_seed_phrase))
        if flag]
    if len(given) > 1:
        raise InitError("give only one of --keypair, --import-base58-file, "
                        "--import-seed-phrase-file and --new-seed-phrase")
    if given:
        return given[0]
    return "new" if args.new_keypair else None


def ask_keypair(args: argparse.Namespace, p: Prompter, output: Path) -> KeySource:
    source = _key_source_from_flags(args)
    if source == "existing" and args.new_keypair:
        raise InitError("--keypair cannot be combined with --new-keypair")
    if source is None:
        source = p.value(KEY_FLAGS, None, parse_key_choice,
                         default="n" if p.interactive else None, prompt=(
            "Wallet keypair: (e)xisting file, (n)ew keypair, (i)mport a base58 secret, "
            "restore from a (s)eed phrase, or a new wallet with a seed (p)hrase"))
    if source == "existing":
        return p.value("--keypair", args.keypair, parse_existing_key, default=None,
                       prompt="Existing keypair file (Solana CLI JSON)")
    imported_from, keypair, phrase = None, Keypair(), None
    if source == "import":
        imported_from, keypair = p.value(
            "--import-base58-file", args.import_base58_file, parse_base58_file, default=None,
            prompt="File holding the base58 secret key")
    elif source == "seed":
        imported_from, keypair = ask_seed_phrase(args, p)
    elif source == "new_phrase":
        phrase = new_wallet_phrase(p)
        keypair = keypair_from_phrase(phrase)
    path = p.value("--new-keypair", args.new_keypair, parse_new_key_path,
                   default=str(output.parent / DEFAULT_KEY_NAME),
                   prompt="Write the new keypair file to")
    register_secret(bytes(keypair))
    return KeySource(path, str(keypair.pubkey()), keypair, imported_from, phrase)


def ask_seed_phrase(args: argparse.Namespace, p: Prompter) -> tuple[Path | None, Keypair]:
    """From ``--import-seed-phrase-file`` or a hidden prompt; never from a flag's value."""
    if args.import_seed_phrase_file:
        path, phrase = _parse_flag("--import-seed-phrase-file", args.import_seed_phrase_file,
                                   parse_seed_phrase_file)
        return path, keypair_from_phrase(phrase)
    if not p.interactive:
        raise p.missing("--import-seed-phrase-file")
    phrase = p.value("--import-seed-phrase-file", None, check_phrase, default=None, secret=True,
                     prompt="Seed phrase, 12 or 24 words (input hidden)")
    passphrase = p.value("BIP39 passphrase", None, str, default="", secret=True, prompt=(
        "BIP39 passphrase, only if your wallet set one (Phantom does not; input hidden)"))
    return None, keypair_from_phrase(phrase, passphrase)


def parse_seed_phrase_file(text: str) -> tuple[Path, str]:
    """Read a seed phrase from a file without showing any of it."""
    path = absolute_path(text)
    try:
        phrase = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return path, check_phrase(phrase)
    except SeedPhraseError as exc:
        raise ValueError(f"{path}: {exc}") from None


def new_wallet_phrase(p: Prompter) -> str:
    """A new 12-word phrase, refused where it could not be shown privately."""
    if not stdout_is_tty():
        raise InitError("--new-seed-phrase shows the new phrase once, on a terminal, but "
                        "stdout is not one (it would end up in a file or a log)")
    return new_phrase()


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


# --------------------------------------------------------------------------- questions


def ask_output(args: argparse.Namespace, p: Prompter) -> tuple[Path, bool]:
    while True:
        path = p.value("--output", args.output, parse_output, default=DEFAULT_OUTPUT,
                       prompt="Config file to write")
        if args.force or not path.exists():
            return path, args.force
        if p.interactive and p.confirm(f"{path} exists. Overwrite it?"):
            return path, True
        p.retry(args.output is not None or not p.interactive, "--output",
                f"{path} already exists (pass --force to overwrite it)")


def ask_api_key(args: argparse.Namespace, p: Prompter) -> str:
    if args.api_key:
        print(f"note: --api-key stays in your shell history; {API_KEY_ENV} or the systemd "
              "credential lasersell-api-key keep the key out of the config file",
              file=sys.stderr)
    return p.value("--api-key", args.api_key, parse_api_key, default="", secret=True, prompt=(
        f"LaserSell API key (recommended: leave empty and set {API_KEY_ENV} "
        "or the systemd credential lasersell-api-key)"))


def ask_rpc_url(args: argparse.Namespace, p: Prompter) -> str:
    return p.value("--rpc-url", args.rpc_url, parse_rpc_url, secret=True,
                   default=DEFAULT_RPC_URL if p.interactive else None,
                   prompt="Solana RPC URL (input hidden: it may hold a key)")


def ask_strategy(args: argparse.Namespace, p: Prompter) -> StrategyConfig:
    tp_flag, sl_flag = args.target_profit_pct, args.stop_loss_pct
    if not p.interactive and tp_flag is None and sl_flag is None:
        raise p.missing("--target-profit-pct or --stop-loss-pct")
    while True:
        take_profit = p.value(
            "--target-profit-pct", tp_flag, percent_parser("strategy.target_profit_pct"),
            default=DEFAULT_TAKE_PROFIT if p.interactive else "0",
            prompt="Take profit: sell everything at this profit, in percent (0 = off)")
        stop_loss = p.value(
            "--stop-loss-pct", sl_flag, percent_parser("strategy.stop_loss_pct"),
            default=DEFAULT_STOP_LOSS if p.interactive else "0",
            prompt="Stop loss: sell everything at this loss, in percent of entry (0 = off)")
        strategy = StrategyConfig(target_profit_pct=take_profit, stop_loss_pct=stop_loss)
        problem = config_problem(msgspec.structs.replace(_DRAFT, strategy=strategy))
        if problem is None:
            return strategy
        p.retry(tp_flag is not None and sl_flag is not None,
                "--target-profit-pct/--stop-loss-pct", problem)


def ask_send(args: argparse.Namespace, p: Prompter) -> SendConfig:
    mode = p.value("--send-mode", args.send_mode, parse_send_mode, default="rpc",
                   prompt=f"Send mode ({', '.join(SEND_MODES)})")
    tip = HELIUS_MIN_TIP_LAMPORTS if mode == "helius_sender" else SendConfig().tip_lamports
    if mode != "astralane":
        return SendConfig(mode=mode, tip_lamports=tip)
    while True:
        key = p.value("--astralane-api-key", args.astralane_api_key, parse_api_key,
                      default="", secret=True,
                      prompt=f"Astralane API key (empty: set {ASTRALANE_KEY_ENV} instead)")
        if key or os.environ.get(ASTRALANE_KEY_ENV):
            return SendConfig(mode=mode, tip_lamports=tip, astralane_api_key=key)
        p.retry(args.astralane_api_key is not None, "--astralane-api-key",
                f"astralane needs an API key here or in {ASTRALANE_KEY_ENV}")


# --------------------------------------------------------------------------- plan and files


@dataclass(frozen=True)
class Plan:
    """Everything init is about to write."""

    output: Path
    force: bool
    key: KeySource
    config: Config


def gather(args: argparse.Namespace, p: Prompter) -> Plan:
    output, force = ask_output(args, p)
    api_key = ask_api_key(args, p)
    rpc_url = ask_rpc_url(args, p)
    key = ask_keypair(args, p, output)
    config = Config(
        stream=StreamConfig(api_key=api_key),
        rpc=RpcConfig(url=rpc_url),
        wallets=[WalletConfig(keypair_path=str(key.path), label="main")],
        strategy=ask_strategy(args, p),
        send=ask_send(args, p),
    )
    return Plan(output, force, key, config)


def write_private(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Create ``path`` with mode 0600 (never readable by others, not even briefly).

    Without ``overwrite`` an existing file is an error; with it the new file is
    written beside ``path`` and renamed over it.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = path.with_name(f".{path.name}.{os.getpid()}.tmp") if overwrite else path
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InitError(f"{path} already exists") from None
    except OSError as exc:
        raise InitError(f"cannot create {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if target != path:
            os.replace(target, path)
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise InitError(f"cannot write {path}: {exc.strerror}") from None


def solana_json(keypair: Keypair) -> bytes:
    """The Solana CLI keypair format: a JSON array of the 64 secret-key bytes."""
    return json.dumps(list(bytes(keypair)), separators=(",", ":")).encode("ascii")


def write_plan(plan: Plan) -> Config:
    """Write the key file (if new) and the config, then load the config back."""
    if plan.key.new is not None:
        write_private(plan.key.path, solana_json(plan.key.new), overwrite=False)
    text = _HEADER + render_config(plan.config)
    write_private(plan.output, text.encode("utf-8"), overwrite=plan.force)
    try:
        return load_config(plan.output, require_secrets=False)
    except ConfigError as exc:
        raise InitError(f"the written config does not load: {exc}") from None


def report(plan: Plan, cfg: Config) -> None:
    key = plan.key
    print(f"Wrote {plan.output} (mode 0600).")
    print(f"Wallet pubkey: {key.pubkey}")
    if key.new is None:
        print(f"  key file {key.path} (existing)")
    else:
        print(f"  key file {key.path} (new, mode 0600); back it up, and fund the wallet "
              "with SOL before trading")
    if key.imported_from is not None:
        print(f"  imported from {key.imported_from}: delete that file once the new one "
              "is backed up")
    if key.new_phrase is not None:
        show_phrase_once(key.new_phrase)
    print(f"RPC host: {urlsplit(cfg.rpc.url).hostname}; send mode: {cfg.send.mode}")
    if cfg.send.mode == "helius_sender":
        print(f"  send.tip_lamports = {cfg.send.tip_lamports} (Helius Sender's minimum tip)")
    if plan.config.stream.api_key:
        print("API key: stored in the config file (mode 0600)")
    else:
        print(f"API key: not in the file; set {API_KEY_ENV} or the systemd credential "
              "lasersell-api-key before running")
    print(f"Next: lasersell-bot check --config {shlex.quote(str(plan.output))}")


def show_phrase_once(phrase: str) -> None:
    """The new wallet's seed phrase, numbered, with what to do with it."""
    words = phrase.split()
    print(f"\nSeed phrase of the new wallet ({len(words)} words, path {SOLANA_PATH}). It is "
          "shown only now and stored nowhere: write it on paper and keep it offline. "
          "Anyone who has it controls the wallet; Phantom or `solana-keygen recover` restore "
          "the wallet from it.")
    for row in range(0, len(words), 4):
        print("   " + "".join(f"{i + 1:>3}. {word:<10}" for i, word in
                              enumerate(words[row:row + 4], row)))
    print()


def run_init(args: argparse.Namespace) -> int:
    """``lasersell-bot init``: 0 on success, 2 on bad input (one line on stderr)."""
    try:
        plan = gather(args, Prompter.for_args(args))
        cfg = write_plan(plan)
    except InitError as exc:
        print(f"lasersell-bot init: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    report(plan, cfg)
    return EXIT_OK
