"""End-to-end figures of ``routeq run`` (decode, log, apply, encode), in memory and durable.

Run::

    .venv/bin/python -m benchmarks.run_embedded [--events N] [--reps R] [--quick]

It writes ``benchmarks/results/run_embedded.json``. Steps, on a seeded mixed
input of N events (``benchmarks/mixed_events.py``, default 1,000,000; 0.5 %
re-sent duplicates), each measured on the real command in a subprocess:

- throughput: ``routeq run EVENTS --out /dev/null`` in memory and with
  ``--state`` (a fresh dir each time), repetitions interleaved, wall time from
  start to exit (imports included); events/s as median, min, max, and the
  ratio durable/in-memory per repetition (its median), so a busy machine
  shifts both alike. CPU seconds (user+sys of the child, RocksDB's background
  threads included) are reported beside.
- resume after a kill: a durable run killed with SIGKILL just before its final
  checkpoint (all N events logged, the last checkpoint up to one interval
  behind), then the same command again, timed: open, restore the entities,
  re-apply the log after the checkpoint. Also the time to reopen a state dir
  that stopped cleanly (restore only).
- disk: bytes of the whole state dir per event, and of the log alone (its
  segments copied into an empty store with the same options, then
  compacted), against the input's bytes per event.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import environment, loadavg, summary, write_json
from benchmarks.mixed_events import write
from streams.embedded.runtime import DEFAULT_CHECKPOINT_EVENTS, DEFAULT_CHECKPOINT_MS
from streams.embedded.state import LOG, StateLayout
from streams.embedded.store import RocksStore

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "run_embedded.json"
ROUTEQ = [sys.executable, "-m", "streams.cli"]


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def routeq(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """(wall s, cpu s, exit code, stderr) of one ``routeq`` run."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT)
    e.update(env or {})
    cpu0 = child_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run([*ROUTEQ, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env=e, cwd=ROOT)
    wall = time.perf_counter() - t0
    return wall, child_cpu() - cpu0, proc.returncode, proc.stderr.decode(errors="replace")


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def log_only_bytes(state: Path, work: Path) -> int:
    """Bytes of the log segments alone, as RocksDB stores them once compacted."""
    src = RocksStore(state, read_only=True)
    dst_path = work / "log-only"
    dst = RocksStore(dst_path)
    try:
        layout = StateLayout(src, str(state))
        for first, lines in layout.segments(0):
            b = dst.batch()
            b.put(LOG + first.to_bytes(8, "big"), b"\n".join(lines))
            dst.write(b)
        dst.compact()
    finally:
        src.close()
        dst.close()
    size = sum(f.stat().st_size for f in dst_path.glob("*.sst"))
    shutil.rmtree(dst_path)
    return size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="100,000 events, 2 repetitions")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    if a.quick:
        a.events, a.reps = 100_000, 2
    work = Path(tempfile.mkdtemp(prefix="routeq-bench-"))
    try:
        result = measure(a.events, a.reps, a.seed, work, quick=a.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_json(a.out, result)
    t = result["throughput"]
    print(f"in memory {t['memory_eps']['median']:,} events/s, with --state "
          f"{t['state_eps']['median']:,} events/s (ratio {t['state_over_memory']['median']}); "
          f"resume after kill {result['resume']['after_kill_s']['median']} s; "
          f"log {result['disk']['log_bytes_per_event']} bytes/event -> {a.out}")
    return 0


def measure(n: int, reps: int, seed: int, work: Path, quick: bool) -> dict[str, Any]:
    events = work / "events.jsonl"
    write(str(events), n, seed)
    input_bytes = events.stat().st_size
    load_before = loadavg()
    mem_eps: list[float] = []
    state_eps: list[float] = []
    mem_cpu: list[float] = []
    state_cpu: list[float] = []
    ratios: list[float] = []
    state = work / "state"
    for _ in range(reps):
        wall, cpu, code, err = routeq(["run", str(events), "--out", os.devnull])
        assert code == 0, err
        mem_eps.append(n / wall)
        mem_cpu.append(cpu)
        shutil.rmtree(state, ignore_errors=True)
        wall, cpu, code, err = routeq(["run", str(events), "--state", str(state),
                                       "--out", os.devnull])
        assert code == 0, err
        state_eps.append(n / wall)
        state_cpu.append(cpu)
        ratios.append(state_eps[-1] / mem_eps[-1])
    state_dir_bytes = dir_bytes(state)
    log_bytes = log_only_bytes(state, work)
    # resume: killed just before the final checkpoint, then rerun
    after_kill: list[float] = []
    reapplied: list[int] = []
    reopen: list[float] = []
    for _ in range(reps):
        shutil.rmtree(state, ignore_errors=True)
        args = ["run", str(events), "--state", str(state), "--out", os.devnull]
        _, _, code, _ = routeq(args, {"ROUTEQ_CRASH_POINT": "before-final:1"})
        assert code == -signal.SIGKILL, code
        wall, _, code, err = routeq(args)
        assert code == 0, err
        after_kill.append(wall)
        m = re.search(r"re-applied (\d+) logged events", err)
        reapplied.append(int(m.group(1)) if m else 0)
        wall, _, code, err = routeq(args)
        assert code == 0, err
        reopen.append(wall)
    wall_idle, _, _, _ = routeq(["run", "--out", os.devnull, "-"])  # start-up alone
    return {
        "benchmark": "run_embedded",
        **environment(),
        "load_average_before": load_before,
        "load_average_after": loadavg(),
        "quick": quick,
        "events": n,
        "seed": seed,
        "reps": reps,
        "input_bytes_per_event": round(input_bytes / n, 1),
        "checkpoint_every": DEFAULT_CHECKPOINT_EVENTS,
        "checkpoint_ms": DEFAULT_CHECKPOINT_MS,
        "startup_s": round(wall_idle, 3),
        "throughput": {
            "memory_eps": summary(mem_eps),
            "state_eps": summary(state_eps),
            "state_over_memory": summary(ratios, 3),
            "memory_cpu_s": summary(mem_cpu, 2),
            "state_cpu_s": summary(state_cpu, 2),
        },
        "resume": {
            "after_kill_s": summary(after_kill, 2),
            "reapplied_events": reapplied,
            "reopen_clean_s": summary(reopen, 2),
        },
        "disk": {
            "state_dir_bytes_per_event": round(state_dir_bytes / n, 1),
            "log_bytes_per_event": round(log_bytes / n, 1),
            "log_over_input": round(log_bytes / input_bytes, 3),
        },
    }


if __name__ == "__main__":
    sys.exit(main())
