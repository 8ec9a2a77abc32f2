"""A Tansu broker, routeq workers in subprocesses, and reading topics back.

The broker, the topic names, the worker process and the topic reader are the
benchmarks' (``benchmarks/kafka_cluster.py``); here the tests' worker options
and what the tests wait for and compare."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from benchmarks import kafka_cluster
from benchmarks.kafka_cluster import TopicReader, Topics, broker_binary, split, tansu, wait_for
from streams.kafka.router import original_cause
from tests.routeq import ROOT, env

__all__ = ["PLATFORM", "TopicReader", "Topics", "Worker", "broker_binary", "by_tenant",
           "check_same_outputs", "collect", "dedup_records", "halves", "normalized", "produce",
           "read_jsonl", "split", "tansu", "wait_for", "write_jsonl"]

PLATFORM = "platform"


class Worker(kafka_cluster.Worker):
    """``routeq worker`` in a subprocess with short group timeouts, this checkout's
    code and the tests' environment; stopped cleanly (or killed)."""

    def __init__(self, topics: Topics, data_dir: Path, log: Path, *extra: str) -> None:
        super().__init__(topics, data_dir, log, *kafka_cluster.SHORT_GROUP_TIMEOUTS, *extra,
                         code=ROOT, env=env())


def produce(topics: Topics, path: Path, pack: int = 1, rate: float = 0.0) -> int:
    from streams.cli.produce import lines_of, ordered_producer
    from streams.cli.produce import produce as send_all

    topics.create()
    producer = ordered_producer(topics.broker)
    try:
        return send_all(lines_of(str(path)), producer, topics.input, rate, pack)
    finally:
        producer.close()


def normalized(out: dict[str, Any]) -> dict[str, Any]:
    """An output without its log position; a forwarded event's id back to its input's."""
    o = dict(out)
    o.pop("offset", None)
    o.pop("partition", None)
    o["cause"] = original_cause(o["cause"])
    return o


def by_tenant(outputs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    d: dict[str, list[dict[str, Any]]] = {}
    for o in outputs:
        d.setdefault(o["tenant"], []).append(normalized(o))
    return d


def dedup_records(records: list[Any]) -> list[dict[str, Any]]:
    """Outputs per tenant in order, each exact output (with its partition and
    offset) kept once: a redelivered input re-emits byte-identical outputs."""
    seen: set[bytes] = set()
    out = []
    for r in records:
        if r.value in seen:
            continue
        seen.add(r.value)
        out.append(orjson.loads(r.value))
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def write_jsonl(path: Path, objects: Iterable[dict[str, Any]]) -> Path:
    """``objects`` as JSON Lines in ``path``; returns ``path``."""
    path.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in objects))
    return path


def halves(events: Path, tmp: Path) -> tuple[Path, Path]:
    """The first and the second half of a trace's lines, as two files in ``tmp``."""
    lines = events.read_bytes().splitlines()
    first, rest = tmp / "first.jsonl", tmp / "rest.jsonl"
    first.write_bytes(b"\n".join(lines[: len(lines) // 2]) + b"\n")
    rest.write_bytes(b"\n".join(lines[len(lines) // 2:]) + b"\n")
    return first, rest


def merchants(outputs: list[dict[str, Any]]) -> int:
    return sum(o["tenant"] != PLATFORM for o in outputs)


def collect(reader: TopicReader, embedded: list[dict[str, Any]], workers: list[Worker],
            *, everything: bool = False, timeout: float = 120) -> list[dict[str, Any]]:
    """Outputs (deduplicated) once the merchants' (``everything``: all) are as many
    as the embedded run's and no more arrive for a moment."""
    count = len if everything else merchants
    expected = count(embedded)
    state = {"n": -1, "since": time.monotonic()}

    def settled() -> bool:
        n = count(dedup_records(reader.poll()))
        if n != state["n"]:
            state["n"], state["since"] = n, time.monotonic()
        return n >= expected and time.monotonic() - state["since"] > 2

    def alive() -> None:
        for w in workers:
            w.check_alive()

    wait_for(settled, timeout, lambda: f"{expected} outputs (have {state['n']}, "
             f"{len(reader.records)} with duplicates)", alive)
    return dedup_records(reader.records)


def first_diff(want: list[dict[str, Any]], got: list[dict[str, Any]]) -> str:
    for i, (w, g) in enumerate(zip(want, got, strict=False)):
        if w != g:
            return f"#{i}: embedded {w} / faust {g}"
    return f"embedded has {len(want)}, faust {len(got)}"


def check_same_outputs(embedded: list[dict], faust: list[dict], *, platform_exact: bool) -> None:
    """Every merchant's outputs equal, in order; the platform's as the ordering allows."""
    want, got = by_tenant(embedded), by_tenant(faust)
    assert set(got) == set(want)
    for tenant in want:
        if tenant != PLATFORM or platform_exact:
            assert got[tenant] == want[tenant], f"outputs of tenant {tenant} differ: " + first_diff(
                want[tenant], got[tenant])
    if platform_exact:
        return
    # the platform gets the same chats, each after its merchant let it go
    overflowed = {(o["tenant"], o["chat"]) for o in faust if o["type"] == "chat.overflowed"}
    assert overflowed == {(o["tenant"], o["chat"]) for o in embedded
                          if o["type"] == "chat.overflowed"}
    arrived = {(o["origin"], o["chat"]) for o in got[PLATFORM]
               if o["type"] in ("chat.queued", "chat.assigned")}
    assert arrived == overflowed
    for o in got[PLATFORM]:
        assert o["origin"] != PLATFORM
