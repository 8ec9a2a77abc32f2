"""SIGKILL ``routeq run --state`` at random points (named points inside the
runtime, a checkpoint write among them, and kills from outside at random
moments) over a long input split into many files; restart each time; nothing
lost, nothing applied twice, outputs deduplicated = the uninterrupted run.

``benchmarks/kill_harness.py`` is the harness; this runs it with fewer kills
(the benchmark does 100 over 200,000 events). tests/embedded/
test_crash_safety.py kills a few times over one file; this spreads the kills
over the whole input."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from benchmarks.kill_harness import harness
from tests.tally import TALLY

pytestmark = [pytest.mark.slow, pytest.mark.reliability]


def test_kills_at_random_points_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    report = harness(tmp_path, kills=12, events=60_000, seed=seed)
    assert report["kills"] >= 10, f"seed {seed}: too few kills landed: {report}"
    assert report["distinct_offsets_reached_at_kill"] >= 3, report
    TALLY["kills_survived"] += report["kills"]
