"""Agents an interval needs, by Erlang A (Erlang C where nobody leaves).

An agent takes ``capacity`` chats at once, so ``n`` agents on line are
``n * capacity`` servers of the queue; the handle time is the time a chat
holds its slot (as measured, so the slowdown of concurrent chats is in it).
The smallest number of agents on line that meets every target is searched
upward from the offered load; the agents to schedule add the shrinkage (paid
time off line besides the shifts' own breaks: absence, meetings, training):
``ceil(on_line / (1 - shrinkage))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulators import theory
from simulators.forecast import Interval


class PlanError(ValueError):
    """Targets or inputs a plan cannot use; the message names them."""


@dataclass(frozen=True)
class Targets:
    service_level: float = 0.8  # share answered within within_s, abandoned chats counted
    within_s: float = 20.0
    max_abandonment: float | None = 0.05
    max_occupancy: float | None = 0.85
    shrinkage: float = 0.0

    def check(self) -> None:
        if not 0.0 < self.service_level < 1.0:
            raise PlanError(f"--service-level {self.service_level:g}: expected a share "
                            "between 0 and 1 (1 cannot be met: someone always waits)")
        if not 0.0 <= self.within_s <= 3600.0:
            raise PlanError(f"--within-s {self.within_s:g}: expected 0 to 3600 seconds")
        if self.max_abandonment is not None and not 0.0 < self.max_abandonment < 1.0:
            raise PlanError(f"--max-abandonment {self.max_abandonment:g}: expected a share "
                            "between 0 and 1 (0 cannot be met where visitors leave)")
        if self.max_occupancy is not None and not 0.0 < self.max_occupancy <= 1.0:
            raise PlanError(f"--max-occupancy {self.max_occupancy:g}: expected a share "
                            "above 0, at most 1")
        if not 0.0 <= self.shrinkage < 1.0:
            raise PlanError(f"--shrinkage {self.shrinkage:g}: expected a share from 0 to "
                            "below 1")

    def scheduled(self, on_line: int) -> int:
        return math.ceil(on_line / (1.0 - self.shrinkage) - 1e-9)


@dataclass(frozen=True)
class Need:
    agents: int  # on line
    service_level: float
    abandonment: float
    occupancy: float
    p_wait: float
    model: str  # erlang_a | erlang_c | none (no chats)
    bound: str  # the target that set the number


def erlang(c: int, iv: Interval, within_s: float, rate_s: float) -> tuple[float, float, float,
                                                                          float]:
    """(service level, abandonment, occupancy, P(wait)) of ``c`` servers."""
    lam, mu = iv.chats / rate_s, 1.0 / iv.handle_s
    # patience a thousand handle times long changes nothing Erlang C would say
    # (and the Erlang A series grows with it)
    if 0 < iv.patience_s < 1000 * iv.handle_s:
        theta = 1.0 / iv.patience_s
        a = theory.erlang_a(c, lam, mu, theta)
        sl = theory.erlang_a_service_level(c, lam, mu, theta, within_s)
        return sl, a.p_abandon, a.occupancy, a.p_wait
    if lam >= c * mu:
        return 0.0, 0.0, 1.0, 1.0
    e = theory.erlang_c(c, lam, mu)
    return theory.erlang_c_service_level(c, lam, mu, within_s), 0.0, e.occupancy, e.p_wait


def size(iv: Interval, targets: Targets, *, capacity: int = 1, interval_s: float = 1800.0,
         min_agents: int = 0) -> Need:
    """The fewest agents on line (``capacity`` chats each) meeting every target."""
    if iv.chats <= 0:
        return Need(min_agents, 1.0, 0.0, 0.0, 0.0, "none", "no chats")
    model = "erlang_a" if 0 < iv.patience_s < 1000 * iv.handle_s else "erlang_c"
    load = iv.chats / interval_s * iv.handle_s  # offered Erlangs
    n = max(min_agents, 1, math.floor(load / capacity))
    # beyond this many servers every target that can be met is met: P(wait)
    # is nil and the occupancy under its bound
    cap = math.ceil(load + 12 * math.sqrt(load) + 40)
    if targets.max_occupancy is not None:
        cap = max(cap, math.ceil(load / targets.max_occupancy) + capacity)
    bound = "minimum"
    while True:
        sl, ab, occ, pw = erlang(n * capacity, iv, targets.within_s, interval_s)
        misses = []
        if sl < targets.service_level:
            misses.append("service level")
        if targets.max_abandonment is not None and ab > targets.max_abandonment:
            misses.append("abandonment")
        if targets.max_occupancy is not None and occ > targets.max_occupancy:
            misses.append("occupancy")
        if not misses:
            return Need(n, sl, ab, occ, pw, model, bound)
        bound = misses[0]
        if n * capacity > cap:
            raise PlanError(f"an interval of {iv.chats:g} chats ({iv.handle_s:g} s handle"
                            + (f", {iv.patience_s:g} s patience" if iv.patience_s else "")
                            + f") cannot meet the {', '.join(misses)} target with any number "
                            f"of agents: at {n} agents it reaches service level {sl:.3f}, "
                            f"abandonment {ab:.4f}, occupancy {occ:.3f}")
        n += 1
