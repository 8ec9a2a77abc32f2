"""Failover between live workers: a survivor taking over a dead worker's partitions.

The recovery tests in ``test_faust_runtime.py`` start a *new* worker with empty
local data; here the worker that takes over has been running all along, with
its own local copy (Faust's standby replica) of the partitions it takes over.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from streams.kafka.app import MARKER
from tests.kafka.kafka_helpers import (
    TopicReader,
    Topics,
    Worker,
    check_same_outputs,
    collect,
    halves,
    produce,
    split,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def cut_write(broker: str, topic: str, partition: int, records: int) -> tuple[int, int]:
    """Append ``records`` harmless rows (the end-of-write key, never a table row)
    to a changelog partition in ONE record batch and no closing one-record
    batch after it: what a worker killed between its rows and its closing
    marker leaves at the end of the partition. Returns (first, last) offset."""
    from aiokafka import AIOKafkaProducer

    async def send() -> tuple[int, int]:
        producer = AIOKafkaProducer(bootstrap_servers=broker)
        await producer.start()
        try:
            batch = producer.create_batch()
            ts = int(time.time() * 1000)
            for _ in range(records):
                assert batch.append(key=MARKER, value=b"", timestamp=ts) is not None
            meta = await (await producer.send_batch(batch, topic, partition=partition))
            return meta.offset, meta.offset + records - 1
        finally:
            await producer.stop()

    return asyncio.run(send())


def end_offset(broker: str, topic: str, partition: int) -> int:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=broker)
    try:
        tp = TopicPartition(topic, partition)
        return int(c.end_offsets([tp])[tp])
    finally:
        c.close()


def test_survivor_takes_over_a_partition_whose_write_was_cut(broker: str, marketplace: Any,
                                                            tmp_path: Path) -> None:
    """Two workers; the changelog of B's partition ends in a multi-record batch
    (B cut mid-write), which A's standby copy has read; B is killed -9. The
    broker (Tansu 0.6) puts that partition's end at the batch's first record
    + 1, so A's copy is *ahead* of what the broker calls the end. A must not
    die of it (Faust: ConsistencyError "persisted offset ... is higher than the
    last offset in that topic (highwater)"): it rebuilds the partition from
    the changelog and routes on, to the same outputs as ``routeq run``."""
    events, rules, embedded = marketplace
    topics = Topics(broker, "survivor", 2)
    changelog = f"{topics.name}-entities-changelog"
    opts = ("--rules", str(rules), "--clock-ms", "0", "--batch", "20", "--batch-ms", "20")
    half, rest = halves(events, tmp_path)
    a = Worker(topics, tmp_path / "a", tmp_path / "a.log", *opts)
    b: Worker | None = None
    reader = TopicReader(broker, topics.output)
    try:
        wait_for(lambda: a.assigned() == [0, 1], 60, "A's assignment", a.check_alive)
        b = Worker(topics, tmp_path / "b", tmp_path / "b.log", *opts)
        wait_for(lambda: split([a, b], 2), 90, "the two workers to split the partitions",
                 b.check_alive)
        (pb,) = b.assigned()  # type: ignore[misc]
        produce(topics, half, pack=20)
        wait_for(lambda: len(reader.poll()) >= 200, 90, "first outputs", b.check_alive)
        # B's partition's changelog stops growing (all of the first half routed)
        ends = {"n": -1, "since": time.monotonic()}

        def quiet() -> bool:
            n = end_offset(broker, changelog, pb)
            if n != ends["n"]:
                ends["n"], ends["since"] = n, time.monotonic()
            return time.monotonic() - ends["since"] > 2

        wait_for(quiet, 90, "B's changelog partition to settle", b.check_alive)
        first, last = cut_write(broker, changelog, pb, 11)
        assert end_offset(broker, changelog, pb) == first + 1, (
            "Tansu 0.6 reports the end of a partition as its last batch's first offset + 1")
        time.sleep(3)  # A's standby copy reads the batch (fetches wait 100 ms)
        b.stop(kill=True)
        produce(topics, rest, pack=20)
        got = collect(reader, embedded, [a], timeout=120)
    finally:
        a.stop()
        if b is not None:
            b.stop()
        reader.close()
    log = (tmp_path / "a.log").read_text(errors="replace")
    assert "ConsistencyError" not in log
    # the survivor saw its copy ahead of the changelog, said so once, and rebuilt it
    assert log.count("discarding the local data") == 1, log[-3000:]
    check_same_outputs(embedded, got, platform_exact=False)
    # its own partition, routed all along, was not read again from the changelog:
    # its local data was known to be current (the offset of every write kept)
    (pa,) = {0, 1} - {pb}
    ends = last_table(log, "Highwater for active changelog partitions:")
    starts = last_table(log, "active offsets at start of reading:")
    assert starts[pa] == ends[pa] > 0, (starts, ends)


def last_table(log: str, title: str) -> dict[int, int]:
    """partition -> offset, from the last of Faust's log tables headed ``title``."""
    lines = log.splitlines()
    at = max(i for i, line in enumerate(lines) if title in line)
    out: dict[int, int] = {}
    for line in lines[at + 1:]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 3 and cells[1].isdigit():
                out[int(cells[1])] = int(cells[2])
        elif out:
            break
    return out
