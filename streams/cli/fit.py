"""``routeq fit``: the classes of policy ``value`` fitted from a recorded history.

See ``simulators/value_fit.py``. Writes a complete rules file (the trace's
rules with ``policy = "value"`` and a ``[value.pages.PAGE]`` table per page
type, each commented with what it was fitted from) and prints the classes.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from engine import RulesError, parse_rules
from simulators.value_fit import describe, fit, rules_text, value_rules
from simulators.whatif import TraceError
from streams.cli.traces import Source, add_trace_args, load_trace, with_source


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p: argparse.ArgumentParser = sub.add_parser(
        "fit",
        help="fit policy value's classes (stake, handle time, patience per page) from a "
        "history",
        description="Read a recorded history as routeq compare does and estimate, per page "
        "type, what a prompt answer is worth (order rate after a chat x mean order), the "
        "mean handle time and the visitors' mean patience (censored); write the trace's "
        "rules with policy value and those classes. Compare it with routeq compare "
        "--rules FILE on other days.",
    )
    add_trace_args(p, tenants=False)  # the classes are fitted on the whole history
    p.add_argument("--out", default="value.toml", metavar="FILE",
                   help="the rules file to write (default value.toml)")
    p.add_argument("--scale", type=float, metavar="X",
                   help="[value] scale: priority points per unit of stake x patience / "
                   "handle (default 1)")
    p.add_argument("--no-loyalty", action="store_true",
                   help="leave the priority's loyalty points (member, orders, ltv) out")
    p.add_argument("--no-overflow-by-value", action="store_true",
                   help="keep [overflow] after_s for every chat (default: a class overflows "
                   "once its value at risk is a default chat's at after_s)")
    return p


def main(args: argparse.Namespace) -> int:
    return with_source(args, "fit", lambda source: _fit(args, source))


def _fit(args: argparse.Namespace, source: Source) -> int:
    try:
        base = source.last  # the rules the fitted classes are written into
        if args.scale is not None or args.no_loyalty:
            data = dict(base.data)
            value = dict(data["value"])
            if args.scale is not None:
                value["scale"] = args.scale
            if args.no_loyalty:
                value["loyalty"] = False
            data["value"] = value
            base = parse_rules(data)
    except (TraceError, RulesError) as exc:
        print(f"routeq fit: {exc}", file=sys.stderr)
        return 2
    trace = load_trace(args, "fit", source)
    if trace is None:
        return 2
    try:
        classes = fit(trace)
    finally:
        Path(trace.exo).unlink(missing_ok=True)
    if classes[-1].chats == 0:
        print(f"routeq fit: no chat in {args.trace} asked for a person: no class to fit",
              file=sys.stderr)
        return 2
    if all(c.stake == 0 for c in classes):
        print("routeq fit: warning: no order followed any served chat, so every stake is 0 "
              "and policy value orders the queue by aging (and loyalty) alone",
              file=sys.stderr)
    rules = value_rules(base, classes, not args.no_overflow_by_value)
    text = rules_text(rules, classes, args.trace)
    if parse_rules(tomllib.loads(text)).hash != rules.hash:  # pragma: no cover - writer bug
        print("routeq fit: the written rules do not load back to the same rules",
              file=sys.stderr)
        return 1
    Path(args.out).write_text(text, encoding="utf-8")
    if not args.quiet:
        print(f"routeq fit: {trace.events:,} events, {len(trace.chats):,} chats from "
              f"{args.trace}\n")
        print(describe(classes))
    print(f"\nwrote {args.out} (rules {rules.hash}, policy value); compare it: routeq compare "
          f"TRACE --rules {args.out} --policy priority --baselines")
    return 0
