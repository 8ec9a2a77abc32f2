"""``routeq compare``: a recorded history re-simulated under each candidate, side by side.

See ``simulators/whatif.py`` for the method. Candidates are rules files
(``--rules``, repeatable) and policies applied to the trace's own rules
(``--policy``, repeatable; ``--baselines`` adds fifo_round_robin,
least_loaded and longest_idle). With none given: priority and the three
baselines. They run in parallel processes; the table comes from the metrics
module, with ``*`` on the best candidate of each row.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from engine import POLICIES, RulesError
from simulators.candidates import build, run_all, trace_rules
from simulators.whatif import TraceError
from simulators.whatif_metrics import comparison_table
from streams.cli.traces import add_trace_args, load_trace


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p: argparse.ArgumentParser = sub.add_parser(
        "compare",
        help="re-simulate a recorded history under other rules and policies, side by side",
        description="Trace-driven what-if: keep the trace's arrivals, page views, chat "
        "requests and agent shifts, and each chat's observed handle time and patience; "
        "re-simulate waits, abandonment and orders under each candidate; print a table.",
    )
    add_trace_args(p)
    p.add_argument("--rules", action="append", default=[], metavar="R.toml",
                   help="a candidate rules file (repeatable)")
    p.add_argument("--policy", action="append", default=[], choices=sorted(POLICIES),
                   help="a candidate: the trace's rules with this policy (repeatable)")
    p.add_argument("--baselines", action="store_true",
                   help="add the field's baselines: fifo_round_robin, least_loaded, "
                   "longest_idle")
    p.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report")
    p.add_argument("--json", metavar="FILE", help="write every candidate's metrics as JSON")
    return p


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        base, base_src = trace_rules(args.trace, args.trace_rules)
        cands = build(base, args.rules, args.policy, args.baselines)
    except (TraceError, RulesError) as exc:
        print(f"routeq compare: {exc}", file=sys.stderr)
        return 2
    trace = load_trace(args, "compare", base)
    if trace is None:
        return 2
    progress = not args.quiet and sys.stderr.isatty()
    try:
        t = time.perf_counter()
        summaries = run_all(trace, [c.rules for c in cands], args.seed, args.jobs, progress)
        run_s = time.perf_counter() - t
    finally:
        Path(trace.exo).unlink(missing_ok=True)
    names = ["trace", *(c.name for c in cands)]
    table = comparison_table(names, [trace.recorded, *summaries], marked=1)
    doc: dict[str, Any] = {
        "trace": str(args.trace), "trace_rules": base_src, "trace_rules_hash": trace.rules.hash,
        "seed": args.seed, "events": trace.events, "exogenous": trace.exo_events,
        "model": trace.model(),
        "candidates": [{"name": c.name, "source": c.source, "rules": c.rules.hash,
                        "policy": c.rules.policy, "summary": s}
                       for c, s in zip(cands, summaries, strict=True)],
        "recorded": trace.recorded,
        "read_s": round(trace.read_s, 3), "run_s": round(run_s, 3),
    }
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    if args.report:
        from simulators.report import write_report
        write_report(args.report, doc, names, table)
    if not args.quiet:
        print(f"routeq compare: {args.trace} ({trace.events:,} events, "
              f"{len(trace.chats):,} chats; recorded under rules {trace.rules.hash} "
              f"from {base_src}), seed {args.seed}")
        for c in cands:
            print(f"  {c.name}: policy {c.rules.policy}, rules {c.rules.hash} ({c.source})")
        print()
        print(table)
        print("\n* best of the candidates ('trace' is the history as recorded, not ranked)")
        wall = time.perf_counter() - started
        print(f"{len(cands)} candidates in {run_s:.1f} s after reading the trace in "
              f"{trace.read_s:.1f} s ({len(cands) / wall * 60:.1f} candidates/min overall)")
        if args.report:
            print(f"report: {args.report}")
    return 0
