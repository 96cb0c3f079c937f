"""Telegram commands against a fake Telegram Bot API on 127.0.0.1, with the daemon as a
subprocess on the simulator: commands only from the configured chat, a confirmation
step for sells, and the sell lands through the usual guard and executor."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from lasersell_bot import protocol
from lasersell_bot.journal import JournalReader
from lasersell_bot.sim.world import SimWorld
from tests.controlkit import ControlSetup

BOT_TOKEN = "123456:fake-telegram-token-for-tests"
CHAT_ID = "4242"
OTHER_CHAT = 777


class FakeTelegram:
    """``getUpdates`` (long poll, answered when updates are queued or after a short
    wait) and ``sendMessage`` (recorded)."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.polls: list[dict[str, Any]] = []
        self._next_id = 1000
        self._queued = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(f"/bot{BOT_TOKEN}/getUpdates", self._get_updates)
        app.router.add_post(f"/bot{BOT_TOKEN}/sendMessage", self._send_message)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def say(self, text: str, chat_id: int | str = CHAT_ID) -> None:
        self._next_id += 1
        self.updates.append({"update_id": self._next_id, "message": {
            "message_id": self._next_id, "date": int(time.time()), "text": text,
            "chat": {"id": int(chat_id), "type": "private"}}})
        self._queued.set()

    async def _get_updates(self, request: web.Request) -> web.Response:
        params = await request.json()
        self.polls.append(params)
        offset = params.get("offset") or 0
        pending = [u for u in self.updates if u["update_id"] >= offset]
        if not pending:
            self._queued.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queued.wait(), min(1.0, params["timeout"]))
            pending = [u for u in self.updates if u["update_id"] >= offset]
        return web.json_response({"ok": True, "result": pending[: params["limit"]]})

    async def _send_message(self, request: web.Request) -> web.Response:
        self.sent.append(await request.json())
        return web.json_response({"ok": True, "result": {"message_id": len(self.sent)}})

    def replies(self) -> list[str]:
        return [m["text"] for m in self.sent]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[ControlSetup, FakeTelegram]]:
    world = SimWorld(slot_ms=20)
    await world.start()
    telegram = FakeTelegram()
    await telegram.start()
    harness = ControlSetup(tmp_path, world)
    harness.configure(notify={"telegram_bot_token": BOT_TOKEN, "telegram_chat_id": CHAT_ID,
                              "telegram_commands": True, "telegram_api_url": telegram.url,
                              "min_interval_sec": 0.0})
    try:
        yield harness, telegram
    finally:
        for process in harness.processes:
            await process.kill()
        await telegram.stop()
        await world.stop()


async def test_telegram_commands_from_the_chat_with_a_confirmed_sell(
        setup: tuple[ControlSetup, FakeTelegram]) -> None:
    ctl, telegram = setup
    daemon = await ctl.start()
    pid = await ctl.open_position(daemon)
    await ctl.world.set_profit_pct(pid, 7)

    def replied(fragment: str) -> bool:
        return any(fragment in text for text in telegram.replies())

    telegram.say(f"/sell {pid}", chat_id=OTHER_CHAT)
    telegram.say(f"/confirm {pid}", chat_id=OTHER_CHAT)
    await daemon.wait_event("telegram_command_ignored")
    telegram.say("/status")
    await daemon.wait("the /status reply", lambda: replied("1 positions"))
    telegram.say("/positions@lasersell_bot")
    await daemon.wait("the /positions reply", lambda: replied(f"#{pid} "))
    telegram.say(f"/confirm {pid}")  # nothing asked yet: nothing sold
    await daemon.wait("the refusal to confirm", lambda: replied("Nothing to confirm"))
    telegram.say(f"/sell {pid}")
    await daemon.wait("the confirmation question", lambda: replied(f"/confirm {pid}"))
    assert not [r for r in ctl.world.stream.received
                if isinstance(r.message, protocol.RequestExitSignal)]
    telegram.say(f"/confirm {pid}")
    await daemon.wait_event("tx_confirmed", position_id=pid, state="landed")
    assert replied(f"Sell of #{pid} requested")
    events = daemon.events("manual_sell_requested")
    assert [(e["position_id"], e["source"]) for e in events] == [(pid, "telegram")]

    telegram.say("/pause")
    await daemon.wait("the pause reply", lambda: replied("Mirror buys paused"))
    assert (await ctl.api("GET", "/api/v1/state"))[1]["mirror"]["paused"] is True
    telegram.say("/resume")
    await daemon.wait("the resume reply", lambda: replied("Mirror buys resumed"))
    assert (await ctl.api("GET", "/api/v1/state"))[1]["mirror"]["paused"] is False
    telegram.say("/help")
    await daemon.wait("the help reply", lambda: replied("Commands:"))

    assert {m["chat_id"] for m in telegram.sent} == {CHAT_ID}
    assert all(p["limit"] <= 20 and 0 < p["timeout"] <= 30 for p in telegram.polls)
    offsets = [p["offset"] for p in telegram.polls if "offset" in p]
    assert offsets == sorted(offsets) and offsets[-1] == telegram.updates[-1]["update_id"] + 1
    assert BOT_TOKEN not in "\n".join(daemon.stdout)
    daemon.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit(15) == 0
    rows = JournalReader(ctl.tmp / "journal.sqlite3").recent_trades(10)
    assert [(r.position_id, r.reason, r.state) for r in rows] == [(pid, "manual", "landed")]
