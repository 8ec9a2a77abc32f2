"""A bounded memory of applied event ids (at-least-once delivery is safe).

Ids are kept in chunks so that a shell persists only the chunk that changed.
A tenant's window remembers an id while both hold: fewer than ``window`` ids
were applied since (the hard cap: at least the last ``window`` ids are kept,
see CONTRACT.md §3), and its tenant's clock is at most ``window_ms`` past the
time the id was applied. Ids are forgotten a chunk at a time, when a new chunk
starts: the oldest chunks beyond the cap, and those whose ids all are older
than ``window_ms`` (the chunk after them started more than ``window_ms`` ago).
A chunk's record is ``[start, id, id, ...]``: the time its first id was
applied, then its ids (a record of ids alone, written before chunks had a
start, is read as starting at the time it is restored).
"""

from __future__ import annotations

from typing import Any


class IdWindow:
    __slots__ = ("window", "window_ms", "chunk", "keep", "seen", "chunks", "starts", "count",
                 "_cur", "_room", "track_changes", "_taken", "_dropped")

    def __init__(self, window: int, track_changes: bool = False,
                 window_ms: int | None = None) -> None:
        self.window = window
        self.window_ms = window_ms  # None: by count alone
        self.chunk = max(1, min(1024, window))
        self.keep = -(-window // self.chunk)  # full chunks kept besides the current one
        # the ids remembered; each is in one chunk (a set: an absent id, most
        # ids, is found absent in fewer probes than in a dict)
        self.seen: set[str] = set()
        self.chunks: dict[int, list[str]] = {}  # oldest first
        self.starts: dict[int, int] = {}  # chunk number -> time its first id was applied
        self.count = 0
        # the chunk being filled and the room left in it (0: the next add
        # takes the careful path: a new chunk, old ones dropped)
        self._cur: list[str] = []
        self._room = 0
        # what changed since the last ``take_changes`` (with ``track_changes``):
        # ids from number ``_taken`` on were added, the ``_dropped`` chunks went
        self.track_changes = track_changes
        self._taken = 0
        self._dropped: list[int] = []

    def __contains__(self, event_id: str) -> bool:
        return event_id in self.seen

    def admit(self, event_id: str, now: int = 0) -> bool:
        """Remember ``event_id``, applied at time ``now``, unless it is
        remembered already; whether it was new."""
        seen = self.seen
        if event_id in seen:
            return False
        if self._room:
            self._room -= 1
            self.count += 1
            self._cur.append(event_id)
            seen.add(event_id)
        else:
            self._start_chunk(event_id, now)
        return True

    def _start_chunk(self, event_id: str, now: int) -> None:
        """Add ``event_id`` as the first id of a new chunk; drop old chunks."""
        n = self.count // self.chunk
        self.count += 1
        ids = self.chunks.get(n)
        if ids is None:
            ids = self.chunks[n] = []
            self.starts[n] = now
        ids.append(event_id)
        self.seen.add(event_id)
        self._cur, self._room = ids, (n + 1) * self.chunk - self.count
        window_ms, starts = self.window_ms, self.starts
        for old in list(self.chunks):
            if old >= n:
                break
            if old < n - self.keep or (
                    window_ms is not None and now - starts.get(old + 1, now) > window_ms):
                self._drop(old)
            else:
                break

    def _drop(self, old: int) -> None:
        self.seen.difference_update(self.chunks.pop(old))
        self.starts.pop(old, None)
        if self.track_changes:
            self._dropped.append(old)

    def record(self, n: int) -> list[Any] | None:
        """The persisted record of chunk ``n`` (None: dropped)."""
        ids = self.chunks.get(n)
        if ids is None:
            return None
        return [self.starts.get(n, 0), *ids]

    def take_changes(self) -> list[int]:
        """Numbers of the chunks written or dropped since the last call (with
        ``track_changes``); a dropped one is no longer in ``chunks``."""
        count, taken = self.count, self._taken
        if count == taken and not self._dropped:
            return []
        changed, self._dropped = self._dropped, []
        if count > taken:
            changed.extend(range(taken // self.chunk, (count - 1) // self.chunk + 1))
        self._taken = count
        return changed

    def restore_chunk(self, n: int, rec: list[Any], now: int = 0) -> None:
        """A chunk from its record (``record``; ids alone: it starts at ``now``)."""
        self._room = 0
        if rec and type(rec[0]) is int:
            self.starts[n] = rec[0]
            self.chunks[n] = [str(i) for i in rec[1:]]
        else:
            self.starts[n] = now
            self.chunks[n] = [str(i) for i in rec]

    def finish_restore(self, count: int) -> None:
        self._room = 0
        self.count = count
        self._taken = count  # what was restored is persisted already
        self._dropped = []
        self.chunks = dict(sorted(self.chunks.items()))  # oldest first
        # an id in several chunks (records written apart) is the latest one's:
        # forgotten with it, not with an earlier one
        seen: set[str] = set()
        for n in reversed(self.chunks):
            ids = self.chunks[n]
            if not seen.isdisjoint(ids):
                self.chunks[n] = [i for i in ids if i not in seen]
            seen.update(ids)
        self.seen = seen
