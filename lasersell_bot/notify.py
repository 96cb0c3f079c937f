"""Operator notifications: exits, guard refusals, mirror buys and health changes,
sent to a Discord/Slack-compatible webhook and/or a Telegram chat.

``Notifier.notify`` only puts a message on a bounded queue (the oldest message is
dropped and counted when it is full), so callers on the exit path never wait on
the network. One sender task drains the queue, at most one message per
``notify.min_interval_sec``, retrying 429 and 5xx answers with backoff (honouring
``Retry-After``). The bot token and webhook URL are secrets: they are registered
for redaction and never put into a log line or error by this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any, Final, Literal, NamedTuple
from urllib.parse import urlsplit

import aiohttp

from lasersell_bot.config import NotifyConfig
from lasersell_bot.logs import get_logger, register_secret
from lasersell_bot.metrics import Counter, Metrics

NotifyKind = Literal[
    "exit_landed", "exit_failed", "guard_refused", "mirror_buy", "unhealthy", "healthy",
    "tx_unknown",
]
LABELS: Final[dict[NotifyKind, str]] = {
    "exit_landed": "Exit landed",
    "exit_failed": "Exit FAILED",
    "guard_refused": "Guard refused a transaction",
    "mirror_buy": "Mirror buy",
    "unhealthy": "Bot unhealthy",
    "healthy": "Bot healthy again",
    "tx_unknown": "Sale outcome UNKNOWN",
}
TELEGRAM_API: Final = "https://api.telegram.org"
MAX_TEXT_CHARS: Final = 2000  # Discord's limit; Telegram allows 4096
_BODY_SNIPPET: Final = 200


def _log() -> Any:
    return get_logger("notify")


class Channel(NamedTuple):
    """One destination: where to POST, how to show it in logs, what to send."""

    name: str
    url: str
    display: str
    payload: Callable[[str], dict[str, Any]]
    secrets: tuple[str, ...]


class PostResult(NamedTuple):
    status: int | None  # None: no HTTP answer (connection error, timeout)
    retry_after: float | None
    detail: str


def webhook_channel(url: str) -> Channel:
    parts = urlsplit(url)
    return Channel(
        name="webhook",
        url=url,
        display=f"{parts.scheme}://{parts.hostname}/…",
        payload=lambda text: {"content": text, "text": text},
        secrets=(url, parts.path),
    )


def telegram_channel(token: str, chat_id: str, api_base: str = TELEGRAM_API) -> Channel:
    base = api_base.rstrip("/")
    return Channel(
        name="telegram",
        url=f"{base}/bot{token}/sendMessage",
        display=f"{base}/bot<redacted>/sendMessage",
        payload=lambda text: {"chat_id": chat_id, "text": text, "disable_web_page_preview": True},
        secrets=(token,),
    )


def channels_for(cfg: NotifyConfig, telegram_api_base: str = TELEGRAM_API) -> list[Channel]:
    channels: list[Channel] = []
    if cfg.webhook_url:
        channels.append(webhook_channel(cfg.webhook_url))
    if cfg.telegram_bot_token:
        if not cfg.telegram_chat_id:
            raise ValueError("notify.telegram_chat_id: required when telegram_bot_token is set")
        channels.append(
            telegram_channel(cfg.telegram_bot_token, cfg.telegram_chat_id, telegram_api_base)
        )
    return channels


def format_message(kind: NotifyKind, text: str) -> str:
    label = LABELS.get(kind, kind)
    message = f"{label}: {text}" if text else label
    if len(message) > MAX_TEXT_CHARS:
        message = message[: MAX_TEXT_CHARS - 1] + "…"
    return message


def retry_delay(
    attempt: int, status: int | None, retry_after: float | None, *, base: float, cap: float
) -> float | None:
    """Seconds to wait before trying again after failed ``attempt`` (0-based), or
    None to give up: other 4xx answers are final, and so is a Retry-After above ``cap``."""
    if status is not None and status != 429 and status < 500:
        return None
    if retry_after is not None:
        return retry_after if retry_after <= cap else None
    return float(min(cap, base * 2**attempt))


def parse_retry_after(header: str | None, body: bytes) -> float | None:
    """Seconds from a numeric ``Retry-After`` header, else Telegram's
    ``parameters.retry_after`` in the JSON body."""
    if header:
        with contextlib.suppress(ValueError):
            return max(0.0, float(header))
    try:
        value = json.loads(body)["parameters"]["retry_after"]
    except (ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def _counter(
    metrics: Metrics | None, attr: str, name: str, help_text: str, labels: tuple[str, ...] = ()
) -> Counter:
    """The counter ``metrics.<attr>``, created and attached (so it is exported) if absent."""
    existing = getattr(metrics, attr, None)
    if isinstance(existing, Counter):
        return existing
    counter = Counter(name, help_text, labels)
    if metrics is not None:
        setattr(metrics, attr, counter)
    return counter


class Notifier:
    """Queues notifications and delivers them from one background task."""

    def __init__(
        self,
        cfg: NotifyConfig,
        metrics: Metrics | None = None,
        *,
        capacity: int = 100,
        telegram_api_base: str = TELEGRAM_API,
        max_attempts: int = 4,
        backoff_base_sec: float = 1.0,
        backoff_cap_sec: float = 60.0,
        request_timeout_sec: float = 10.0,
        drain_timeout_sec: float = 5.0,
    ) -> None:
        self._channels = channels_for(cfg, telegram_api_base)
        for channel in self._channels:
            for secret in channel.secrets:
                register_secret(secret)
        self._min_interval = cfg.min_interval_sec
        self._max_attempts = max(1, max_attempts)
        self._backoff = (backoff_base_sec, backoff_cap_sec)
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_sec)
        self._drain_timeout = drain_timeout_sec
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=max(1, capacity))
        self._dropped = _counter(
            metrics, "notify_dropped", "lasersell_bot_notify_dropped_total",
            "Notifications dropped: queue full, or undelivered at shutdown.",
        )
        self._sent = _counter(
            metrics, "notify_sent", "lasersell_bot_notify_sent_total",
            "Notification deliveries by channel and outcome.", ("channel", "outcome"),
        )
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._next_send_at = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._channels)

    @property
    def dropped(self) -> int:
        return int(self._dropped.get())

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def channel_displays(self) -> list[str]:
        """Where messages go, safe to log (no token, no webhook path)."""
        return [channel.display for channel in self._channels]

    def notify(self, kind: NotifyKind, text: str) -> bool:
        """Queue a message without waiting; False if notifications are off or stopped."""
        if not self._channels or self._closed:
            return False
        if self._queue.full():
            self._queue.get_nowait()
            self._queue.task_done()
            self._dropped.inc()
        self._queue.put_nowait(format_message(kind, text))
        return True

    async def start(self) -> None:
        if not self._channels or self._task is not None:
            return
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        self._task = asyncio.create_task(self._run(), name="notifier")
        _log().info("notify_started", channels=self.channel_displays())

    async def stop(self) -> None:
        """Deliver what is queued (for at most ``drain_timeout_sec``), then stop."""
        self._closed = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._queue.join(), self._drain_timeout)
            except TimeoutError:
                _log().warning("notify_drain_timeout", undelivered=self._queue.qsize())
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._discard_pending()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _discard_pending(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
            self._dropped.inc()

    async def _run(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                await self._pace()
                await asyncio.gather(*(self._send(ch, message) for ch in self._channels))
            except Exception as exc:
                _log().error("notify_internal_error", error=type(exc).__name__)
            finally:
                self._queue.task_done()

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self._next_send_at - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_send_at = loop.time() + self._min_interval

    async def _send(self, channel: Channel, message: str) -> None:
        for attempt in range(self._max_attempts):
            result = await self._post(channel, message)
            if result.status is not None and 200 <= result.status < 300:
                self._sent.inc(channel.name, "ok")
                return
            delay = retry_delay(attempt, result.status, result.retry_after,
                                base=self._backoff[0], cap=self._backoff[1])
            if delay is None or attempt + 1 >= self._max_attempts:
                self._give_up(channel, result, attempt + 1)
                return
            _log().info("notify_retry", channel=channel.display, status=result.status,
                        delay_s=round(delay, 3), detail=result.detail)
            await asyncio.sleep(delay)

    def _give_up(self, channel: Channel, result: PostResult, attempts: int) -> None:
        self._sent.inc(channel.name, "failed")
        _log().warning("notify_failed", channel=channel.display, status=result.status,
                       attempts=attempts, detail=result.detail)

    async def _post(self, channel: Channel, message: str) -> PostResult:
        assert self._session is not None
        try:
            async with self._session.post(channel.url, json=channel.payload(message)) as resp:
                body = await resp.content.read(64 * 1024)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), body)
                snippet = body[:_BODY_SNIPPET].decode("utf-8", "replace")
                return PostResult(resp.status, retry_after, self._scrub(snippet))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return PostResult(None, None, self._scrub(f"{type(exc).__name__}: {exc}"))

    def _scrub(self, text: str) -> str:
        """``text`` with every channel's URL and secrets replaced by safe forms."""
        for channel in self._channels:
            text = text.replace(channel.url, channel.display)
        for channel in self._channels:
            for secret in channel.secrets:
                if len(secret) > 1:
                    text = text.replace(secret, "<redacted>")
        return text
