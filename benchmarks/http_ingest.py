"""HTTP ingest of ``routeq serve`` on loopback, measured with ``routeq loadtest``.

For each run a fresh durable server (``--state`` in a new temporary dir,
default options) is started and ``routeq loadtest`` (a separate process,
double11 traffic) drives it with batches of 1 and of 100 events per POST, in
two regimes:

- ``saturated``: offered far above what the server takes, so the achieved
  rate is the sustained ingest rate (every event logged durably before its
  2xx) and the latency includes the queueing of a saturated server;
- ``moderate``: offered about a third of that, for the latency of a server
  with headroom.

The server's CPU seconds during the run are read from /proc (``server_cpu``
= CPU seconds / sending seconds: near 1.0 means the server's one thread is
the limit). Repetitions are interleaved; the medians go to
``benchmarks/results/http_ingest.json``. Server and client share the machine.

    .venv/bin/python -m benchmarks.http_ingest            # 3 repetitions, ~5 min
    .venv/bin/python -m benchmarks.http_ingest --quick    # 1 repetition, shorter runs
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import environment, loadavg, write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "http_ingest.json"
ROUTEQ = [sys.executable, "-m", "streams.cli"]

#: (batch, regime) -> offered events/s
OFFERED = {(1, "saturated"): 12_000, (100, "saturated"): 60_000,
           (1, "moderate"): 500, (100, "moderate"): 5_000}


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def start_server(state: Path) -> tuple[subprocess.Popen[bytes], str]:
    ready = state.parent / "ready"
    proc = subprocess.Popen([*ROUTEQ, "serve", "--state", str(state), "--port", "0",
                             "--ready-file", str(ready)], cwd=ROOT, env=env(),
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("routeq serve did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{int(ready.read_text())}"


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadtest(url: str, batch: int, rate: int, duration: float, out: Path) -> dict[str, Any]:
    subprocess.run([*ROUTEQ, "loadtest", url, "--scenario", "double11", "--rate", str(rate),
                    "--duration", str(duration), "--batch", str(batch), "--json", str(out)],
                   cwd=ROOT, env=env(), check=True, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = orjson.loads(out.read_bytes())
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 repetition of 5 s runs")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of each warm-up run")
    ap.add_argument("--case", action="append", choices=[f"batch{b}_{r}" for b, r in OFFERED],
                    help="run only this case (repeatable; default: all four)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    reps = 1 if args.quick else args.reps
    duration = 5.0 if args.quick else args.duration
    load_before = loadavg()
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="routeq-bench-") as tmp:
        n = 0
        for rep in range(-1, reps):  # rep -1: a warm-up of every case, not kept
            for (batch, regime), rate in OFFERED.items():
                if args.case and f"batch{batch}_{regime}" not in args.case:
                    continue
                if rep < 0 and args.warmup <= 0:
                    continue
                n += 1
                run_dir = Path(tmp) / f"run{n}"
                run_dir.mkdir()
                proc, url = start_server(run_dir / "state")
                try:
                    cpu0 = cpu_s(proc.pid)
                    r = loadtest(url, batch, rate, args.warmup if rep < 0 else duration,
                                 run_dir / "r.json")
                    r["server_cpu"] = round((cpu_s(proc.pid) - cpu0) / r["send_s"], 3)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=120)
                if rep < 0:
                    continue
                key = f"batch{batch}_{regime}"
                runs.setdefault(key, []).append(r)
                print(f"rep {rep + 1}/{reps} {key}: {r['achieved_rate']:,.0f} events/s, "
                      f"p50 {r['latency_ms']['p50']} ms, p99 {r['latency_ms']['p99']} ms, "
                      f"server CPU {r['server_cpu']:.2f}, errors {r['errors']}",
                      file=sys.stderr)
    medians = {}
    for key, rs in runs.items():
        medians[key] = {
            "offered_rate": rs[0]["offered_rate"],
            "achieved_rate": statistics.median(r["achieved_rate"] for r in rs),
            "latency_p50_ms": statistics.median(r["latency_ms"]["p50"] for r in rs),
            "latency_p99_ms": statistics.median(r["latency_ms"]["p99"] for r in rs),
            "latency_samples": statistics.median(r["latency_samples"] for r in rs),
            "server_cpu": statistics.median(r["server_cpu"] for r in rs),
            "errors": sum(r["errors"] for r in rs),
        }
    result = {
        "benchmark": "http_ingest",
        "what": "routeq loadtest (double11 events) against routeq serve --state on "
                "loopback; achieved = accepted events / seconds from the first POST to the "
                "last answer; latency = POST sent -> first output it caused on /v1/stream",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        **environment(),
        "load_average_before": load_before,
        "load_average_after": loadavg(),
        "repetitions": reps, "duration_s": duration,
        "medians": medians, "runs": runs,
    }
    write_json(args.out, result)
    print(orjson.dumps(medians, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
