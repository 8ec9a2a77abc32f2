"""The Faust shell around :class:`~streams.kafka.router.PartitionRouter`.

One agent reads the input topic in batches (``stream.take_events``), hands
each batch to the router, and then, without awaiting each send:

1. writes the changed entities of each partition into the table's local
   RocksDB (rocksdict, one WriteBatch);
2. sends the outputs (output topic, keyed by tenant), the forwarded events
   (input topic, keyed by the receiving tenant), the rejected lines
   and the changed entities to the table's changelog partition;
3. waits once for the producer to flush all of it.

Only then does ``take_events`` ack the batch, so an input offset is committed
after its outputs and its state are in Kafka (at-least-once). Application is
exactly once per input offset: the table holds each partition's next offset
(see ``router.py``), a redelivered message is skipped whole, and a redelivered
event inside a new message is ignored by the engine's id window.

Messages are never lost between Faust and the agent. Faust 0.15.3 can drop
some: when a rebalance's recovery ends it seeks the input to the committed
offsets while the fetcher still delivers, then clears the agent's queue, and
the messages delivered in between are gone while its read position has moved
past them (seen here: a worker taking over from a stopped one skipped 25
messages a partition; upstream: faust-streaming/faust#596 and its kin).
So the shell (1) handles nothing between a partition assignment and the end
of the table's recovery (those messages stay unacked and come again after
Faust's seek), and (2) when the router sees a partition jump past its next
offset, it leaves the messages unacked and seeks the partition back to that
offset (:class:`~streams.kafka.router.SeekBacks`), and (3) when lost
messages were a partition's last, so that no later one reveals them, a
look at the log ends every second finds the partition short of its end and
not moving, and seeks it back too (:class:`~streams.kafka.router.TailWatch`).

The table (``rocksdb://``, rocksdict underneath) is an ordinary Faust Table,
co-partitioned with the input topic: Faust recovers it from its changelog on
assignment. The router's engines for a partition are rebuilt from the table
before the first event of that partition after an assignment, and dropped on
revocation. Rows are written per partition directly (Faust's ``table[k] = v``
would file every row under the partition of the *current* event, and a batch
mixes partitions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

import faust
import orjson
from faust.types import TP

from engine.rules import Rules
from streams.embedded.runtime import FREEZE_EVERY, settle_garbage
from streams.embedded.store import write_rows
from streams.kafka.recovery import ChangelogTable, RouteqTableManager
from streams.kafka.router import SEP, PartitionRouter, SeekBacks, TailWatch
from streams.kafka.settings import KafkaSettings
from streams.kafka.table import partition_store

log = logging.getLogger("routeq.worker")

#: seconds between two looks at the input's log ends (TailWatch)
TAIL_CHECK_S = 1.0

#: the key of the end-of-write marker in the changelog (see RecordBatches.flush)
MARKER = SEP.encode() + b"end"


class RecordBatches:
    """Records gathered per (topic, partition) into aiokafka batches, sent at once.

    One future per batch instead of one per record: a batch of outputs and
    table rows costs a few sends, not thousands.
    """

    def __init__(self, aio: Any) -> None:
        self.aio = aio
        self.open: dict[tuple[str, int], Any] = {}
        self.full: list[tuple[tuple[str, int], Any]] = []
        self._parts: dict[tuple[str, bytes | None], int] = {}

    def partition(self, topic: str, key: bytes | None) -> int:
        """The partition the producer's partitioner gives ``key`` (cached)."""
        found = self._parts.get((topic, key))
        if found is None:
            found = self.aio._partition(topic, None, key, None, key, None)
            if key is not None:
                self._parts[(topic, key)] = found
        return found  # type: ignore[no-any-return]

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
            ts: int) -> None:
        tp = (topic, partition)
        b = self.open.get(tp)
        if b is None:
            b = self.open[tp] = self.aio.create_batch()
        if b.append(timestamp=ts, key=key, value=value) is None:
            self.full.append((tp, b))
            b = self.open[tp] = self.aio.create_batch()
            b.append(timestamp=ts, key=key, value=value)

    async def flush(self, last: str = "") -> dict[int, int]:
        """Send everything gathered and wait until the broker has it.

        Topic ``last`` (the changelog) is queued only after every other record
        is, so state never reaches Kafka ahead of the outputs it implies; its
        partitions are queued side by side (a partition's second batch waits
        until its first has left), each partition's records in the order
        added: its journal first (streams/kafka/router.py). Returns, per
        partition of ``last`` written, the offset of the write's closing
        record (its last).
        """
        batches = self.full + list(self.open.items())
        self.full = []
        self.open = {}
        futs = []
        later: dict[tuple[str, int], list[Any]] = {}
        for tp, b in batches:
            if tp[0] == last:
                later.setdefault(tp, []).append(b)
            else:
                futs.append(await self.aio.send_batch(b, tp[0], partition=tp[1]))
        if later:
            # Close each changelog partition's write with a batch of one record.
            # Tansu 0.6 reports a partition's end offset as the base offset of
            # its last record batch + 1; Faust recovers a table up to that end
            # offset, so without this the rows of the last batch are not
            # recovered. With a single-record last batch the end is exact.
            # (The key has an empty owner, which no tenant has: never a row.)
            ts = int(time.time() * 1000)
            for seq in later.values():
                marker = self.aio.create_batch()
                marker.append(timestamp=ts, key=MARKER, value=b"")
                seq.append(marker)
            sent = await asyncio.gather(*(self._send_in_order(tp, seq)
                                          for tp, seq in later.items()))
            for fs in sent:
                futs.extend(fs)
        if futs:
            await asyncio.gather(*futs)
        return {tp[1]: fs[-1].result().offset for tp, fs in zip(later, sent, strict=True)
                } if later else {}

    async def _send_in_order(self, tp: tuple[str, int], seq: list[Any]) -> list[Any]:
        return [await self.aio.send_batch(b, tp[0], partition=tp[1]) for b in seq]


