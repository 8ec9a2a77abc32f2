"""``agent.state`` is a partial update: a field left out keeps the agent's
current value; defaults (capacity 5, no skills, every channel and region)
apply only to an agent's first ``agent.state`` (issue 21, item 1)."""

from __future__ import annotations

from engine import Engine
from schemas.events import validate
from tests.helpers import Driver, EventBuilder, assigned, of, one


def test_a_presence_change_keeps_capacity_and_skills() -> None:
    """Chloe (capacity 1, presales 5) goes away and back without repeating
    her roster data: she still holds one chat at most and keeps her skill."""
    b = EventBuilder()
    d = Driver({"assignment": {"skill_required": True}})
    d.feed(b.agent("chloe", capacity=1, skills={"presales": 5}))
    d.feed(b.event("agent.state", agent="chloe", status="away"))
    d.feed(b.event("agent.state", agent="chloe", status="online"))
    out = d.feed(b.page("v1", "detail"), b.request("v1", "c1"),
                 b.page("v2", "detail"), b.request("v2", "c2"))
    assert assigned(out) == {"c1": "chloe"}  # capacity 1, not 5
    assert one(out, "chat.assigned")["reason"] == "skill"  # presales kept
    assert one(out, "chat.queued")["chat"] == "c2"
    a = d.engine.tenants["shop"].agents["chloe"]
    assert (a.capacity, a.skills, a.status) == (1, {"presales": 5}, "online")


def test_channels_and_regions_are_kept_too() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=2, channels=["app"], regions=["north"]))
    d.feed(b.event("agent.state", agent="a1", status="away"))
    a = d.engine.tenants["shop"].agents["a1"]
    assert (a.channels, a.regions) == (("app",), ("north",))


def test_a_given_field_replaces_the_current_value() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=1, skills={"sales": 2}))
    d.feed(b.event("agent.state", agent="a1", status="online", skills={"billing": 3}))
    a = d.engine.tenants["shop"].agents["a1"]
    assert (a.capacity, a.skills) == (1, {"billing": 3})


def test_a_new_agent_gets_the_defaults() -> None:
    b = EventBuilder()
    d = Driver()
    out = d.feed(b.event("agent.state", agent="a1", status="online"),
                 *(b.request(f"v{i}", f"c{i}") for i in range(6)))
    assert len(assigned(out)) == 5 and len(of(out, "chat.queued")) == 1
    a = d.engine.tenants["shop"].agents["a1"]
    assert (a.skills, a.channels, a.regions) == ({}, None, None)


def test_the_decoder_leaves_absent_fields_absent() -> None:
    """The engine must know what was absent: the decoder fills no default."""
    ev = validate({"type": "agent.state", "id": "x", "ts": 1, "tenant": "t",
                   "agent": "a", "status": "away"})
    assert "capacity" not in ev and "skills" not in ev


def test_a_restored_engine_keeps_what_a_partial_update_kept() -> None:
    b = EventBuilder()
    e = Engine()
    for ev in (b.agent("a1", capacity=1, skills={"sales": 1}),
               b.event("agent.state", agent="a1", status="away")):
        e.apply(validate(ev))
    r = Engine.restore(e.rules, e.snapshot())
    r.apply(validate(b.event("agent.state", agent="a1", status="online")))
    a = r.tenants["shop"].agents["a1"]
    assert (a.capacity, a.skills) == (1, {"sales": 1})
