"""Traces for the what-if tests, simulated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main

#: a shop where checkout chats are scarce and valuable: most chats come from the
#: home page and buy nothing; a checkout chat is followed by a large order unless
#: the visitor waited long. Agents are too few, so the queue's order decides.
SCARCE_CHECKOUT = """
name = "scarce_checkout"
kind = "shop"
start = 2024-06-03T08:00:00+08:00
hours = 3.0

[rules]
policy = "fifo_round_robin"

[traffic]
curve = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
         1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
channels = { web = 1.0 }
order_value = { mean = 900.0, sigma = 0.2 }

[journey]
entry = { home = 0.9, checkout = 0.1 }
dwell_s = { home = 10.0, checkout = 10.0 }
help = { home = 0.5, checkout = 0.5 }
[journey.next]
home = { exit = 1.0 }
checkout = { exit = 1.0 }

[chat]
patience_s = 150.0
handle_s = 120.0
handle_dist = "exponential"
order_after_chat = { default = 0.0, checkout = 0.9 }
wait_decay_s = 60.0

[[tenants]]
name = "shop"
visitors_per_hour = 300

[[tenants.agents]]
prefix = "a"
count = 4
capacity = 1
shift = [0.0, 4.0]
"""


def simulate(out: Path, scenario: str, hours: float, seed: int, *extra: str) -> Path:
    rc = main(["simulate", "--scenario", scenario, "--hours", str(hours), "--seed", str(seed),
               "--out", str(out), "--quiet", *extra])
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def demo_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three hours of the demo shop (acceptance, declines, bot first on home)."""
    return simulate(tmp_path_factory.mktemp("demo") / "t", "demo", 3.0, 11)


@pytest.fixture(scope="session")
def scarce_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("scarce")
    scenario = d / "scarce_checkout.toml"
    scenario.write_text(SCARCE_CHECKOUT, encoding="utf-8")
    return simulate(d / "t", str(scenario), 3.0, 5)
