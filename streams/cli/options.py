"""Command-line pieces the ``routeq`` commands share (``streams/cli/__init__.py`` lists them).

- :func:`add_rules` — ``--rules R.toml``, saying what applies without it;
- :func:`add_number` — a numeric option whose help ends with its default and
  whose value is checked against a lower bound when the command line is parsed
  (argparse then names the option and exits 2);
- :func:`fail` — a command that cannot run: ``routeq: message`` on stderr,
  exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def add_rules(p: argparse.ArgumentParser, *, default: str, more: str = "") -> None:
    """``--rules R.toml``; ``default`` says which rules apply without it."""
    p.add_argument("--rules", metavar="R.toml", help=f"rules file (default: {default}){more}")


def at_least(minimum: float, kind: type[int] | type[float] = int) -> Callable[[str], float]:
    """An argparse ``type``: a number of ``kind``, ``minimum`` or more."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value

    return parse


def add_number(p: argparse.ArgumentParser, flag: str, *, default: float, help: str,
               minimum: float, metavar: str | None = None) -> None:
    """A numeric option of the type of ``default``, at least ``minimum``; its help
    ends with the default."""
    p.add_argument(flag, type=at_least(minimum, type(default)), default=default,
                   metavar=metavar, help=f"{help} (default %(default)s)")


def fail(message: str, command: str | None = None) -> int:
    """Say why a command cannot run (``routeq[ COMMAND]: message``); exit code 2."""
    print(f"routeq{' ' + command if command else ''}: {message}", file=sys.stderr)
    return 2
