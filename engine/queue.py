"""Waiting chats in service order.

An entry is ``(key, seq, chat)``: ``key`` does not change with time (for the
priority policy it is ``-(base - aging·t0)``, see DESIGN.md), so the order is
the same at every instant and nothing is rescanned as time passes. A sorted
list with bisection gives the head in O(1), insert/remove in O(log n) plus a
memmove, and a chat's 1-based position in O(log n) for ``chat.queued``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Final

from schemas import native

Entry = tuple[float, int, str]

#: compiled, a search loop of native comparisons beats calling ``bisect_left``
#: (which compares tuples as objects); pure, ``bisect_left`` in C wins
_NATIVE: Final = native.MODE == native.COMPILED


def find(entries: list[Entry], entry: Entry, lo: int = 0, hi: int = -1) -> int:
    """``bisect_left(entries, entry, lo, hi)`` (``hi`` -1: the end). Entries
    differ in their ``(key, seq)`` (a chat's seq is its own), so comparing
    those two orders them as comparing the whole tuples does."""
    if hi < 0:
        hi = len(entries)
    if not _NATIVE:
        return bisect_left(entries, entry, lo, hi)
    key, seq = entry[0], entry[1]
    while lo < hi:
        mid = (lo + hi) >> 1
        e = entries[mid]
        if e[0] < key or (e[0] == key and e[1] < seq):
            lo = mid + 1
        else:
            hi = mid
    return lo


class WaitQueue:
    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def push(self, entry: Entry) -> int:
        """Insert; return the 1-based position."""
        entries = self.entries
        if not entries or entries[-1] < entry:
            entries.append(entry)
            return len(entries)
        i = find(entries, entry)
        entries.insert(i, entry)
        return i + 1

    def remove(self, entry: Entry) -> None:
        entries = self.entries
        i = find(entries, entry)
        if i < len(entries) and entries[i] == entry:
            del entries[i]

    def move(self, old: Entry, new: Entry) -> None:
        """``remove(old)`` then ``push(new)`` (entries are distinct), searching less."""
        entries = self.entries
        n = len(entries)
        i = find(entries, old)
        if i < n and entries[i] == old:
            if new > old:
                if i + 1 == n or new < entries[i + 1]:
                    entries[i] = new  # it stays between the same neighbours
                    return
                del entries[i]
                entries.insert(find(entries, new, i), new)
            else:
                if i == 0 or entries[i - 1] < new:
                    entries[i] = new
                    return
                del entries[i]
                entries.insert(find(entries, new, 0, i), new)
            return
        self.push(new)

    def position(self, entry: Entry) -> int:
        return find(self.entries, entry) + 1

    def head(self) -> Entry | None:
        return self.entries[0] if self.entries else None
