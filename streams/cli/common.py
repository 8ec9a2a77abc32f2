"""What several commands share: the trace options and reading a trace
(``compare``, ``tune``), opening a state dir read-only and the output file
(``replay``, ``export``), and the summary on stderr (``run``, ``replay``)."""

from __future__ import annotations

import argparse
import os
import sys

from engine import Rules, RulesError
from simulators.whatif import Trace, TraceError, read_trace
from streams.cli.options import fail
from streams.embedded.runtime import Runtime, rules_for
from streams.embedded.state import StateLayout
from streams.embedded.store import RocksStore, StoreError


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


def open_state(path: str) -> tuple[RocksStore, StateLayout]:
    if not os.path.isdir(path):
        raise StoreError(f"state dir not found: {path}")
    store = RocksStore(path, read_only=True)
    try:
        return store, StateLayout(store, path)
    except StoreError:
        store.close()
        raise


def open_out(path: str | None) -> tuple[int, bool]:
    if path is None:
        return sys.stdout.fileno(), False
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), True


def summary(rt: Runtime, wall: float, name: str) -> None:
    total = rt.applied + rt.rejected
    rate = total / wall if wall > 0 else 0.0
    lines = []
    if rt.resumed_from is not None:
        lines.append(f"resumed from the checkpoint at offset {rt.resumed_from}, "
                     f"re-applied {rt.reapplied} logged events")
    if rt.deployed:
        lines.append(f"deployed rules {rt.rules.hash} from offset {rt.offset_at_resume}")
    lines.append(f"{rt.applied} events applied, {rt.rejected} rejected, "
                 f"{rt.duplicates} duplicates ignored, {wall:.2f} s, {rate:,.0f} events/s")
    out = [f"routeq {name}: " + "\n  ".join(lines)]
    for otype, k in sorted(rt.counts.items()):
        out.append(f"  {otype:16} {k}")
    print("\n".join(out), file=sys.stderr)


def open_state_dir(args: argparse.Namespace, rules: Rules,
                   rules_text: str) -> tuple[StateLayout | None, Rules, str]:
    """``--state`` opened for writing (None without it), with the rules to
    start from: those in force there unless ``--rules`` was given."""
    if not args.state:
        return None, rules, rules_text
    store = RocksStore(args.state, sync=args.sync)
    try:
        layout = StateLayout(store, args.state)
        rules, rules_text = rules_for(layout, rules, rules_text, args.rules is not None)
    except (StoreError, RulesError):
        store.close()
        raise
    return layout, rules, rules_text
