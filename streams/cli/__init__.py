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
    "streams.cli.fit",
    "streams.cli.plan",
    "streams.cli.serve",
    "streams.cli.loadtest",
    "streams.cli.worker",
    "streams.cli.produce",
    "streams.cli.tail",
    "streams.cli.bench",
)


#: command name -> its module (each module's name is the command's)
MODULES = {name.rsplit(".", 1)[1]: name for name in COMMANDS}


class Version(argparse.Action):
    """``--version``: the line is built only when asked (it reads the package metadata)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        from schemas import native
        try:
            number = version("routeq")
        except PackageNotFoundError:  # run from a checkout that is not installed
            number = "(not installed)"
        print(f"routeq {number}: {native.describe()}")
        parser.exit()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of command ``only`` alone: a command
    imports only its own module, so ``routeq run`` does not load the HTTP
    server's or the Kafka worker's libraries."""
    parser = argparse.ArgumentParser(
        prog="routeq",
        description="routeq: chat routing for e-commerce customer service. "
        "Events in (JSON Lines, see CONTRACT.md), routing decisions out.",
    )
    parser.add_argument("--version", action=Version, nargs=0,
                        help="print routeq's version and whether its core runs compiled "
                        "or as pure Python (ROUTEQ_PURE=1), then exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS if only is None else (MODULES[only],):
        module = importlib.import_module(name)
        cmd = module.add_parser(sub)
        cmd.set_defaults(handler=module.main, command_parser=cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(words[0] if words and words[0] in MODULES else None)
    args, rest = parser.parse_known_args(words)
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