class WorkerShell:
    """What the agent does with a batch; holds the router and the table."""

    def __init__(self, app: faust.App, table: Any, s: KafkaSettings, rules: Rules) -> None:
        self.app = app
        self.table = table
        self.s = s
        self.router = PartitionRouter(rules, max_skew_ms=s.max_skew_s * 1000)
        self.owned: set[int] = set()
        self.events = 0
        self.batches = 0
        self._out: RecordBatches | None = None
        self._since_gc = 0
        #: False from a rebalance's start until its table recovery has ended
        self.ready = False
        #: counts rebalances (an await that sees it change saw one begin)
        self.generation = 0
        self.seeks = SeekBacks(self.router)
        self.tails = TailWatch()

    # ------------------------------------------------------------ rebalance

    def on_assigned(self, assigned: Iterable[TP]) -> None:
        self.ready = False
        self.generation += 1
        self.seeks.pending.clear()
        self.tails.reset()
        self.owned = {tp.partition for tp in assigned if tp.topic == self.s.input_topic}
        log.info("routeq: input partitions assigned: %s", sorted(self.owned))
        # partitions no longer ours are dropped; kept ones are rebuilt lazily
        # from the table too (cheap, and never stale)
        self.router.revoke(list(self.router.assigned))

    def on_recovered(self) -> None:
        """The table is recovered and Faust is about to seek to the committed offsets."""
        self.ready = True

    def on_revoked(self, revoked: Iterable[TP]) -> None:
        self.ready = False
        self.generation += 1
        self.tails.reset()
        gone = [tp.partition for tp in revoked if tp.topic == self.s.input_topic]
        self.owned.difference_update(gone)
        self.router.revoke(gone)

    def _rows(self, partition: int) -> Iterable[tuple[bytes, bytes]]:
        db = self.table.data._db_for_partition(partition)
        return db.items()  # type: ignore[no-any-return]

    # ------------------------------------------------------------ batches

    async def handle(self, events: list[Any]) -> None:
        # An extra reference on every message until the batch is in Kafka:
        # take_events acks its events even when the agent is cancelled in the
        # middle of a batch (a worker stopping), and an ack would commit input
        # whose outputs and state were never sent.
        # A message of a partition no longer ours (revoked while buffered, as
        # when a worker leaves the group on its way out) keeps that reference:
        # it must not be committed, its new owner reads it again.
        # The same for messages not applied (see the module's docstring): they
        # come again.
        for e in events:
            e.message.incref()
        done = await self._handle(events)
        for e in done:
            e.message.decref()

    async def _handle(self, events: list[Any]) -> list[Any]:
        """Route and deliver a batch; return the events it handled."""
        if not self.ready:
            return []
        router = self.router
        if not await self._restore({e.message.partition for e in events}):
            return []
        owned = self.owned
        msgs: list[tuple[int, int, bytes]] = []
        done = []
        for e in events:
            m = e.message
            p = m.partition
            if p not in owned:
                continue
            done.append(e)
            msgs.append((p, m.offset, m.value))
        if not msgs:
            return done
        fx = router.process(msgs)
        seeks: list[tuple[int, int]] = []
        if fx.held:  # ack none of the held messages; seek their partitions back
            held = fx.held
            done = [e for e in done if (h := held.get(e.message.partition)) is None
                    or e.message.offset < h[1]]
            seeks = self.seeks.on_held(held)
        if self.seeks.pending:
            self.seeks.on_in_order({m[0] for m in msgs}.difference(fx.held))
        # local state first (no await in between: a rebalance cannot cut in)
        for p, rows in fx.rows.items():
            # a cache of the changelog: no write-ahead log needed
            write_rows(partition_store(self.table, p, wal=False), rows)
        out = await self._batches()
        s = self.s
        dumps = orjson.dumps
        now = int(time.time() * 1000)
        for tenant, o in fx.outputs:
            key = tenant.encode()
            out.add(s.output_topic, out.partition(s.output_topic, key), key, dumps(o), now)
        for tenant, ev in fx.forwards:
            key = tenant.encode()
            out.add(s.input_topic, out.partition(s.input_topic, key), key, dumps(ev), now)
        for key, o in fx.rejected:
            out.add(s.rejected_topic, out.partition(s.rejected_topic, key), key, dumps(o), now)
        changelog = s.changelog_topic
        for p, rows in fx.rows.items():
            for k, v in rows:
                out.add(changelog, p, k, v, now)
        # Once a batch starts to leave, it leaves whole: a stopping worker
        # (its agent cancelled) waits for the flush rather than cut it, which
        # could leave a changelog partition without its closing marker or
        # with part of a batch's rows.
        task = asyncio.ensure_future(out.flush(last=changelog))
        try:
            ends = await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 30)
            raise
        # The local rows of each partition now match its changelog up to the
        # write's last record: record that offset where Faust keeps it, so the
        # recovery at the next rebalance reads only what came after (without
        # it, every rebalance read again all this worker wrote since its last
        # recovery, and a failover took longer the longer the worker had run).
        offset_key = self.table.data.offset_key
        for p, end in ends.items():
            write_rows(partition_store(self.table, p, wal=False),
                       [(offset_key, str(end).encode())])
        self.events += len(msgs)
        self._since_gc += len(msgs)
        if self._since_gc >= FREEZE_EVERY:  # see streams/embedded/runtime.py: the GC is paused
            self._since_gc = 0
            settle_garbage()
        self.batches += 1
        if seeks:
            await self._seek(seeks)
        return done

    async def _seek(self, seeks: list[tuple[int, int]]) -> None:
        """Seek input partitions to offsets ``(partition, offset)``, in the
        consumer's thread (a seek from here races its fetches)."""
        await self.app.consumer.seek_wait(
            {TP(self.s.input_topic, p): offset for p, offset in seeks})

    def _steady(self, generation: int) -> bool:
        """No rebalance began since ``generation`` was read (and none is under way)."""
        return self.ready and self.generation == generation

    async def _restore(self, partitions: Iterable[int]) -> bool:
        """The router's engines of those of ``partitions`` that are ours and
        not yet rebuilt, rebuilt from the table; False if a rebalance began."""
        fresh = self.owned.intersection(partitions) - self.router.assigned
        if not fresh:
            return True
        generation = self.generation
        starts = await self._log_starts(fresh)
        if not self._steady(generation):
            return False
        router = self.router
        for p in sorted(fresh):
            if p not in router.assigned:  # not rebuilt meanwhile (the other task)
                n = router.assign(p, self._rows(p), start=starts.get(p))
                log.info("partition %d: %d tenant engines restored, next offset %s",
                         p, n, router.next_offset.get(p))
        return True

    async def watch_tails(self) -> None:
        """Seek back the partitions whose last messages never came (TailWatch);
        a partition with no message since its assignment is rebuilt to know
        its next offset."""
        if not self.ready or not await self._restore(set(self.owned)):
            return
        generation = self.generation
        tps = [TP(self.s.input_topic, p) for p in sorted(self.owned & self.router.assigned)]
        if not tps:
            return
        consumer = self.app.consumer
        found = await consumer.highwaters(*tps)
        # where the consumer has read further than the broker says the log
        # ends (Tansu's end of a multi-record batch), its position is the end
        ends = {}
        for tp in tps:
            end = max(int(found.get(tp) or 0), int(await consumer.position(tp) or 0))
            if end > 0:
                ends[tp.partition] = end
        if not self._steady(generation):
            return
        seeks = self.tails.check(time.monotonic(), self.router.next_offset, ends)
        if seeks:
            await self._seek(seeks)

    async def _log_starts(self, partitions: Iterable[int]) -> dict[int, int]:
        """The first offset of each partition's log: where a partition the
        table has no offset for begins (auto_offset_reset is earliest)."""
        tps = [TP(self.s.input_topic, p) for p in partitions]
        found = await self.app.consumer.earliest_offsets(*tps)
        return {tp.partition: int(off) for tp, off in found.items() if off is not None}

    async def _batches(self) -> RecordBatches:
        if self._out is None:
            producer = self.app.producer
            aio = producer._ensure_producer()
            topics = (self.s.output_topic, self.s.input_topic, self.s.rejected_topic,
                      self.s.changelog_topic)
            for t in topics:
                await aio.client._wait_on_metadata(t)
            self._out = RecordBatches(aio)
        return self._out

    async def tick(self) -> None:
        """Inject a ``clock`` (no tenant) into every partition this worker owns."""
        now = int(time.time() * 1000)
        send = self.app.producer.send
        for p in sorted(self.owned):
            ev = {"type": "clock", "id": f"clock-{self.app.conf.id}-{p}-{now}", "ts": now}
            await send(self.s.input_topic, None, orjson.dumps(ev), p, None, None)


