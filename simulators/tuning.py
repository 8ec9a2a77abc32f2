"""Rule tuning: a search space of rule keys, candidates by grid or random search,
and an objective that ranks their what-if summaries.

A search space is a TOML file::

    method = "random"        # or "grid": every combination
    samples = 24             # random search: how many candidates
    seed = 1                 # random search: which ones

    [params]                 # dotted rules keys (see examples/rules.toml)
    "priority.pages.checkout" = [30.0, 50.0, 80.0]     # a list: these values
    "priority.aging_per_s" = { min = 0.02, max = 0.5 } # a range: uniform (random search);
                                                       # grid: `steps` values (default 3)
    "assignment.weights.load" = { min = 0, max = 40, steps = 5 }
    policy = ["priority", "least_loaded"]

Objectives (``--objective``), each subject to the floors
``--min-service-level``, ``--max-abandonment`` and
``--max-abandonment-increase`` (points above the current rules' abandonment,
re-simulated on the same trace; a candidate that misses a floor ranks after
every one that meets them, by how far it misses):

- ``revenue``: maximise revenue attributed to chats (orders placed within an
  hour of a chat that was not abandoned);
- ``checkout_wait``: minimise the mean wait of cart and checkout chats;
- ``abandonment``: minimise the share of chats for a human that were abandoned;
- ``service_level``: maximise the share answered within 20 s.
"""

from __future__ import annotations

import itertools
import random
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import Rules, RulesError, parse_rules
from engine.rules import DEFAULTS
from simulators.whatif_metrics import value

#: objective -> (metric path, "max" or "min")
OBJECTIVES: dict[str, tuple[str, str]] = {
    "revenue": ("overall.chat_revenue", "max"),
    "checkout_wait": ("whatif.cart_checkout.wait_mean_s", "min"),
    "abandonment": ("overall.abandonment_rate", "min"),
    "service_level": ("overall.service_level", "max"),
}


class SpaceError(ValueError):
    """A search space that cannot be used (the message names the key)."""


@dataclass
class Param:
    key: str
    values: list[Any] | None  # a list of values
    lo: float = 0.0
    hi: float = 0.0
    steps: int = 3
    integer: bool = False

    def grid(self) -> list[Any]:
        if self.values is not None:
            return list(self.values)
        if self.steps == 1:
            return [self._cast(self.lo)]
        return [self._cast(self.lo + (self.hi - self.lo) * i / (self.steps - 1))
                for i in range(self.steps)]

    def draw(self, rng: random.Random) -> Any:
        if self.values is not None:
            return self.values[int(rng.random() * len(self.values))]
        return self._cast(rng.uniform(self.lo, self.hi))

    def _cast(self, x: float) -> Any:
        return int(round(x)) if self.integer else round(x, 3)


@dataclass
class Space:
    method: str
    samples: int
    seed: int
    params: list[Param]


def _known(key: str) -> bool:
    node: Any = DEFAULTS
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return not isinstance(node, dict)


def parse_space(text: str, where: str = "space") -> Space:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(f"{where}: not valid TOML ({exc})") from None
    for k in doc:
        if k not in ("method", "samples", "seed", "params"):
            raise SpaceError(f"{where}: unknown key {k!r} (expected method, samples, seed, "
                             "[params])")
    method = doc.get("method", "grid")
    if method not in ("grid", "random"):
        raise SpaceError(f"{where}: key 'method' must be \"grid\" or \"random\", got {method!r}")
    samples = doc.get("samples", 20)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise SpaceError(f"{where}: key 'samples' must be an integer >= 1, got {samples!r}")
    seed = doc.get("seed", 1)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SpaceError(f"{where}: key 'seed' must be an integer, got {seed!r}")
    raw = doc.get("params")
    if not isinstance(raw, dict) or not raw:
        raise SpaceError(f"{where}: needs a [params] table with at least one rules key")
    params = []
    for key, spec in raw.items():
        if not _known(key):
            raise SpaceError(f"{where}: unknown parameter {key!r} (not a rules key; the keys "
                             "are listed in examples/rules.toml, e.g. 'priority.pages.checkout')")
        if isinstance(spec, list):
            if not spec:
                raise SpaceError(f"{where}: parameter {key!r} has an empty list of values")
            params.append(Param(key, list(spec)))
        elif isinstance(spec, dict):
            extra = set(spec) - {"min", "max", "steps"}
            lo, hi, steps = spec.get("min"), spec.get("max"), spec.get("steps", 3)
            if (extra or not isinstance(lo, (int, float)) or not isinstance(hi, (int, float))
                    or isinstance(lo, bool) or isinstance(hi, bool) or lo > hi
                    or not isinstance(steps, int) or steps < 1):
                raise SpaceError(f"{where}: parameter {key!r} must be a list of values or "
                                 "{ min = A, max = B, steps = N } with A <= B, N >= 1")
            params.append(Param(key, None, float(lo), float(hi), steps,
                                isinstance(lo, int) and isinstance(hi, int)))
        else:
            params.append(Param(key, [spec]))
    return Space(method, samples, seed, params)


