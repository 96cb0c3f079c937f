"""Command line: ``lasersell-bot {run,demo,check,init,sim,wallet,journal,status,sell,close,...}``.

Each subcommand parses its flags, then hands over to the module that owns the
work. Bad input ends with one clear line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from lasersell_bot import __version__

EXIT_BAD_INPUT = 2
EXIT_RETRY_LATER = 1  # transient: a service manager should restart us
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a reader that left


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `lasersell-bot check ... | head`: the reader is gone
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lasersell-bot",
        description="Trading daemon for the LaserSell Exit Intelligence Stream.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon with a TOML config")
    run.add_argument("--config", "-c", required=True, help="path to the TOML config")
    run.set_defaults(handler=_cmd_run)

    demo = sub.add_parser("demo", help="run the whole flow against the built-in simulator")
    demo.set_defaults(handler=_cmd_demo)

    check = sub.add_parser("check", help="validate a config and reach every service once")
    check.add_argument("--config", "-c", required=True)
    check.add_argument("--preview-sell", action="store_true",
                       help="ask the API to build a sell (never signed) and show the guard's "
                            "verdict on it")
    check.add_argument("--mint", help="with --preview-sell: the mint to sell (default: the "
                                      "first one the wallet holds)")
    check.set_defaults(handler=_cmd_check)

    init = sub.add_parser("init", help="write a new config (interactive on a TTY)")
    _add_init_flags(init)
    init.set_defaults(handler=_cmd_init)

    sim = sub.add_parser("sim", help="run the simulated stream server and local chain")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8082,
                     help="stream and REST port (RPC on port+1, its websocket on port+2)")
    sim.add_argument("--api-port", type=int, default=None,
                     help="also serve the REST API on this port")
    sim.add_argument("--vendor-local", action="store_true",
                     help="the vendor SDKs' local mode: stream on 8082, REST also on 8080")
    sim.add_argument("--hello-after-configure", action="store_true",
                     help="handshake as the vendor SDKs expect: hello_ok (or the error) "
                          "only after configure")
    sim.add_argument("--interval-ms", type=float, default=1000.0,
                     help="how often prices move and positions are topped up")
    sim.add_argument("--slot-ms", type=float, default=400.0, help="chain slot time")
    sim.set_defaults(handler=_cmd_sim)

    wallet = sub.add_parser("wallet", help="wallet tools: export a private key")
    wallet_sub = wallet.add_subparsers(dest="wallet_command", required=True, metavar="ACTION")
    export = wallet_sub.add_parser(
        "export", help="print a key file's private key (base58, as Phantom imports it)")
    export.add_argument("--keypair", "-k", required=True,
                        help="key file: Solana CLI JSON, base58 or LaserSell keystore")
    export.add_argument("--format", choices=["base58", "json"], default="base58",
                        help="base58 (wallet apps) or json (Solana CLI array)")
    export.add_argument("--yes", action="store_true",
                        help="skip the typed confirmation (stdin is not a terminal)")
    export.set_defaults(handler=_cmd_wallet_export)

    journal = sub.add_parser("journal", help="show recent trades and realized PnL")
    journal.add_argument("--config", "-c", help="config whose journal.path to read")
    journal.add_argument("--path", help="journal file (overrides --config)")
    journal.add_argument("--limit", type=int, default=50)
    journal.add_argument("--json", action="store_true", help="machine-readable output")
    journal.set_defaults(handler=_cmd_journal)
    _add_control_commands(sub)
    return parser


def _add_control_commands(sub: Any) -> None:
    """Commands that talk to a running daemon's control API."""
    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        parser.add_argument("--config", "-c", required=True, help="the daemon's config")
        parser.add_argument("--url", help="API base URL (default: from http.listen)")
        parser.set_defaults(handler=_cmd_control, control=name)
        return parser

    command("status", "show positions, PnL, what is in flight and health").add_argument(
        "--json", action="store_true", help="the full state as JSON")
    sell = command("sell", "sell a position now (through the guard, like any exit)")
    sell.add_argument("target", metavar="ID|MINT|all")
    sell.add_argument("--slippage-bps", type=int)
    sell.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    command("close", "stop tracking a position on the server (no sell)").add_argument(
        "id", type=int)
    command("pause-buys", "refuse mirror buys until resume-buys")
    command("resume-buys", "take mirror buys again")


