"""``routeq replay``: re-derive the outputs from a state dir's log.

``replay`` re-derives every output from the recorded log, from offset 0, with
the rules ``run`` had in force at each offset (or, with ``--rules``, one rules
file throughout: a what-if). With the same rules its output is byte-identical
to what ``run`` wrote. It opens the database read-only, so they may run beside a live ``run``.
"""

from __future__ import annotations

import argparse
import os
import time

from engine import RulesError
from streams.cli.common import open_out, open_state, summary
from streams.cli.options import fail
from streams.embedded.rules_file import read_rules
from streams.embedded.runtime import Runtime, Sink, paused_gc
from streams.embedded.store import StoreError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser(
        "replay",
        help="re-derive every output from a state dir's recorded log",
        description="Apply the log recorded in --state from the start and write the outputs "
        "as JSON Lines: byte-identical to what `routeq run` wrote, with the rules it had in "
        "force. --rules replays the whole log under other rules instead (what-if).",
    )
    p.add_argument("--state", metavar="DIR", required=True, help="state directory of a run")
    p.add_argument("--rules", metavar="R.toml",
                   help="replay under these rules instead of the recorded ones")
    p.add_argument("--out", metavar="FILE", help="write outputs here (default: stdout)")
    p.add_argument("--quiet", action="store_true", help="no summary on stderr")
    return p


def main(args: argparse.Namespace) -> int:
    try:
        rules, rules_text = read_rules(args.rules)
        store, layout = open_state(args.state)
    except (RulesError, StoreError) as exc:
        return fail(str(exc))
    started = time.perf_counter()
    fd, own = open_out(args.out)
    try:
        rt = Runtime(rules, Sink(fd), rules_text=rules_text)  # no state dir: no changes kept
        with paused_gc():
            rt.replay(layout, recorded_rules=args.rules is None)
    except (RulesError, StoreError) as exc:
        return fail(str(exc))
    finally:
        store.close()
        if own:
            os.close(fd)
    if not args.quiet:
        summary(rt, time.perf_counter() - started, "replay")
    return 0
