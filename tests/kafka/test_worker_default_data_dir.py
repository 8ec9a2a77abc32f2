"""``routeq worker`` exactly as the README starts it: no ``--data-dir``, in a
directory where nothing exists yet (the default ``routeq-worker-data/HOST-PID``
has no parent there)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import orjson
import pytest

from tests.cli.readme import commands, popen
from tests.kafka.kafka_helpers import (
    TopicReader,
    Topics,
    Worker,
    produce,
    wait_for,
    write_jsonl,
)
from tests.routeq import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def default_topics(broker: str) -> Topics:
    """The topics the worker uses when none are named."""
    t = Topics(broker, "routeq", 8)
    t.input, t.output, t.rejected = "routeq-events", "routeq-outputs", "routeq-rejected"
    return t


def test_worker_starts_in_an_empty_directory_with_the_default_data_dir(
        broker: str, tmp_path: Path) -> None:
    [line] = [c.text for c in commands() if c.program == "routeq worker"]
    assert "--data-dir" not in line and "localhost:9092" in line
    work = tmp_path / "fresh"
    work.mkdir()
    shutil.copy(ROOT / "examples" / "rules.toml", work / "rules.toml")  # the README's rules.toml
    log = tmp_path / "worker.log"
    worker = Worker.adopt(popen(line.replace("localhost:9092", broker), work, log), log)
    now = int(time.time() * 1000)
    events = write_jsonl(tmp_path / "events.jsonl", [
        {"type": "agent.state", "id": "fresh-1", "ts": now, "tenant": "fresh", "agent": "a1",
         "status": "online", "capacity": 2},
        {"type": "chat.requested", "id": "fresh-2", "ts": now + 1, "tenant": "fresh",
         "visitor": "v1", "chat": "c1"},
    ])
    topics = default_topics(broker)
    reader = TopicReader(broker, topics.output)
    try:
        produce(topics, events)

        def assigned() -> bool:
            return any(orjson.loads(r.value)["type"] == "chat.assigned"
                       and orjson.loads(r.value)["chat"] == "c1" for r in reader.poll())

        wait_for(assigned, 120, "the chat to be assigned", worker.check_alive)
        assert list(work.glob("routeq-worker-data/*")), "the default data dir is where it says"
    finally:
        reader.close()
        worker.stop(timeout=60)
    assert worker.proc.returncode == 0, log.read_text(errors="replace")[-3000:]
