"""The distributed runtime's logic, with no broker: batches in, effects out.

A worker owns some partitions of the input topic. Every tenant's events are on
one partition (the message key is the tenant), so the worker keeps one
:class:`~engine.Engine` per tenant, with ``handoff="external"``: a chat that
overflows to the platform leaves the merchant's engine as an
``event.forwarded`` output, which the shell publishes as an input keyed by the
platform tenant.

:class:`PartitionRouter` takes a batch of input messages ``(partition, offset,
value)`` and returns a :class:`BatchEffects`: the outputs to publish (keyed by
tenant), the events to forward, the rejected lines, and the changed entities to
persist, per partition, as table rows. It never touches Kafka, Faust or a
store; the Faust shell (``streams/kafka/app.py``) does, and tests drive this
class directly.

Table rows: key ``owner \\x00 kind \\x00 tenant \\x00 id`` (the owner is the
tenant whose engine holds the entity; ``kind, tenant, id`` is the engine's
entity key), value the record as JSON, ``None`` for a deleted entity. A
tenant's rows live in the table partition numbered like its input partition, so
:meth:`PartitionRouter.assign` rebuilds every engine of a partition from that
partition's rows alone.

Each partition's next input offset is a row too (key ``\x00next``), written
with the rows of every batch: the router applies each offset of a partition
once and in order. A message below that offset is a redelivery and is skipped
whole; a message above it means the shell missed messages (a consumer race,
see ``streams/kafka/app.py``): the router holds it and every later message of
that partition back in :attr:`BatchEffects.held`, and the shell seeks back.

A batch's rows reach the changelog as several records, and a worker killed
while they go leaves only some of them there (a write of several record
batches cut between two; on Tansu 0.6, recovery applies a multi-record last
batch only up to its first record). So every batch's rows of a partition start
with one more row, the journal (key ``\x00journal``): all of them in one
record, with the next offset they lead to. A record lands whole, and it is
first, so whenever any row of a write is recovered the journal is too:
:meth:`PartitionRouter.assign` finds a journal ahead of the next offset and
rolls the write forward (and writes its rows again with the next batch, so the
changelog holds them as single rows too before a later journal replaces this
one). A write whose journal would not fit in one Kafka record
(:data:`JOURNAL_MAX`) goes without one, with a warning.

A message may carry several events (JSON Lines, one event a line); they
share the message's offset. A ``clock`` without a tenant applies to every
tenant of the partition it was read from (``routeq produce`` and the workers'
clock injection send one to every partition).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine import Engine, records, views
from engine.rules import Rules
from schemas.events import OVERFLOW_SEP, EventError, decode_lines
from schemas.outputs import Output, rejected
from streams.embedded.skew import skew_error
from streams.embedded.state import ENTITY, EntityKey, entity_key, parse_entity_key

log = logging.getLogger("routeq.worker")

SEP = "\x00"
FORWARDED = "event.forwarded"
#: the row holding a partition's next input offset (an empty owner: no tenant's)
OFFSET_ROW = (SEP + "next").encode()
#: the row holding a partition's last write whole (see the module's docstring)
JOURNAL_ROW = (SEP + "journal").encode()
#: the largest journal written, compressed: under Kafka's default 1 MB a record
#: (about 8,000 events of a batch, at the marketplace's 100 KB a 1,000)
JOURNAL_MAX = 900_000
Row = tuple[bytes, bytes | None]


def journal(next_offset: int, rows: list[Row]) -> bytes:
    """One record holding a write's rows and the next offset they lead to
    (compressed: it doubles what a batch writes to the changelog otherwise)."""
    return zlib.compress(orjson.dumps(
        [next_offset, [[k.decode(), None if v is None else orjson.Fragment(v)]
                       for k, v in rows]]), 1)


def parse_journal(raw: bytes) -> tuple[int, list[Row]]:
    next_offset, rows = orjson.loads(zlib.decompress(raw))
    return int(next_offset), [(k.encode(), None if v is None else orjson.dumps(v))
                              for k, v in rows]


def row_key(owner: str, key: EntityKey) -> bytes:
    """The table key of entity ``key`` held by ``owner``'s engine: the owner,
    then the entity's key as the embedded runtime stores it."""
    return owner.encode() + b"\x00" + entity_key(key)


