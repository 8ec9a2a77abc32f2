"""Routing steps (engine/steps.py): each kind, what skips a step, timeouts, a
tenant's own list, the overflow step, and steps derived from older rules."""

from __future__ import annotations

from typing import Any

import pytest

from engine import parse_rules
from engine.rules import RulesError
from engine.steps import ANY, EXCLUSIVE, LAST, Step, derived
from tests.helpers import Driver, EventBuilder, of, one, types


def steps_rules(*steps: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"routing": {"steps": list(steps)}, **more}


EXPERTS = steps_rules(
    {"name": "experts", "agents": "skilled", "min_level": 4, "timeout_s": 30},
    {"name": "anyone", "agents": "any"},
)


# ------------------------------------------------------------------ rules


def test_rules_without_steps_derive_them_from_the_older_keys() -> None:
    r = parse_rules({})
    assert [(s.name, s.agents, s.timeout_ms, s.from_arrival) for s in r.steps] == [
        ("exclusive", EXCLUSIVE, 120_000, True), ("last", LAST, 60_000, True),
        ("any", ANY, 0, False)]
    assert not r.steps_given
    no_waits = parse_rules({"assignment": {"sticky_wait_s": 0, "exclusive_wait_s": 0}})
    assert no_waits.steps == (Step("any", ANY),)
    # a baseline policy never reserved: anyone, at once
    assert parse_rules({"policy": "fifo_round_robin"}).steps == (Step("any", ANY),)
    assert derived(True, 0, 5) == (Step("last", LAST, 5, from_arrival=True), Step("any", ANY))


def test_rules_read_steps_and_a_tenants_own_list() -> None:
    r = parse_rules({"routing": {
        "steps": [{"name": "experts", "agents": "skilled", "min_level": 4, "timeout_s": 30,
                   "predictive": True},
                  {"name": "platform", "agents": "any", "tenant": "platform"}],
        "tenants": {"acme": {"steps": [{"name": "anyone", "agents": "any"}]}}}})
    assert r.steps_given
    assert r.steps_for("shop") == (
        Step("experts", "skilled", 30_000, 4, True), Step("platform", "any", tenant="platform"))
    assert r.steps_for("acme") == (Step("anyone", "any"),)
    # a rules file without them keeps its hash
    assert parse_rules({}).hash == parse_rules({"routing": {"steps": []}}).hash