def build_app(s: KafkaSettings, rules: Rules) -> tuple[faust.App, WorkerShell]:
    """A Faust app for settings ``s``; nothing starts until a Worker runs it."""
    app = faust.App(
        s.app_id,
        broker=s.broker,
        store="rocksdb://",
        datadir=s.data_dir,
        autodiscover=False,
        web_enabled=False,
        topic_partitions=s.partitions,
        topic_replication_factor=1,
        processing_guarantee=s.guarantee,
        broker_session_timeout=s.session_timeout_s,
        broker_heartbeat_interval=s.heartbeat_s,
        broker_commit_every=s.batch,
        stream_buffer_maxsize=max(4096, 2 * s.batch),
        producer_linger=0.005,
        producer_max_batch_size=1 << 20,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=3600.0,
        logging_config=None,
        # local data ahead of the changelog is discarded and rebuilt (recovery.py)
        TableManager=RouteqTableManager,
        Table=ChangelogTable,
    )
    inputs = app.topic(s.input_topic, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw", partitions=s.partitions)
    table = app.Table(s.table, partitions=s.partitions, key_type=bytes, value_type=bytes)
    shell = WorkerShell(app, table, s, rules)

    @app.agent(inputs, name="route")
    async def route(stream: Any) -> None:
        async for batch in stream.take_events(s.batch, within=s.batch_ms / 1000):
            await shell.handle(batch)

    @app.on_partitions_assigned.connect
    async def _assigned(_app: Any, assigned: Any, **_kw: Any) -> None:
        shell.on_assigned(assigned)
        # Faust fixes the consumer's fetch_max_wait_ms at 1500. A broker that
        # holds a fetch for the whole wait even when records arrive (Tansu 0.6
        # does) then adds up to 1.5 s of latency; ask for less.
        try:
            fetcher = app.consumer._thread._consumer._fetcher  # type: ignore[attr-defined]
            fetcher._fetch_max_wait_ms = s.fetch_wait_ms
        except AttributeError:  # another transport: leave it
            pass

    @app.on_rebalance_complete.connect
    async def _recovered(_app: Any, **_kw: Any) -> None:
        shell.on_recovered()

    @app.on_partitions_revoked.connect
    async def _revoked(_app: Any, revoked: Any, **_kw: Any) -> None:
        shell.on_revoked(revoked)

    @app.timer(TAIL_CHECK_S)
    async def _tails() -> None:
        try:
            await shell.watch_tails()
        except Exception as exc:  # a broker hiccup: the next check asks again
            log.warning("routeq: checking the input's log ends failed: %r", exc)

    if s.clock_ms > 0:
        @app.timer(s.clock_ms / 1000)
        async def _clock() -> None:
            await shell.tick()

    return app, shell
