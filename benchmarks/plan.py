"""A staffing plan for double11 at the scenario's own targets, checked on other seeds.

Run::

    .venv/bin/python -m benchmarks.plan [--quick] [--out FILE.json]

Runs ``routeq plan --scenario double11 --shifts 4,8,10 --breaks 2`` (the
scenario's ``[targets]``: 80 % answered within 20 s, abandonment at most 5 %,
occupancy at most 85 %), then simulates the plan's shifts as written
(``plan-scenario.toml``) on seeds the plan never saw. Reported: agent-hours
(Erlang on line, on line after the simulation's corrections, paid under the
shifts, the scenario's own), the day's service level and abandonment under
Erlang's agents and under the shifts, each half hour's figures and verdict
(meets, within noise, misses), and the same per seed out of sample.
``--quick``: the first hour of the day, one seed out of sample.
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import Record, parser, progress
from engine import parse_rules
from simulators.plan import SlotCheck
from simulators.scenario import load_scenario, resolve_rules_data
from simulators.simulation import Simulation, relaxed_gc
from simulators.staffing import Targets
from streams.cli import main as routeq

SHIFTS = ["--shifts", "4,8,10", "--breaks", "2"]


def simulated(scenario: str, params: list[str], seed: int, targets: Targets) -> dict[str, Any]:
    """A scenario on a seed: the day and the verdict of every half hour."""
    sc = load_scenario(scenario, params)
    sim = Simulation(sc, parse_rules(resolve_rules_data(sc, None, None)), seed=seed,
                     interval_s=1800, sl_s=targets.within_s)
    with relaxed_gc():
        stats = sim.run()
    summary = sim.summary(stats)
    tenant = sc["tenants"][0]["name"]
    slots = int(float(sc["hours"]) * 2)
    checks = {row[0]: SlotCheck(*row[1:]) for row in summary["intervals"][tenant]}
    verdicts = [checks.get(i, SlotCheck()).verdict(targets) for i in range(slots)]
    o = summary["overall"]
    return {"seed": seed, "service_level": o["service_level"],
            "abandonment_rate": o["abandonment_rate"], "occupancy": o["occupancy"],
            "verdicts": {v: verdicts.count(v) for v in ("meets", "noise", "misses")}}


def main(argv: list[str] | None = None) -> int:
    ap = parser("plan", __doc__, quick="the first hour, one seed out of sample", seed=1)
    ap.add_argument("--seeds", type=int, help="seeds out of sample after --seed (default 2)")
    args = ap.parse_args(argv)
    hours = ["--param", "hours=1.0", "--shifts", "1", "--breaks", "0"] if args.quick else []
    record = Record("plan")
    with tempfile.TemporaryDirectory(prefix="routeq-bench-plan-") as tmp:
        out = Path(tmp) / "plan"
        cmd = ["plan", "--scenario", "double11", *SHIFTS, *hours, "--seed", str(args.seed),
               "--out", str(out), "--quiet"]
        progress("routeq " + " ".join(cmd))
        started = time.perf_counter()
        code = routeq(cmd)
        if code == 2:
            raise SystemExit(f"routeq plan refused: exit {code}")
        wall = time.perf_counter() - started
        with open(out / "plan.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        plan = orjson.loads((out / "plan.json").read_bytes())
        sc = load_scenario("double11", ["hours=1.0"] if args.quick else [])
        targets = Targets(**{k: float(v) for k, v in sc["targets"].items()})
        seeds = range(args.seed + 1, args.seed + 1 + (args.seeds or (1 if args.quick else 2)))
        others = []
        for seed in seeds:
            progress(f"the plan's shifts on seed {seed}")
            others.append(simulated(str(out / "plan-scenario.toml"), [], seed, targets))
        progress("the scenario's own staffing")
        own_day = simulated("double11", ["hours=1.0"] if args.quick else [], args.seed,
                            targets)
    half = 0.5

    def hours_of(key: str) -> float:
        return round(sum(float(r[key]) for r in rows) * half, 1)

    results = {
        "exit_status": code, "wall_s": round(wall, 1), "intervals": len(rows),
        "agent_hours": {"erlang_on_line": hours_of("erlang_agents"),
                        "on_line_after_simulation": hours_of("on_line"),
                        "on_line_under_shifts": hours_of("shift_on_line"),
                        "paid": plan["agent_hours"]["paid"],
                        "scenario_own": plan["agent_hours"]["scenario_own"]},
        "day_erlang_agents": plan["day_erlang_agents"],
        "day_shifts": plan["day_shifts"],
        "day_own_staffing": own_day,
        "verdicts": plan["verdicts"],
        "per_interval": [{"interval": r["interval"], "chats": float(r["chats"]),
                          "on_line": int(r["on_line"]),
                          "service_level": float(r["service_level"] or "nan"),
                          "abandonment": float(r["abandonment"] or "nan"),
                          "result": r["result"]} for r in rows],
        "out_of_sample": others,
    }
    doc = record.document(args.quick, command="routeq " + " ".join(cmd[:-3]),
                          targets=sc["targets"], results=results)
    ah = results["agent_hours"]
    lines = [f"exit {code} in {wall:.0f} s; {len(rows)} half hours: {results['verdicts']}",
             f"agent-hours: Erlang {ah['erlang_on_line']}, after simulation "
             f"{ah['on_line_after_simulation']}, paid {ah['paid']} (scenario's own "
             f"{ah['scenario_own']})",
             f"day under Erlang's agents: {results['day_erlang_agents']}",
             f"day under the shifts: {results['day_shifts']}"]
    lines += [f"seed {o['seed']}: SL {o['service_level']:.1%}, abandonment "
              f"{o['abandonment_rate']:.1%}, {o['verdicts']}" for o in others]
    return record.finish(args.out, doc, lines)


if __name__ == "__main__":
    sys.exit(main())
