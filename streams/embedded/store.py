"""Key-value stores for the runtime's durable state: one in memory, one in rocksdict.

The interface is deliberately small (quix-streams keeps rocksdict to two
files; so do we: this one and nothing else imports it):

- ``get(key)``: the value, or None;
- ``batch()`` then ``batch.put(key, value)`` / ``batch.delete(key)``, and
  ``write(batch)``: every change of the batch lands together or not at all
  (a batch is written once; take a new one for the next write);
- ``items(prefix, start=b"")``: ``(key, value)`` pairs whose key starts with
  ``prefix``, in byte order of the key, from ``prefix + start`` on;
- ``close()``.

Keys and values are bytes. ``MemoryStore`` is what tests and in-process
restarts use; ``RocksStore`` is one rocksdict database under a directory.
Both pass the same contract suite (``tests/embedded/test_store.py``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from rocksdict import (
    AccessType,
    DBCompressionType,
    Options,
    Rdict,
    WriteBatch,
    WriteOptions,
)


class StoreError(Exception):
    """The store cannot be opened or written (the message says what to do)."""


class Batch(Protocol):
    def put(self, key: bytes, value: bytes) -> None: ...
    def delete(self, key: bytes) -> None: ...


class Store(Protocol):
    def get(self, key: bytes) -> bytes | None: ...
    def batch(self) -> Batch: ...
    def write(self, batch: Batch) -> None: ...
    def items(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]: ...
    def close(self) -> None: ...


def write_rows(store: Store, rows: Iterable[tuple[bytes, bytes | None]]) -> None:
    """Write ``rows`` in one batch: a value puts its key, None deletes it."""
    b = store.batch()
    for key, value in rows:
        if value is None:
            b.delete(key)
        else:
            b.put(key, value)
    store.write(b)


# ------------------------------------------------------------------ memory


class MemoryBatch:
    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[tuple[bytes, bytes | None]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.ops.append((bytes(key), bytes(value)))

    def delete(self, key: bytes) -> None:
        self.ops.append((bytes(key), None))


class MemoryStore:
    """A dict with sorted keys kept aside for ordered iteration."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self.closed = False

    def get(self, key: bytes) -> bytes | None:
        self._check()
        return self.data.get(key)

    def batch(self) -> MemoryBatch:
        return MemoryBatch()

    def write(self, batch: Batch) -> None:
        self._check()
        if not isinstance(batch, MemoryBatch):
            raise TypeError("MemoryStore.write takes a batch from MemoryStore.batch()")
        for key, value in batch.ops:
            if value is None:
                if self.data.pop(key, None) is not None:
                    del self._keys[bisect.bisect_left(self._keys, key)]
            else:
                if key not in self.data:
                    bisect.insort(self._keys, key)
                self.data[key] = value
        batch.ops = []

    def items(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        self._check()
        keys = self._keys
        i = bisect.bisect_left(keys, prefix + start)
        snapshot = dict(self.data)  # like a rocksdb iterator: later writes are not seen
        while i < len(keys) and keys[i].startswith(prefix):
            k = keys[i]
            i += 1
            v = snapshot.get(k)
            if v is not None:
                yield k, v

    def close(self) -> None:
        self.closed = True

    def _check(self) -> None:
        if self.closed:
            raise StoreError("store is closed")


# ---------------------------------------------------------------- rocksdict


class RocksStore:
    """One rocksdict database (raw bytes mode) under ``path``.

    ``sync=True`` makes every ``write`` wait for the write-ahead log to reach
    the disk (survives power loss, not only a killed process).
    """

    def __init__(self, path: str | Path, *, read_only: bool = False, sync: bool = False,
                 create: bool = True) -> None:
        self.path = str(path)
        opts = Options(raw_mode=True)
        opts.create_if_missing(create and not read_only)
        opts.set_compression_type(DBCompressionType.zstd())
        opts.set_bottommost_compression_type(DBCompressionType.zstd())
        opts.set_write_buffer_size(128 << 20)  # fewer flushes and stalls under a fast log
        opts.set_keep_log_file_num(3)
        opts.set_max_log_file_size(8 << 20)
        try:
            if read_only:
                self.db = Rdict(self.path, options=opts, access_type=AccessType.read_only())
            else:
                self.db = Rdict(self.path, options=opts)
        except Exception as exc:  # rocksdict raises plain exceptions with the rocksdb text
            text = str(exc)
            if "lock" in text.lower():
                raise StoreError(
                    f"state dir {self.path} is in use by another routeq process "
                    f"(only one run may hold it; replay and export may read it)") from None
            raise StoreError(f"cannot open state dir {self.path}: {text}") from None
        self._wopt = WriteOptions()
        self._wopt.sync = sync
        self._owned = True

    @classmethod
    def over(cls, db: Rdict, name: str, *, wal: bool = True) -> RocksStore:
        """A store over a raw-mode database that its owner opened and closes (a
        Faust table's partition): the Kafka worker writes its rows through the
        same interface as the embedded runtime. ``wal=False``: writes skip the
        write-ahead log (the changelog is the durable copy)."""
        self = cls.__new__(cls)
        self.path, self.db, self._owned = name, db, False
        self._wopt = WriteOptions()
        self._wopt.disable_wal = not wal
        return self

    def get(self, key: bytes) -> bytes | None:
        value = self.db.get(key)
        return value if value is None else bytes(value)

    def batch(self) -> WriteBatch:
        return WriteBatch(raw_mode=True)

    def write(self, batch: Batch) -> None:
        if not isinstance(batch, WriteBatch):
            raise TypeError("RocksStore.write takes a batch from RocksStore.batch()")
        try:
            self.db.write(batch, self._wopt)  # consumes the batch
        except Exception as exc:  # a full disk, an I/O error: nothing of the batch landed
            raise StoreError(f"cannot write the state dir {self.path}: {exc}") from None

    def items(self, prefix: bytes, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        for key, value in self.db.items(from_key=prefix + start):
            if not key.startswith(prefix):
                return
            yield key, value

    def compact(self) -> None:
        """Flush the memtable and compact every key (for measuring the size on disk)."""
        self.db.flush()
        self.db.compact_range(None, None)

    def close(self) -> None:
        if self._owned:
            self.db.close()