def parse_row_key(raw: bytes) -> tuple[str, EntityKey]:
    owner, _, rest = raw.partition(b"\x00")
    if not rest.startswith(ENTITY):
        raise ValueError(f"table row {raw!r} is not an entity row of this routeq version "
                         "(start the worker on new topics, or with a new --app-id)")
    return owner.decode(), parse_entity_key(rest)


@dataclass
class BatchEffects:
    """What one batch asks the shell to do, in this order."""

    #: (tenant, output) for the output topic, in apply order
    outputs: list[tuple[str, Output]] = field(default_factory=list)
    #: (receiving tenant, input event) to publish to the input topic
    forwards: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: (message key, event.rejected output) for the rejected topic
    rejected: list[tuple[bytes | None, Output]] = field(default_factory=list)
    #: partition -> [(row key, row value or None)]: the journal, then one row per
    #: changed entity, then the next offset
    rows: dict[int, list[Row]] = field(default_factory=dict)
    #: partition -> (expected offset, offset of the first message held back):
    #: that message and the partition's later ones in the batch were not applied
    held: dict[int, tuple[int, int]] = field(default_factory=dict)
    applied: int = 0
    duplicates: int = 0
    #: messages skipped whole because their offset was applied already
    redelivered: int = 0


class PartitionRouter:
    """Engines per tenant for the partitions a worker owns."""

    def __init__(self, rules: Rules, max_skew_ms: int = 0,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.rules = rules
        #: the clock-skew guard (``streams/embedded/skew.py``): an event whose ts is more
        #: than this ahead of ``wall_ms()`` (or in seconds) is rejected; 0: off
        self.max_skew_ms = max_skew_ms
        self.wall_ms = wall_ms
        self.engines: dict[str, Engine] = {}
        self.partition_of: dict[str, int] = {}  # tenant -> input partition
        self.tenants_of: dict[int, list[str]] = {}  # partition -> tenants, first seen first
        self.assigned: set[int] = set()
        self.next_offset: dict[int, int] = {}  # partition -> next input offset to apply
        #: partition -> rows of a cut write rolled forward, to write again
        self.rewrite: dict[int, list[Row]] = {}

    # ------------------------------------------------------------ ownership

    def assign(self, partition: int, rows: Iterable[tuple[bytes, bytes]],
               start: int | None = None) -> int:
        """Take over ``partition``: rebuild its tenants' engines from its table rows.

        ``start`` is where the partition's log begins: the next offset when the
        rows hold none (nothing of it applied yet). Returns the number of
        engines restored.
        """
        self.revoke([partition])
        table: dict[bytes, bytes] = {}
        last: bytes | None = None
        for raw_key, raw_value in rows:
            if raw_key == JOURNAL_ROW:
                last = raw_value
            elif raw_value is not None and not raw_key.startswith(b"__faust"):
                table[raw_key] = raw_value  # not Faust's offset key
        if last:
            ahead, written = parse_journal(last)
            held = int(table.get(OFFSET_ROW, b"-1"))
            if ahead >= held:
                # the last write, whole; the rows here may hold all of it (this
                # worker's own local data) while the changelog holds part:
                # written again either way, so the changelog has every row
                # before a later journal replaces this one
                if ahead > held:
                    log.warning("partition %d: its last write reached the changelog in "
                                "part; rolled forward to next offset %d from its journal",
                                partition, ahead)
                for k, v in written:
                    if v is None:
                        table.pop(k, None)
                    else:
                        table[k] = v
                self.rewrite[partition] = written
        by_owner: dict[str, list[tuple[tuple[str, str, str], Any]]] = {}
        for raw_key, raw_value in table.items():
            if raw_key == OFFSET_ROW:
                self.next_offset[partition] = int(raw_value)
                continue
            if raw_key.startswith(b"\x00"):
                continue  # the shell's end-of-write marker
            owner, key = parse_row_key(raw_key)
            by_owner.setdefault(owner, []).append((key, orjson.loads(raw_value)))
        # tenants in the order they were created, so the partition's clocks
        # reach them in the same order after a restore
        order = sorted(by_owner, key=lambda o: _first_seq(by_owner[o]))
        for owner in order:
            eng = Engine.restore(self.rules, by_owner[owner], handoff="external")
            self._own(owner, partition, eng)
        if start is not None:
            self.next_offset.setdefault(partition, start)
        self.assigned.add(partition)
        return len(order)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Give up ``partitions``: drop their engines (their state is in the table)."""
        for p in partitions:
            for tenant in self.tenants_of.pop(p, []):
                self.engines.pop(tenant, None)
                self.partition_of.pop(tenant, None)
            self.assigned.discard(p)
            self.next_offset.pop(p, None)
            self.rewrite.pop(p, None)

    def skip_to(self, partition: int, offset: int) -> None:
        """Accept that ``partition`` has no messages before ``offset`` still to
        apply (a hole in the log: compaction, transaction markers)."""
        self.next_offset[partition] = offset

    def _own(self, tenant: str, partition: int, eng: Engine) -> None:
        self.engines[tenant] = eng
        self.partition_of[tenant] = partition
        self.tenants_of.setdefault(partition, []).append(tenant)

    # ------------------------------------------------------------ batches

    def process(self, messages: Iterable[tuple[int, int, bytes]]) -> BatchEffects:
        """Apply a batch of input messages ``(partition, offset, value)`` in order.

        Outputs carry ``offset`` (the message's offset in its partition) and
        ``partition``. A message whose offset is not its partition's next is not
        applied: below it, it counts in ``redelivered``; above it, it and the
        partition's later messages are held (``held``).
        """
        fx = BatchEffects()
        touched: dict[str, Engine] = {}
        outputs = fx.outputs
        advanced = self._admit(messages, fx)
        now = self.wall_ms() if self.max_skew_ms > 0 else 0
        lines = list(_lines(advanced))
        decoded, _ = decode_lines([value for _, _, value in lines])
        for (partition, offset, value), ev in zip(lines, decoded, strict=True):
            if isinstance(ev, EventError):
                fx.rejected.append(self._reject(ev, value, partition, offset))
                continue
            if self.max_skew_ms > 0:
                why = skew_error(ev["type"], ev["ts"], now, self.max_skew_ms, "worker")
                if why is not None:
                    err = EventError(why, ev.get("tenant"))
                    fx.rejected.append(self._reject(err, value, partition, offset))
                    continue
            tenant = ev.get("tenant")
            if tenant is None:  # a clock for every tenant of this partition
                names = self.tenants_of.get(partition, [])
            else:
                names = [tenant]
                if tenant not in self.engines:
                    eng = Engine(self.rules, handoff="external")
                    self._own(tenant, partition, eng)
                else:
                    if views.seen(self.engines[tenant], tenant, ev["id"]):
                        fx.duplicates += 1
                        continue
            fx.applied += 1
            for name in names:
                eng = self.engines[name]
                touched[name] = eng
                for out in eng.apply(ev, offset):
                    out["partition"] = partition
                    if out["type"] == FORWARDED:
                        fx.forwards.append((out["to"], out["event"]))
                    else:
                        outputs.append((name, out))
        rows = fx.rows
        nxt = self.next_offset

        def rows_of(p: int) -> list[Row]:
            """Partition ``p``'s rows, begun with a rolled-forward write's if one waits."""
            part = rows.get(p)
            if part is None:
                part = rows[p] = self.rewrite.pop(p, [])
            return part

        for p in {m[0] for m in advanced}:
            rows_of(p)
        for name, eng in touched.items():
            changes = records.by_key(eng.take_changes())
            if not changes:
                continue
            part = rows_of(self.partition_of[name])
            dumps = orjson.dumps
            for key, rec in changes.items():
                part.append((row_key(name, key), None if rec is None else dumps(rec)))
        for p, part in rows.items():
            nxt_p = nxt.get(p, -1)
            if p in nxt:
                part.append((OFFSET_ROW, str(nxt_p).encode()))
            record = journal(nxt_p, part)
            if len(record) <= JOURNAL_MAX:
                part.insert(0, (JOURNAL_ROW, record))
            else:  # too big for one Kafka record: this write goes without (see above)
                log.warning("partition %d: a write of %d rows is too big for its journal "
                            "(%d bytes compressed); written without one (a smaller --batch "
                            "avoids it)", p, len(part), len(record))
        return fx

    def _admit(self, messages: Iterable[tuple[int, int, bytes]],
               fx: BatchEffects) -> list[tuple[int, int, bytes]]:
        """The messages to apply: each partition's next offsets, in order."""
        nxt = self.next_offset
        held = fx.held
        admitted = []
        for m in messages:
            p, offset = m[0], m[1]
            if p in held:
                continue
            expected = nxt.get(p)
            if expected is not None and offset != expected:
                if offset < expected:
                    fx.redelivered += 1
                else:
                    held[p] = (expected, offset)
                continue
            nxt[p] = offset + 1
            admitted.append(m)
        return admitted

    def _reject(self, exc: EventError, value: bytes, partition: int,
                offset: int) -> tuple[bytes | None, Output]:
        tenant = exc.tenant or ""
        eng = self.engines.get(tenant)
        if eng is not None:
            out = eng.reject(exc, value, offset=offset)
        else:
            out = rejected(str(exc), value, ts=exc.ts or 0, tenant=tenant, offset=offset,
                           cause=exc.event_id or "")
        out["partition"] = partition
        return (tenant.encode() or None), out


@dataclass
class SeekBack:
    """A partition sought back to ``expected`` because messages were missing."""

    expected: int
    seeks: int = 0
    first: int = -1  # the first offset held in the latest batch that jumped
    same: int = 0  # batches in a row whose first held offset was ``first``


class SeekBacks:
    """Where to seek the partitions that jumped past their next offset.

    Faust may still deliver messages it fetched before a seek, and they move
    its read position past the ones the seek brings again (it drops those).
    So a partition is sought back at every batch that still jumps, until its
    next offset arrives: the messages fetched before the first seek are finite.
    When :data:`HOLE_AFTER` batches in a row jump to the same offset first, the
    log has a hole there (compaction, transaction markers): the router skips to
    it.
    """

    HOLE_AFTER = 5

    def __init__(self, router: PartitionRouter) -> None:
        self.router = router
        self.pending: dict[int, SeekBack] = {}
        self.total = 0
        self.holes = 0

    def on_held(self, held: dict[int, tuple[int, int]]) -> list[tuple[int, int]]:
        """``(partition, offset)`` to seek to, for a batch's ``held``."""
        seeks = []
        for p, (expected, got) in held.items():
            sb = self.pending.get(p)
            if sb is None or sb.expected != expected:
                sb = self.pending[p] = SeekBack(expected)
                log.warning("partition %d: offsets from %d to %d were not delivered; "
                            "seeking back to %d", p, expected, got - 1, expected)
            elif got == sb.first:
                sb.same += 1
            else:
                sb.first, sb.same = got, 1
            sb.seeks += 1
            self.total += 1
            if sb.same >= self.HOLE_AFTER:
                log.warning("partition %d: offset %d came first %d times after seeking "
                            "back to %d: a hole in the log, skipped", p, got, sb.same,
                            expected)
                self.router.skip_to(p, got)
                self.holes += 1
                del self.pending[p]
                seeks.append((p, got))
            else:
                seeks.append((p, expected))
        return seeks

    def on_in_order(self, partitions: Iterable[int]) -> None:
        """These partitions' batches went on in order: they have caught up."""
        for p in partitions:
            sb = self.pending.pop(p, None)
            if sb is not None:
                log.info("partition %d: back in order at offset %d after %d seeks",
                         p, sb.expected, sb.seeks)


class TailWatch:
    """Partitions whose last messages never came: sought back to their next offset.

    :class:`SeekBacks` finds a lost message when a later one of its partition
    arrives. When the lost messages are a partition's last (Faust's loss at
    the end of a rebalance's recovery, with no input after it), nothing
    arrives to reveal them, and the partition would wait for its next input.
    So the shell looks at each partition's end now and then (the broker's log
    end, or the consumer's position where that is further: Tansu 0.6 reports
    a log's end as its last record batch's first offset + 1): a partition
    whose next offset is short of its end and has not moved for
    :attr:`after_s` seconds is sought back to its next offset. After
    :attr:`GIVE_UP_AFTER` seeks that brought nothing for the same next offset
    and end, the end is out of reach (a transaction marker, records removed
    by retention): it is logged once and left until either changes.
    """

    GIVE_UP_AFTER = 5

    def __init__(self, after_s: float = 5.0) -> None:
        self.after_s = after_s
        #: partition -> (its next offset, its end, since when, seeks since)
        self.since: dict[int, tuple[int, int, float, int]] = {}
        self.total = 0

    def check(self, now: float, nexts: dict[int, int],
              ends: dict[int, int]) -> list[tuple[int, int]]:
        """``(partition, offset)`` to seek to, given each partition's next
        offset (``nexts``), ends (``ends``) and the time ``now`` (s)."""
        seeks = []
        for p, end in ends.items():
            nxt = nexts.get(p)
            if nxt is None or nxt >= end:
                self.since.pop(p, None)
                continue
            was = self.since.get(p)
            if was is None or was[0] != nxt or was[1] != end:
                self.since[p] = (nxt, end, now, 0)
            elif was[3] <= self.GIVE_UP_AFTER and now - was[2] >= self.after_s:
                n = was[3] + 1
                if n <= self.GIVE_UP_AFTER:
                    log.warning("partition %d: offset %d not delivered for %.0f s though the "
                                "log holds it (its end is at %d); seeking back to %d",
                                p, nxt, now - was[2], end, nxt)
                    seeks.append((p, nxt))
                    self.total += 1
                else:
                    log.warning("partition %d: %d seeks back to offset %d brought nothing "
                                "(the log's end at %d is out of reach); waiting for new input",
                                p, was[3], nxt, end)
                self.since[p] = (nxt, end, now, n)
        for p in set(self.since).difference(ends):
            del self.since[p]
        return seeks

    def reset(self) -> None:
        """A rebalance: the time a partition has waited starts again."""
        self.since.clear()


def _lines(messages: Iterable[tuple[int, int, bytes]]) -> Iterable[tuple[int, int, bytes]]:
    """One message may carry several events, one JSON line each (``routeq produce``
    packs consecutive events of a tenant); they share the message's offset."""
    for partition, offset, value in messages:
        if b"\n" not in value:
            yield partition, offset, value
            continue
        for line in value.split(b"\n"):
            if line.strip():
                yield partition, offset, line


def _first_seq(records: list[tuple[tuple[str, str, str], Any]]) -> int:
    for (kind, _, _), rec in records:
        if kind == "tenant":
            return int(rec.get("seq", 0))
    return 0


def original_cause(cause: str) -> str:
    """The input id behind a forwarded event's id (for comparing runtimes)."""
    if OVERFLOW_SEP not in cause:
        return cause
    inner = cause.split(OVERFLOW_SEP, 1)[1]
    return "timer" if inner.startswith("overflow:") else inner
