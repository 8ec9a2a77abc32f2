"""Presence rules on mobile agents: offline grace and auto-away, side by side.

Run::

    .venv/bin/python -m benchmarks.presence [--quick] [--out FILE.json]

``examples/mobile_agents.toml`` is the demo shop (12 hours, 14 agents,
offers to accept within 20 s) with agents on a mobile app: it drops about 4
times an hour for about 20 s; 7 drops in 10 reach the chat server as
``offline`` then ``online`` (a flap), the rest are silent (the agent just
does not answer offers meanwhile), and 2 offers in 100 go unanswered anyway.
The same traffic (same seeds) runs under four rules:

- ``as before``: an agent going offline loses every chat at once; an agent
  who misses offers keeps getting them;
- ``grace 30 s``: ``[assignment] offline_grace_s = 30``;
- ``auto-away 2``: ``max_missed_offers = 2`` (the engine sets them away;
  they come back online after their drop, or 60 s after they notice);
- ``both``.

Reported per rules, medians over the seeds: chats requeued (and why: the
agent went offline, or let an offer time out), abandonment, service level
(answered within 20 s), mean wait, and agents set away.
"""

from __future__ import annotations

import io
import statistics
import sys
from collections import Counter
from typing import Any

import orjson

from benchmarks.common import ROOT, Record, parser, progress
from engine import parse_rules
from simulators.scenario import load_scenario
from simulators.simulation import Simulation, relaxed_gc

SCENARIO = ROOT / "examples" / "mobile_agents.toml"
VARIANTS: dict[str, dict[str, Any]] = {
    "as before": {},
    "grace 30 s": {"offline_grace_s": 30.0},
    "auto-away 2": {"max_missed_offers": 2},
    "both": {"offline_grace_s": 30.0, "max_missed_offers": 2},
}
FIGURES = ("requeued_offline", "requeued_offer_timeout", "abandonment_rate", "service_level",
           "wait_mean_s", "set_away")


def run(variant: dict[str, Any], seed: int, hours: float) -> dict[str, float]:
    sc = load_scenario(str(SCENARIO))
    rules_data = dict(sc["rules"])
    rules_data["assignment"] = {**rules_data.get("assignment", {}), **variant}
    sim = Simulation(sc, parse_rules(rules_data), seed=seed, hours=hours)
    outputs = io.BytesIO()
    with relaxed_gc():
        sim.run(outputs_out=outputs)
    # the requeues and agents set away as a chat server sees them: the outputs
    why: Counter[str] = Counter()
    away = 0
    for line in outputs.getvalue().splitlines():
        out = orjson.loads(line)
        if out["type"] == "chat.requeued":
            why[out["why"]] += 1
        elif out["type"] == "agent.away":
            away += 1
    o = sim.collector.summary()["overall"]
    return {"requeued_offline": why["agent_offline"],
            "requeued_offer_timeout": why["offer_timeout"],
            "abandonment_rate": o["abandonment_rate"], "service_level": o["service_level"],
            "wait_mean_s": o["wait_all_mean_s"], "set_away": away}


def main(argv: list[str] | None = None) -> int:
    ap = parser("presence", __doc__, quick="3 simulated hours, 2 seeds", seed=1)
    ap.add_argument("--seeds", type=int, help="seeds from --seed on (default 5; quick 2)")
    ap.add_argument("--hours", type=float, help="simulated hours (default 12; quick 3)")
    args = ap.parse_args(argv)
    seeds = range(args.seed, args.seed + (args.seeds or (2 if args.quick else 5)))
    hours = args.hours or (3.0 if args.quick else 12.0)
    record = Record("presence")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    for seed in seeds:
        for name, variant in VARIANTS.items():
            runs[name].append(run(variant, seed, hours))
        progress(f"seed {seed} done")
    results = {name: {k: round(statistics.median(r[k] for r in rs), 4) for k in FIGURES}
               for name, rs in runs.items()}
    doc = record.document(args.quick, scenario=str(SCENARIO.relative_to(ROOT)), hours=hours,
                          seeds=list(seeds), variants=VARIANTS, results=results, runs=runs)
    return record.finish(args.out, doc, (
        f"{name:12} requeued offline {r['requeued_offline']:>6g}  offer timeout "
        f"{r['requeued_offer_timeout']:>6g}  abandonment {r['abandonment_rate']:.2%}  "
        f"SL {r['service_level']:.2%}  wait {r['wait_mean_s']:.1f} s  set away "
        f"{r['set_away']:g}" for name, r in results.items()))


if __name__ == "__main__":
    sys.exit(main())
