"""Notifier against a local aiohttp server standing in for the webhook and Telegram."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from lasersell_bot.config import NotifyConfig
from lasersell_bot.logs import configure_logging
from lasersell_bot.metrics import Counter, Metrics
from lasersell_bot.notify import (
    MAX_TEXT_CHARS,
    Notifier,
    NotifyKind,
    format_message,
    parse_retry_after,
    retry_delay,
)

TOKEN = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
WEBHOOK_PATH = "/api/webhooks/1187/Zq9vWebhookSecretPart_3xY"


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"ok":true}'
    hang: float = 0.0


@dataclass
class Hit:
    at: float
    path: str
    json: dict[str, Any]


class FakeApi:
    """Records every POST; answers from a per-channel script, then 200."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.script: dict[str, list[Reply]] = {"webhook": [], "telegram": []}
        self.base = ""
        self.release = asyncio.Event()

    def channel_hits(self, name: str) -> list[Hit]:
        prefix = "/bot" if name == "telegram" else "/api/webhooks/"
        return [hit for hit in self.hits if hit.path.startswith(prefix)]

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(Hit(time.monotonic(), request.path, await request.json()))
        name = "telegram" if request.path.startswith("/bot") else "webhook"
        reply = self.script[name].pop(0) if self.script[name] else Reply()
        if reply.hang:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), reply.hang)
        return web.Response(status=reply.status, headers=reply.headers, text=reply.body)


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    fake.release.set()
    await runner.cleanup()


def make_notifier(
    api: FakeApi,
    *,
    webhook: bool = True,
    telegram: bool = False,
    min_interval: float = 0.0,
    metrics: Metrics | None = None,
    **kwargs: Any,
) -> Notifier:
    cfg = NotifyConfig(
        webhook_url=api.base + WEBHOOK_PATH if webhook else "",
        telegram_bot_token=TOKEN if telegram else "",
        telegram_chat_id="-100200300" if telegram else "",
        min_interval_sec=min_interval,
    )
    kwargs.setdefault("backoff_base_sec", 0.01)
    return Notifier(cfg, metrics, telegram_api_base=api.base, **kwargs)


async def deliver(notifier: Notifier, kind: NotifyKind, *texts: str) -> None:
    """Start ``notifier``, queue ``texts``, and stop (which drains)."""
    await notifier.start()
    for text in texts:
        assert notifier.notify(kind, text)
    await notifier.stop()


def sent_total(metrics: Metrics, channel: str, outcome: str) -> float:
    """``lasersell_bot_notify_sent_total{channel, outcome}`` as exported."""
    [counter] = [m for m in metrics.all() if m.name == "lasersell_bot_notify_sent_total"]
    assert isinstance(counter, Counter)
    return counter.get(channel, outcome)


async def test_delivers_to_webhook_and_telegram(api: FakeApi) -> None:
    notifier = make_notifier(api, telegram=True)
    await deliver(notifier, "exit_landed", "sold 50% of BONK, +0.8 SOL")
    text = "Exit landed: sold 50% of BONK, +0.8 SOL"
    [webhook] = api.channel_hits("webhook")
    assert (webhook.path, webhook.json) == (WEBHOOK_PATH, {"content": text, "text": text})
    [telegram] = api.channel_hits("telegram")
    assert telegram.path == f"/bot{TOKEN}/sendMessage"
    assert telegram.json["chat_id"] == "-100200300"
    assert telegram.json["text"] == text


async def test_rate_limit_spaces_messages(api: FakeApi) -> None:
    notifier = make_notifier(api, min_interval=0.15)
    await deliver(notifier, "mirror_buy", *(f"buy {index}" for index in range(4)))
    stamps = [hit.at for hit in api.hits]
    assert len(stamps) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.12, gaps


@pytest.mark.parametrize(
    ("telegram", "reply"),
    [
        (False, Reply(429, {"Retry-After": "1"}, "slow down")),
        (True, Reply(429, {}, '{"ok":false,"parameters":{"retry_after":1}}')),
    ],
    ids=["webhook-header", "telegram-body"],
)
async def test_429_retry_after_is_honoured(api: FakeApi, telegram: bool, reply: Reply) -> None:
    notifier = make_notifier(api, webhook=not telegram, telegram=telegram)
    api.script["telegram" if telegram else "webhook"].append(reply)
    await deliver(notifier, "exit_failed", "gave up after 3 tries")
    first, second = (hit.at for hit in api.hits)
    assert len(api.hits) == 2
    assert second - first >= 0.95


async def test_5xx_backs_off_then_succeeds(api: FakeApi) -> None:
    metrics = Metrics()
    notifier = make_notifier(api, metrics=metrics, backoff_base_sec=0.05)
    api.script["webhook"] += [Reply(503), Reply(502)]
    await deliver(notifier, "unhealthy", "stream disconnected")
    first, second, third = (hit.at for hit in api.hits)
    assert second - first >= 0.045 and third - second >= 0.095
    assert sent_total(metrics, "webhook", "ok") == 1


