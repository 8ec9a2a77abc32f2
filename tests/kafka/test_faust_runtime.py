"""The distributed runtime against a real Kafka-protocol broker (Tansu).

Same trace, same outputs as ``routeq run`` per tenant (offsets aside); a worker
stopped mid-stream with its local data deleted is replaced by one that restores
from the changelogs; two workers share the partitions.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.kafka.kafka_helpers import (
    PLATFORM,
    TopicReader,
    Topics,
    Worker,
    check_same_outputs,
    collect,
    halves,
    produce,
    split,
    wait_for,
    write_jsonl,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

def test_same_outputs_as_embedded(broker: str, marketplace: Any, tmp_path: Path) -> None:
    """Four partitions, one worker, one event a message: merchants exactly equal."""
    events, rules, embedded = marketplace
    topics = Topics(broker, "equal4", 4)  # one event a message
    worker = Worker(topics, tmp_path / "w", tmp_path / "w.log", "--rules", str(rules),
                    "--clock-ms", "0")
    reader = TopicReader(broker, topics.output)
    try:
        produce(topics, events)
        got = collect(reader, embedded, [worker])
    finally:
        worker.stop()
        reader.close()
    check_same_outputs(embedded, got, platform_exact=False)
    # the forwarded inputs are on the input topic, keyed by the platform
    inputs = TopicReader(broker, topics.input)
    try:
        wait_for(lambda: len(inputs.poll()) > 0, 30, "input records")
        handed = [r for r in inputs.poll() if b'"chat.handed_over"' in r.value]
    finally:
        inputs.close()
    assert handed and all(r.key == PLATFORM.encode() for r in handed)


def test_one_partition_gives_the_embedded_order(broker: str, marketplace: Any,
                                                tmp_path: Path) -> None:
    """With every tenant on one partition, the platform applies the handovers in
    the embedded order too: all outputs are equal, the platform's included."""
    events, rules, embedded = marketplace
    topics = Topics(broker, "equal1", 1)
    worker = Worker(topics, tmp_path / "w", tmp_path / "w.log", "--rules", str(rules),
                    "--clock-ms", "0")
    reader = TopicReader(broker, topics.output)
    try:
        produce(topics, events)  # not packed: packing interleaves tenants otherwise
        got = collect(reader, embedded, [worker], everything=True)
    finally:
        worker.stop()
        reader.close()
    check_same_outputs(embedded, got, platform_exact=True)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_recovery_from_changelog(broker: str, marketplace: Any, tmp_path: Path,
                                 how: str) -> None:
    """Stop (or kill -9) a worker mid-stream, delete its table data, start
    another: it restores from the changelog and the outputs are the same."""
    events, rules, embedded = marketplace
    topics = Topics(broker, f"recover-{how}", 4)
    opts = ("--rules", str(rules), "--clock-ms", "0", "--batch", "20", "--batch-ms", "20")
    half, rest = halves(events, tmp_path)
    reader = TopicReader(broker, topics.output)
    first = Worker(topics, tmp_path / "w1", tmp_path / "w1.log", *opts)
    try:
        produce(topics, half, pack=20)
        # mid-stream: some outputs out, and more input arriving while it stops
        wait_for(lambda: len(reader.poll()) >= 50, 90, "first outputs", first.check_alive)
        produce(topics, rest, pack=20)
        first.stop(kill=how == "sigkill")
        assert (tmp_path / "w1").exists()
        shutil.rmtree(tmp_path / "w1")
        second = Worker(topics, tmp_path / "w2", tmp_path / "w2.log", *opts)
        try:
            got = collect(reader, embedded, [second], timeout=60)
        finally:
            second.stop()
        log = (tmp_path / "w2.log").read_text(errors="replace")
    finally:
        reader.close()
    assert "tenant engines restored" in log
    restored = sum(int(line.split(": ")[1].split()[0]) for line in log.splitlines()
                   if "tenant engines restored" in line)
    assert restored > 0, "the new worker must have rebuilt engines from the changelog"
    check_same_outputs(embedded, got, platform_exact=False)


def test_two_workers_share_the_partitions(broker: str, marketplace: Any,
                                          tmp_path: Path) -> None:
    events, rules, embedded = marketplace
    topics = Topics(broker, "pair", 4)
    opts = ("--rules", str(rules), "--clock-ms", "0")
    a = Worker(topics, tmp_path / "a", tmp_path / "a.log", *opts)
    b = None
    reader = TopicReader(broker, topics.output)
    try:
        wait_for(lambda: a.assigned() == [0, 1, 2, 3], 60, "the first worker's assignment",
                 a.check_alive)
        b = Worker(topics, tmp_path / "b", tmp_path / "b.log", *opts)
        wait_for(lambda: split([a, b], 4), 90, "the two workers to split the partitions",
                 b.check_alive)
        produce(topics, events, pack=20)
        got = collect(reader, embedded, [a, b])
        pa, pb = a.assigned(), b.assigned()
    finally:
        a.stop()
        if b is not None:
            b.stop()
        reader.close()
    assert pa and pb and not set(pa) & set(pb)
    check_same_outputs(embedded, got, platform_exact=False)


def test_injected_clocks_fire_timers(broker: str, tmp_path: Path) -> None:
    """No traffic after an offer: the worker's own clock events requeue it."""
    rules = tmp_path / "rules.toml"
    rules.write_text("[assignment]\nacceptance_required = true\noffer_timeout_s = 1.0\n")
    now = int(time.time() * 1000)
    trace = write_jsonl(tmp_path / "quiet.jsonl", [
        {"type": "agent.state", "id": "a1", "ts": now, "tenant": "shop", "agent": "ann",
         "status": "online"},
        {"type": "chat.requested", "id": "r1", "ts": now, "tenant": "shop", "visitor": "v1",
         "chat": "c1"},
    ])
    topics = Topics(broker, "clocks", 2)
    worker = Worker(topics, tmp_path / "w", tmp_path / "w.log", "--rules", str(rules),
                    "--clock-ms", "300")
    reader = TopicReader(broker, topics.output)
    try:
        produce(topics, trace)

        def requeued() -> bool:
            return any(b'"chat.requeued"' in r.value for r in reader.poll())

        wait_for(requeued, 90, "the offer timeout", worker.check_alive)
    finally:
        worker.stop()
        reader.close()
    outs = [orjson.loads(r.value) for r in reader.records]
    assert [o["type"] for o in outs][:2] == ["chat.assigned", "chat.requeued"]
    assert outs[1]["why"] == "offer_timeout" and outs[1]["cause"] == "timer"
    assert outs[1]["ts"] >= now + 1000
