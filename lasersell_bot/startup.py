"""Start-up of a large daemon: systemd's start timeout and the garbage collector.

Owns ``StartupExtender`` (``EXTEND_TIMEOUT_USEC`` while many wallets register) and
the ``gc.freeze()`` calls that move what start-up built (keys, config, connections,
then the positions of the first session) out of the collector's reach, so a full
collection never walks them while an exit signal waits.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Final

from lasersell_bot.ops import SdNotifier

# Registering this many wallets or more extends systemd's start timeout as it goes.
EXTEND_FROM_WALLETS: Final = 20
EXTEND_EVERY_SEC: Final = 5.0
EXTEND_BY_SEC: Final = 30.0
# The first session's positions are settled when their count held still this long.
SETTLED_AFTER_SEC: Final = 2.0
SETTLE_POLL_SEC: Final = 0.1
# A daemon whose session brings no position stops watching after this long.
SETTLE_WATCH_SEC: Final = 600.0


def freeze_startup_objects() -> None:
    """Collect once, then freeze every object alive now. Call before any signal can
    arrive: the collection is a pause (the largest of the daemon's life)."""
    gc.collect()
    gc.freeze()


async def freeze_when_settled(count: Callable[[], int], *,
                              settled_after_sec: float = SETTLED_AFTER_SEC,
                              poll_sec: float = SETTLE_POLL_SEC,
                              watch_sec: float = SETTLE_WATCH_SEC) -> None:
    """Freeze what the first session builds while its positions arrive (each poll that
    saw the count grow), and once more when ``count()`` (open positions) has held still
    for ``settled_after_sec``; then return. No collection: it would pause the exit path,
    and without these freezes each full collection during the burst walks every
    position so far. Cyclic garbage alive at a freeze is kept (refcounting still frees
    the rest), a bounded one-off of the start. Gives up after ``watch_sec``."""
    last, still_since = count(), time.monotonic()
    give_up = still_since + watch_sec
    while time.monotonic() < give_up:
        await asyncio.sleep(poll_sec)
        now, current = time.monotonic(), count()
        if current != last:
            if current > last:
                gc.freeze()
            last, still_since = current, now
        elif current > 0 and now - still_since >= settled_after_sec:
            gc.freeze()
            return


class StartupExtender:
    """Asks systemd for more start-up time (``EXTEND_TIMEOUT_USEC``) while many wallets
    register: at the start and then at most every ``EXTEND_EVERY_SEC``, each time for
    ``EXTEND_BY_SEC`` more. A no-op outside systemd, and for a handful of wallets."""

    def __init__(self, sd: SdNotifier, wallets: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sd = sd
        self._clock = clock
        self._active = wallets >= EXTEND_FROM_WALLETS
        self._last = clock()
        if self._active:
            self._extend()

    def progress(self, done: int, total: int) -> None:
        if self._active and done < total and self._clock() - self._last >= EXTEND_EVERY_SEC:
            self._last = self._clock()
            self._extend()

    def _extend(self) -> None:
        self._sd.send(f"EXTEND_TIMEOUT_USEC={int(EXTEND_BY_SEC * 1_000_000)}")
