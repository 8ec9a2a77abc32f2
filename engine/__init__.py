"""routeq's routing core: pure, deterministic, no I/O."""

import schemas  # noqa: F401  (first: it picks the compiled or the pure core)
from engine.core import Engine
from engine.policies import POLICIES
from engine.rules import Rules, RulesError, default_rules, parse_rules, rules_from_toml

__all__ = [
    "POLICIES", "Engine", "Rules", "RulesError", "default_rules", "parse_rules",
    "rules_from_toml",
]
