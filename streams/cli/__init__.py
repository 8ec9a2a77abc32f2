"""The ``routeq`` command line.

Each command lives in its own module exposing ``add_parser(subparsers)`` and
``main(args) -> int``; this file only lists them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: command modules, in the order ``--help`` lists them
COMMANDS = (
    "streams.cli.run",
    "streams.cli.simulate",
    "streams.cli.replay",
    "streams.cli.export",
    "streams.cli.rules",
    "streams.cli.compare",
    "streams.cli.tune",
    "streams.cli.serve",
    "streams.cli.loadtest",
    "streams.cli.worker",
    "streams.cli.produce",
    "streams.cli.tail",
    "streams.cli.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="routeq",
        description="routeq: chat routing for e-commerce customer service. "
        "Events in (JSON Lines, see CONTRACT.md), routing decisions out.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(name)
        cmd = module.add_parser(sub)
        cmd.set_defaults(handler=module.main, command_parser=cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "passes_through", False):
        args.command_parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    try:
        return int(args.handler(args))
    except BrokenPipeError:  # e.g. `routeq run … | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
