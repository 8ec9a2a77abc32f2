"""The simulator, through the engine under ``fifo_round_robin``, matches queueing theory.

For Erlang C (M/M/c) and Erlang A (M/M/c+M) at three loads each (the highest
above 90 % occupancy), eight seeded replications of a few simulated hours, the
first quarter hour cut as warm-up: the theoretical P(wait), mean wait (over
all arrivals), service level or abandonment, and occupancy each fall inside the
95 % confidence interval of the replications' means. Handle times are short
(10 s) so that each replication sees 7,000-16,000 chats in well under a second.
"""

from __future__ import annotations

import pytest

from tests.simulators.queueing import Interval, ci95, queue_run

REPS = 8
HOURS = 4.0
WARMUP_H = 0.25
HANDLE_S = 10.0
AGENTS = 10
#: an interval of width zero (every replication answered everyone within 20 s)
#: still admits values within this of its mean
FLOOR = 1e-3

CASES = [
    # scenario, offered Erlangs, mean patience (s), metrics compared with theory
    ("erlang_c", 5.0, 0.0, ("p_wait", "wait_all_mean_s", "service_level", "occupancy")),
    ("erlang_c", 8.0, 0.0, ("p_wait", "wait_all_mean_s", "service_level", "occupancy")),
    ("erlang_c", 9.3, 0.0, ("p_wait", "wait_all_mean_s", "service_level", "occupancy")),
    ("erlang_a", 8.0, 20.0, ("p_wait", "wait_all_mean_s", "abandonment_rate", "occupancy")),
    ("erlang_a", 10.0, 20.0, ("p_wait", "wait_all_mean_s", "abandonment_rate", "occupancy")),
    ("erlang_a", 12.0, 20.0, ("p_wait", "wait_all_mean_s", "abandonment_rate", "occupancy")),
]


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "erlangs", "patience_s", "metrics"), CASES,
                         ids=[f"{c[0]}-{c[1]:g}E" for c in CASES])
def test_simulation_matches_theory_within_95_ci(
    scenario: str, erlangs: float, patience_s: float, metrics: tuple[str, ...]
) -> None:
    runs = [
        queue_run(scenario, agents=AGENTS, erlangs=erlangs, handle_s=HANDLE_S,
                  patience_s=patience_s, hours=HOURS, warmup_h=WARMUP_H, seed=seed)
        for seed in range(1, REPS + 1)
    ]
    theory = runs[0]["theory"]
    assert theory["model"] == scenario
    misses = []
    for key in metrics:
        iv = ci95([r["overall"][key] for r in runs])
        iv = Interval(iv.mean, max(iv.half, FLOOR))
        if theory[key] not in iv:
            misses.append(f"{key}: simulated {iv}, theory {theory[key]:.4f}")
    assert not misses, "; ".join(misses)
    # the warm-up is cut and every counted chat ended one way
    for r in runs:
        o = r["overall"]
        assert o["open"] == 0
        assert o["served"] + o["abandoned"] == o["chats"]


def test_high_load_case_is_above_90_percent_occupancy() -> None:
    from simulators import theory

    c = theory.erlang_c(AGENTS, 9.3 / HANDLE_S, 1 / HANDLE_S)
    a = theory.erlang_a(AGENTS, 12.0 / HANDLE_S, 1 / HANDLE_S, 1 / 20.0)
    assert c.occupancy > 0.9
    assert a.occupancy > 0.9
