"""What-if figures: priority against the field's baselines on a simulated 11.11, and
how many candidates per minute ``routeq compare`` re-simulates on a one-day demo trace.

For each seed: ``routeq simulate --scenario double11`` (the scenario's own
rules, policy priority) records a trace; ``routeq compare`` re-simulates it
under priority and the three baselines with the same agents and shifts (equal
staffing). Then a one-day ``demo`` trace is compared under four candidates,
timed end to end (reading the trace included). Medians over seeds and runs go
to ``benchmarks/results/whatif.json``.

    .venv/bin/python -m benchmarks.whatif                  # 3 double11 seeds, ~15 min on 2 cores
    .venv/bin/python -m benchmarks.whatif --quick          # 1 seed of 4 hours
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import environment, loadavg, write_json
from simulators.metrics import _jsonl, collect
from simulators.whatif_metrics import WhatIfCollector, value
from streams.cli import main as routeq

RESULTS = Path(__file__).parent / "results" / "whatif.json"
POLICIES = ("priority", "fifo_round_robin", "least_loaded", "longest_idle")
BASELINES = POLICIES[1:]
FIGURES = {
    "checkout_wait_mean_s": "whatif.pages.checkout.wait_mean_s",
    "cart_checkout_wait_mean_s": "whatif.cart_checkout.wait_mean_s",
    "cart_checkout_abandonment": "whatif.cart_checkout.abandonment_rate",
    "high_value_abandonment": "whatif.high_value.abandonment_rate",
    "abandonment": "overall.abandonment_rate",
    "chat_revenue": "overall.chat_revenue",
    "service_level": "overall.service_level",
}


def compare(trace: Path, out: Path, policies: tuple[str, ...], jobs: int | None) -> dict[str, Any]:
    args = ["compare", str(trace), "--json", str(out), "--quiet"]
    for p in policies:
        args += ["--policy", p]
    if jobs:
        args += ["--jobs", str(jobs)]
    assert routeq(args) == 0
    doc: dict[str, Any] = orjson.loads(out.read_bytes())
    return doc


def double11(seed: int, hours: float, tmp: Path, jobs: int | None) -> dict[str, Any]:
    trace = tmp / f"d11-{seed}"
    t = time.perf_counter()
    assert routeq(["simulate", "--scenario", "double11", "--seed", str(seed), "--hours",
                   str(hours), "--out", str(trace), "--quiet"]) == 0
    sim_s = time.perf_counter() - t
    t = time.perf_counter()
    doc = compare(trace, tmp / f"d11-{seed}.json", POLICIES, jobs)
    wall = time.perf_counter() - t
    row: dict[str, Any] = {"seed": seed, "simulate_s": round(sim_s, 1),
                           "compare_s": round(wall, 1), "events": doc["events"],
                           "chats": doc["model"]["chats"], "policies": {}}
    for c in doc["candidates"]:
        row["policies"][c["name"]] = {k: value(c["summary"], p) for k, p in FIGURES.items()}
    row["recorded"] = {k: value(doc["recorded"], p) for k, p in FIGURES.items()}
    for path in trace.iterdir():
        path.unlink()
    trace.rmdir()
    return row


def closed_loop(seed: int, hours: float, tmp: Path) -> dict[str, Any]:
    """Cross-check: each policy simulated closed-loop (``routeq simulate --policy``) on the
    same seed, so visitors react to the waits that policy causes; the same figures."""
    row: dict[str, Any] = {"seed": seed, "policies": {}}
    for p in POLICIES:
        d = tmp / f"closed-{p}"
        assert routeq(["simulate", "--scenario", "double11", "--seed", str(seed), "--hours",
                       str(hours), "--policy", p, "--out", str(d), "--quiet"]) == 0
        run = orjson.loads((d / "summary.json").read_bytes())["run"]
        col = WhatIfCollector(t0=run["start_ms"], t1=run["end_ms"], busy_until_ms=run["end_ms"])
        summary = collect(_jsonl(d / "events.jsonl"), _jsonl(d / "outputs.jsonl"), col).summary()
        row["policies"][p] = {k: value(summary, path) for k, path in FIGURES.items()}
        for path in d.iterdir():
            path.unlink()
        d.rmdir()
    return row


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over seeds, and the goal checked on them."""
    med: dict[str, dict[str, float]] = {}
    for p in POLICIES:
        med[p] = {}
        for k in FIGURES:
            xs = [r["policies"][p][k] for r in rows if r["policies"][p][k] is not None]
            med[p][k] = round(statistics.median(xs), 4) if xs else float("nan")
    pr = med["priority"]
    best_wait = min(med[b]["checkout_wait_mean_s"] for b in BASELINES)
    best_hv = min(med[b]["high_value_abandonment"] for b in BASELINES)
    best_ab = min(med[b]["abandonment"] for b in BASELINES)
    cut = 1 - pr["checkout_wait_mean_s"] / best_wait if best_wait else 0.0
    return {
        "medians": med,
        "vs_best_baseline": {
            "checkout_wait_cut": round(cut, 4),
            "high_value_abandonment": [pr["high_value_abandonment"], best_hv],
            "abandonment_points_up": round(100 * (pr["abandonment"] - best_ab), 2),
        },
        "goal": {
            "checkout_wait_30pct_lower": cut >= 0.30,
            "fewer_high_value_abandonments": pr["high_value_abandonment"] < best_hv,
            "abandonment_up_at_most_2_points": pr["abandonment"] - best_ab <= 0.02,
        },
    }


