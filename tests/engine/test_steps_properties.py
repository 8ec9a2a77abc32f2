"""Properties of routing steps over drawn rules and streams (Hypothesis):
a step never assigns outside its allowance, and moving between steps never
changes a chat's priority or its place in the queue."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine, Rules, parse_rules
from engine.state import WAITING
from engine.steps import EXCLUSIVE, KINDS, LAST, SKILLED
from schemas.events import OVERFLOW_SEP, validate
from schemas.outputs import encode_lines
from tests.engine.test_invariants import restored_at, run
from tests.strategies import rules, streams

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: inputs that change a visitor's priority: the only ones that may re-key a waiting chat
REKEYING = frozenset({"page.viewed", "order.placed", "visitor.arrived", "chat.handed_over"})


@st.composite
def step_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    steps = []
    n = draw(st.integers(1, 4))
    for i in range(n):
        step: dict[str, Any] = {"name": f"s{i}", "agents": draw(st.sampled_from(KINDS)),
                                "timeout_s": draw(st.sampled_from([0, 0, 5, 30]))}
        if step["agents"] == SKILLED:
            step["min_level"] = draw(st.integers(1, 5))
        if step["agents"] in (SKILLED, "any") and step["timeout_s"] and draw(st.booleans()):
            step["predictive"] = True
        if i == n - 1 and draw(st.booleans()):
            step["tenant"] = "platform"
        steps.append(step)
    return steps


@st.composite
def step_rules(draw: st.DrawFn) -> Rules:
    data = dict(draw(rules()).data)
    data["routing"] = {"steps": draw(step_lists()), "tenants": {}}
    return parse_rules(data)


def _waiting(eng: Engine) -> dict[tuple[str, str], Any]:
    return {(t.name, c.key): c.qkey for t in eng.tenants.values() for c in t.chats.values()
            if c.status == WAITING}


def _people(eng: Engine) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    return {(t.name, v.id): (v.exclusive, v.last_agent) for t in eng.tenants.values()
            for v in t.visitors.values()}


@SETTINGS
@given(step_rules(), streams())
def test_a_step_assigns_only_to_the_agents_it_allows(r: Rules, events: list[dict[str, Any]],
                                                    ) -> None:
    eng = Engine(r)
    for i, ev in enumerate(events):
        people = _people(eng)
        for o in eng.apply(validate(ev), i):
            if o["type"] != "chat.assigned":
                continue
            t = eng.tenants[o["tenant"]]
            key = o["chat"] if "origin" not in o else o["origin"] + OVERFLOW_SEP + o["chat"]
            c = t.chats.get(key)
            if c is None or c.agent != o["agent"]:
                continue  # closed or moved on within the same input
            steps = r.steps_for(t.name)
            if not 0 <= c.step < len(steps):
                continue  # a transfer's own step, or past the last: anyone
            step = steps[c.step]
            assert o["step"] == step.name
            a = t.agents[o["agent"]]
            if step.agents == SKILLED:
                assert c.skill is not None and a.skills.get(c.skill, 0) >= step.min_level
            elif step.agents in (EXCLUSIVE, LAST):
                v = t.visitors[c.visitor]
                which = 0 if step.agents == EXCLUSIVE else 1
                before = people.get((t.name, v.id), (None, None))[which]
                after = (v.exclusive, v.last_agent)[which]
                assert o["agent"] in (before, after)


@SETTINGS
@given(step_rules(), streams())
def test_moving_between_steps_keeps_priority_and_place(r: Rules, events: list[dict[str, Any]],
                                                      ) -> None:
    eng = Engine(r)
    for i, ev in enumerate(events):
        before = _waiting(eng)
        order_before = {t.name: t.order() for t in eng.tenants.values()}
        out = eng.apply(validate(ev), i)
        if ev["type"] in REKEYING or any(o["type"] == "chat.overflowed" for o in out):
            continue  # (a chat handed over brings its visitor's priority to the platform)
        after = _waiting(eng)
        for k in before.keys() & after.keys():
            assert before[k] == after[k], f"{k} re-keyed by {ev['type']}"
        for t in eng.tenants.values():
            still = [key for key in order_before.get(t.name, []) if (t.name, key) in after]
            assert [key for key in t.order() if key in set(still)] == still


@SETTINGS
@given(step_rules(), streams(), st.data())
def test_a_restored_engine_walks_the_steps_as_an_uninterrupted_one(
        r: Rules, events: list[dict[str, Any]], data: st.DataObject) -> None:
    """Each chat's step, its time there, a transfer's target, the queue's
    pace and the predictive checks survive a restore at any cut."""
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(events)), min_size=1, max_size=3))))
    assert encode_lines(restored_at(r, events, cuts)) == encode_lines(run(r, events))