async def test_other_4xx_is_not_retried(api: FakeApi) -> None:
    metrics = Metrics()
    notifier = make_notifier(api, metrics=metrics)
    api.script["webhook"].append(Reply(400, body="bad payload"))
    await deliver(notifier, "guard_refused", "unknown program")
    assert len(api.hits) == 1
    assert sent_total(metrics, "webhook", "failed") == 1


async def test_gives_up_after_max_attempts(api: FakeApi) -> None:
    notifier = make_notifier(api, max_attempts=3)
    api.script["webhook"] += [Reply(500)] * 5
    await deliver(notifier, "exit_failed", "x")
    assert len(api.hits) == 3


async def test_full_queue_drops_oldest_and_counts(api: FakeApi) -> None:
    metrics = Metrics()
    notifier = make_notifier(api, metrics=metrics, capacity=3)
    for index in range(5):
        assert notifier.notify("mirror_buy", f"m{index}")
    assert (notifier.dropped, notifier.pending) == (2, 3)
    assert "lasersell_bot_notify_dropped_total 2" in metrics.render()
    await notifier.start()
    await notifier.stop()
    assert [hit.json["content"] for hit in api.hits] == [
        "Mirror buy: m2", "Mirror buy: m3", "Mirror buy: m4"
    ]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_secrets_never_reach_the_log(api: FakeApi) -> None:
    out = io.StringIO()
    configure_logging(level="debug", fmt="json", syslog_prefix=False, stream=out)
    echo = f'{{"ok":false,"description":"Unauthorized: bot{TOKEN} {WEBHOOK_PATH}"}}'
    api.script["telegram"].append(Reply(401, body=echo))
    api.script["webhook"].append(Reply(404, body=echo))
    notifier = make_notifier(api, telegram=True)
    await deliver(notifier, "healthy", "back")
    refused = Notifier(
        NotifyConfig(telegram_bot_token=TOKEN, telegram_chat_id="1", min_interval_sec=0),
        telegram_api_base=f"http://127.0.0.1:{_closed_port()}", max_attempts=2,
        backoff_base_sec=0.01,
    )
    await deliver(refused, "unhealthy", "down")
    logged = out.getvalue()
    assert logged.count("notify_failed") == 3, logged
    assert "bot<redacted>/sendMessage" in logged
    assert TOKEN not in logged and TOKEN.split(":")[1] not in logged
    assert "WebhookSecretPart" not in logged
    assert "[REDACTED]" not in logged, "the notifier must scrub secrets itself"


async def test_stop_drains_queue(api: FakeApi) -> None:
    notifier = make_notifier(api, min_interval=0.05)
    await deliver(notifier, "exit_landed", *(f"e{index}" for index in range(5)))
    assert len(api.hits) == 5
    assert (notifier.pending, notifier.dropped) == (0, 0)
    assert not notifier.notify("exit_landed", "after stop")


async def test_stop_is_bounded_when_endpoint_hangs(api: FakeApi) -> None:
    notifier = make_notifier(api, drain_timeout_sec=0.3)
    api.script["webhook"].append(Reply(hang=10))
    await notifier.start()
    for index in range(3):
        notifier.notify("exit_landed", f"e{index}")
    started = time.monotonic()
    await notifier.stop()
    assert time.monotonic() - started < 2
    assert notifier.dropped == 2


async def test_disabled_notifier_does_nothing() -> None:
    notifier = Notifier(NotifyConfig())
    assert not notifier.enabled
    await notifier.start()
    assert notifier.notify("exit_landed", "x") is False
    await notifier.stop()


def test_telegram_needs_chat_id() -> None:
    with pytest.raises(ValueError, match=r"^notify\.telegram_chat_id"):
        Notifier(NotifyConfig(telegram_bot_token=TOKEN))


def test_format_message_labels_and_truncates() -> None:
    assert format_message("guard_refused", "tip too big") == (
        "Guard refused a transaction: tip too big"
    )
    long = format_message("exit_failed", "x" * 5000)
    assert len(long) == MAX_TEXT_CHARS and long.endswith("…")


@pytest.mark.parametrize(
    ("attempt", "status", "retry_after", "expected"),
    [
        (0, 500, None, 1.0),
        (2, None, None, 4.0),
        (10, 503, None, 60.0),
        (0, 429, 7.0, 7.0),
        (0, 429, 600.0, None),
        (0, 400, None, None),
        (0, 404, 5.0, None),
    ],
)
def test_retry_delay(
    attempt: int, status: int | None, retry_after: float | None, expected: float | None
) -> None:
    assert retry_delay(attempt, status, retry_after, base=1.0, cap=60.0) == expected


def test_parse_retry_after() -> None:
    assert parse_retry_after("3", b"") == 3.0
    assert parse_retry_after(None, b'{"parameters":{"retry_after":5}}') == 5.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", b"not json") is None
    assert parse_retry_after(None, b'{"parameters":{"retry_after":"x"}}') is None
