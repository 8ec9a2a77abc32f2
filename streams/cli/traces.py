"""A recorded history as ``compare`` and ``tune`` take it: the options and
the reading (apart from common.py, so that run, replay and export do not
load the what-if simulator)."""

from __future__ import annotations

import argparse

from engine import Rules, RulesError
from simulators.whatif import Trace, TraceError, read_trace
from streams.cli.options import fail


def add_trace_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace", metavar="TRACE",
                   help="events.jsonl (routeq simulate, routeq export or a chat server's "
                   "history), or a routeq simulate output directory")
    p.add_argument("--trace-rules", metavar="R.toml",
                   help="the rules the trace was recorded with (default: TRACE/rules.toml "
                   "for a directory, else the defaults)")
    p.add_argument("--seed", type=int, default=1, help="seed of the sampled parts (default 1)")
    p.add_argument("--jobs", type=int, help="parallel processes (default: CPU count)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")


def load_trace(args: argparse.Namespace, command: str, base: Rules) -> Trace | None:
    """Read the trace, or print why not (``None``)."""
    try:
        return read_trace(args.trace, base)
    except (TraceError, RulesError, OSError) as exc:
        fail(str(exc), command)
        return None
