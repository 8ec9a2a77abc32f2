"""Properties of a re-simulation, over policies, rule weights and seeds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import POLICIES
from simulators.candidates import trace_rules
from simulators.tuning import apply
from simulators.whatif import Trace, read_trace, run_candidate


@pytest.fixture(scope="module")
def trace(scarce_trace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trace]:
    base, _ = trace_rules(str(scarce_trace), None)
    t = read_trace(str(scarce_trace), base, str(tmp_path_factory.mktemp("exo")))
    yield t
    Path(t.exo).unlink()


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy=st.sampled_from(sorted(POLICIES)), checkout=st.floats(0, 200),
       aging=st.floats(0.01, 2.0), seed=st.integers(0, 10_000))
def test_every_chat_is_accounted_for_and_runs_repeat(trace: Trace, policy: str,
                                                     checkout: float, aging: float,
                                                     seed: int) -> None:
    rules = apply(trace.rules, {"policy": policy, "priority.pages.checkout": checkout,
                                "priority.aging_per_s": aging})
    s = run_candidate(trace, rules, seed)
    o, rec = s["overall"], trace.recorded["overall"]
    # the same chats, every one of them answered, abandoned or still open when the
    # history ends (each counts once: CONTRACT.md section 8)
    assert o["chats"] == rec["chats"] and o["human"] == rec["human"]
    assert o["assigned"] + o["abandoned"] <= o["human"]
    assert o["human"] - o["assigned"] - o["abandoned"] <= o["open"]
    # orders no chat led to are kept; orders after chats only where a chat was served
    assert o["orders"] - o["chat_orders"] == rec["orders"] - rec["chat_orders"]
    assert o["chat_orders"] <= o["assigned"]
    # the same seed gives the same numbers
    assert orjson.dumps(run_candidate(trace, rules, seed)) == orjson.dumps(s)
