"""``routeq tune``: search rule weights and bounds on a recorded history.

Each setting of the search space (``simulators/tuning.py``) is applied to the
trace's own rules and re-simulated on the trace (``routeq compare``'s
method), in parallel processes; the candidates are ranked by the objective,
the best ones printed, and the best rules written as a complete rules file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from engine import RulesError
from simulators.candidates import read_rules, run_all, runs_of
from simulators.rules_toml import rules_to_toml
from simulators.tuning import (
    OBJECTIVES,
    Objective,
    SpaceError,
    apply,
    load_space,
    pareto,
    settings,
)
from simulators.whatif_metrics import comparison_table, value
from streams.cli.traces import Source, add_trace_args, load_trace, with_source


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p: argparse.ArgumentParser = sub.add_parser(
        "tune",
        help="search rule weights and bounds on a recorded history (what-if re-simulation)",
        description="Grid or random search over rules keys (a SPACE.toml), each setting "
        "re-simulated on the trace as routeq compare does; prints the best candidates and "
        "writes the best rules file.",
    )
    add_trace_args(p)
    p.add_argument("--space", required=True, metavar="SPACE.toml", help="the search space")
    p.add_argument("--objective", default="revenue", choices=sorted(OBJECTIVES),
                   help="what to optimise (default revenue: revenue attributed to chats)")
    p.add_argument("--min-service-level", type=float, default=None, metavar="X",
                   help="floor: share answered within 20 s, e.g. 0.8")
    p.add_argument("--max-abandonment", type=float, default=None, metavar="X",
                   help="ceiling: share of chats for a human abandoned, e.g. 0.1")
    p.add_argument("--base", metavar="R.toml",
                   help="the rules the search space's settings change (default: the rules "
                   "the trace ran under); the candidates are still compared with those, "
                   "e.g. --base value.toml from routeq fit")
    p.add_argument("--max-abandonment-increase", type=float, default=None, metavar="PTS",
                   help="floor: abandonment at most the current rules' (re-simulated on "
                   "the trace) plus PTS percentage points, e.g. 0.5")
    p.add_argument("--top", type=int, default=5, help="how many candidates to print (5)")
    p.add_argument("--out", default="best_rules.toml", metavar="FILE",
                   help="where to write the best rules (default best_rules.toml)")
    p.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report")
    p.add_argument("--json", metavar="FILE", help="write every candidate's metrics as JSON")
    return p


def main(args: argparse.Namespace) -> int:
    return with_source(args, "tune", lambda source: _tune(args, source))


def _tune(args: argparse.Namespace, source: Source) -> int:
    base, base_src = source.last, source.rules_src
    try:
        space = load_space(args.space)
        tried = settings(space)
        edited = read_rules(args.base)[0] if args.base else base
        rules = [apply(edited, s) for s in tried]
    except (SpaceError, RulesError) as exc:
        print(f"routeq tune: {exc}", file=sys.stderr)
        return 2
    if args.max_abandonment_increase is not None and not (
            0 <= args.max_abandonment_increase <= 100):
        print("routeq tune: --max-abandonment-increase must be 0 to 100 points",
              file=sys.stderr)
        return 2
    objective = Objective(args.objective, args.min_service_level, args.max_abandonment,
                          args.max_abandonment_increase)
    trace = load_trace(args, "tune", source)
    if trace is None:
        return 2
    progress = not args.quiet and sys.stderr.isatty()
    try:
        t = time.perf_counter()
        # the current rules: as the history ran, deployments included
        summaries = run_all(trace, [(trace.rules, args.seed, True),
                                    *runs_of(rules, args.seed)], args.jobs, progress,
                            desc="tuning")
        run_s = time.perf_counter() - t
    finally:
        Path(trace.exo).unlink(missing_ok=True)
    current, found = summaries[0], summaries[1:]
    objective.reference_abandonment = value(current, "overall.abandonment_rate")
    front = pareto(found)
    order = sorted(range(len(found)), key=lambda i: (objective.key(found[i]), i))
    best = order[0]
    Path(args.out).write_text(rules_to_toml(
        rules[best], f"best rules of `routeq tune {args.trace} --space {args.space} "
        f"--objective {args.objective}` (seed {args.seed})\nsetting: {tried[best]}\n"
        f"objective: {objective.describe()}"), encoding="utf-8")
    top = order[: max(1, args.top)]
    names = ["current", *(f"#{k + 1}" for k in range(len(top)))]
    table = comparison_table(names, [current, *(found[i] for i in top)], marked=1)
    doc: dict[str, Any] = {
        "trace": str(args.trace), "trace_rules": base_src, "trace_rules_hash": base.hash,
        "seed": args.seed, "span": {"t0": trace.t0, "t_end": trace.t_end},
        "space": args.space, "method": space.method,
        "objective": objective.describe(), "events": trace.events, "model": trace.model(),
        "candidates": [{"name": names[k + 1], "setting": tried[i], "rules": rules[i].hash,
                        "policy": rules[i].policy, "feasible": objective.violation(found[i]) == 0,
                        "summary": found[i]} for k, i in enumerate(top)],
        "current": {"rules": base.hash, "summary": current},
        "tried": [{"setting": s, "rules": r.hash, "score": objective.score(f),
                   "feasible": objective.violation(f) == 0}
                  for s, r, f in zip(tried, rules, found, strict=True)],
        "recorded": trace.recorded, "best_rules_file": args.out, "run_s": round(run_s, 3),
        "pareto": [{"setting": tried[i], "rules": rules[i].hash,
                    "abandonment_rate": value(found[i], "overall.abandonment_rate"),
                    "chat_revenue": value(found[i], "overall.chat_revenue")} for i in front],
    }
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    if args.report:
        from simulators.report import write_report
        doc_r = dict(doc)
        doc_r["candidates"] = [{"name": "current", "rules": base.hash, "policy": base.policy,
                                "source": "trace rules", "summary": current},
                               *({**c, "source": str(c["setting"])} for c in doc["candidates"])]
        doc_r["front"] = {
            "points": [(value(f, "overall.abandonment_rate"), value(f, "overall.chat_revenue"),
                        str(t)) for f, t in zip(found, tried, strict=True)],
            "front": front,
            "current": (value(current, "overall.abandonment_rate"),
                        value(current, "overall.chat_revenue"))}
        write_report(args.report, doc_r, ["trace", *names], table, title="routeq tune")
    if not args.quiet:
        print(f"routeq tune: {args.trace} ({trace.events:,} events, {len(trace.chats):,} chats), "
              f"{space.method} search, {len(tried)} candidates, seed {args.seed}")
        print(f"objective: {objective.describe()}\n")
        for k, i in enumerate(top):
            feasible = "" if objective.violation(found[i]) == 0 else "  (misses a floor)"
            print(f"  #{k + 1}: {objective.score(found[i])}  {tried[i]}{feasible}")
        print(f"  current rules ({base.hash}): {objective.score(current)}")
        print("\nPareto front (no candidate has both less abandonment and more revenue "
              "after chat):")
        for i in front:
            print(f"  abandonment {value(found[i], 'overall.abandonment_rate'):.2%}, revenue "
                  f"{value(found[i], 'overall.chat_revenue'):,.0f}  {tried[i]}")
        print()
        print(table)
        print(f"\nbest rules ({rules[best].hash}) written to {args.out}; "
              f"{len(tried) + 1} re-simulations in {run_s:.1f} s")
        sl = value(found[best], "overall.service_level")
        if objective.violation(found[best]) > 0:
            print(f"note: no candidate meets the floors; the best misses by "
                  f"{objective.violation(found[best]):.3f} (service level {sl})")
        if args.report:
            print(f"report: {args.report}")
    return 0
