"""Writing a rules tree back to TOML, so that a run's exact rules travel with it.

``routeq simulate`` writes ``DIR/rules.toml`` with every key of the rules it
used (defaults included); ``routeq run --rules DIR/rules.toml`` then loads
rules with the same hash. Only what a rules tree holds is supported: tables,
strings, booleans, integers, floats and lists of those.
"""

from __future__ import annotations

import math
import re
import tomllib
from typing import Any

import orjson

from engine import Rules, parse_rules

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(k: str) -> str:
    if _BARE.fullmatch(k):
        return k
    return orjson.dumps(k).decode()  # a TOML basic string (JSON escapes are valid TOML)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"rules_toml: cannot write {v!r}")
        return repr(v)
    if isinstance(v, str):
        return orjson.dumps(v).decode()
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise ValueError(f"rules_toml: cannot write {type(v).__name__}")


def _table(path: list[str], data: dict[str, Any], lines: list[str], array: bool = False) -> None:
    subtables = []
    arrays = []
    if path:
        lines.append("")
        name = ".".join(_key(p) for p in path)
        lines.append(f"[[{name}]]" if array else f"[{name}]")
    for k, v in data.items():
        if isinstance(v, dict) and v:
            subtables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        else:
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in subtables:
        _table([*path, k], v, lines)
    for k, items in arrays:  # arrays of tables ([[k]]) after the plain tables
        for item in items:
            _table([*path, k], item, lines, array=True)


def to_toml(data: dict[str, Any], header: str = "") -> str:
    """TOML text for a tree of tables and values."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    _table([], data, lines)
    return "\n".join(lines) + "\n"


def rules_to_toml(rules: Rules, header: str = "") -> str:
    """The full rules tree as TOML; loading it gives rules with the same hash."""
    text = to_toml(rules.data, header)
    again = parse_rules(tomllib.loads(text))
    if again.hash != rules.hash:  # pragma: no cover - a writer bug, never silent
        raise ValueError("rules_toml: the written rules do not load back to the same hash")
    return text
