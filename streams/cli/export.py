"""``routeq export``: a state dir's input log as JSON Lines.

Every logged line in log order (line N+1 is offset N), the rejected ones too,
so running the export into a new state dir gives the same decisions
(a rejected line's `line` counts lines of the export). The database is
opened read-only, so export may run beside a live ``run``.
"""

from __future__ import annotations

import argparse
import os
import sys

from streams.cli.common import open_out, open_state
from streams.cli.options import fail
from streams.embedded.runtime import Sink
from streams.embedded.store import StoreError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export",
        help="write a state dir's input log as JSON Lines",
        description="Write every line of the input log recorded in --state, in log order, "
        "as JSON Lines (line N+1 is offset N).",
    )
    p.add_argument("--state", metavar="DIR", required=True, help="state directory of a run")
    p.add_argument("--out", metavar="FILE", help="write here (default: stdout)")
    return p


def main(args: argparse.Namespace) -> int:
    try:
        store, layout = open_state(args.state)
    except StoreError as exc:
        return fail(str(exc))
    fd, own = open_out(args.out)
    sink = Sink(fd)
    n = 0
    try:
        for _, lines in layout.segments(0):
            sink.write(b"\n".join(lines) + b"\n")
            n += len(lines)
    except StoreError as exc:
        return fail(str(exc))
    finally:
        store.close()
        if own:
            os.close(fd)
    print(f"routeq export: {n} lines", file=sys.stderr)
    return 0