@pytest.mark.parametrize(("steps", "message"), [
    ([{"name": "x"}], "key 'routing.steps[0].agents' is missing"),
    ([{"name": "x", "agents": "some"}], "must be one of exclusive, last, skilled, any"),
    ([{"name": "x", "agents": "any", "min_level": 2}], "applies to agents = \"skilled\" only"),
    ([{"name": "x", "agents": "any", "predictive": True}], "needs a timeout_s > 0"),
    ([{"name": "x", "agents": "any", "wait": 3}], "unknown key 'routing.steps[0].wait'"),
    ([{"name": "x", "agents": "any"}, {"name": "x", "agents": "any"}], "repeats the step name"),
    ([{"name": "x", "agents": "any", "tenant": "elsewhere"}],
     "key 'routing.steps[0].tenant' must be the platform tenant"),
    ([{"name": "transfer", "agents": "any"}], "other than 'transfer'"),
    ([{"name": "x", "agents": "any", "timeout_s": 0.0001}], "must be 0 or a number of seconds"),
    ([{"name": "x", "agents": "any", "timeout_s": 1e12}], "must be 0 or a number of seconds"),
    ([{"name": "x", "agents": "skilled", "min_level": 0}], "must be an integer >= 1"),
    ([{"name": "x", "agents": "skilled", "min_level": 6}], "must be a skill level 1-5"),
    ({"name": "x"}, "must be a list of tables"),
])
def test_bad_steps_are_refused_naming_the_key(steps: object, message: str) -> None:
    with pytest.raises(RulesError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_rules({"routing": {"steps": steps}})


def test_a_tenant_table_needs_steps() -> None:
    with pytest.raises(RulesError, match="must name at least one step"):
        parse_rules({"routing": {"tenants": {"acme": {"steps": []}}}})
    with pytest.raises(RulesError, match=r"unknown key 'routing.tenants.acme.step' \(expected"):
        parse_rules({"routing": {"tenants": {"acme": {"step": []}}}})
    with pytest.raises(RulesError, match="key 'routing.tenants.acme.steps' is missing"):
        parse_rules({"routing": {"tenants": {"acme": {}}}})


# ------------------------------------------------------------ step kinds


def test_a_skilled_step_waits_for_an_agent_at_its_level_then_moves_on_silently() -> None:
    b, d = EventBuilder(), Driver(EXPERTS)
    d.feed(b.agent("novice", skills={"sales": 2}), b.agent("expert", capacity=1,
                                                           skills={"sales": 5}))
    d.feed(b.request("v0", "c0", skill="sales"))  # the expert takes the first
    out = d.feed(b.request("v1", "c1", skill="sales"))
    assert types(out) == ["chat.queued"]  # the novice is there, not allowed yet
    b.wait(28)
    assert d.feed(b.clock()) == []
    out = d.feed(b.clock(ts=b.now + 2_000))  # 30 s after the request: anyone
    a = one(out, "chat.assigned", chat="c1")
    assert (a["agent"], a["step"], a["cause"]) == ("novice", "anyone", "timer")
    assert types(out) == ["chat.assigned"]  # moving on emitted nothing else


def test_a_skilled_step_takes_an_expert_who_frees_up_within_its_time() -> None:
    b, d = EventBuilder(), Driver(EXPERTS)
    d.feed(b.agent("novice", skills={"sales": 2}),
           b.agent("expert", capacity=1, skills={"sales": 4}))
    d.feed(b.request("v0", "c0", skill="sales"), b.request("v1", "c1", skill="sales"))
    out = d.feed(b.end("c0"))
    assert one(out, "chat.assigned", chat="c1")["agent"] == "expert"
    assert one(out, "chat.assigned", chat="c1")["step"] == "experts"


def test_a_chat_without_a_skill_skips_a_skilled_step() -> None:
    b, d = EventBuilder(), Driver(EXPERTS)
    d.feed(b.agent("novice", skills={"sales": 1}))
    out = d.feed(b.page("v1", "home"), b.request("v1", "c1"))
    assert one(out, "chat.assigned")["step"] == "anyone"


def test_an_exclusive_step_holds_the_chat_for_its_agent_and_is_skipped_without_one() -> None:
    rules = steps_rules({"name": "mine", "agents": "exclusive", "timeout_s": 60},
                        {"name": "anyone", "agents": "any"})
    b, d = EventBuilder(), Driver(rules)
    d.feed(b.agent("ex", capacity=1), b.agent("other"), b.arrive("v1", exclusive_agent="ex"),
           b.arrive("v0", exclusive_agent="ex"))
    assert one(d.feed(b.request("v0", "c0")), "chat.assigned")["agent"] == "ex"
    out = d.feed(b.request("v1", "c1"))
    assert types(out) == ["chat.queued"]  # "other" is free: the chat waits for "ex"
    out = d.feed(b.end("c0"))
    a = one(out, "chat.assigned", chat="c1")
    assert (a["agent"], a["step"], a["reason"]) == ("ex", "mine", "exclusive")
    # a visitor without an exclusive agent starts at the next step
    assert one(d.feed(b.request("v2", "c2")), "chat.assigned")["step"] == "anyone"


def test_a_last_step_is_skipped_for_a_first_time_visitor_and_when_that_agent_is_away() -> None:
    rules = steps_rules({"name": "back", "agents": "last", "timeout_s": 60},
                        {"name": "anyone", "agents": "any"})
    b, d = EventBuilder(), Driver(rules)
    d.feed(b.agent("ann", capacity=1), b.agent("bob", capacity=1))
    first = one(d.feed(b.request("v1", "c1")), "chat.assigned")
    assert first["step"] == "anyone"
    served = first["agent"]
    other = "bob" if served == "ann" else "ann"
    d.feed(b.end("c1"), b.request("v9", "c9"))  # someone else takes the free agent
    d.feed(b.end("c9"))
    busy = d.feed(b.request("v8", "c8"))
    holder = one(busy, "chat.assigned")["agent"]
    out = d.feed(b.request("v1", "c2"))  # back: waits for their last agent if busy
    if holder == served:
        assert types(out) == ["chat.queued"]
        out = d.feed(b.end("c8"))
    a = one(out, "chat.assigned", chat="c2")
    assert (a["agent"], a["step"], a["reason"]) == (served, "back", "sticky")
    d.feed(b.end("c2"), b.away(served))
    a = one(d.feed(b.request("v1", "c3")), "chat.assigned")
    assert (a["agent"], a["step"]) == (other, "anyone")


def test_the_step_timeout_counts_from_entering_the_step() -> None:
    rules = steps_rules({"name": "experts", "agents": "skilled", "min_level": 5, "timeout_s": 10},
                        {"name": "good", "agents": "skilled", "min_level": 3, "timeout_s": 10},
                        {"name": "anyone", "agents": "any"})
    b, d = EventBuilder(), Driver(rules)
    d.feed(b.agent("mid", skills={"sales": 3}), b.agent("low", skills={"sales": 1}),
           b.away("mid"))
    t0 = b.now
    d.feed(b.request("v1", "c1", skill="sales", ts=t0))
    assert d.feed(b.clock(ts=t0 + 10_000)) == []  # to "good": nobody there online
    a = one(d.feed(b.agent("mid", ts=t0 + 15_000)), "chat.assigned")
    assert (a["agent"], a["step"], a["wait_ms"]) == ("mid", "good", 15_000)


def test_moving_on_keeps_the_chats_priority_and_place() -> None:
    b, d = EventBuilder(), Driver({**EXPERTS, "modes": {"default": "human_only"}})
    d.feed(b.agent("novice", capacity=1, skills={"sales": 1}), b.away("novice"))
    d.feed(b.page("v1", "checkout"), b.request("v1", "c1", skill="sales"))
    d.feed(b.page("v2", "home"), b.request("v2", "c2"))
    eng = d.engine
    before = eng.tenants["shop"].order()
    b.wait(40)
    d.feed(b.clock())
    assert eng.tenants["shop"].order() == before == ["c1", "c2"]
    out = d.feed(b.agent("novice"))
    assert one(out, "chat.assigned")["chat"] == "c1"


def test_a_tenants_own_steps_replace_the_default_list() -> None:
    rules = {"routing": {
        "steps": [{"name": "experts", "agents": "skilled", "min_level": 5}],
        "tenants": {"acme": {"steps": [{"name": "anyone", "agents": "any"}]}}}}
    d = Driver(rules)
    shop, acme = EventBuilder("shop", prefix="s"), EventBuilder("acme", prefix="a")
    d.feed(shop.agent("n", skills={"sales": 1}), acme.agent("n", skills={"sales": 1}))
    assert types(d.feed(shop.request("v1", "c1", skill="sales"))) == ["chat.queued"]
    assert one(d.feed(acme.request("v1", "c1", skill="sales")), "chat.assigned")["step"] == \
        "anyone"


def test_a_step_naming_the_platform_overflows_the_chat_when_reached() -> None:
    rules = steps_rules({"name": "own", "agents": "any", "timeout_s": 20},
                        {"name": "platform", "agents": "any", "tenant": "platform"},
                        modes={"default": "human_only"})
    d = Driver(rules)
    shop, pf = EventBuilder("shop", prefix="s"), EventBuilder("platform", prefix="p")
    d.feed(pf.agent("p1"))
    t0 = shop.now + 1000
    assert types(d.feed(shop.request("v1", "c1", ts=t0))) == ["chat.queued"]
    assert d.feed(shop.clock(ts=t0 + 19_999)) == []
    out = d.feed(shop.clock(ts=t0 + 20_000))
    assert types(out) == ["chat.overflowed", "chat.assigned"]
    a = out[1]
    assert (a["tenant"], a["origin"], a["agent"], a["wait_ms"]) == ("platform", "shop", "p1",
                                                                    20_000)


def test_past_its_last_step_a_chat_waits_for_anyone() -> None:
    rules = steps_rules({"name": "experts", "agents": "skilled", "min_level": 5, "timeout_s": 5})
    b, d = EventBuilder(), Driver(rules)
    d.feed(b.agent("n", skills={"sales": 1}))
    assert one(d.feed(b.request("v1", "c1")), "chat.assigned")["step"] == "experts"
    assert types(d.feed(b.request("v2", "c2", skill="sales"))) == ["chat.queued"]
    b.wait(5)
    a = one(d.feed(b.clock()), "chat.assigned")
    assert (a["chat"], a["agent"], a["step"]) == ("c2", "n", "experts")


def test_a_declined_chat_stays_in_its_step() -> None:
    b, d = EventBuilder(), Driver({**EXPERTS, "assignment": {"acceptance_required": True}})
    d.feed(b.agent("e1", skills={"sales": 4}), b.agent("e2", skills={"sales": 4}),
           b.agent("novice", skills={"sales": 1}))
    first = one(d.feed(b.request("v1", "c1", skill="sales")), "chat.assigned")
    out = d.feed(b.decline("c1", first["agent"]))
    again = one(out, "chat.assigned")
    assert again["agent"] in {"e1", "e2"} - {first["agent"]} and again["step"] == "experts"


def test_restored_engine_keeps_each_chats_step_and_timer() -> None:
    from engine import Engine
    b, d = EventBuilder(), Driver(EXPERTS)
    d.feed(b.agent("novice", skills={"sales": 1}), b.agent("x", capacity=1,
                                                           skills={"sales": 5}))
    d.feed(b.request("v0", "c0", skill="sales"))
    b.wait(10)
    d.feed(b.request("v1", "c1", skill="sales"))
    restored = Engine.restore(d.engine.rules, d.engine.snapshot())
    b.wait(29)
    late = b.clock()
    for eng in (d.engine, restored):
        a = one(eng.apply(late), "chat.assigned")
        assert (a["chat"], a["agent"], a["step"], a["wait_ms"]) == ("c1", "novice", "anyone",
                                                                    30_000)


def test_steps_apply_under_a_baseline_policy_too() -> None:
    b, d = EventBuilder(), Driver({**EXPERTS, "policy": "least_loaded"})
    d.feed(b.agent("novice", skills={"sales": 1}))
    out = d.feed(b.request("v1", "c1", skill="sales"))
    assert types(out) == ["chat.queued"]
    assert of(d.feed(b.clock(ts=b.now + 30_000)), "chat.assigned", step="anyone")


def test_a_reserving_step_after_a_skilled_one_does_not_keep_its_skill_level() -> None:
    """The visitor's last agent (level 1) is held for them after the experts' step."""
    rules = steps_rules({"name": "experts", "agents": "skilled", "min_level": 3, "timeout_s": 10},
                        {"name": "mine", "agents": "last", "timeout_s": 60},
                        {"name": "anyone", "agents": "any"}, modes={"default": "human_only"})
    b, d = EventBuilder(), Driver(rules)
    d.feed(b.agent("L", capacity=1, skills={"s": 1}))
    d.feed(b.request("v1", "c0"), b.end("c0"))  # L served v1 (no skill: experts skipped)
    d.feed(b.agent("E", capacity=1, skills={"s": 3}), b.request("vx", "cx", skill="s"))
    d.feed(b.request("vy", "cy"))  # L busy
    d.feed(b.agent("G", capacity=1))  # free, without the skill
    d.feed(b.request("v1", "c1", skill="s"))
    b.wait(10)
    assert d.feed(b.clock()) == []  # on to "mine": held for L, not given to G
    a = one(d.feed(b.end("cy")), "chat.assigned", chat="c1")
    assert (a["agent"], a["step"], a["reason"]) == ("L", "mine", "sticky")


def test_a_transfer_after_a_skilled_step_reaches_an_agent_below_its_level() -> None:
    """The transfer's target needs no level; a restored engine agrees."""
    from engine import Engine
    rules = steps_rules({"name": "experts", "agents": "skilled", "min_level": 3},
                        modes={"default": "human_only"})
    b, d = EventBuilder(), Driver(rules)
    d.feed(b.agent("x", capacity=1, skills={"s": 3}), b.agent("bob", capacity=1,
                                                               skills={"s": 1}))
    d.feed(b.request("v1", "c1", skill="s"))
    restored = Engine.restore(d.engine.rules, d.engine.snapshot())
    move = b.transfer("c1", "x", to_agent="bob")
    for eng in (d.engine, restored):
        a = one(eng.apply(move), "chat.assigned")
        assert (a["agent"], a["reason"], a["step"]) == ("bob", "transfer", "transfer")
