"""A heap of per-position due times with lazy deletion (pure, no clock).

Owns the order in which client-side deadlines come due. Entries are
``(due_ms, position_id)``; the owner says which entries still count (``is_live``), so a
changed, cancelled or paused deadline costs nothing until its stale entry reaches the
top, where it is dropped. Work per change is O(log n); finding the earliest due time
touches only stale entries at the top, never every position.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Final

# Rebuilt when entries outnumber twice the live positions plus this.
HEAP_SLACK: Final = 64

Entry = tuple[int, int]  # (due_ms, position_id)


class DeadlineHeap:
    def __init__(self, is_live: Callable[[int, int], bool]) -> None:
        self._is_live = is_live
        self._heap: list[Entry] = []

    def push(self, due_ms: int, position_id: int) -> bool:
        """Add an entry; True if it is now the earliest (a timer may need to wake sooner)."""
        entry = (due_ms, position_id)
        heapq.heappush(self._heap, entry)
        return self._heap[0] == entry

    def earliest(self) -> int | None:
        """The earliest live due time, dropping the stale entries above it."""
        heap = self._heap
        while heap and not self._is_live(*heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now_ms: int) -> list[Entry]:
        """Every entry due at ``now_ms``, live or not (the caller checks each when it
        acts: a duplicate goes stale once its twin has fired)."""
        heap = self._heap
        popped: list[Entry] = []
        while heap and heap[0][0] <= now_ms:
            popped.append(heapq.heappop(heap))
        return popped

    def needs_rebuild(self, live_positions: int) -> bool:
        return len(self._heap) > 2 * live_positions + HEAP_SLACK

    def rebuild(self, live: Iterable[Entry]) -> None:
        self._heap = list(live)
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._heap)
