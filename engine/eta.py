"""The estimated wait of a queued chat, from how fast the tenant's queue moves.

A tenant measures its queue's pace live: for each chat that waited and was
then assigned, the seconds it waited in the queue per place it had there
when it was first queued, averaged over recent event time (an exponentially weighted
ratio, time constant ``[assignment] eta_window_s``). The estimate of a chat
at position N is N times that pace. The pace is kept for the tenant's common
order and for each required skill, whose chats wait in their own queue.
Until ``MIN_SAMPLES`` chats have been
measured the estimate falls back to N × ``eta_handle_s`` ÷ the tenant's
online capacity.

Measured from the waits themselves, the pace takes in what a count of
agents cannot see: chats of higher priority that arrive later and go
ahead, reservations, skills, offers declined or timed out. Weighted sums
keep three numbers per pace whatever the traffic, depend on event time only
(deterministic, restored exactly), and forget old traffic smoothly: the
pace follows a shift change or a peak within about one window.
"""

from __future__ import annotations

import math

from engine.rules import Rules

#: chats measured before a pace is used
MIN_SAMPLES = 10
#: the longest estimate given, in seconds (a day)
MAX_ETA_S = 86_400


class QueuePace:
    """Seconds of waiting per place in the queue, over recent event time."""

    __slots__ = ("count", "waited", "places", "last")

    def __init__(self) -> None:
        self.count = 0  # chats measured, ever
        self.waited = 0.0  # their weighted waits (ms) at ``last``
        self.places = 0.0  # their weighted places
        self.last = 0  # when the latest was measured (ms)

    def measured(self, now: int, waited_ms: int, place: int, window_ms: int) -> None:
        """A chat queued at ``place`` was assigned at ``now`` after ``waited_ms``."""
        if self.count:
            f = math.exp((self.last - now) / window_ms)
            self.waited *= f
            self.places *= f
        self.waited += waited_ms
        self.places += place
        self.last = now
        self.count += 1

    def ms_per_place(self) -> float | None:
        """The pace (None: too few chats measured yet). The decay since the
        latest measurement cancels out of the ratio."""
        if self.count < MIN_SAMPLES or self.places <= 0:
            return None
        return self.waited / self.places

    def to_record(self) -> list[int | float]:
        return [self.count, self.waited, self.places, self.last]

    @classmethod
    def from_record(cls, r: list[int | float]) -> QueuePace:
        p = cls()
        p.count, p.waited, p.places, p.last = int(r[0]), float(r[1]), float(r[2]), int(r[3])
        return p


def eta_s(rules: Rules, position: int, online_capacity: int, pace: QueuePace | None) -> int:
    """The estimated wait, in whole seconds, of the chat at 1-based ``position``."""
    ms = pace.ms_per_place() if pace is not None else None
    if ms is None:
        return int(position * rules.eta_handle_s / max(1, online_capacity))
    return min(MAX_ETA_S, int(position * ms / 1000.0))