def demo_rate(runs: int, tmp: Path, jobs: int | None) -> dict[str, Any]:
    trace = tmp / "demo"
    assert routeq(["simulate", "--scenario", "demo", "--seed", "1", "--out", str(trace),
                   "--quiet"]) == 0
    walls = []
    for k in range(runs):
        t = time.perf_counter()
        compare(trace, tmp / f"demo-{k}.json", POLICIES, jobs)
        walls.append(time.perf_counter() - t)
    doc = orjson.loads((tmp / "demo-0.json").read_bytes())
    wall = statistics.median(walls)
    return {"candidates": len(POLICIES), "events": doc["events"],
            "chats": doc["model"]["chats"], "wall_s": [round(w, 2) for w in walls],
            "median_wall_s": round(wall, 2),
            "candidates_per_min": round(len(POLICIES) / wall * 60, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="one seed, 4 simulated hours")
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--jobs", type=int, help="processes for compare (default: CPU count)")
    ap.add_argument("--closed-loop", action="store_true",
                    help="also simulate each policy closed-loop on the first seed (cross-check)")
    ap.add_argument("--rate-only", action="store_true",
                    help="only time compare on the demo trace; update compare_demo in --out")
    ap.add_argument("--hours", type=float, help="simulated hours of double11 (default 24, quick 4)")
    ap.add_argument("--demo-runs", type=int, help="timed compare runs on the demo trace (0: none)")
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args(argv)
    load_before = loadavg()
    if a.rate_only:
        with tempfile.TemporaryDirectory(prefix="routeq-whatif-bench-") as d:
            rate = demo_rate(5, Path(d), a.jobs)
        old = orjson.loads(Path(a.out).read_bytes()) if Path(a.out).exists() else {}
        old["compare_demo"] = rate
        write_json(a.out, old)
        print(orjson.dumps(rate).decode())
        return 0
    seeds = a.seeds[:1] if a.quick else a.seeds
    hours = a.hours or (4.0 if a.quick else 24.0)
    with tempfile.TemporaryDirectory(prefix="routeq-whatif-bench-") as d:
        tmp = Path(d)
        runs = (1 if a.quick else 3) if a.demo_runs is None else a.demo_runs
        rate = demo_rate(runs, tmp, a.jobs) if runs > 0 else {}
        if rate:
            print(f"demo one-day trace: {rate['candidates_per_min']} candidates/min "
                  f"({rate['median_wall_s']} s for {rate['candidates']})", flush=True)
        rows = []
        for s in seeds:
            rows.append(double11(s, hours, tmp, a.jobs))
            print(orjson.dumps(rows[-1]).decode(), flush=True)
        closed = closed_loop(seeds[0], hours, tmp) if a.closed_loop else None
        if closed is not None:
            print(orjson.dumps(closed).decode(), flush=True)
    doc: dict[str, Any] = {"double11": {"hours": hours, "seeds": rows, **verdict(rows)},
                           "compare_demo": rate, **environment(),
                           "load_average_before": load_before, "load_average_after": loadavg()}
    if closed is not None:
        doc["double11_closed_loop"] = closed
    write_json(a.out, doc)
    print(orjson.dumps(doc["double11"]["medians"], option=orjson.OPT_INDENT_2).decode())
    print(orjson.dumps(doc["double11"]["vs_best_baseline"]).decode())
    print(orjson.dumps(doc["double11"]["goal"]).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
