"""One runner for every benchmark: ``routeq bench`` (or ``python -m benchmarks``).

Each registered benchmark is a module ``benchmarks.NAME`` with
``main(argv) -> int`` that takes ``--out FILE.json`` (and ``--quick``), does
its own warm-up and repetitions and writes one JSON document. The runner runs
the chosen ones one after another, each in its own Python process (a fresh
heap: one benchmark's garbage does not slow the next), and gathers their
documents into one, with the environment (git commit, Python, CPU count) and
the load average before and after each.

Sizes:

- full (default): each benchmark's defaults; every document is also written
  to ``benchmarks/results/NAME.json`` (what BENCHMARKS.md is made from);
- ``--quick``: the quick set (``make bench``, a few minutes); the documents
  go only into the combined file (results of full runs are kept);
- ``--smoke``: the smallest size of each, only to show that it still runs
  (the test suite uses it: tests/benchmarks/).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import RESULTS, ROOT, environment, loadavg, write_json


@dataclass(frozen=True)
class Bench:
    name: str
    what: str
    quick: tuple[str, ...] = ("--quick",)
    smoke: tuple[str, ...] = ("--quick",)
    needs: tuple[str, ...] = ()  # importable modules without which it cannot run
    in_quick_set: bool = True


REGISTRY: tuple[Bench, ...] = (
    Bench("engine_apply", "Engine.apply events/s and placing latency by tenant size, "
          "against the orjson floor",
          smoke=("--sizes", "10x100", "--events", "2000", "--reps", "1")),
    Bench("policies", "the same decision workload under priority and the three baselines, "
          "interleaved, as ratios",
          smoke=("--events", "2000", "--reps", "1", "--agents", "20", "--waiting", "100")),
    Bench("replay", "a one-day double11 trace replayed (routeq run and routeq replay)",
          smoke=("--hours", "0.05", "--reps", "1")),
    Bench("memory", "bytes per active visitor, waiting chat and agent",
          smoke=("--visitors", "5000", "--chats", "500", "--agents", "100")),
    Bench("run_embedded", "routeq run end to end, in memory and --state; resume; disk",
          smoke=("--events", "3000", "--reps", "1")),
    Bench("simulate", "double11 simulation speed; M/M/c against ciw and Erlang C",
          smoke=("--hours", "0.05", "--reps", "1", "--mmc-hours", "8", "--mmc-reps", "2")),
    Bench("presence", "mobile agents: offline grace and auto-away against neither, side by "
          "side (simulated)", smoke=("--quick", "--hours", "0.25", "--seeds", "1")),
    Bench("plan", "a staffing plan for double11 at its own targets, its shifts simulated "
          "on other seeds", smoke=("--quick",)),
    Bench("value", "policy value fitted on one day against priority and the baselines on "
          "three others, three scenarios (routeq fit, routeq compare)",
          smoke=("--quick",), in_quick_set=False),
    Bench("whatif", "priority vs baselines on a simulated 11.11 (routeq compare)",
          smoke=("--quick", "--hours", "0.25", "--demo-runs", "0", "--jobs", "1"),
          in_quick_set=False),
    Bench("http_ingest", "routeq serve HTTP ingest under routeq loadtest",
          smoke=("--quick", "--duration", "0.5", "--warmup", "0",
                 "--case", "batch100_saturated"), in_quick_set=False),
    Bench("faust_pipeline", "produce -> Faust worker(s) -> outputs through a test broker",
          smoke=(), needs=("faust", "kafka"), in_quick_set=False),
)
BY_NAME = {b.name: b for b in REGISTRY}


def available(b: Bench) -> str | None:
    """Why ``b`` cannot run here, or None."""
    if importlib.util.find_spec(f"benchmarks.{b.name}") is None:
        return f"benchmarks/{b.name}.py is missing"
    for mod in b.needs:
        if importlib.util.find_spec(mod) is None:
            return f"needs {mod}"
    return None


def run_one(b: Bench, mode: str, out: Path, log: Any) -> dict[str, Any]:
    args = {"full": (), "quick": b.quick, "smoke": b.smoke}[mode]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", f"benchmarks.{b.name}", *args, "--out", str(out)]
    load_before = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    text = proc.stdout.decode(errors="replace")
    log(text.rstrip())
    entry: dict[str, Any] = {
        "command": " ".join(["python", "-m", f"benchmarks.{b.name}", *args]),
        "exit_code": proc.returncode, "wall_s": round(wall, 2),
        "load_average_before": load_before, "load_average_after": loadavg(),
    }
    if proc.returncode == 0 and out.exists():
        entry["result"] = orjson.loads(out.read_bytes())
    else:
        entry["output_tail"] = text[-4000:]
    return entry


def run(names: list[str], mode: str, out: Path | None, log: Any = print) -> dict[str, Any]:
    doc: dict[str, Any] = {"runner": "routeq bench", "mode": mode, **environment(),
                           "load_average_before": loadavg(), "benchmarks": {}}
    with tempfile.TemporaryDirectory(prefix="routeq-bench-") as tmp:
        for name in names:
            b = BY_NAME[name]
            why = available(b)
            if why is not None:
                log(f"== {name}: skipped ({why})")
                doc["benchmarks"][name] = {"skipped": why}
                continue
            log(f"== {name}: {b.what} [{mode}]")
            target = RESULTS / f"{name}.json" if mode == "full" else Path(tmp) / f"{name}.json"
            entry = run_one(b, mode, target, log)
            log(f"== {name}: exit {entry['exit_code']} in {entry['wall_s']} s, load "
                f"{entry['load_average_before']} -> {entry['load_average_after']}")
            doc["benchmarks"][name] = entry
    doc["load_average_after"] = loadavg()
    if out is not None:
        write_json(out, doc)
    return doc


def add_arguments(p: argparse.ArgumentParser) -> None:
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="the quick set at quick sizes (a few minutes)")
    size.add_argument("--smoke", action="store_true",
                      help="every benchmark at its smallest size (does it still run?)")
    p.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(BY_NAME),
                   help="run only these (" + ", ".join(b.name for b in REGISTRY) + ")")
    p.add_argument("--out", type=Path, metavar="FILE.json",
                   help="combined results (default: benchmarks/results/bench.json for a full "
                   "run, bench-quick.json for --quick, none for --smoke)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")


def execute(args: argparse.Namespace) -> int:
    if args.list:
        for b in REGISTRY:
            print(f"{b.name:15} {b.what}" + ("" if b.in_quick_set else "  (not in --quick)"))
        return 0
    mode = "quick" if args.quick else "smoke" if args.smoke else "full"
    if args.only:
        names = list(args.only)
    elif mode == "quick":
        names = [b.name for b in REGISTRY if b.in_quick_set]
    else:
        names = [b.name for b in REGISTRY]
    out = args.out
    if out is None and mode != "smoke":
        out = RESULTS / ("bench.json" if mode == "full" else "bench-quick.json")
    doc = run(names, mode, out, log=lambda m: print(m, flush=True))
    failed = [n for n, e in doc["benchmarks"].items() if e.get("exit_code", 0) != 0]
    if out is not None:
        print(f"results: {out}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return execute(p.parse_args(argv))
