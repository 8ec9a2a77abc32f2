"""A bounded memory of applied event ids (at-least-once delivery is safe).

Ids are kept in chunks so that a shell persists only the chunk that changed;
the window remembers at least the last ``window`` ids of a tenant.
"""

from __future__ import annotations


class IdWindow:
    __slots__ = ("window", "chunk", "keep", "seen", "chunks", "count", "_n", "_cur", "_room")

    def __init__(self, window: int) -> None:
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
            for i in self.chunks.pop(old):
                if self.seen.get(i) == old:
                    del self.seen[i]
            return n, old
        return n, None

    def restore_chunk(self, n: int, ids: list[str]) -> None:
        self._room = 0
        self.chunks[n] = list(ids)
        for i in ids:
            self.seen[i] = n

    def finish_restore(self, count: int) -> None:
        self._room = 0
        self.count = count
        # re-apply "latest chunk wins" for ids seen in several chunks
        for n in sorted(self.chunks):
            for i in self.chunks[n]:
                self.seen[i] = n
