"""Scenarios: TOML files describing a shop (or a queue) to simulate.

A scenario is found by name among the bundled files
(``simulators/scenarios/NAME.toml``) or given as a path to a ``.toml`` file.
``--param key.path=value`` overrides any key before the run (``value`` is a
TOML value: ``--param queue.agents=20``, ``--param chat.patience_s=45.5``,
``--param 'tenants.0.name="acme"'``; a bare word is taken as a string).
Integer path parts index arrays of tables (``tenants.0``).

The keys are documented in the bundled files themselves; copy one and edit it.
"""

from __future__ import annotations

import copy
import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

from engine import RulesError

SCENARIO_DIR = Path(__file__).parent / "scenarios"


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message names the key."""


def bundled() -> list[str]:
    """Names of the bundled scenarios."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def scenario_path(name: str) -> Path:
    p = Path(name)
    if p.suffix == ".toml" and p.exists():
        return p
    candidate = SCENARIO_DIR / f"{name}.toml"
    if candidate.exists():
        return candidate
    raise ScenarioError(
        f"scenario '{name}' not found: give a .toml path or one of {', '.join(bundled())}"
    )


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_param(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``key.path=value`` override in place."""
    if "=" not in assignment:
        raise ScenarioError(f"--param must look like key.path=value, got '{assignment}'")
    path, _, text = assignment.partition("=")
    parts = path.strip().split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError(f"--param {path}: '{where}' is not an index of that list")
            if last:
                node[int(part)] = _parse_value(text)
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = _parse_value(text)
            else:
                node = node.setdefault(part, {})
        else:
            parent = ".".join(parts[:i])
            raise ScenarioError(f"--param {path}: '{parent}' is a value, not a table")


def load_scenario(name: str, params: list[str] | None = None) -> dict[str, Any]:
    """The scenario as a mapping, overrides applied."""
    path = scenario_path(name)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML ({exc})") from None
    data = copy.deepcopy(data)
    for p in params or []:
        apply_param(data, p)
    data.setdefault("name", path.stem)
    if data.get("kind", "shop") not in ("shop", "queue"):
        raise ScenarioError(f"scenario key 'kind' must be shop or queue, got {data['kind']!r}")
    return data


def start_ms(data: dict[str, Any]) -> tuple[int, int]:
    """(start as epoch ms, UTC offset of the scenario's local time in ms)."""
    start = data.get("start", dt.datetime(2024, 6, 3, 8, 0, tzinfo=dt.UTC))
    if isinstance(start, str):
        start = dt.datetime.fromisoformat(start)
    if not isinstance(start, dt.datetime):
        raise ScenarioError(
            "scenario key 'start' must be a date-time like 2024-11-10T20:00:00+08:00"
        )
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    offset = start.utcoffset() or dt.timedelta(0)
    return int(start.timestamp() * 1000), int(offset.total_seconds() * 1000)


def need(table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    """``table[key]`` checked for type; errors name the scenario key."""
    if key not in table:
        raise ScenarioError(f"scenario key '{where}{key}' is required")
    v = table[key]
    if isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ScenarioError(f"scenario key '{where}{key}' has the wrong type: {v!r}")
    if not isinstance(v, kind):
        raise ScenarioError(f"scenario key '{where}{key}' has the wrong type: {v!r}")
    return v


def get(table: dict[str, Any], key: str, default: Any, where: str = "") -> Any:
    if key not in table:
        return default
    v = table[key]
    if default is not None and isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ScenarioError(f"scenario key '{where}{key}' must be a number, got {v!r}")
        return float(v) if isinstance(default, float) else v
    return v


def resolve_rules_data(scenario: dict[str, Any], rules_path: str | None,
                       policy: str | None) -> dict[str, Any]:
    """The rules mapping: the file if given, else the scenario's table; policy on top."""
    if rules_path is not None:
        try:
            text = Path(rules_path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RulesError(f"rules file not found: {rules_path}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RulesError(f"{rules_path}: rules: not valid TOML ({exc})") from None
    else:
        data = dict(scenario.get("rules", {}))
    if policy is not None:
        data["policy"] = policy
    return data
