"""``routeq tail`` follows until stopped: SIGTERM ends it cleanly (exit 0), what it
read flushed, as it does ``routeq worker`` and ``routeq serve``."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from tests.kafka.kafka_helpers import Topics, produce, wait_for, write_jsonl
from tests.routeq import ROOT, ROUTEQ, env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def tail(topics: Topics, out: Path) -> subprocess.Popen[bytes]:
    with open(out, "wb") as f:
        return subprocess.Popen([*ROUTEQ, "tail", *topics.args(), "--rejected"],
                                stdout=f, stderr=subprocess.STDOUT, env=env(), cwd=ROOT)


def test_tail_exits_0_on_sigterm_while_waiting_for_its_topic(broker: str,
                                                             tmp_path: Path) -> None:
    proc = tail(Topics(broker, "tail-none", 2), tmp_path / "out")
    time.sleep(2)
    assert proc.poll() is None, (tmp_path / "out").read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, (tmp_path / "out").read_text()


def test_tail_exits_0_on_sigterm_while_following(broker: str, tmp_path: Path) -> None:
    """A record on the rejected topic (written there directly: no worker needed)
    is printed, then SIGTERM stops tail with exit 0."""
    topics = Topics(broker, "tail-follow", 2)
    rejected = Topics(broker, "tail-follow-r", 2)
    rejected.input = topics.rejected  # produce straight into the topic tail reads
    line = {"type": "event.rejected", "line": 1, "error": "probe"}
    events = write_jsonl(tmp_path / "rejected.jsonl", [line])
    produce(rejected, events)
    out = tmp_path / "out"
    proc = tail(topics, out)
    wait_for(lambda: b'"probe"' in out.read_bytes(), 60, "the record printed")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, out.read_text()
    assert orjson.loads(out.read_bytes().splitlines()[0]) == line
