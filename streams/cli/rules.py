"""``routeq rules``: check a rules file, or show the effective rules.

- ``routeq rules check FILE``: parse and validate it as ``run``, ``serve`` and
  ``worker`` would; print ``FILE: ok, rules HASH`` and the keys it sets (exit
  0), or the error naming the file and the key (stderr, exit 2).
- ``routeq rules show [FILE]``: the rules in force (FILE's, or the built-in
  defaults), every key with defaults filled in, as TOML that reads back to the
  same rules (and hash).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from engine import RulesError
from engine.rules import DEFAULTS, rules_to_toml
from streams.cli.options import fail
from streams.embedded.rules_file import read_rules


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser(
        "rules",
        help="check a rules file, or show the effective rules as TOML",
        description="`routeq rules check FILE`: validate a rules file (errors name the key; "
        "exit 2) and print its hash, the one every chat.assigned carries and serve and "
        "worker print at start. `routeq rules show [FILE]`: the rules in force, every key "
        "with its default filled in, as TOML (the built-in rules without FILE). Every key "
        "and what it does: examples/rules.toml; routing steps ([[routing.steps]]: the "
        "targets a waiting chat widens through, predictive overflow) and transfers "
        "(chat.transferred, [assignment] transfer_wait_s): README, 'Routing steps'.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a rules file and print its hash")
    check.add_argument("file", metavar="FILE", help="the rules file (TOML)")
    show = actions.add_parser("show", help="the effective rules, defaults filled in, as TOML")
    show.add_argument("file", metavar="FILE", nargs="?",
                      help="the rules file (default: the built-in rules)")
    return p


def _set_keys(data: Mapping[str, Any], defaults: Mapping[str, Any], path: str = "") -> list[str]:
    """Dotted keys whose value differs from the default (a table: its own keys)."""
    out: list[str] = []
    for k, v in data.items():
        full = f"{path}.{k}" if path else k
        d = defaults.get(k) if isinstance(defaults, Mapping) else None
        if isinstance(v, dict) and isinstance(d, dict) and k not in ("pages", "keywords",
                                                                     "search", "categories",
                                                                     "tenants"):
            out.extend(_set_keys(v, d, full))
        elif v != d:
            out.append(full)
    return out


def main(args: argparse.Namespace) -> int:
    try:
        rules, _text = read_rules(args.file)
    except RulesError as exc:
        return fail(str(exc), "rules")
    if args.action == "show":
        sys.stdout.write(rules_to_toml(rules))
        return 0
    changed = _set_keys(rules.data, DEFAULTS)
    print(f"{args.file}: ok, rules {rules.hash}")
    print(f"differs from the defaults in: {', '.join(changed)}" if changed
          else "the same as the defaults")
    return 0
