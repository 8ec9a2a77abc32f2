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

A message may carry several events (JSON Lines, one event a line); they
share the message's offset. A ``clock`` without a tenant applies to every
tenant of the partition it was read from (``routeq produce`` and the workers'
clock injection send one to every partition).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine import Engine
from engine.rules import Rules
from schemas.events import OVERFLOW_SEP, EventError, decode
from schemas.outputs import Output, rejected

SEP = "\x00"
FORWARDED = "event.forwarded"


def row_key(owner: str, key: tuple[str, str, str]) -> bytes:
    """The table key of entity ``key`` held by ``owner``'s engine."""
    return SEP.join((owner, *key)).encode()


def parse_row_key(raw: bytes) -> tuple[str, tuple[str, str, str]]:
    owner, kind, name, ident = raw.decode().split(SEP, 3)
    return owner, (kind, name, ident)


@dataclass
class BatchEffects:
    """What one batch asks the shell to do, in this order."""

    #: (tenant, output) for the output topic, in apply order
    outputs: list[tuple[str, Output]] = field(default_factory=list)
    #: (receiving tenant, input event) to publish to the input topic
    forwards: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: (message key, event.rejected output) for the rejected topic
    rejected: list[tuple[bytes | None, Output]] = field(default_factory=list)
    #: partition -> [(row key, row value or None)], one row per changed entity
    rows: dict[int, list[tuple[bytes, bytes | None]]] = field(default_factory=dict)
    applied: int = 0
    duplicates: int = 0


class PartitionRouter:
    """Engines per tenant for the partitions a worker owns."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.engines: dict[str, Engine] = {}
        self.partition_of: dict[str, int] = {}  # tenant -> input partition
        self.tenants_of: dict[int, list[str]] = {}  # partition -> tenants, first seen first
        self.assigned: set[int] = set()

    # ------------------------------------------------------------ ownership

    def assign(self, partition: int, rows: Iterable[tuple[bytes, bytes]]) -> int:
        """Take over ``partition``: rebuild its tenants' engines from its table rows.

        Returns the number of engines restored.
        """
        self.revoke([partition])
        by_owner: dict[str, list[tuple[tuple[str, str, str], Any]]] = {}
        for raw_key, raw_value in rows:
            if raw_value is None or raw_key.startswith((b"__faust", b"\x00")):
                continue  # Faust's offset key; the shell's end-of-write marker
            owner, key = parse_row_key(raw_key)
            by_owner.setdefault(owner, []).append((key, orjson.loads(raw_value)))
        # tenants in the order they were created, so the partition's clocks
        # reach them in the same order after a restore
        order = sorted(by_owner, key=lambda o: _first_seq(by_owner[o]))
        for owner in order:
            eng = Engine.restore(self.rules, by_owner[owner])
            eng.handoff = "external"
            self._own(owner, partition, eng)
        self.assigned.add(partition)
        return len(order)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Give up ``partitions``: drop their engines (their state is in the table)."""
        for p in partitions:
            for tenant in self.tenants_of.pop(p, []):
                self.engines.pop(tenant, None)
                self.partition_of.pop(tenant, None)
            self.assigned.discard(p)

    def _own(self, tenant: str, partition: int, eng: Engine) -> None:
        self.engines[tenant] = eng
        self.partition_of[tenant] = partition
        self.tenants_of.setdefault(partition, []).append(tenant)

    # ------------------------------------------------------------ batches

    def process(self, messages: Iterable[tuple[int, int, bytes]]) -> BatchEffects:
        """Apply a batch of input messages ``(partition, offset, value)`` in order.

        Outputs carry ``offset`` (the message's offset in its partition) and
        ``partition``.
        """
        fx = BatchEffects()
        touched: dict[str, Engine] = {}
        outputs = fx.outputs
        for partition, offset, value in _lines(messages):
            try:
                ev = decode(value)
            except EventError as exc:
                fx.rejected.append(self._reject(exc, value, partition, offset))
                continue
            except Exception as exc:  # a validator bug must not stop the worker
                err = EventError(f"event: cannot be read ({type(exc).__name__}: {exc})")
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
                    t = self.engines[tenant].tenants.get(tenant)
                    if t is not None and ev["id"] in t.ids:
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
        for name, eng in touched.items():
            dirty = eng.take_dirty()
            if not dirty:
                continue
            part = rows.setdefault(self.partition_of[name], [])
            dumps = orjson.dumps
            for key, rec in dirty.items():
                part.append((row_key(name, key), None if rec is None else dumps(rec)))
        return fx

    def _reject(self, exc: EventError, value: bytes, partition: int,
                offset: int) -> tuple[bytes | None, Output]:
        tenant = exc.tenant or ""
        eng = self.engines.get(tenant)
        if eng is not None:
            out = eng.reject(exc, value, offset=offset)
        else:
            out = rejected(str(exc), value, ts=exc.ts or 0, tenant=tenant, offset=offset)
        out["partition"] = partition
        return (tenant.encode() or None), out


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
