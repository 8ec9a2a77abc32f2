"""A bounded memory of applied event ids (at-least-once delivery is safe).

Ids are kept in chunks so that a shell persists only the chunk that changed;
the window remembers at least the last ``window`` ids of a tenant.
"""

from __future__ import annotations

from itertools import repeat


class IdWindow:
    __slots__ = ("window", "chunk", "keep", "seen", "chunks", "count", "_n", "_cur", "_room",
                 "track", "_taken", "_dropped")

    def __init__(self, window: int, track: bool = False) -> None:
        self.window = window
        self.chunk = max(1, min(1024, window))
        self.keep = -(-window // self.chunk)  # full chunks kept besides the current one
        self.seen: dict[str, int] = {}  # id -> chunk number
        self.chunks: dict[int, list[str]] = {}
        self.count = 0
        # the chunk being filled and the room left in it (0: the next add
        # takes the careful path: a new chunk, an old one dropped)
        self._n = 0
        self._cur: list[str] = []
        self._room = 0
        # what changed since the last ``take_changed`` (with ``track``): ids
        # from number ``_taken`` on were added, the ``_dropped`` chunks went
        self.track = track
        self._taken = 0
        self._dropped: list[int] = []

    def __contains__(self, event_id: str) -> bool:
        return event_id in self.seen

    def add(self, event_id: str) -> tuple[int, int | None]:
        """Remember ``event_id``; return (chunk written, chunk dropped or None)."""
        if self._room:
            self._room -= 1
            self.count += 1
            self._cur.append(event_id)
            self.seen[event_id] = self._n
            return self._n, None
        n = self.count // self.chunk
        self.count += 1
        ids = self.chunks.get(n)
        if ids is None:
            ids = self.chunks[n] = []
        ids.append(event_id)
        self.seen[event_id] = n
        self._n, self._cur, self._room = n, ids, (n + 1) * self.chunk - self.count
        old = n - self.keep - 1
        if old >= 0 and old in self.chunks:
            dead = self.chunks.pop(old)
            seen = self.seen
            # forget the chunk's ids at C speed; an id that a later chunk holds
            # too (possible after a restore) is the later chunk's: put it back
            was = list(map(seen.pop, dead, repeat(None)))
            if was.count(old) != len(was):
                for i, m in zip(dead, was, strict=True):
                    if m is not None and m != old:
                        seen[i] = m
            if self.track:
                self._dropped.append(old)
            return n, old
        return n, None

    def take_changed(self) -> list[int]:
        """Numbers of the chunks written or dropped since the last call (with
        ``track``); a dropped one is no longer in ``chunks``."""
        count, taken = self.count, self._taken
        if count == taken and not self._dropped:
            return []
        changed, self._dropped = self._dropped, []
        if count > taken:
            changed.extend(range(taken // self.chunk, (count - 1) // self.chunk + 1))
        self._taken = count
        return changed

    def restore_chunk(self, n: int, ids: list[str]) -> None:
        self._room = 0
        self.chunks[n] = list(ids)
        for i in ids:
            self.seen[i] = n

    def finish_restore(self, count: int) -> None:
        self._room = 0
        self.count = count
        self._taken = count  # what was restored is persisted already
        self._dropped = []
        # re-apply "latest chunk wins" for ids seen in several chunks
        for n in sorted(self.chunks):
            for i in self.chunks[n]:
                self.seen[i] = n
