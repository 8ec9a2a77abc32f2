"""Required skills per skill (issue 21, item 5): ``[assignment] required_skills``
lists the skills a chat must be served by (an agent who has it), beside the
global ``skill_required`` switch (which requires every skill)."""

from __future__ import annotations

import pytest

from engine import RulesError, parse_rules
from tests.helpers import Driver, EventBuilder, assigned, of, one

RULES = {"assignment": {"required_skills": ["after_sales"]}}


def shop(rules: dict[str, object]) -> tuple[Driver, EventBuilder]:
    b = EventBuilder()
    d = Driver(rules)
    d.feed(b.agent("gen", capacity=5))  # no skills
    return d, b


def test_a_required_skill_waits_for_an_agent_who_has_it() -> None:
    d, b = shop(RULES)
    out = d.feed(b.request("v1", "c1", skill="after_sales"))
    assert not assigned(out) and one(out, "chat.queued")["chat"] == "c1"
    out = d.feed(b.agent("amy", capacity=1, skills={"after_sales": 2}))
    assert assigned(out) == {"c1": "amy"}


def test_other_skills_are_still_preferences() -> None:
    d, b = shop(RULES)
    out = d.feed(b.request("v1", "c1", skill="sales"))
    assert assigned(out) == {"c1": "gen"}


def test_the_global_switch_still_requires_every_skill() -> None:
    d, b = shop({"assignment": {"skill_required": True, "required_skills": ["after_sales"]}})
    out = d.feed(b.request("v1", "c1", skill="sales"))
    assert not assigned(out) and of(out, "chat.queued")


def test_a_freed_skilled_agent_takes_the_required_chat_from_its_queue() -> None:
    d, b = shop(RULES)
    d.feed(b.event("agent.state", agent="gen", status="offline"))
    d.feed(b.agent("amy", capacity=1, skills={"after_sales": 1}), b.request("v0", "c0"))
    out = d.feed(b.request("v1", "c1", skill="after_sales"), b.request("v2", "c2"))
    assert len(of(out, "chat.queued")) == 2
    out = d.feed(b.end("c0"))
    assert assigned(out) == {"c1": "amy"}
    out = d.feed(b.agent("gen", capacity=5))
    assert assigned(out) == {"c2": "gen"}


def test_rules_that_do_not_use_the_key_keep_their_hash() -> None:
    assert parse_rules({}).hash == "369eb92931e9"  # as before the key existed
    assert parse_rules(RULES).hash != parse_rules({}).hash


def test_required_skills_is_a_list_of_names() -> None:
    assert parse_rules(RULES).required_skills == frozenset({"after_sales"})
    assert parse_rules({}).required_skills == frozenset()
    with pytest.raises(RulesError, match="assignment.required_skills"):
        parse_rules({"assignment": {"required_skills": "after_sales"}})
