"""``routeq bench``: run the benchmarks in ``benchmarks/`` (see benchmarks/runner.py).

Only from a source checkout: the benchmarks are not part of the installed
package's runtime.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser(
        "bench",
        help="run the benchmarks (warm-up, repetitions, medians) and write JSON",
        description="Run the registered benchmarks, each in its own process with a warm-up "
        "and repetitions, and gather their results (median, spread, git commit, Python, "
        "CPU count, load average) into one JSON file.",
    )
    try:
        from benchmarks.runner import add_arguments
    except ImportError:  # an installed routeq without the source tree
        return p
    add_arguments(p)
    return p


def main(args: argparse.Namespace) -> int:
    try:
        from benchmarks.runner import execute
    except ImportError:
        print("routeq bench: run it from a source checkout (benchmarks/ not found)",
              file=sys.stderr)
        return 2
    return execute(args)
