"""The priority policy's pick from score classes equals a scan of every agent."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine, Rules, parse_rules
from engine.policies import PriorityPolicy
from engine.scoring import eligible, match_total
from engine.state import ONLINE, Agent, Chat, Visitor
from engine.tenant import Tenant
from schemas.events import validate
from tests.helpers import Driver, EventBuilder, assigned, run
from tests.strategies import streams


@st.composite
def priority_rules(draw: st.DrawFn) -> Rules:
    weight = st.sampled_from([0.0, 2.5, 5.0, 10.0, 20.0])
    return parse_rules({
        "policy": "priority",
        "assignment": {
            "skill_required": draw(st.booleans()),
            "channel_required": draw(st.booleans()),
            "region_required": draw(st.booleans()),
            "acceptance_required": draw(st.booleans()),
            "weights": {k: draw(weight) for k in ("skill", "load", "region", "channel")},
        },
    })


def scan(rules: Rules, t: Tenant, c: Chat, v: Visitor) -> Agent | None:
    """The definition: among agents with room that may take the chat (its skill's
    agents first), the highest match score, then the lowest seq."""

    def best(pool: list[Agent]) -> Agent | None:
        ok = [a for a in pool if eligible(rules, a, c, v)]
        return min(ok, key=lambda a: (-match_total(rules, a, c, v), a.seq), default=None)

    # room: capacity beyond the chats held and the wrap-ups running
    free = [a for a in t.agents.values() if a.status == ONLINE and a.used < a.capacity]
    if c.skill is not None:
        found = best([a for a in free if c.skill in a.skills])
        if found is not None or rules.skill_required:
            return found
    return best(free)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(priority_rules(), streams(max_size=80))
def test_roster_pick_equals_a_scan_of_all_agents(r: Rules, events: list[dict[str, Any]]) -> None:
    eng = Engine(r)
    policy = PriorityPolicy()
    for i, ev in enumerate(events):
        eng.apply(validate(ev), i)
        for t in eng.tenants.values():
            for c in t.chats.values():
                v = t.visitors[c.visitor]
                assert policy.pick(r, t, c, v) is scan(r, t, c, v)


def test_a_region_match_lifts_a_lower_class_above_a_better_one() -> None:
    # 'hi' outscores 'lo' by one skill level (5 points); serving the visitor's
    # region is worth 10: the walk over classes must not stop at 'hi'
    rules = {"assignment": {"weights": {"skill": 5.0, "load": 0.0, "region": 10.0,
                                        "channel": 0.0}}}
    b = EventBuilder()
    out = run([
        b.agent("hi", capacity=2, skills={"sales": 2}),
        b.agent("lo", capacity=2, skills={"sales": 1}, regions=["north"]),
        b.arrive("v1", region="north"),
        b.request("v1", "c1", skill="sales"),
        b.arrive("v2", region="south"),
        b.request("v2", "c2", skill="sales"),
    ], rules)
    assert assigned(out) == {"c1": "lo", "c2": "hi"}


def test_among_alike_agents_the_first_seen_wins_and_excluded_ones_are_skipped() -> None:
    b = EventBuilder()
    agents = [b.agent(f"a{i}", capacity=1) for i in range(50)]
    d = Driver({"assignment": {"acceptance_required": True}})
    d.feed(*agents, b.request("v1", "c1"))
    assert assigned(d.outputs) == {"c1": "a0"}
    d.feed(b.decline("c1", "a0"))
    assert assigned(d.outputs[-1:]) == {"c1": "a1"}
