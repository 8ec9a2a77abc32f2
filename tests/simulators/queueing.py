"""Replications of the queue scenarios, for the checks against queueing theory."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from engine import parse_rules
from simulators.scenario import load_scenario
from simulators.simulation import Simulation

# two-sided 95 % Student t quantiles by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 14: 2.145, 19: 2.093}


@dataclass(frozen=True)
class Interval:
    mean: float
    half: float

    def __contains__(self, x: float) -> bool:
        return abs(x - self.mean) <= self.half

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.half:.4f}"


def ci95(values: list[float]) -> Interval:
    n = len(values)
    sd = statistics.stdev(values)
    return Interval(statistics.fmean(values), T95[n - 1] * sd / math.sqrt(n))


def queue_run(scenario: str, *, agents: int, erlangs: float, handle_s: float,
              patience_s: float, hours: float, warmup_h: float, seed: int,
              policy: str = "fifo_round_robin") -> dict[str, Any]:
    """One replication: the summary (warm-up removed) with theory alongside."""
    sc = load_scenario(scenario, [
        f"queue.agents={agents}", f"queue.offered_erlangs={erlangs}",
        f"queue.handle_s={handle_s}", f"queue.patience_s={patience_s}",
        f"queue.warmup_h={warmup_h}", f'rules.policy="{policy}"',
    ])
    sim = Simulation(sc, parse_rules(sc["rules"]), seed=seed, hours=hours)
    return sim.summary(sim.run())