def load_space(path: str) -> Space:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpaceError(f"search space not found: {path}") from None
    except (UnicodeDecodeError, IsADirectoryError):
        raise SpaceError(f"search space is not a UTF-8 text file: {path}") from None
    return parse_space(text, path)


def settings(space: Space) -> list[dict[str, Any]]:
    """The parameter settings to try: every combination (grid) or ``samples`` draws."""
    if space.method == "grid":
        keys = [p.key for p in space.params]
        return [dict(zip(keys, combo, strict=True))
                for combo in itertools.product(*(p.grid() for p in space.params))]
    rng = random.Random(space.seed)
    out: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for _ in range(space.samples * 20):
        s = {p.key: p.draw(rng) for p in space.params}
        sig = tuple(repr(v) for v in s.values())
        if sig not in seen:
            seen.add(sig)
            out.append(s)
        if len(out) == space.samples:
            break
    return out


def apply(base: Rules, setting: dict[str, Any]) -> Rules:
    """The base rules with the setting's keys replaced (validated: RulesError names the key)."""
    data: dict[str, Any] = _copy(base.data)
    for key, v in setting.items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = v
    try:
        return parse_rules(data)
    except RulesError as exc:
        raise RulesError(f"search space setting {setting}: {exc}") from None


def _copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in d.items()}


@dataclass
class Objective:
    name: str
    min_service_level: float | None
    max_abandonment: float | None
    max_abandonment_increase: float | None = None  # points over the reference
    reference_abandonment: float | None = None  # the current rules', once simulated

    def describe(self) -> str:
        path, sense = OBJECTIVES[self.name]
        floors = []
        if self.min_service_level is not None:
            floors.append(f"service level >= {self.min_service_level:.0%}")
        if self.max_abandonment is not None:
            floors.append(f"abandonment <= {self.max_abandonment:.0%}")
        if self.max_abandonment_increase is not None:
            ref = ("" if self.reference_abandonment is None
                   else f" ({self.reference_abandonment:.2%})")
            floors.append(f"abandonment <= the current rules'{ref} + "
                          f"{self.max_abandonment_increase:g} points")
        text = f"{'maximise' if sense == 'max' else 'minimise'} {path}"
        return text + (" subject to " + " and ".join(floors) if floors else "")

    def violation(self, s: dict[str, Any]) -> float:
        v = 0.0
        if self.min_service_level is not None:
            sl = value(s, "overall.service_level") or 0.0
            v += max(0.0, self.min_service_level - sl)
        ab = value(s, "overall.abandonment_rate") or 0.0
        if self.max_abandonment is not None:
            v += max(0.0, ab - self.max_abandonment)
        if self.max_abandonment_increase is not None and self.reference_abandonment is not None:
            v += max(0.0, ab - self.reference_abandonment - self.max_abandonment_increase / 100)
        return v

    def key(self, s: dict[str, Any]) -> tuple[float, float]:
        """Sort key (smaller is better): (floor violation, signed objective)."""
        path, sense = OBJECTIVES[self.name]
        x = value(s, path)
        score = float("inf") if x is None else (-float(x) if sense == "max" else float(x))
        return (round(self.violation(s), 9), score)

    def score(self, s: dict[str, Any]) -> float | None:
        x = value(s, OBJECTIVES[self.name][0])
        return None if x is None else float(x)


def pareto(summaries: list[dict[str, Any]], x: str = "overall.abandonment_rate",
           y: str = "overall.chat_revenue") -> list[int]:
    """Indexes of the candidates no other beats on both: lower ``x`` (abandonment)
    and higher ``y`` (revenue after chat), sorted by ``x``."""
    pts = [(value(s, x), value(s, y), i) for i, s in enumerate(summaries)]
    known = [(float(a), float(b), i) for a, b, i in pts if a is not None and b is not None]
    front = []
    for a, b, i in known:
        if not any((a2 <= a and b2 >= b) and (a2 < a or b2 > b) for a2, b2, _ in known):
            front.append((a, i))
    return [i for _, i in sorted(front)]
