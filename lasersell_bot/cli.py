"""Command line: ``lasersell-bot {run,demo,check,init,sim,journal}``.

Each subcommand parses its flags, then hands over to the module that owns the
work. Bad input ends with one clear line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from lasersell_bot import __version__

EXIT_BAD_INPUT = 2
EXIT_RETRY_LATER = 1  # transient: a service manager should restart us


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


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

    journal = sub.add_parser("journal", help="show recent trades and realized PnL")
    journal.add_argument("--config", "-c", help="config whose journal.path to read")
    journal.add_argument("--path", help="journal file (overrides --config)")
    journal.add_argument("--limit", type=int, default=50)
    journal.add_argument("--json", action="store_true", help="machine-readable output")
    journal.set_defaults(handler=_cmd_journal)
    return parser


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


# --------------------------------------------------------------------------- check / init


def _cmd_check(args: argparse.Namespace) -> int:
    from lasersell_bot.check import run_check

    return _run_async(run_check(args.config))


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
    parser.add_argument("--new-keypair", metavar="PATH",
                        help="generate a new keypair file here (with --import-base58-file: "
                             "write the imported key here; default wallet.json beside the config)")
    parser.add_argument("--target-profit-pct", type=float)
    parser.add_argument("--stop-loss-pct", type=float)
    parser.add_argument("--send-mode", choices=["rpc", "helius_sender", "astralane"])
    parser.add_argument("--non-interactive", action="store_true",
                        help="never prompt; fail if something required is missing")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def _cmd_init(args: argparse.Namespace) -> int:
    from lasersell_bot.init import run_init

    code: int = run_init(args)
    return code
