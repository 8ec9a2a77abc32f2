"""Deadlines in event time: offer timeouts, reservation bounds, overflow,
wrap-ups, offline grace and routing steps' time.

A heap of ``(deadline, kind, seq, key)``: for a chat's timer the chat's seq
and key; for a wrap-up the ended chat's seq and the agent's id; for an
offline grace the agent's seq and id. Entries are never removed
early: when one fires, the engine checks the chat is still in the state the
timer was set for (lazy deletion). The order depends only on persisted values,
so a restored engine fires the same timers in the same order.
"""

from __future__ import annotations

import heapq

OFFER, RESERVE, OVERFLOW, WRAP, GRACE, STEP = 0, 1, 2, 3, 4, 5

Timer = tuple[int, int, int, str]


class TimerHeap:
    __slots__ = ("heap",)

    def __init__(self) -> None:
        self.heap: list[Timer] = []

    def __len__(self) -> int:
        return len(self.heap)

    def push(self, deadline: int, kind: int, chat_seq: int, chat_key: str) -> None:
        heapq.heappush(self.heap, (deadline, kind, chat_seq, chat_key))

    def due(self, now: int) -> Timer | None:
        """Pop and return the earliest timer with deadline <= now, if any."""
        heap = self.heap
        if heap and heap[0][0] <= now:
            return heapq.heappop(heap)
        return None

    def next_deadline(self) -> int | None:
        return self.heap[0][0] if self.heap else None
