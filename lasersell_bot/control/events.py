"""Fan-out of control events to server-sent-event subscribers.

``publish`` never waits: each subscriber has a bounded queue, and a subscriber that
falls ``capacity`` events behind is cut off (its stream ends, the browser
reconnects and reads ``/api/v1/state`` again) rather than slowing anything down.
With no subscriber, publishing costs a length check.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any, Final

import msgspec

DEFAULT_CAPACITY: Final = 512
_CLOSED: Final = object()


class Subscription:
    """One subscriber's queue of ``(event id, name, data)``; ``next`` or iterate it."""

    def __init__(self, capacity: int) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=capacity)
        self.overflowed = False

    def offer(self, item: tuple[int, str, dict[str, Any]]) -> None:
        if self.overflowed:
            return
        if self._queue.full():
            self.overflowed = True
            self._queue.get_nowait()
            self._queue.put_nowait(_CLOSED)
            return
        self._queue.put_nowait(item)

    def close(self) -> None:
        if not self.overflowed:
            self.overflowed = True
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(_CLOSED)

    async def next(self) -> tuple[int, str, dict[str, Any]] | None:
        """The next event, or None once the subscription is closed (safe to cancel)."""
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # stays closed for later calls
            return None
        event: tuple[int, str, dict[str, Any]] = item
        return event

    async def __aiter__(self) -> AsyncIterator[tuple[int, str, dict[str, Any]]]:
        while (item := await self.next()) is not None:
            yield item


class EventBus:
    """Publishes named JSON events to every current subscriber."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._subscribers: set[Subscription] = set()
        self._ids = itertools.count(1)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self._capacity)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def publish(self, name: str, data: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        item = (next(self._ids), name, data)
        for subscription in list(self._subscribers):
            subscription.offer(item)

    def close_all(self) -> None:
        for subscription in list(self._subscribers):
            subscription.close()
        self._subscribers.clear()


def sse_frame(event_id: int, name: str, data: dict[str, Any]) -> bytes:
    """One server-sent event: ``id``, ``event`` and one ``data`` line of JSON."""
    return sse_raw(event_id, name, msgspec.json.encode(data))


def sse_raw(event_id: int, name: str, payload: bytes) -> bytes:
    """``payload`` (one line of JSON) as a server-sent event."""
    return f"id: {event_id}\nevent: {name}\ndata: ".encode() + payload + b"\n\n"
