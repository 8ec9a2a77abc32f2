"""``routeq compare``: a recorded history re-simulated under each candidate, side by side.

See ``simulators/whatif.py`` for the method. Candidates are rules files
(``--rules``, repeatable) and policies applied to the rules in force at the
history's end (``--policy``, repeatable; ``--baselines`` adds
fifo_round_robin, least_loaded and longest_idle). With no rules file and no
policy: priority and the three baselines. The rules the history ran under
(with their deployments) are always re-simulated too: the null test
(``simulators/null_test.py``). They run in parallel processes; the table
comes from the metrics module, with ``*`` on the best candidate of each row.
Exit codes: 0, 1 (``--strict`` and the null test failed), 2 (bad input).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from engine import POLICIES, RulesError
from simulators import null_test
from simulators.candidates import build, run_all, runs_of
from simulators.whatif import TraceError
from simulators.whatif_metrics import comparison_table
from streams.cli.options import fail
from streams.cli.traces import Source, add_trace_args, load_trace, with_source

#: the column of the rules the history ran under, re-simulated (the null test)
RECORDED = "recorded rules"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p: argparse.ArgumentParser = sub.add_parser(
        "compare",
        help="re-simulate a recorded history under other rules and policies, side by side",
        description="Trace-driven what-if: keep the history's arrivals, page views, chat "
        "requests and agent shifts, and each chat's observed handle time and patience; "
        "re-simulate waits, abandonment and orders under each candidate; print a table. "
        "The rules the history ran under are always re-simulated too (the null test: they "
        "must give the recorded figures back; the table's 'recorded rules' column). Exit "
        "codes: 0; 1 with --strict when the null test fails; 2 for bad input.",
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
    p.add_argument("--null-seeds", type=int, default=3, metavar="N",
                   help="where the recorded rules, re-simulated, do not give the recorded "
                   "figures back exactly, re-simulate them under N seeds in all (default 3): "
                   "the spread over them is the noise a difference must exceed")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when the null test fails (the recorded rules, re-simulated, "
                   "do not give back the recorded figures)")
    return p


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.null_seeds < 1:
        print("routeq compare: --null-seeds must be at least 1", file=sys.stderr)
        return 2
    return with_source(args, "compare", lambda source: _compare(args, source, started))


def _compare(args: argparse.Namespace, source: Source, started: float) -> int:
    for flag, path in (("--report", args.report), ("--json", args.json)):
        if path is not None and not Path(path).resolve().parent.is_dir():
            return fail(f"{flag} {path}: no such directory", "compare")
    try:
        cands = build(source.last, args.rules, args.policy, args.baselines)
    except (TraceError, RulesError) as exc:
        print(f"routeq compare: {exc}", file=sys.stderr)
        return 2
    trace = load_trace(args, "compare", source)
    if trace is None:
        return 2
    progress = not args.quiet and sys.stderr.isatty()
    seeds = [args.seed]
    try:
        t = time.perf_counter()
        done = run_all(trace, [*runs_of([c.rules for c in cands], args.seed),
                               (trace.rules, args.seed, True)], args.jobs, progress)
        summaries, null_runs = done[:-1], done[-1:]
        if args.null_seeds > 1 and not null_test.exact(trace, null_runs[0]):
            # the re-simulation left the recorded path, where the draws come
            # into play: their spread over other seeds is the noise
            seeds += [args.seed + k for k in range(1, args.null_seeds)]
            null_runs += run_all(trace, [(trace.rules, s, True) for s in seeds[1:]],
                                 args.jobs, progress, desc="null test")
        run_s = time.perf_counter() - t
    finally:
        Path(trace.exo).unlink(missing_ok=True)
    null = null_test.check(trace, null_runs, seeds)
    names = ["trace", RECORDED, *(c.name for c in cands)]
    # the history and its own rules re-simulated are shown, not ranked
    table = comparison_table(names, [trace.recorded, null_runs[0], *summaries], marked=2)
    per_tenant = {
        name: comparison_table(names, [s["by_tenant"][name]
                                       for s in (trace.recorded, null_runs[0], *summaries)],
                               marked=2)
        for name in trace.tenants} if len(trace.tenants) > 1 else {}
    doc: dict[str, Any] = {
        "trace": str(args.trace), "trace_rules": source.rules_src,
        "trace_rules_hash": source.last.hash,
        "deployments": [{"exogenous_before": i, "after_ts": t, "rules": r.hash}
                        for i, t, r in trace.deployments],
        "tenants": list(trace.tenants),
        "seed": args.seed, "span": {"t0": trace.t0, "t_end": trace.t_end},
        "events": trace.events, "exogenous": trace.exo_events,
        "model": trace.model(),
        "null_test": null,
        "candidates": [{"name": RECORDED, "source": source.rules_src,
                        "rules": source.last.hash, "policy": source.last.policy,
                        "summary": null_runs[0]},
                       *({"name": c.name, "source": c.source, "rules": c.rules.hash,
                          "policy": c.rules.policy, "summary": s}
                         for c, s in zip(cands, summaries, strict=True))],
        "recorded": trace.recorded,
        "read_s": round(trace.read_s, 3), "run_s": round(run_s, 3),
    }
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    if args.report:
        from simulators.report import write_report
        write_report(args.report, doc, names, table)
    if not args.quiet:
        scope = f"; tenants {', '.join(trace.tenants)}" if trace.tenants else ""
        print(f"routeq compare: {args.trace} ({trace.events:,} events, "
              f"{len(trace.chats):,} chats; recorded under {source.rules_src}, rules "
              f"{source.last.hash}{scope}), seed {args.seed}")
        for c in cands:
            print(f"  {c.name}: policy {c.rules.policy}, rules {c.rules.hash} ({c.source})")
        print()
        print(table)
        print(f"\n'trace' is the history as recorded; '{RECORDED}' the rules it ran under, "
              "re-simulated (neither is ranked); * best of the candidates")
        for name, text in per_tenant.items():
            print(f"\ntenant {name}:\n{text}")
        print()
        print(null_test.describe(null))
        wall = time.perf_counter() - started
        print(f"\n{len(cands)} candidates and the recorded rules under {len(seeds)} seed"
              f"{'s' if len(seeds) != 1 else ''} re-simulated in {run_s:.1f} s, after "
              f"reading the history in {trace.read_s:.1f} s ({wall:.1f} s in all)")
        if args.report:
            print(f"report: {args.report}")
    if args.quiet and not null["passed"]:
        print(null_test.describe(null), file=sys.stderr)
    return 1 if args.strict and not null["passed"] else 0
