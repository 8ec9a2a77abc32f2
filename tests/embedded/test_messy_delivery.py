"""Messy delivery: the invariant suite of tests/engine/test_invariants.py over
streams with re-sent events, timestamps out of order, accepts after the end,
ends of unknown chats, agents going offline with chats and visitors leaving
twice (``tests.strategies.messy_streams``). Never an exception, and
capacity, a single holder, online-only and own-tenant-only hold after every
event; the contract's "changes nothing and emits nothing" cases are checked as
such."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from engine import Engine, Rules
from schemas.events import validate
from tests.engine.test_invariants import SETTINGS, check_state
from tests.strategies import messy_streams, rules
from tests.tally import TALLY

pytestmark = pytest.mark.reliability

Messy = tuple[list[dict[str, Any]], list[tuple[int, str]]]


@SETTINGS
@given(rules(), messy_streams())
def test_invariants_hold_under_messy_delivery(r: Rules, messy: Messy) -> None:
    events, marks = messy
    for _, kind in marks:
        TALLY[f"mess.{kind}"] += 1
    eng = Engine(r)
    agents: dict[str, set[str]] = {}
    overflowed: set[tuple[str, str, str]] = set()
    for i, ev in enumerate(events):
        if ev["type"] == "agent.state":
            agents.setdefault(ev["tenant"], set()).add(ev["agent"])
        out = eng.apply(validate(ev), i)
        check_state(eng, out, ev)  # capacity, one holder per chat, online only
        held: dict[tuple[str, str, str], str] = {}  # within this event's outputs
        for o in out:
            # an overflowed chat keeps its id at the platform, with ``origin``
            key = (o["tenant"], o.get("origin", ""), o.get("chat", ""))
            if o["type"] == "chat.overflowed":
                overflowed.add((o["tenant"], o["chat"], o["to"]))
            elif o["type"] in ("chat.requeued", "chat.abandoned"):
                held.pop(key, None)
            elif o["type"] == "chat.assigned":
                TALLY["assignments"] += 1
                if key in held:
                    TALLY["double_assignments"] += 1
                    raise AssertionError(f"{key} assigned to {o['agent']} and {held[key]}")
                held[key] = o["agent"]
                assert o["agent"] in agents.get(o["tenant"], set())
                if "origin" in o:
                    assert (o["origin"], o["chat"], o["tenant"]) in overflowed


@SETTINGS
@given(rules(), messy_streams())
def test_contract_no_op_cases_emit_nothing(r: Rules, messy: Messy) -> None:
    """An end of a chat never requested, a ``chat.accepted`` right after the
    chat ended and a second ``visitor.left`` change nothing and emit nothing
    (a timer that comes due at that moment may still fire: only timer outputs
    are allowed)."""
    events, _ = messy
    eng = Engine(r)
    for i, ev in enumerate(events):
        out = eng.apply(validate(ev), i)
        prev = events[i - 1] if i else {}
        ours = [o for o in out if o["cause"] != "timer"]
        if ev["id"].startswith("m") and ev["type"] == "chat.ended" and ev["chat"].startswith(
                "ghost"):
            assert ours == []
        if (ev["id"].startswith("m") and ev["type"] == "chat.accepted"
                and prev.get("type") == "chat.ended" and prev.get("chat") == ev["chat"]
                and prev.get("tenant") == ev["tenant"]):
            assert ours == [], "an accept after the end did something"
        if (ev["type"] == "visitor.left" and prev.get("type") == "visitor.left"
                and prev.get("visitor") == ev["visitor"] and prev.get("tenant") == ev["tenant"]):
            TALLY["left_twice_checked"] += 1
            assert ours == [], "a second visitor.left did something"
