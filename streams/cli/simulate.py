"""``routeq simulate``: a closed-loop simulated shop (or queue) routed by the engine.

Writes ``DIR/events.jsonl`` (every input event, replayable with ``routeq run``),
``DIR/outputs.jsonl`` (the engine's decisions, byte-identical to what
``routeq run DIR/events.jsonl --rules DIR/rules.toml`` writes),
``DIR/rules.toml`` (the exact rules used), ``DIR/summary.json``, and prints
the summary as a table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from engine import POLICIES, RulesError, parse_rules
from simulators.metrics import table
from simulators.rules_toml import rules_to_toml
from simulators.scenario import ScenarioError, bundled, load_scenario, resolve_rules_data
from simulators.simulation import Simulation, relaxed_gc

#: command-line shortcuts for the queue scenarios' parameters
QUEUE_FLAGS = (
    ("agents", "queue.agents", "C", "number of agents c"),
    ("erlangs", "queue.offered_erlangs", "E",
     "offered load in Erlangs (arrival rate x handle time)"),
    ("handle_s", "queue.handle_s", "S", "mean handle time in seconds"),
    ("patience_s", "queue.patience_s", "S", "mean patience in seconds (0: nobody leaves)"),
    ("warmup_h", "queue.warmup_h", "H", "hours left out of the summary at the start"),
)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="simulate a shop day (or a queue) closed-loop through the engine",
        description="Closed-loop, discrete-event simulation of a scenario through the routing "
        "engine. Writes DIR/events.jsonl (replayable with routeq run), DIR/outputs.jsonl, "
        "DIR/rules.toml and DIR/summary.json, and prints the summary. Bundled scenarios: "
        + ", ".join(bundled()) + " (or a path to a .toml file).",
    )
    p.add_argument("--scenario", required=True, metavar="NAME",
                   help="bundled scenario name or path to a scenario .toml")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--hours", type=float, help="simulated hours of arrivals (default: scenario)")
    p.add_argument("--rules", metavar="R.toml",
                   help="rules file replacing the scenario's [rules] table")
    p.add_argument("--policy", choices=sorted(POLICIES), help="override the rules' policy")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the files")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario key, e.g. --param chat.patience_s=60 (repeatable)")
    for dest, _, meta, text in QUEUE_FLAGS:
        p.add_argument("--" + dest.replace("_", "-"), dest=dest, metavar=meta,
                       help=f"queue scenarios: {text}")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    return p


def main(args: argparse.Namespace) -> int:
    params = list(args.param)
    for dest, key, _, _ in QUEUE_FLAGS:
        value = getattr(args, dest, None)
        if value is not None:
            params.append(f"{key}={value}")
    try:
        scenario = load_scenario(args.scenario, params)
        rules = parse_rules(resolve_rules_data(scenario, args.rules, args.policy))
        sim = Simulation(scenario, rules, seed=args.seed, hours=args.hours)
    except (ScenarioError, RulesError) as exc:
        print(f"routeq simulate: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rules.toml").write_text(rules_to_toml(
        rules, f"rules of `routeq simulate --scenario {args.scenario} --seed {args.seed}`\n"
        f"hash {rules.hash}; replay: routeq run DIR/events.jsonl --rules DIR/rules.toml"
    ), encoding="utf-8")
    progress = not args.quiet and sys.stderr.isatty()
    with open(out / "events.jsonl", "wb") as ev, open(out / "outputs.jsonl", "wb") as oo, \
            relaxed_gc():
        stats = sim.run(ev, oo, progress=progress)
    summary = sim.summary(stats)
    summary["params"] = params
    (out / "summary.json").write_bytes(
        orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    if not args.quiet:
        print(f"routeq simulate: scenario {summary['scenario']}, seed {args.seed}, "
              f"{sim.hours:g} h, policy {rules.policy}, rules {rules.hash}")
        print(f"{stats.events:,} events, {stats.outputs:,} outputs, {stats.visitors:,} visitors, "
              f"{stats.chats:,} chats in {stats.wall_s:.1f} s "
              f"({stats.events_per_s:,.0f} events/s)\n")
        print(table(summary))
        th = summary.get("theory")
        if th is not None:
            print("\n" + theory_lines(summary))
        print(f"\nfiles in {out}/: events.jsonl, outputs.jsonl, rules.toml, summary.json")
        print(f"replay: routeq run {out / 'events.jsonl'} --rules {out / 'rules.toml'} "
              f"--out replayed.jsonl && cmp replayed.jsonl {out / 'outputs.jsonl'}")
    return 0


def theory_lines(summary: dict[str, Any]) -> str:
    th = summary["theory"]
    if th.get("unstable"):
        return f"theory: {th['model']} is unstable at this load (offered >= agents)"
    o = summary["overall"]
    lines = [f"{'vs theory (' + th['model'] + ', warm-up removed)':40} {'simulated':>10} "
             f"{'theory':>10}"]
    for key in ("p_wait", "wait_all_mean_s", "service_level", "abandonment_rate", "occupancy"):
        if key in th:
            sim_v = o.get(key)
            sv = "-" if sim_v is None else f"{sim_v:.4f}"
            lines.append(f"{key:40} {sv:>10} {th[key]:>10.4f}")
    return "\n".join(lines)
