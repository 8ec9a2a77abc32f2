"""``routeq bench``: run the benchmarks in ``benchmarks/`` (``python -m benchmarks``).

Only from a source checkout: the benchmarks are a program of their own, not
part of the installed package, so this command starts it rather than
importing it (the shells never import the benchmarks).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from streams.cli.options import fail

#: the checkout routeq runs from (benchmarks/ beside streams/)
CHECKOUT = Path(__file__).resolve().parents[2]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser(
        "bench", add_help=False,
        help="run the benchmarks (warm-up, repetitions, medians) and write JSON",
        description="Run the registered benchmarks, each in its own process with a warm-up "
        "and repetitions, and gather their results (median, spread, git commit, Python, "
        "CPU count, load average) into one JSON file. routeq bench --help lists the options.",
    )
    p.set_defaults(passes_through=True)  # its options are the benchmark runner's
    return p


def main(args: argparse.Namespace) -> int:
    if not (CHECKOUT / "benchmarks" / "runner.py").is_file():
        return fail("run it from a source checkout (benchmarks/ not found)", "bench")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECKOUT), env.get("PYTHONPATH")]))
    return subprocess.call([sys.executable, "-m", "benchmarks", *args.rest], env=env)
