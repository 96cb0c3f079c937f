"""No secret ever reaches stdout or stderr: the demo, and a debug-level daemon whose
every credential is set, driven through an exit, a guard refusal, a reconnect and
servers that echo the secrets back in their error answers."""

from __future__ import annotations

import base64
import json
import re
import signal
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from lasersell_bot import protocol
from lasersell_bot.sim.encoding import b58encode
from lasersell_bot.sim.world import SimWorld
from lasersell_bot.wallet import PASSPHRASE_ENV, write_keystore
from tests.test_daemon_process import (
    ENTRY,
    TOKENS,
    DaemonProcess,
    child_env,
    http_get,
    http_port,
    write_config,
)

API_KEY = "lsk_live_APIKEY_5e1f9c27d3"
RPC_SECRET = "RPCSECRET_9a8b7c6d5e"
ASTRALANE_KEY = "astra_KEY_0f1e2d3c4b5a"
WEBHOOK_TOKEN = "WEBHOOKTOKEN_77aa88bb99cc"
TELEGRAM_TOKEN = "7012345678:AAE_TELEGRAM_secret_token_x1"
PASSPHRASE = "correct horse SECRET battery staple"
DEMO_API_KEY = "demo-api-key"

# Any 64-byte secret key written as a JSON array, or as 128 hex digits.
_KEY_ARRAY = re.compile(r"\[\s*(?:\d{1,3}\s*,\s*){63}\d{1,3}\s*\]")
_KEY_HEX = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{128}(?![0-9a-fA-F])")


def keypair_forms(keypair: Keypair) -> list[str]:
    """Every text form of a keypair's secret: JSON arrays, hex and base58."""
    full, seed = bytes(keypair), keypair.secret()
    return [json.dumps(list(full)), json.dumps(list(full), separators=(",", ":")),
            str(list(full)), full.hex(), seed.hex(), b58encode(full), b58encode(seed),
            str(keypair)]


def find_leaks(lines: Iterable[str], secrets: Iterable[str]) -> list[str]:
    """The lines that hold a secret (or anything shaped like a 64-byte secret key)."""
    wanted = [s for s in secrets if s]
    return [line for line in lines
            if any(s in line for s in wanted) or _KEY_ARRAY.search(line)
            or _KEY_HEX.search(line)]


def test_find_leaks_catches_every_form() -> None:
    keypair = Keypair()
    forms = keypair_forms(keypair)
    for form in forms:
        assert find_leaks([f"x {form} y"], forms) == [f"x {form} y"]
    for unknown_key in forms[:4]:  # arrays and hex of a key we were not told about
        assert find_leaks([f"x {unknown_key} y"], []) == [f"x {unknown_key} y"]
    assert find_leaks([f'{{"url": "http://h/?api-key={RPC_SECRET}"}}'], [RPC_SECRET])
    assert find_leaks(['{"event": "tx_confirmed", "signature": "5VERv8"}'], [API_KEY]) == []


# --------------------------------------------------------------------------- the demo


async def test_demo_output_holds_no_secret(tmp_path: Path) -> None:
    demo = await DaemonProcess.start(["-m", "lasersell_bot", "demo"],
                                     child_env(None))
    try:
        assert await demo.wait_exit(30) == 0, demo.output_tail()
    finally:
        await demo.kill()
    assert "DEMO OK" in demo.stdout
    assert find_leaks(demo.stdout + demo.stderr, [DEMO_API_KEY]) == []


# --------------------------------------------------------------------------- the daemon


