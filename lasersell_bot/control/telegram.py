"""Telegram commands: the notifier's bot also takes commands, from its chat only.

``/status``, ``/positions``, ``/sell ID`` (answered with a request to send
``/confirm ID`` within ``CONFIRM_SEC``), ``/pause`` and ``/resume``. Updates come
by long polling ``getUpdates`` (at most ``MAX_UPDATES`` per call, a bounded wait);
messages from any other chat are ignored. A sell goes through the same actions,
guard and executor as the API's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final

import aiohttp

from lasersell_bot.config import NotifyConfig
from lasersell_bot.control import render
from lasersell_bot.control.actions import ControlError
from lasersell_bot.control.plane import ControlPlane
from lasersell_bot.logs import get_logger

POLL_TIMEOUT_SEC: Final = 25
MAX_UPDATES: Final = 20
CONFIRM_SEC: Final = 60.0
MAX_PENDING: Final = 20
MAX_TEXT: Final = 4000
BACKOFF_CAP_SEC: Final = 60.0
HELP: Final = ("Commands: /status, /positions, /sell ID (then /confirm ID), /pause "
               "(mirror buys), /resume")

log = get_logger("telegram")


def parse_command(text: str) -> tuple[str, list[str]] | None:
    """``"/sell@mybot 12"`` -> ``("sell", ["12"])``; None when not a command."""
    parts = text.strip().split()
    if not parts or not parts[0].startswith("/"):
        return None
    name = parts[0][1:].split("@", 1)[0].lower()
    return name, parts[1:5]


class Confirmations:
    """Sells waiting for ``/confirm``, each for ``CONFIRM_SEC``; at most ``MAX_PENDING``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._asked: dict[int, float] = {}
        self._clock = clock

    def ask(self, position_id: int) -> None:
        self._expire()
        if len(self._asked) >= MAX_PENDING:
            self._asked.pop(next(iter(self._asked)))
        self._asked[position_id] = self._clock()

    def take(self, position_id: int) -> bool:
        self._expire()
        return self._asked.pop(position_id, None) is not None

    def _expire(self) -> None:
        now = self._clock()
        for position_id, asked in list(self._asked.items()):
            if now - asked > CONFIRM_SEC:
                del self._asked[position_id]


class TelegramCommands:
    """Long-polls the bot's updates and answers commands from the configured chat."""

    def __init__(self, cfg: NotifyConfig, plane: ControlPlane, *,
                 poll_timeout_sec: int = POLL_TIMEOUT_SEC) -> None:
        self._base = f"{cfg.telegram_api_url.rstrip('/')}/bot{cfg.telegram_bot_token}"
        self._chat_id = cfg.telegram_chat_id.strip()
        self._plane = plane
        self._poll_timeout = poll_timeout_sec
        self._offset: int | None = None
        self.confirmations = Confirmations()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._poll_timeout + 10)
        failures = 0
        async with aiohttp.ClientSession(timeout=timeout) as http:
            log.info("telegram_commands_started")
            while True:
                try:
                    updates = await self._get_updates(http)
                    failures = 0
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    failures += 1
                    delay = min(BACKOFF_CAP_SEC, 2.0 ** min(failures, 6))
                    log.warning("telegram_poll_failed", error=type(exc).__name__,
                                retry_in_s=delay)
                    await asyncio.sleep(delay)
                    continue
                for update in updates:
                    await self._handle(http, update)

    async def _get_updates(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"timeout": self._poll_timeout, "limit": MAX_UPDATES,
                                  "allowed_updates": ["message"]}
        if self._offset is not None:
            params["offset"] = self._offset
        async with http.post(f"{self._base}/getUpdates", json=params) as response:
            body = await response.json(content_type=None)
        if response.status != 200 or not isinstance(body, dict) or not body.get("ok"):
            raise ValueError(f"getUpdates answered {response.status}")
        updates = body.get("result")
        if not isinstance(updates, list):
            raise ValueError("getUpdates result is not a list")
        good = [u for u in updates[:MAX_UPDATES] if isinstance(u, dict)
                and isinstance(u.get("update_id"), int)]
        if good:
            self._offset = max(u["update_id"] for u in good) + 1
        return good

    async def _handle(self, http: aiohttp.ClientSession, update: dict[str, Any]) -> None:
        message = update.get("message")
        if not isinstance(message, dict):
            return
        chat = message.get("chat")
        chat_id = str(chat.get("id")) if isinstance(chat, dict) else ""
        text = message.get("text")
        if chat_id != self._chat_id:
            log.warning("telegram_command_ignored", reason="other chat")
            return
        if not isinstance(text, str) or (command := parse_command(text)) is None:
            return
        log.info("telegram_command", command=command[0])
        await self._reply(http, self.answer(*command))

    def answer(self, name: str, args: list[str]) -> str:
        """The reply to one command (carrying it out first)."""
        try:
            return self._answer(name, args)
        except ControlError as error:
            return f"Refused: {error.message}"

    def _answer(self, name: str, args: list[str]) -> str:
        actions = self._plane.actions
        if name == "status":
            return render.headline(self._plane.state())
        if name == "positions":
            return "\n".join(render.position_lines(self._plane.state()))
        if name in ("sell", "confirm"):
            position_id = _position_arg(args)
            if name == "sell":
                view = self._plane.position_view(actions.position(position_id))
                self.confirmations.ask(position_id)
                return (f"Sell position #{position_id} ({view.get('symbol') or view['mint']}, "
                        f"{render.pct(view['profit_pct'])})? Send /confirm {position_id} "
                        f"within {CONFIRM_SEC:.0f} s.")
            if not self.confirmations.take(position_id):
                return f"Nothing to confirm for #{position_id}: send /sell {position_id} first."
            actions.sell(position_id, source="telegram")
            return f"Sell of #{position_id} requested; the exit goes through the guard."
        if name == "pause":
            actions.pause_mirror(source="telegram")
            return "Mirror buys paused."
        if name == "resume":
            actions.resume_mirror(source="telegram")
            return "Mirror buys resumed."
        return HELP

    async def _reply(self, http: aiohttp.ClientSession, text: str) -> None:
        body = {"chat_id": self._chat_id, "text": text[:MAX_TEXT],
                "disable_web_page_preview": True}
        try:
            async with http.post(f"{self._base}/sendMessage", json=body) as response:
                await response.read()
                if response.status != 200:
                    log.warning("telegram_reply_failed", status=response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("telegram_reply_failed", error=type(exc).__name__)


def _position_arg(args: list[str]) -> int:
    if not args or not args[0].lstrip("#").isdigit():
        raise ControlError(400, "invalid_field", "give a position id, e.g. /sell 12", "id")
    return int(args[0].lstrip("#"))