def _fail(message: str) -> int:
    print(f"lasersell-bot: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _run_async(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# --------------------------------------------------------------------------- run


def _cmd_run(args: argparse.Namespace) -> int:
    from lasersell_bot.config import ConfigError, load_config
    from lasersell_bot.logs import configure_logging
    from lasersell_bot.wallet import WalletError, Wallets

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    configure_logging(cfg.log.level, cfg.log.format, cfg.log.syslog_prefix, cache=True)
    try:
        wallets = Wallets.load(cfg.wallets)
    except WalletError as exc:
        return _fail(str(exc))
    return _run_async(_run_daemon(cfg, wallets, args.config))


async def _run_daemon(cfg: Any, wallets: Any, config_path: str) -> int:
    from lasersell_bot.daemon import Daemon
    from lasersell_bot.stream import RegistrationError

    daemon = Daemon(cfg, wallets, config_path=config_path)
    refusal: RegistrationError | None = None
    try:
        return await daemon.run()
    except* RegistrationError as group:
        refusal = group.exceptions[0]  # type: ignore[assignment]
    assert refusal is not None
    if refusal.permanent:
        return _fail(str(refusal))  # the API said no: a config problem, exit 2
    print(f"lasersell-bot: {refusal}", file=sys.stderr)
    return EXIT_RETRY_LATER


# --------------------------------------------------------------------------- demo / sim


def _cmd_demo(args: argparse.Namespace) -> int:
    from lasersell_bot.demo import run_demo

    return _run_async(run_demo())


def _cmd_sim(args: argparse.Namespace) -> int:
    from lasersell_bot.logs import configure_logging
    from lasersell_bot.sim.standalone import (
        VENDOR_LOCAL_API_PORT,
        VENDOR_LOCAL_STREAM_PORT,
        SimOptions,
        serve,
    )

    configure_logging("info", "auto", syslog_prefix=False)
    port, api_port = args.port, args.api_port
    if args.vendor_local:
        port, api_port = VENDOR_LOCAL_STREAM_PORT, api_port or VENDOR_LOCAL_API_PORT
    if args.interval_ms <= 0 or args.slot_ms <= 0:
        return _fail("--interval-ms and --slot-ms must be > 0")
    return _run_async(serve(SimOptions(
        host=args.host, port=port, api_port=api_port,
        hello_after_configure=args.hello_after_configure,
        interval_s=args.interval_ms / 1000, slot_ms=args.slot_ms)))


# --------------------------------------------------------------------------- journal


def _cmd_journal(args: argparse.Namespace) -> int:
    from lasersell_bot.config import ConfigError
    from lasersell_bot.journal import JournalReader, render_table, rows_to_json

    try:
        path = args.path or _journal_path_from(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    if path is None:
        return _fail("journal: give --path or --config")
    if not os.path.exists(os.path.expanduser(path)):
        return _fail(f"journal {path}: no such file (a typo in the path, or no daemon has "
                     "run with this journal.path yet)")
    reader = JournalReader(path)
    try:
        rows = reader.recent_trades(args.limit)
        pnl = reader.realized_pnl()
    except Exception as exc:  # any sqlite/OS problem is one clear line, not a traceback
        return _fail(f"journal {path}: {exc}")
    if args.json:
        print(rows_to_json(rows))
    else:
        print(render_table(rows))
        print(f"realized PnL: {pnl / 1_000_000_000:+.9f} SOL over {len(rows)} rows")
    return 0


def _journal_path_from(config_path: str | None) -> str | None:
    if config_path is None:
        return None
    from lasersell_bot.config import load_config

    return load_config(config_path, require_wallets=False, require_secrets=False).journal.path


# --------------------------------------------------------------------------- control


def _cmd_control(args: argparse.Namespace) -> int:
    from lasersell_bot.control import client as api

    out = sys.stdout
    try:
        conn = api.make_client(args.config, args.url)
        if args.control == "status":
            return api.status(conn, args.json, out)
        if args.control == "sell":
            return api.sell(conn, args.target, args.slippage_bps, args.yes, out, api.ask)
        if args.control == "close":
            return api.simple(conn, "POST", f"/positions/{args.id}/close",
                              f"close of #{args.id} requested", out)
        if args.control == "pause-buys":
            return api.simple(conn, "POST", "/mirror/pause", "mirror buys paused", out)
        return api.simple(conn, "POST", "/mirror/resume", "mirror buys resumed", out)
    except api.ClientError as exc:
        print(f"lasersell-bot: {exc}", file=sys.stderr)
        return exc.code


# --------------------------------------------------------------------------- check / init


def _cmd_check(args: argparse.Namespace) -> int:
    from lasersell_bot.check import run_check

    return _run_async(run_check(args.config, preview=args.preview_sell or bool(args.mint),
                                preview_mint=args.mint))


def _add_init_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o",
                        help="config file to write (default: lasersell-bot.toml)")
    parser.add_argument("--api-key", help="LaserSell API key (prefer LASERSELL_API_KEY)")
    parser.add_argument("--astralane-api-key",
                        help="Astralane key for --send-mode astralane "
                             "(prefer LASERSELL_ASTRALANE_API_KEY)")
    parser.add_argument("--rpc-url")
    parser.add_argument("--keypair", help="existing keypair file (Solana CLI JSON)")
    parser.add_argument("--import-base58-file",
                        help="file holding a base58 secret to import into a new key file")
    parser.add_argument("--import-seed-phrase-file", metavar="PATH",
                        help="file holding a BIP39 seed phrase (12-24 words) to restore the "
                             "wallet Phantom derives from it (m/44'/501'/0'/0')")
    parser.add_argument("--new-seed-phrase", action="store_true",
                        help="create a new wallet from a new 12-word seed phrase, shown once")
    parser.add_argument("--new-keypair", metavar="PATH",
                        help="generate a new keypair file here (with an import or "
                             "--new-seed-phrase: write the key here; default wallet.json beside "
                             "the config)")
    parser.add_argument("--target-profit-pct", type=float)
    parser.add_argument("--stop-loss-pct", type=float)
    parser.add_argument("--send-mode", choices=["rpc", "helius_sender", "astralane"])
    parser.add_argument("--non-interactive", action="store_true",
                        help="never prompt; fail if something required is missing")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def _cmd_wallet_export(args: argparse.Namespace) -> int:
    from lasersell_bot.wallet_export import run_export

    return run_export(args.keypair, args.format, assume_yes=args.yes)


def _cmd_init(args: argparse.Namespace) -> int:
    from lasersell_bot.init import run_init

    code: int = run_init(args)
    return code
