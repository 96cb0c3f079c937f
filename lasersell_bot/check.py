"""``lasersell-bot check``: load a config and reach every service it names, once.

Prints one line per check, in a fixed order: ``OK   name: detail``, ``FAIL name:
reason`` or ``SKIP name: reason`` (the check needs one that failed, or is turned
off), then a summary. The exit code is 0 only when nothing failed.

Checks: the config loads; every key file loads with safe permissions; the RPC answers
``getHealth`` and ``getLatestBlockhash``; every send target is reachable; the wallets
register (``POST /v1/wallets/register`` with fresh proofs); and a stream session
reaches ``hello_ok`` with the configure the daemon would send. With
``--preview-sell`` it also asks the API to build a sell and shows the guard's verdict on
it (``preview.py``); nothing is signed. Each network step has
its own timeout. Nothing secret is printed: endpoints appear as ``name(host:port)``,
wallets by pubkey, and every line passes through the log redactor.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Final, Literal, TextIO

import aiohttp
from solders.keypair import Keypair

from lasersell_bot import protocol
from lasersell_bot.config import Config, ConfigError, load_config
from lasersell_bot.logs import REDACTOR, configure_logging
from lasersell_bot.neterrors import describe_connection_error
from lasersell_bot.send import (
    Confirmer,
    RpcError,
    RpcPool,
    Submitter,
    Target,
    display_name,
    providers_of,
)
from lasersell_bot.session import Session
from lasersell_bot.tls import lasersell_session
from lasersell_bot.wallet import WalletError, Wallets, load_keypair, registration_proof

STEP_TIMEOUT_SEC: Final = 5.0
EXIT_ALL_OK: Final = 0
EXIT_FAILED: Final = 1
_GET_HEALTH: Final = b'{"jsonrpc":"2.0","id":1,"method":"getHealth"}'
_REFUSED_KEY_STATUSES: Final = frozenset({401, 403})
_NETWORK_GROUPS: Final = ("rpc", "send targets", "registration", "stream")

Status = Literal["OK", "FAIL", "SKIP"]
_WS = aiohttp.ClientWebSocketResponse[Literal[True]]


class StepFailed(Exception):
    """A check failed; the message is the reason shown after ``FAIL name:``."""


@dataclass
class Report:
    """Prints each result as it comes and keeps the counts."""

    out: TextIO
    counts: dict[Status, int] = field(default_factory=lambda: {"OK": 0, "FAIL": 0, "SKIP": 0})

    def add(self, status: Status, name: str, detail: str) -> bool:
        self.counts[status] += 1
        line = f"{status:<4} {name}: {detail}"
        print(REDACTOR.clean(line), file=self.out, flush=True)
        return status == "OK"

    async def step(self, name: str, work: Awaitable[str], timeout: float | None) -> bool:
        """Run one check; its detail on success, its reason or the timeout on failure."""
        try:
            async with asyncio.timeout(timeout):
                detail = await work
        except StepFailed as exc:
            return self.add("FAIL", name, str(exc))
        except TimeoutError:
            budget = "in time" if timeout is None else f"within {timeout:g} s"
            return self.add("FAIL", name, f"no answer {budget}")
        except Exception as exc:  # a check reports any failure as a line, never a traceback
            return self.add("FAIL", name, f"{type(exc).__name__}: {exc}")
        return self.add("OK", name, detail)

    def finish(self, config_path: str) -> int:
        failed, skipped, passed = self.counts["FAIL"], self.counts["SKIP"], self.counts["OK"]
        if failed:
            print(f"{failed} failed, {passed} passed, {skipped} skipped: fix the FAIL lines "
                  "and run check again", file=self.out)
            return EXIT_FAILED
        skips = f" ({skipped} skipped)" if skipped else ""
        print(f"all {passed} checks passed{skips}; start with: "
              f"lasersell-bot run --config {shlex.quote(config_path)}", file=self.out)
        return EXIT_ALL_OK


# --------------------------------------------------------------------------- local checks


def check_config(report: Report, config_path: str) -> Config | None:
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        report.add("FAIL", "config", str(exc))
        return None
    targets = ", ".join(cfg.send.targets)
    report.add("OK", "config", f"{config_path} ({len(cfg.wallets)} wallet(s), "
               f"send targets {targets})")
    return cfg


def check_keypairs(report: Report, cfg: Config) -> Wallets | None:
    """Every key file loads and is private; the Wallets, or None if any failed."""
    keypairs: list[Keypair] = []
    for index, wallet in enumerate(cfg.wallets):
        name = f"keypair[{index}]"
        try:
            keypair = load_keypair(wallet.keypair_path)
        except WalletError as exc:
            report.add("FAIL", name, str(exc))
            continue
        keypairs.append(keypair)
        report.add("OK", name, f"{keypair.pubkey()} ({wallet.keypair_path})")
    if len(keypairs) != len(cfg.wallets):
        return None
    try:
        return Wallets(keypairs)
    except WalletError as exc:
        report.add("FAIL", "keypairs", str(exc))
        return None


# --------------------------------------------------------------------------- RPC and targets


def _elapsed_ms(started: float) -> str:
    return f"{(time.monotonic() - started) * 1000:.0f} ms"




async def rpc_health(confirmer: Confirmer) -> str:
    started = time.monotonic()
    where = confirmer.pool.providers[0].display
    try:
        result = await confirmer.call("getHealth")
    except RpcError as exc:
        raise StepFailed(f"{exc} ({where})") from None
    if result != "ok":
        raise StepFailed(f"answered {result!r} ({where})")
    return f"ok from {where} in {_elapsed_ms(started)}"


async def rpc_blockhash(confirmer: Confirmer) -> str:
    started = time.monotonic()
    try:
        blockhash, last_valid = await confirmer.latest_blockhash()
    except RpcError as exc:
        raise StepFailed(f"{exc} ({confirmer.pool.providers[0].display})") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise StepFailed(f"malformed answer ({type(exc).__name__})") from None
    return f"{blockhash} valid until height {last_valid} ({_elapsed_ms(started)})"


async def target_reachable(submitter: Submitter, target: Target) -> str:
    """``GET /ping`` for Helius Sender, a ``getHealth`` POST otherwise (Astralane)."""
    session = submitter.session(target.name)
    started = time.monotonic()
    if target.ping_url is not None:
        request, what = session.get(target.ping_url), "GET /ping"
    else:
        request, what = session.post(target.url, data=_GET_HEALTH), "getHealth"
    try:
        async with request as response:
            await response.read()
            status = response.status
    except aiohttp.ClientError as exc:
        raise StepFailed(f"{what}: {describe_connection_error(exc)} ({target.display})") from None
    if status in _REFUSED_KEY_STATUSES:
        raise StepFailed(f"{what}: HTTP {status}, the API key was refused ({target.display})")
    if status >= 400:
        raise StepFailed(f"{what}: HTTP {status} ({target.display})")
    return f"{what}: HTTP {status} from {target.display} in {_elapsed_ms(started)}"


async def check_rpc_and_targets(report: Report, cfg: Config, timeout: float) -> None:
    submitter = Submitter.from_config(cfg.send, cfg.rpc)
    await submitter.start(warm=False)
    try:
        healthy: dict[str, bool] = {}
        for provider in submitter.rpcs:  # every rpc.urls endpoint, each on its own
            confirmer = Confirmer(submitter, RpcPool(
                [p for p in providers_of(submitter) if p.display == provider.display],
                timeout=submitter.request_timeout, hedge_after=0.0))
            healthy[provider.name] = await report.step(
                f"{provider.name} getHealth", rpc_health(confirmer), timeout)
            await report.step(f"{provider.name} getLatestBlockhash", rpc_blockhash(confirmer),
                              timeout)
        for target in submitter.targets:
            name = f"target {target.display}"
            if target.name not in healthy:
                await report.step(name, target_reachable(submitter, target), timeout)
            elif healthy[target.name]:
                report.add("OK", name, f"same endpoint as {target.name} getHealth")
            else:
                report.add("FAIL", name,
                           f"same endpoint as {target.name} getHealth, which failed")
    finally:
        await submitter.close(grace=0)


# --------------------------------------------------------------------------- registration


async def register(cfg: Config, wallets: Wallets) -> str:
    # Imported late: stream.py binds its logger at import, so it must come after
    # run_check's configure_logging, or its info lines would land in the report.
    from lasersell_bot.stream import RegistrationError, register_wallets

    now_s = int(time.time())
    keypairs = [kp for pk in wallets.pubkeys() if (kp := wallets.for_pubkey(pk)) is not None]
    proofs = [registration_proof(keypair, now_s) for keypair in keypairs]
    async with lasersell_session(cfg.tls.pins) as http:
        try:
            await register_wallets(http, cfg.stream.api_url, cfg.stream.api_key, proofs,
                                   attempts=1)
        except RegistrationError as exc:
            raise StepFailed(f"{exc} ({display_name('api', cfg.stream.api_url)})") from None
    return (f"{len(proofs)} wallet(s) registered at "
            f"{display_name('api', cfg.stream.api_url)}")


# --------------------------------------------------------------------------- stream


@dataclass
class Handshake:
    """What the server said so far: ``hello_ok`` and the ``pong`` sent after configure."""

    hello: protocol.HelloOk | None = None
    pong: bool = False


async def open_stream(http: aiohttp.ClientSession, cfg: Config, timeout: float) -> _WS:
    where = display_name("stream", cfg.stream.url)
    try:
        async with asyncio.timeout(timeout):
            return await http.ws_connect(
                cfg.stream.url, headers={"x-api-key": cfg.stream.api_key},
                timeout=aiohttp.ClientWSTimeout(ws_close=1.0), autoping=True)
    except aiohttp.WSServerHandshakeError as exc:
        hint = ", the API key was refused" if exc.status in _REFUSED_KEY_STATUSES else ""
        raise StepFailed(f"websocket upgrade answered HTTP {exc.status}{hint} ({where})") from None
    except TimeoutError:
        raise StepFailed(f"websocket connect: no answer within {timeout:g} s ({where})") from None
    except aiohttp.ClientError as exc:
        raise StepFailed(f"websocket connect: {describe_connection_error(exc)} ({where})") from None


async def read_until_ready(ws: _WS, state: Handshake) -> None:
    """Read frames until ``hello_ok`` and the ``pong``; an ``error`` frame fails the check.

    The server handles frames in order, so the ``pong`` to a ping written after
    ``configure`` proves the configure was accepted (its error would come first).
    """
    decoder = protocol.server_decoder()
    while state.hello is None or not state.pong:
        msg = await ws.receive()
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise StepFailed(f"server closed the socket before hello_ok (close code "
                             f"{ws.close_code})")
        message = decoder.decode(msg.data)
        if isinstance(message, protocol.ErrorMsg):
            raise StepFailed(f"server error {message.code}: {message.message}")
        if isinstance(message, protocol.HelloOk):
            state.hello = message
        elif isinstance(message, protocol.Pong):
            state.pong = True


async def handshake(ws: _WS, cfg: Config, wallets: Wallets, timeout: float) -> str:
    from lasersell_bot.daemon import desired_config  # late, like stream.py: see register()

    messages = Session(desired_config(cfg, wallets)).configure_messages()
    messages.append(protocol.Ping(client_time_ms=int(time.time() * 1000)))
    for message in messages:
        await ws.send_str(protocol.encode(message).decode())
    state = Handshake()
    try:
        async with asyncio.timeout(timeout):
            await read_until_ready(ws, state)
    except TimeoutError:
        if state.hello is None:
            raise StepFailed(f"no hello_ok within {timeout:g} s after configure") from None
        return (f"hello_ok (session {state.hello.session_id}), but no pong within "
                f"{timeout:g} s, so configure acceptance is unconfirmed")
    assert state.hello is not None
    return (f"hello_ok (session {state.hello.session_id}), configure accepted for "
            f"{len(wallets)} wallet(s) at {display_name('stream', cfg.stream.url)}")


async def stream_session(cfg: Config, wallets: Wallets, timeout: float) -> str:
    async with lasersell_session(cfg.tls.pins) as http:
        ws = await open_stream(http, cfg, timeout)
        try:
            return await handshake(ws, cfg, wallets, timeout)
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await ws.close(code=aiohttp.WSCloseCode.OK, message=b"check done")


# --------------------------------------------------------------------------- run


async def check_wallet_services(report: Report, cfg: Config, wallets: Wallets | None,
                                timeout: float) -> None:
    if wallets is None:
        report.add("SKIP", "registration", "needs every keypair to load")
        report.add("SKIP", "stream", "needs every keypair to load")
        return
    if cfg.stream.register_wallets:
        await report.step("registration", register(cfg, wallets), timeout)
    else:
        report.add("SKIP", "registration", "turned off (stream.register_wallets = false)")
    await report.step("stream", stream_session(cfg, wallets, timeout), None)


def skip_all(report: Report, reason: str) -> None:
    report.add("SKIP", "keypairs", reason)
    for name in _NETWORK_GROUPS:
        report.add("SKIP", name, reason)


async def check_preview(report: Report, cfg: Config, wallets: Wallets | None,
                        mint: str | None, timeout: float) -> None:
    """``--preview-sell``: the guard's verdict on a sell the API builds (never signed)."""
    from lasersell_bot.preview import PreviewFailed, hint_lines, preview_sell

    if wallets is None:
        report.add("SKIP", "preview sell", "no keypair loaded")
        return
    submitter = Submitter.from_config(cfg.send, cfg.rpc)
    await submitter.start(warm=False)
    try:
        async def work() -> str:
            try:
                lines = await preview_sell(cfg, wallets.pubkeys()[0], mint, submitter)
            except PreviewFailed as exc:
                raise StepFailed(str(exc)) from None
            return lines[0] + ("\n" + hint_lines(lines[1:]) if lines[1:] else "")

        await report.step("preview sell", work(), timeout + cfg.guard.simulation_timeout_ms / 1000)
    finally:
        await submitter.close(grace=0)


async def run_check(config_path: str, *, timeout: float = STEP_TIMEOUT_SEC,
                    out: TextIO | None = None, preview: bool = False,
                    preview_mint: str | None = None) -> int:
    """``lasersell-bot check``: 0 when every check passed, 1 otherwise.

    Log lines (warnings and errors only) go to stderr so the report stays one line
    per check.
    """
    configure_logging("warning", "console", syslog_prefix=False, stream=sys.stderr)
    report = Report(out or sys.stdout)
    cfg = check_config(report, config_path)
    if cfg is None:
        skip_all(report, "the config did not load")
        return report.finish(config_path)
    wallets = check_keypairs(report, cfg)
    await check_rpc_and_targets(report, cfg, timeout)
    await check_wallet_services(report, cfg, wallets, timeout)
    if preview:
        await check_preview(report, cfg, wallets, preview_mint, timeout)
    return report.finish(config_path)

