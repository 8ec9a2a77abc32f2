"""How fast ``routeq simulate`` runs, and how it compares with Ciw on M/M/c.

Run::

    .venv/bin/pip install ciw      # benchmark only; not a dependency of routeq
    .venv/bin/python -m benchmarks.simulate [--quick] [--out FILE.json]

Two parts, each repeated and reported as medians:

- ``double11``: the bundled 11.11 scenario (a large shop, one simulated day
  of about 1,000,000 visitors with a 10x peak at midnight), closed loop
  through the engine, writing events.jsonl and outputs.jsonl to a temporary
  directory exactly as ``routeq simulate`` does. Reported: input events per
  second of wall time (every event the simulated visitors, agents and bot
  cause, applied to the engine and written), visitors per second, and the
  wall time of the simulated day (target: under 5 minutes on one core).
- M/M/c, 14 agents, 10 Erlangs, 180 s mean handle time (P(wait) = 0.1741,
  mean wait 7.84 s, 88.84 % answered within 20 s by Erlang C): routeq's
  ``erlang_c`` scenario (through the engine, policy fifo_round_robin, in
  memory) and the same queue in Ciw (https://github.com/CiwPython/Ciw), the
  same horizon and warm-up, one seed per repetition each (different seeds
  for the two, see ``CIW_SEED``). Reported: wall
  time of each and their ratio (routeq / Ciw), and each one's P(wait), mean
  wait and service level (mean over repetitions with a 95 % interval)
  against Erlang C.

``--profile`` runs cProfile over two simulated hours of double11 instead.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import environment, write_json
from engine import parse_rules
from simulators import theory
from simulators.scenario import load_scenario
from simulators.simulation import Simulation, relaxed_gc

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "simulate.json"
#: Ciw seeds Python's Mersenne Twister as routeq does and draws exponentials in
#: nearly the same order: with equal seeds both follow almost the same sample
#: path. Other seeds keep the two estimates independent.
CIW_SEED = 1000

MMC = {"agents": 14, "offered_erlangs": 10.0, "handle_s": 180.0, "warmup_h": 5.0}
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def med(values: list[float], nd: int = 3) -> float:
    return round(statistics.median(values), nd)


def interval(values: list[float]) -> dict[str, float]:
    mean = statistics.fmean(values)
    half = (T95[len(values) - 1] * statistics.stdev(values) / math.sqrt(len(values))
            if len(values) > 1 else float("nan"))
    return {"mean": round(mean, 5), "ci95_half": round(half, 5)}


# ---------------------------------------------------------------- double11


def double11_once(hours: float, seed: int) -> dict[str, Any]:
    sc = load_scenario("double11")
    rules = parse_rules(sc["rules"])
    with tempfile.TemporaryDirectory(prefix="routeq-bench-") as d:
        started = time.perf_counter()
        sim = Simulation(sc, rules, seed=seed, hours=hours)
        with open(Path(d) / "events.jsonl", "wb") as ev, \
                open(Path(d) / "outputs.jsonl", "wb") as out, relaxed_gc():  # as the CLI
            stats = sim.run(ev, out)
        wall = time.perf_counter() - started
        size = (Path(d) / "events.jsonl").stat().st_size
    o = sim.collector.summary()["overall"]
    return {
        "seed": seed, "wall_s": round(wall, 3), "events": stats.events,
        "outputs": stats.outputs, "visitors": stats.visitors, "chats": stats.chats,
        "events_per_s": round(stats.events / wall), "visitors_per_s": round(stats.visitors / wall),
        "events_jsonl_bytes": size,
        "wait_p90_s": o["wait_p90_s"], "service_level": o["service_level"],
        "abandonment_rate": o["abandonment_rate"],
    }


def bench_double11(hours: float, reps: int) -> dict[str, Any]:
    runs = []
    for i in range(reps):
        r = double11_once(hours, seed=i + 1)
        log(f"double11 {hours:g} h seed {r['seed']}: {r['visitors']:,} visitors, "
            f"{r['events']:,} events in {r['wall_s']:.1f} s = {r['events_per_s']:,} events/s")
        runs.append(r)
    wall = med([r["wall_s"] for r in runs])
    visitors = med([r["visitors"] for r in runs], 0)
    return {
        "hours": hours,
        "reps": reps,
        "wall_s": wall,
        "events_per_s": med([r["events_per_s"] for r in runs], 0),
        "visitors_per_s": med([r["visitors_per_s"] for r in runs], 0),
        "visitors": visitors,
        "events": med([r["events"] for r in runs], 0),
        # wall time a simulated day of 1,000,000 visitors takes at this rate
        "wall_s_per_million_visitors": round(wall * 1_000_000 / visitors, 1),
        "target_s_per_million_visitors": 300,
        "runs": runs,
    }


# ---------------------------------------------------------------- M/M/c


def routeq_mmc(hours: float, seed: int) -> dict[str, Any]:
    sc = load_scenario("erlang_c", [f"queue.{k}={v}" for k, v in MMC.items()])
    rules = parse_rules(sc["rules"])
    started = time.perf_counter()
    sim = Simulation(sc, rules, seed=seed, hours=hours)
    with relaxed_gc():
        stats = sim.run()
    wall = time.perf_counter() - started
    o = sim.collector.summary()["overall"]
    return {"wall_s": wall, "customers": o["chats"], "events": stats.events,
            "p_wait": o["p_wait"], "mean_wait_s": o["wait_all_mean_s"],
            "service_level": o["service_level"]}


def ciw_mmc(hours: float, seed: int) -> dict[str, Any]:
    import ciw  # type: ignore[import-untyped]  # benchmark only

    lam = MMC["offered_erlangs"] / MMC["handle_s"]
    mu = 1.0 / MMC["handle_s"]
    warmup, end = MMC["warmup_h"] * 3600.0, hours * 3600.0
    started = time.perf_counter()
    net = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=lam)],
        service_distributions=[ciw.dists.Exponential(rate=mu)],
        number_of_servers=[int(MMC["agents"])],
    )
    ciw.seed(seed)
    q = ciw.Simulation(net)
    q.simulate_until_max_time(end + 7200.0)  # then the ones that arrived before end finish
    waits = [r.waiting_time for r in q.get_all_records()
             if warmup <= r.arrival_date < end]
    wall = time.perf_counter() - started
    n = len(waits)
    return {"wall_s": wall, "customers": n,
            "p_wait": sum(1 for w in waits if w > 1e-9) / n,
            "mean_wait_s": sum(waits) / n,
            "service_level": sum(1 for w in waits if w <= 20.0) / n}


def bench_mmc(hours: float, reps: int) -> dict[str, Any]:
    c, handle = int(MMC["agents"]), MMC["handle_s"]
    lam, mu = MMC["offered_erlangs"] / handle, 1 / handle
    ec = theory.erlang_c(c, lam, mu)
    th = {"p_wait": round(ec.p_wait, 5), "mean_wait_s": round(ec.mean_wait_s, 4),
          "service_level": round(theory.erlang_c_service_level(c, lam, mu, 20.0), 5)}
    try:
        import ciw

        ciw_version: str | None = ciw.__version__
    except ImportError:
        ciw_version = None
        log("ciw is not installed (.venv/bin/pip install ciw): routeq side only")
    ours, theirs = [], []
    for i in range(reps):
        ours.append(routeq_mmc(hours, seed=i + 1))
        msg = f"M/M/c {hours:g} h seed {i + 1}: routeq {ours[-1]['wall_s']:.2f} s"
        if ciw_version is not None:
            theirs.append(ciw_mmc(hours, seed=CIW_SEED + i + 1))
            msg += f", ciw {theirs[-1]['wall_s']:.2f} s"
        log(msg)

    def side(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "wall_s": med([r["wall_s"] for r in runs]),
            "customers_per_run": med([r["customers"] for r in runs], 0),
            "customers_per_s": med([r["customers"] / r["wall_s"] for r in runs], 0),
            **{k: interval([r[k] for r in runs]) for k in th},
            "within_ci95": {k: abs(statistics.fmean(r[k] for r in runs) - th[k])
                            <= interval([r[k] for r in runs])["ci95_half"] for k in th},
        }

    doc: dict[str, Any] = {
        "agents": c, "offered_erlangs": MMC["offered_erlangs"], "handle_s": handle,
        "hours": hours, "warmup_h": MMC["warmup_h"], "reps": reps, "erlang_c": th,
        "routeq": side(ours), "ciw_version": ciw_version,
    }
    if theirs:
        doc["ciw"] = side(theirs)
        doc["wall_ratio_routeq_over_ciw"] = round(
            statistics.median(o["wall_s"] / t["wall_s"] for o, t in zip(ours, theirs,
                                                                         strict=True)), 3)
    return doc


# ---------------------------------------------------------------- main


def profile(hours: float, top: int) -> str:
    import cProfile
    import io
    import pstats

    sc = load_scenario("double11")
    sim = Simulation(sc, parse_rules(sc["rules"]), seed=1, hours=hours)
    prof = cProfile.Profile()
    prof.enable()
    sim.run(io.BytesIO(), io.BytesIO())
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.simulate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="2 simulated hours of double11, a shorter M/M/c, fewer repetitions")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON file")
    ap.add_argument("--reps", type=int, help="repetitions of double11 (default 3, quick 1)")
    ap.add_argument("--mmc-reps", type=int, help="repetitions of M/M/c (default 5, quick 3)")
    ap.add_argument("--hours", type=float, help="simulated hours of double11 (default 24)")
    ap.add_argument("--mmc-hours", type=float, help="simulated hours of M/M/c (default 500)")
    ap.add_argument("--profile", action="store_true", help="cProfile 2 h of double11 instead")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args(argv)
    if args.profile:
        print(profile(args.hours or 2.0, args.top))
        return 0
    hours = args.hours or (2.0 if args.quick else 24.0)
    reps = args.reps or (1 if args.quick else 3)
    mmc_hours = args.mmc_hours or (100.0 if args.quick else 500.0)
    mmc_reps = args.mmc_reps or (3 if args.quick else 5)
    load_before = os.getloadavg()
    d11 = bench_double11(hours, reps)
    mmc = bench_mmc(mmc_hours, mmc_reps)
    doc = {
        "benchmark": "simulate",
        **environment(),
        "loadavg_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "quick": args.quick,
        "double11": d11,
        "mmc": mmc,
    }
    write_json(args.out, doc)
    print(f"double11: {d11['visitors']:,.0f} visitors, {d11['events']:,.0f} events in "
          f"{d11['wall_s']:.1f} s (median of {reps}): {d11['events_per_s']:,.0f} events/s, "
          f"{d11['visitors_per_s']:,.0f} visitors/s, "
          f"{d11['wall_s_per_million_visitors']:.0f} s per 1,000,000 visitors (target 300)")
    r = mmc["routeq"]
    print(f"M/M/c {mmc['agents']} agents, {mmc['offered_erlangs']:g} E, {mmc_hours:g} h x "
          f"{mmc_reps}: Erlang C P(wait) {mmc['erlang_c']['p_wait']:.4f}, "
          f"mean wait {mmc['erlang_c']['mean_wait_s']:.2f} s, "
          f"SL {mmc['erlang_c']['service_level']:.4f}")
    for name in ("routeq", "ciw"):
        if name in mmc:
            r = mmc[name]
            print(f"  {name:6} wall {r['wall_s']:.2f} s  P(wait) {r['p_wait']['mean']:.4f}"
                  f"±{r['p_wait']['ci95_half']:.4f}  mean wait {r['mean_wait_s']['mean']:.2f}"
                  f"±{r['mean_wait_s']['ci95_half']:.2f} s  SL {r['service_level']['mean']:.4f}"
                  f"±{r['service_level']['ci95_half']:.4f}")
    if "wall_ratio_routeq_over_ciw" in mmc:
        print(f"  wall time routeq / ciw: {mmc['wall_ratio_routeq_over_ciw']:.3f}")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
