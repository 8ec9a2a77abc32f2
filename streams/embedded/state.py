"""The layout of a durable state directory (one store, five key spaces).

=========================  =================================================
key                        value
=========================  =================================================
``L`` + offset (8 bytes    a log segment: the input lines from that offset on,
big-endian)                joined by ``\\n`` (one segment per write)
``N`` + offset             line number (ASCII) of a rejected line, so replay
                           repeats the ``event.rejected`` exactly
``R`` + offset             the rules file (TOML text) in force from that
                           offset on: the history of deployed rules
``E`` + kind NUL tenant    an engine entity's record (JSON), as of the last
NUL id                     checkpoint
``M`` + name               meta: ``format``, ``applied`` (offsets below it are
                           in the entities), ``logged`` (the next log offset),
                           ``inputs`` (JSON: file → [byte position, lines]
                           consumed), ``rules`` (hash of the rules in force)
=========================  =================================================

Offsets are positions in the log, from 0. Every write is one batch: the next
log segment together with the checkpoint of everything applied before it, so
``applied`` is always the first offset of a segment (or the end of the log).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import orjson

from streams.embedded.store import Batch, Store, StoreError

FORMAT = b"routeq-state/1"

LOG, LINENO, RULES, ENTITY, META = b"L", b"N", b"R", b"E", b"M"
M_FORMAT, M_APPLIED, M_LOGGED, M_INPUTS, M_RULES = (
    b"Mformat", b"Mapplied", b"Mlogged", b"Minputs", b"Mrules")

_OFF = struct.Struct(">Q")
pack_offset = _OFF.pack

EntityKey = tuple[str, str, str]
#: changed entities grouped by kind and tenant: (kind, tenant, [(id, record or None)])
Changes = list[tuple[str, str, list[tuple[str, Any]]]]


def offset_of(key: bytes) -> int:
    return int(_OFF.unpack_from(key, 1)[0])


def entity_key(key: EntityKey) -> bytes:
    kind, tenant, ident = key
    return b"E" + f"{kind}\x00{tenant}\x00{ident}".encode()


def parse_entity_key(key: bytes) -> EntityKey:
    kind, tenant, ident = key[1:].decode().split("\x00", 2)
    return kind, tenant, ident


class IncompatibleState(StoreError):
    pass


class StateLayout:
    """Reads and writes the key spaces above on a ``Store``."""

    def __init__(self, store: Store, path: str = "") -> None:
        self.store = store
        fmt = store.get(M_FORMAT)
        if fmt is None and next(store.items(b""), None) is not None:
            raise IncompatibleState(
                f"{path or 'the state dir'} holds a database that routeq did not write "
                f"(no format marker): point --state at an empty or new directory")
        if fmt is not None and fmt != FORMAT:
            raise IncompatibleState(
                f"state dir {path} has format {fmt.decode(errors='replace')!r}; this routeq "
                f"reads {FORMAT.decode()!r}. Export its log with the routeq that wrote it "
                f"(routeq export --state {path} --out log.jsonl) and run that log into a "
                f"new state dir (routeq run log.jsonl --state NEWDIR).")
        self.fresh = fmt is None
        self.applied = _int(store.get(M_APPLIED))
        self.logged = _int(store.get(M_LOGGED))
        raw = store.get(M_INPUTS)
        self.inputs: dict[str, tuple[int, int]] = (
            {k: (v[0], v[1]) for k, v in orjson.loads(raw).items()} if raw else {})

    # ----------------------------------------------------------- reading

    def rules_history(self) -> list[tuple[int, str]]:
        """(first offset, rules TOML text), oldest first."""
        return [(offset_of(k), v.decode()) for k, v in self.store.items(RULES)]

    def records(self) -> Iterator[tuple[EntityKey, Any]]:
        loads = orjson.loads
        for k, v in self.store.items(ENTITY):
            yield parse_entity_key(k), loads(v)

    def segments(self, start: int = 0) -> Iterator[tuple[int, list[bytes]]]:
        """(first offset, lines) of the log segments from ``start`` (a segment start) on."""
        expect = start
        for k, v in self.store.items(LOG, pack_offset(start) if start else b""):
            first = offset_of(k)
            if first != expect:
                raise StoreError(f"log segment at offset {first} where {expect} was expected: "
                                 f"the state dir is damaged")
            lines = v.split(b"\n")
            expect = first + len(lines)
            yield first, lines

    def linenos(self, start: int, end: int) -> dict[int, int]:
        """offset -> line number of the rejected lines in [start, end)."""
        found: dict[int, int] = {}
        for k, v in self.store.items(LINENO, pack_offset(start)):
            off = offset_of(k)
            if off >= end:
                break
            found[off] = int(v)
        return found

    # ----------------------------------------------------------- writing

    def start_batch(self) -> Batch:
        b = self.store.batch()
        if self.fresh:
            b.put(M_FORMAT, FORMAT)
            self.fresh = False
        return b

    def append(self, b: Batch, lines: list[bytes], rejected: list[tuple[int, int]],
               source: str, pos: int, nlines: int) -> int:
        """Put a log segment; return its first offset."""
        first = self.logged
        b.put(LOG + pack_offset(first), b"\n".join(lines))
        for off, lineno in rejected:
            b.put(LINENO + pack_offset(off), str(lineno).encode())
        self.logged = first + len(lines)
        b.put(M_LOGGED, str(self.logged).encode())
        if source != "-":
            self.inputs[source] = (pos, nlines)
            self.append_inputs(b)
        return first

    def append_inputs(self, b: Batch) -> None:
        """Put how far each input file has been read."""
        b.put(M_INPUTS, orjson.dumps(self.inputs))

    def checkpoint(self, b: Batch, changes: Changes, applied: int) -> None:
        """Put the changed entities (``Engine.take_changes``) and the offset they
        are applied up to."""
        dumps = orjson.dumps
        put, delete = b.put, b.delete
        for kind, tenant, group in changes:
            prefix = ENTITY + f"{kind}\x00{tenant}\x00".encode()  # = entity_key's
            for ident, rec in group:
                if rec is None:
                    delete(prefix + ident.encode())
                else:
                    put(prefix + ident.encode(), dumps(rec))
        b.put(M_APPLIED, str(applied).encode())
        self.applied = applied

    def deploy(self, b: Batch, offset: int, rules_text: str, rules_hash: str) -> None:
        b.put(RULES + pack_offset(offset), rules_text.encode())
        b.put(M_RULES, rules_hash.encode())


def _int(raw: bytes | None) -> int:
    return int(raw) if raw else 0
