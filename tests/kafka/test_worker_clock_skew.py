"""``routeq worker`` rejects an event stamped ahead of its clock (issue 21,
item 2): to the rejected topic, the error naming ``ts``; the tenant's time does
not move (a later chat waits from its own ts)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from tests.kafka.kafka_helpers import (
    TopicReader,
    Topics,
    Worker,
    produce,
    wait_for,
    write_jsonl,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_worker_rejects_events_ahead_of_its_clock_or_in_seconds(broker: str,
                                                                 tmp_path: Path) -> None:
    topics = Topics(broker, "skew", 2)
    now = int(time.time() * 1000)
    events = write_jsonl(tmp_path / "events.jsonl", [
        {"type": "agent.state", "id": "s-1", "ts": now, "tenant": "skewshop", "agent": "a1",
         "status": "online", "capacity": 2},
        {"type": "chat.requested", "id": "s-2", "ts": now + 3_600_000, "tenant": "skewshop",
         "visitor": "v1", "chat": "ahead"},
        {"type": "chat.requested", "id": "s-3", "ts": now // 1000, "tenant": "skewshop",
         "visitor": "v2", "chat": "secs"},
        {"type": "chat.requested", "id": "s-4", "ts": now + 1, "tenant": "skewshop",
         "visitor": "v3", "chat": "ok"},
    ])
    worker = Worker(topics, tmp_path / "data", tmp_path / "worker.log", "--clock-ms", "0")
    out, rej = TopicReader(broker, topics.output), TopicReader(broker, topics.rejected)
    try:
        produce(topics, events)
        wait_for(lambda: len(rej.poll()) >= 2 and len(out.poll()) >= 1, 120,
                 "two rejected lines and an output", worker.check_alive)
        time.sleep(1)
        rejected = [orjson.loads(r.value) for r in rej.poll()]
        outputs = [orjson.loads(r.value) for r in out.poll()]
    finally:
        out.close()
        rej.close()
        worker.stop()
    assert len(rejected) == 2, rejected
    ahead, secs = sorted(rejected, key=lambda o: o["offset"])
    assert ahead["error"].startswith("chat.requested: field 'ts'"), ahead
    assert "ahead of this worker's clock" in ahead["error"] and "--max-skew-s 300" in ahead[
        "error"]
    assert "seconds" in secs["error"] and secs["tenant"] == "skewshop"
    assert [(o["type"], o["chat"]) for o in outputs] == [("chat.assigned", "ok")]
    assert outputs[0]["ts"] == now + 1  # the tenant's time was not moved an hour ahead
