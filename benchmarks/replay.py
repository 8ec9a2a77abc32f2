"""A one-day 11.11 trace replayed: events/s of ``routeq run`` and ``routeq replay``.

Run::

    .venv/bin/python -m benchmarks.replay [--quick] [--hours H] [--out FILE.json]

``routeq simulate --scenario double11`` records a trace (default one whole
simulated day: about 1,000,000 visitors and 4.5 million events, 10x peak at
midnight; quick: 2 hours). Then, each in a subprocess and timed from start to
exit (imports and start-up included), repetitions interleaved after a
warm-up of each:

- ``run``: ``routeq run events.jsonl --out /dev/null``, the trace replayed
  through the embedded runtime in memory (decode, validate, apply, encode);
- ``run_state``: the same with ``--state`` (log and checkpoints on disk);
- ``replay``: ``routeq replay --state DIR --out /dev/null``, the outputs
  re-derived from the recorded log.

The target is a 10,000,000-event day in under 60 s. A day of the bundled
scenario has about 4.5 million events; ``--scale 2.25`` multiplies its
visitors per hour and every agent group by 2.25 (the same service, 2.25
times the shop), which makes a day of about 10,000,000 events (2.2 million
visitors), measured whole. Without it the time for 10,000,000 events is
extrapolated from the rate of the smaller day (``extrapolated_10m_s``; the
engine's work per event grows slowly with the number of visitors held, so
the extrapolation is a lower bound on the time, not a measurement).

    .venv/bin/python -m benchmarks.replay --scale 2.25 --reps 1
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Record, parser, progress, summary
from simulators.scenario import load_scenario

ROUTEQ = [sys.executable, "-m", "streams.cli"]
TARGET_EVENTS = 10_000_000
TARGET_S = 60.0


def routeq(args: list[str]) -> float:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    proc = subprocess.run([*ROUTEQ, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"routeq {' '.join(args)}: exit {proc.returncode}\n"
                           f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return wall


def scaled(scenario: str, scale: float) -> list[str]:
    """``--param`` options that make every tenant of ``scenario`` ``scale``
    times as large: its visitors per hour and each of its agent groups."""
    if scale == 1.0:
        return []
    params: list[str] = []
    for i, tenant in enumerate(load_scenario(scenario)["tenants"]):
        params += ["--param",
                   f"tenants.{i}.visitors_per_hour={tenant['visitors_per_hour'] * scale:g}"]
        for j, group in enumerate(tenant.get("agents", [])):
            params += ["--param",
                       f"tenants.{i}.agents.{j}.count={max(1, round(group['count'] * scale))}"]
    return params


def main(argv: list[str] | None = None) -> int:
    ap = parser("replay", __doc__, quick="2 simulated hours, 2 repetitions", seed=1)
    ap.add_argument("--hours", type=float, help="simulated hours (default 24; quick 2)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3; quick 2)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="visitors per hour and agents of every group times this "
                         "(default 1; 2.25 makes a day of about 10,000,000 events)")
    args = ap.parse_args(argv)
    if args.scale <= 0:
        ap.error("--scale must be above 0")
    hours = args.hours or (2.0 if args.quick else 24.0)
    reps = args.reps or (2 if args.quick else 3)
    record = Record("replay")
    work = Path(tempfile.mkdtemp(prefix="routeq-replay-bench-"))
    try:
        trace = work / "trace"
        sim_s = routeq(["simulate", "--scenario", "double11", "--seed", str(args.seed),
                        "--hours", str(hours), "--out", str(trace), "--quiet",
                        *scaled("double11", args.scale)])
        events_file = trace / "events.jsonl"
        with events_file.open("rb") as f:
            n = sum(1 for _ in f)
        size = events_file.stat().st_size
        progress(f"trace: {hours:g} h, {n:,} events, {size / 1e6:.0f} MB, simulated in "
                 f"{sim_s:.1f} s")
        state = work / "state"

        def run_mem() -> float:
            return routeq(["run", str(events_file), "--out", os.devnull, "--quiet"])

        def run_state() -> float:
            shutil.rmtree(state, ignore_errors=True)
            return routeq(["run", str(events_file), "--state", str(state), "--out", os.devnull,
                           "--quiet"])

        def replay() -> float:
            return routeq(["replay", "--state", str(state), "--out", os.devnull, "--quiet"])

        cases = {"run": run_mem, "run_state": run_state, "replay": replay}
        for f in cases.values():  # warm-up (page cache, imports); replay needs the state
            f()
        walls: dict[str, list[float]] = {k: [] for k in cases}
        for i in range(reps):
            for k, f in cases.items():
                walls[k].append(f())
            progress(f"rep {i + 1}/{reps}: " + ", ".join(
                f"{k} {n / w[-1]:,.0f} ev/s" for k, w in walls.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results: dict[str, Any] = {}
    for k, w in walls.items():
        eps = [n / x for x in w]
        med = summary(eps)["median"]
        results[k] = {"wall_s": summary(w, 2), "events_per_s": summary(eps),
                      "extrapolated_10m_s": round(TARGET_EVENTS / med, 1)}
    doc = record.document(
        args.quick, scenario="double11", hours=hours, seed=args.seed, scale=args.scale,
        events=n, input_bytes=size, simulate_s=round(sim_s, 2), reps=reps,
        target={"events": TARGET_EVENTS, "seconds": TARGET_S},
        results=results,
    )
    return record.finish(args.out, doc, (
        f"{k:10} {r['events_per_s']['median']:>9,} events/s  ({n:,} events in "
        f"{r['wall_s']['median']} s; 10M events ~{r['extrapolated_10m_s']} s, "
        f"target {TARGET_S:g} s)" for k, r in results.items()))


if __name__ == "__main__":
    sys.exit(main())
