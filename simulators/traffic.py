"""Building blocks of simulated traffic: weighted choices, arrival curves,
handle-time draws. Every draw takes the simulation's one seeded
``random.Random`` (or its bound methods) explicitly.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Callable
from typing import Any

from simulators.scenario import ScenarioError

MINUTE_MS = 60_000
HOUR_MS = 3_600_000


class Choice:
    """A weighted choice among names, drawn with one ``random()`` and a bisection."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, weights: dict[str, Any], where: str) -> None:
        if not isinstance(weights, dict) or not weights:
            raise ScenarioError(f"scenario key '{where}' must be a non-empty table of weights")
        self.items: list[str] = []
        self.cum: list[float] = []
        acc = 0.0
        for name, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
                raise ScenarioError(f"scenario key '{where}.{name}' must be a number >= 0")
            if w > 0:
                acc += float(w)
                self.items.append(name)
                self.cum.append(acc)
        if acc <= 0:
            raise ScenarioError(f"scenario key '{where}' needs a weight > 0")
        self.total = acc

    def draw(self, random: Callable[[], float]) -> str:
        return self.items[bisect(self.cum, random() * self.total)]


def multipliers(
    curve: list[float], peaks: list[dict[str, Any]], start_ms: int, utc_offset_ms: int,
    horizon_ms: int,
) -> list[float]:
    """Arrival-rate multiplier for every simulated minute of the horizon.

    ``curve`` has one value per local hour of the day (linear in between);
    each peak adds a gaussian bump ``(multiplier - 1) * exp(-((h - at_h) / width_h)^2 / 2)``
    in hours since the start, so the rate at ``at_h`` is ``multiplier`` times the curve.
    """
    if len(curve) != 24 or not all(isinstance(x, (int, float)) and x >= 0 for x in curve):
        raise ScenarioError("scenario key 'traffic.curve' must be 24 numbers >= 0 (one per hour)")
    bumps = []
    for i, p in enumerate(peaks):
        try:
            bumps.append((float(p["at_h"]), float(p["width_h"]), float(p["multiplier"])))
        except (KeyError, TypeError, ValueError):
            raise ScenarioError(
                f"scenario key 'traffic.peaks.{i}' needs at_h, width_h and multiplier"
            ) from None
    out = []
    for m in range(max(1, -(-horizon_ms // MINUTE_MS))):
        local_h = ((start_ms + utc_offset_ms + m * MINUTE_MS + MINUTE_MS // 2) / HOUR_MS) % 24
        h0 = int(local_h)
        f = local_h - h0
        base = (1 - f) * curve[h0] + f * curve[(h0 + 1) % 24]
        since_h = (m + 0.5) / 60
        bump = 1.0
        for at, width, mult in bumps:
            bump += (mult - 1.0) * math.exp(-0.5 * ((since_h - at) / width) ** 2)
        out.append(base * bump)
    return out


def lognormal_params(mean: float, cv: float) -> tuple[float, float]:
    """(mu, sigma) of the lognormal with this mean and coefficient of variation."""
    sigma2 = math.log(1.0 + cv * cv)
    return math.log(mean) - sigma2 / 2, math.sqrt(sigma2)


def expovariate(rng: random.Random, lambd: float) -> float:
    """``rng.expovariate(lambd)``: the same draw, the same float. The standard
    library's is interpreted Python, and the simulator draws one or two for
    every chat."""
    return -math.log(1.0 - rng.random()) / lambd
