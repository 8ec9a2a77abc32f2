"""``routeq run`` in memory: lines in, decisions out, a summary at the end."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import BinaryIO

from engine import Engine, RulesError
from schemas.events import EventError, decode
from schemas.outputs import encode_lines
from streams.rules_file import load_rules


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    run = sub.add_parser(
        "run",
        help="apply events and write routing decisions as JSON Lines",
        description="Apply events from files (in order) or stdin ('-') and write the outputs "
        "as JSON Lines. Bad lines become event.rejected outputs and the run goes on.",
    )
    run.add_argument("events", nargs="*", default=["-"], metavar="EVENTS",
                     help="event files (JSON Lines), or - for stdin (default)")
    run.add_argument("--rules", metavar="R.toml", help="rules file (default: built-in defaults)")
    run.add_argument("--out", metavar="FILE", help="write outputs here (default: stdout)")
    run.add_argument("--strict", action="store_true",
                     help="stop at the first bad line with exit code 2")
    run.add_argument("--quiet", action="store_true", help="no summary on stderr")
    return run


def input_lines(paths: list[str]) -> Iterator[bytes]:
    """Lines of the given files in order ('-' = stdin), streamed."""
    for path in paths:
        if path == "-":
            yield from sys.stdin.buffer
            continue
        try:
            f = open(path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise SystemExit(f"routeq: input file not found: {path}") from None
        with f:
            yield from f


def main(args: argparse.Namespace) -> int:
    try:
        rules = load_rules(args.rules)
    except RulesError as exc:
        print(f"routeq: {exc}", file=sys.stderr)
        return 2
    engine = Engine(rules, track_dirty=False)
    out: BinaryIO = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    counts: Counter[str] = Counter()
    applied = rejected = 0
    started = time.perf_counter()
    stream = sys.stdin.buffer is not None and args.events == ["-"]
    try:
        for n, line in enumerate(input_lines(args.events), start=1):
            if not line.strip():
                continue
            offset = applied + rejected
            try:
                event = decode(line.rstrip(b"\r\n"))
            except EventError as exc:
                if args.strict:
                    print(f"routeq: line {n}: {exc}", file=sys.stderr)
                    return 2
                outputs = [engine.reject(exc, line.rstrip(b"\r\n"), line=n, offset=offset)]
                rejected += 1
            else:
                outputs = engine.apply(event, offset)
                applied += 1
            for o in outputs:
                counts[o["type"]] += 1
            if outputs:
                out.write(encode_lines(outputs))
                if stream:
                    out.flush()
    finally:
        out.flush()
        if args.out:
            out.close()
    if not args.quiet:
        wall = time.perf_counter() - started
        total = applied + rejected
        rate = total / wall if wall > 0 else 0.0
        print(f"routeq run: {applied} events applied, {rejected} rejected, "
              f"{wall:.2f} s, {rate:,.0f} events/s", file=sys.stderr)
        for otype, k in sorted(counts.items()):
            print(f"  {otype:16} {k}", file=sys.stderr)
    return 0
