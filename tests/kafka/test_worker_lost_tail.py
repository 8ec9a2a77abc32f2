"""A partition whose last messages never reached the worker is routed anyway.

The router finds a lost message when a later one of its partition arrives
(``SeekBacks``). When the lost messages are the partition's last and no input
follows, nothing reveals them: here the group's committed offset is put at
the end of the log before the worker starts, so Faust seeks past every
message and none is delivered (Faust's loss at the end of a rebalance's
recovery leaves the same shape, where its next offset is behind what Faust
fetched). The table says nothing was applied, so the worker must see its
partition short of the log's end and seek back to it.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.kafka.kafka_helpers import (
    TopicReader,
    Topics,
    Worker,
    produce,
    wait_for,
    write_jsonl,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _commit_at_end(broker: str, group: str, topic: str) -> int:
    """The group's committed offset put after the last record of the topic's
    one partition (read back: Tansu reports a log's end as its last record
    batch's first offset + 1); returns that offset."""
    reader = TopicReader(broker, topic)
    try:
        end = max(r.offset for r in reader.read_to_end()) + 1
    finally:
        reader.close()
    c = KafkaConsumer(bootstrap_servers=broker, group_id=group, enable_auto_commit=False)
    try:
        c.commit({TopicPartition(topic, 0): OffsetAndMetadata(end, "", -1)})
    finally:
        c.close()
    return end


def test_a_partition_whose_last_messages_never_came_is_routed(broker: str,
                                                              tmp_path: Path) -> None:
    topics = Topics(broker, "losttail", 1)
    events = write_jsonl(tmp_path / "events.jsonl", [
        {"type": "agent.state", "id": "t-1", "ts": 1000, "tenant": "tailshop", "agent": "a1",
         "status": "online", "capacity": 3},
        *({"type": "chat.requested", "id": f"t-{i}", "ts": 1000 + i, "tenant": "tailshop",
           "visitor": f"v{i}", "chat": f"c{i}"} for i in range(2, 5)),
    ])
    produce(topics, events)
    assert _commit_at_end(broker, topics.name, topics.input) == 4
    log = tmp_path / "worker.log"
    worker = Worker(topics, tmp_path / "data", log, "--clock-ms", "0")
    out = TopicReader(broker, topics.output)
    try:
        wait_for(lambda: len(out.poll()) >= 3, 90,
                 lambda: "the three chats' assignments\n" + worker.tail(), worker.check_alive)
        time.sleep(1)
        outputs = [orjson.loads(r.value) for r in out.poll()]
    finally:
        out.close()
        worker.stop()
    assert sorted((o["type"], o["chat"]) for o in outputs) == [
        ("chat.assigned", "c2"), ("chat.assigned", "c3"), ("chat.assigned", "c4")]
    said = log.read_text(errors="replace")
    assert "offset 0 not delivered for" in said and "though the log holds it" in said
