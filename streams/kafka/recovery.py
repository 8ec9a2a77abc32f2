"""Table recovery that trusts the changelog over a worker's local data.

Faust keeps, in each partition's local RocksDB, the offset of the last
changelog record it applied there, and on every assignment reads the
changelog from that offset on. If that offset is past the end the broker
reports, Faust 0.15.3 stops the worker with ``ConsistencyError`` ("The
persisted offset for changelog topic partition ... is higher than the last
offset in that topic (highwater)"): a survivor taking over a dead worker's
partitions would die too, and no worker would be left.

Why local data gets ahead of the broker's end here (reproduced in
``tests/kafka/test_failover.py``): Tansu 0.6 reports a partition's
end offset as the *first* offset of its last record batch + 1, not the last
offset + 1. The worker closes every changelog write with a one-record batch
so that the end is exact (``streams/kafka/app.py``), but a worker killed
between its rows and that closing record leaves a multi-record batch last. A
fetch returns whole batches, so a worker that reads that partition (its
standby copy, or its own recovery) applies every record of the batch and
records the batch's last offset: N - 1 records past the reported end. The
worker's writes are right; the broker's end offset is short.

:class:`ChangelogFirstRecovery` checks each partition before Faust's own
check: local data that claims more than the changelog holds is discarded
(every key of that partition's local database) and the partition is read
again from the start of its changelog, which is the source of truth. It logs
a warning once per partition and recovery, and the worker goes on.

The records of such a batch past the reported end still arrive after Faust
has declared the recovery over; it keeps them in a buffer that it writes at
its next recovery, on top of whatever the worker wrote since.
:class:`ChangelogTable` drops changelog records older than what the local
data already holds, so a late record never takes a row back in time.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.tables.table import Table
from faust.types import TP

from streams.kafka.table import clear, partition_store

log = logging.getLogger("routeq.worker")


class ChangelogFirstRecovery(Recovery):
    """Faust's recovery, with local data ahead of the changelog discarded."""

    #: partitions whose local data was discarded (the benchmark and tests read it)
    discarded: int = 0

    async def _build_offsets(self, consumer: Any, tps: Any, destination: Any,
                             title: str) -> None:
        held = [tp for tp in tps if destination.get(tp) is not None]
        if held:
            if title == "active" and all(tp in self.active_highwaters for tp in held):
                # just built by this recovery, and what Faust checks against
                last = {tp: self.active_highwaters[tp] for tp in held}
            else:
                ends = await consumer.highwaters(*held)
                last = {tp: (end - 1 if end is not None else -1) for tp, end in ends.items()}
            for tp in held:
                end = last.get(tp, -1)
                if destination[tp] > end:
                    self._discard(tp, destination[tp], end, title)
                    destination[tp] = None
        await super()._build_offsets(consumer, tps, destination, title)

    def _discard(self, tp: TP, local: int, end: int, title: str) -> None:
        table = self.tp_to_table.get(tp)
        log.warning(
            "changelog %s partition %d (%s): local table data is at offset %d, past the "
            "last offset the broker reports (%d); discarding the local data and "
            "rebuilding the partition from the changelog", tp.topic, tp.partition, title,
            local, end)
        type(self).discarded += 1
        if table is None:
            return
        clear(partition_store(table, tp.partition))
        index = getattr(table.data, "_key_index", None)  # type: ignore[attr-defined]
        if index is not None:
            index.clear()


class RouteqTableManager(TableManager):
    """Faust's table manager with :class:`ChangelogFirstRecovery`."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = ChangelogFirstRecovery(self.app, self, beacon=self.beacon,
                                                    loop=self.loop)
        return self._recovery


class ChangelogTable(Table):
    """Faust's table, applying only changelog records newer than the local data."""

    def apply_changelog_batch(self, batch: Any) -> None:
        held: dict[TP, int] = {}
        fresh = []
        for event in batch:
            tp = event.message.tp
            if tp not in held:
                found = self.data.persisted_offset(tp)
                held[tp] = -1 if found is None else found
            if event.message.offset > held[tp]:
                fresh.append(event)
        super().apply_changelog_batch(fresh)