class EchoingNotifyServer:
    """A webhook and a Telegram API on loopback that answer errors quoting the secrets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/{token}", self._webhook)
        app.router.add_post("/bot{token}/sendMessage", self._telegram)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _webhook(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        if len([p for p in self.requests if p.startswith("/hooks/")]) == 1:
            return web.Response(status=500, text=f"upstream failed for {request.url}")
        return web.json_response({"ok": True})

    async def _telegram(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        return web.json_response({"ok": False, "description": f"Unauthorized: {request.path}"},
                                 status=401)


@pytest.fixture
async def notify_server() -> AsyncIterator[EchoingNotifyServer]:
    server = EchoingNotifyServer()
    await server.start()
    yield server
    await server.stop()


def secret_config(tmp: Path, world: SimWorld, keystore: Path, hooks: str) -> dict[str, Any]:
    return {
        "stream": {"url": world.ws_url, "api_url": world.api_url, "reconcile_sec": 0.5,
                   "ping_interval_sec": 1.0},  # api_key comes from the environment
        "rpc": {"url": f"{world.rpc_url}/?api-key={RPC_SECRET}"},
        "wallets": [{"keypair_path": str(keystore)}],
        "strategy": {"target_profit_pct": 30.0, "stop_loss_pct": 20.0},
        "send": {"targets": ["rpc", "astralane"], "astralane_url": world.rpc_url + "/iris",
                 "astralane_api_key": ASTRALANE_KEY, "rebroadcast_interval_ms": 300,
                 "confirm_poll_ms": 50},
        "notify": {"webhook_url": f"{hooks}/hooks/{WEBHOOK_TOKEN}",
                   "telegram_bot_token": TELEGRAM_TOKEN, "telegram_chat_id": "42",
                   "telegram_api_url": hooks, "min_interval_sec": 0.05},
        "journal": {"path": str(tmp / "journal.sqlite3")},
        "log": {"level": "debug", "format": "json"},
        "http": {"listen": "127.0.0.1:0"},
        "daemon": {"shutdown_grace_sec": 5.0},
    }


def garbage_exit(world: SimWorld, wallet: str, position_id: int) -> bytes:
    """An exit signal whose transaction is not a transaction: the guard refuses it."""
    position = world.stream.position(position_id)
    return protocol.encode(protocol.ExitSignalWithTx(
        session_id=world.stream.session_ids()[-1], position_id=position_id,
        wallet_pubkey=wallet, mint=position.mint, position_tokens=TOKENS, profit_units=0,
        reason="stop_loss", triggered_at_ms=int(time.time() * 1000),
        unsigned_tx_b64=base64.b64encode(b"not a transaction at all").decode()))


async def drive(daemon: DaemonProcess, world: SimWorld, wallet: Pubkey) -> None:
    """An exit (its first send refused by an RPC quoting secrets), a guard refusal with an
    honest retry, hostile frames quoting secrets, and a reconnect."""
    rpc_url = f"{world.rpc_url}/?api-key={RPC_SECRET}"
    world.rpc.faults.add("sendTransaction", "rpc_error", code=-32005,
                         message=f"unhealthy: {rpc_url} {API_KEY} {ASTRALANE_KEY}")
    for profit_pct, frame in ((35.0, None), (0.0, garbage_exit)):
        opened = await world.open_position(wallet, TOKENS, ENTRY)
        await daemon.wait_event("position_opened", position_id=opened.position_id)
        if frame is None:
            await world.set_profit_pct(opened.position_id, profit_pct)
        else:
            await world.stream.emit_raw(frame(world, str(wallet), opened.position_id))
            await daemon.wait_event("guard_refused", position_id=opened.position_id)
        await daemon.wait(f"position {opened.position_id} sold",
                          lambda pid=opened.position_id: not world.is_tracked(pid))
    await world.stream.emit_raw(protocol.encode(protocol.ErrorMsg(
        code="invalid_api_key", message=f"key {API_KEY} rejected; passphrase {PASSPHRASE}")))
    await world.stream.emit_raw(json.dumps({"type": TELEGRAM_TOKEN}))
    await daemon.wait_event("stream_error")
    configures = len([r for r in world.stream.received
                      if isinstance(r.message, protocol.Configure)])
    await world.stream.drop_connections()
    await daemon.wait("a reconnect", lambda: len(
        [r for r in world.stream.received if isinstance(r.message, protocol.Configure)])
        > configures)


async def test_debug_daemon_logs_no_secret(tmp_path: Path,
                                           notify_server: EchoingNotifyServer) -> None:
    world = SimWorld(slot_ms=20, api_keys={API_KEY})
    await world.start()
    keypair = world.new_wallet(sol=10)
    keystore = tmp_path / "wallet.keystore.json"
    write_keystore(keypair, keystore, PASSPHRASE, m_kib=8192, t=1)
    config = write_config(tmp_path / "bot.toml",
                          secret_config(tmp_path, world, keystore, notify_server.url))
    env = child_env(None, LASERSELL_API_KEY=API_KEY, **{PASSPHRASE_ENV: PASSPHRASE})
    daemon = await DaemonProcess.start(["-m", "lasersell_bot", "run", "--config", str(config)],
                                       env)
    try:
        await daemon.wait_event("ready", timeout=15)
        await drive(daemon, world, keypair.pubkey())
        await daemon.wait("webhook retried and Telegram refused", lambda: len(
            notify_server.requests) >= 3 and bool(daemon.events("notify_failed")))
        port = await http_port(daemon)
        pages = [(await http_get(port, path))[1] for path in ("/healthz", "/metrics")]
        api_token = (tmp_path / "lasersell-bot.api-token").read_text().strip()
        daemon.send_signal(signal.SIGTERM)
        assert await daemon.wait_exit(10) == 0
    finally:
        await daemon.kill()
        await world.stop()

    assert any(r.path == "/iris" for r in world.rpc.received)  # astralane (with its key) used
    assert f"/bot{TELEGRAM_TOKEN}/sendMessage" in notify_server.requests
    assert daemon.events("submit_retry") or daemon.events("submit_failed")
    secrets = [API_KEY, RPC_SECRET, ASTRALANE_KEY, WEBHOOK_TOKEN, TELEGRAM_TOKEN, PASSPHRASE,
               DEMO_API_KEY, api_token, *keypair_forms(keypair)]
    assert find_leaks(daemon.stdout + daemon.stderr + pages, secrets) == []


async def test_mistyped_secret_is_not_quoted_in_the_config_error(tmp_path: Path) -> None:
    numeric_key = 918273645546372819
    config = write_config(tmp_path / "bot.toml", {
        "stream": {"url": "ws://127.0.0.1:9/v1/ws", "api_key": "k"},
        "wallets": [{"keypair_path": str(tmp_path / "wallet.json")}],
        "strategy": {"stop_loss_pct": 10.0},
        "send": {"astralane_api_key": numeric_key}})
    daemon = await DaemonProcess.start(["-m", "lasersell_bot", "run", "--config", str(config)],
                                       child_env(None))
    assert await daemon.wait_exit(10) == 2
    assert daemon.stderr[0].startswith("lasersell-bot: send.astralane_api_key: ")
    assert find_leaks(daemon.stderr, [str(numeric_key)]) == []
