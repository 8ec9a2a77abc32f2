"""Routing behaviour of the engine, rule by rule, on small hand-made scenarios."""

from __future__ import annotations

import pytest

from engine import Engine, parse_rules
from schemas.events import validate
from schemas.outputs import SCORE_KEYS
from tests.helpers import T0, Driver, EventBuilder, assigned, of, one, run, types

SCORE = {"page", "loyalty", "returning", "level", "aging", "skill", "load", "sticky", "exclusive"}


# ------------------------------------------------------------- page weight


def test_checkout_chat_is_served_before_earlier_home_chat() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=1), b.page("v0", "home"), b.request("v0", "c0"))
    out = d.feed(
        b.page("v1", "home"), b.request("v1", "c1"),
        b.page("v2", "checkout"), b.request("v2", "c2"),
    )
    q1, q2 = of(out, "chat.queued")
    assert (q1["chat"], q1["priority"]) == ("c1", 0.0)
    assert (q2["chat"], q2["position"], q2["priority"]) == ("c2", 1, 50.0)  # ahead of c1
    out = d.feed(b.end("c0"))
    assert assigned(out) == {"c2": "a1"}
    a = one(out, "chat.assigned")
    assert a["score"]["page"] == 50.0 and a["wait_ms"] == 1000
    out = d.feed(b.end("c2"))
    assert assigned(out) == {"c1": "a1"}


def test_cart_beats_detail_beats_home_and_page_change_reorders_waiting_chat() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=1), b.request("v0", "c0"))
    d.feed(
        b.page("v1", "home"), b.request("v1", "c1"),
        b.page("v2", "detail"), b.request("v2", "c2"),
        b.page("v3", "cart"), b.request("v3", "c3"),
        b.page("v1", "checkout"),  # v1 moves on while waiting: now first
    )
    served = []
    for chat in ("c0", "c1", "c3"):
        served += list(assigned(d.feed(b.end(chat))))
    assert served == ["c1", "c3", "c2"]


def test_loyalty_and_level_raise_priority() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=1), b.request("v0", "c0"))
    d.feed(
        b.arrive("v1"), b.request("v1", "c1"),
        b.arrive("v2", customer={"member": True, "tier": 3, "orders": 4, "ltv": 2500}),
        b.request("v2", "c2"),
    )
    a = one(d.feed(b.end("c0")), "chat.assigned")
    assert a["chat"] == "c2"
    # member 10 + 4 orders + 2500 ltv * 2/1000 = 19; tier 3 -> 10
    assert (a["score"]["loyalty"], a["score"]["level"]) == (19.0, 10.0)


def test_aging_lets_an_old_chat_overtake() -> None:
    rules = {"priority": {"aging_per_s": 1.0}}
    b = EventBuilder()
    d = Driver(rules)
    d.feed(b.agent("a1", capacity=1), b.request("v0", "c0"))
    d.feed(b.page("v1", "home"), b.request("v1", "c1"))
    b.wait(60)  # c1 ages 60 points, more than the 50 of checkout
    d.feed(b.page("v2", "checkout"), b.request("v2", "c2"))
    a = one(d.feed(b.end("c0")), "chat.assigned")
    assert a["chat"] == "c1" and a["score"]["aging"] == pytest.approx(63.0)


# ------------------------------------------------------------------ sticky


def served_once(d: Driver, b: EventBuilder, visitor: str, agent: str) -> None:
    """``visitor`` is served by ``agent`` (the only one online) in chat ``<visitor>-0``."""
    out = d.feed(b.arrive(visitor), b.request(visitor, f"{visitor}-0"))
    assert assigned(out) == {f"{visitor}-0": agent}
    d.feed(b.end(f"{visitor}-0"))


def test_returning_customer_goes_to_last_agent() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=2))
    served_once(d, b, "v1", "a1")
    d.feed(b.request("x", "busy"), b.agent("a2", capacity=2))  # a1 half full, a2 empty
    out = d.feed(b.arrive("v1"), b.request("v1", "c1"))
    a = one(out, "chat.assigned")
    assert (a["agent"], a["reason"]) == ("a1", "sticky")
    assert a["score"]["sticky"] == 50.0 and a["score"]["returning"] == 15.0
    assert a["score"]["load"] == 10.0
    # without the history, the emptier agent would have won
    assert assigned(d.feed(b.request("new", "c2"))) == {"c2": "a2"}


def test_sticky_waits_for_busy_last_agent_within_bound() -> None:
    b = EventBuilder()
    d = Driver({"assignment": {"sticky_wait_s": 60}})
    d.feed(b.agent("a1", capacity=1))
    served_once(d, b, "v1", "a1")
    d.feed(b.request("x", "busy"), b.agent("a2", capacity=1))
    assert assigned(d.outputs)["busy"] == "a1"
    out = d.feed(b.arrive("v1"), b.request("v1", "c1"))
    q = one(out, "chat.queued")  # a2 is free, yet the chat waits for a1
    assert q["chat"] == "c1" and not of(out, "chat.assigned")
    b.wait(30)
    out = d.feed(b.end("busy"))
    a = one(out, "chat.assigned")
    assert (a["chat"], a["agent"], a["reason"]) == ("c1", "a1", "sticky")
    assert a["wait_ms"] == 31_000
    assert a["score"]["sticky"] == 50.0


def test_sticky_falls_back_to_another_agent_after_bound() -> None:
    b = EventBuilder()
    d = Driver({"assignment": {"sticky_wait_s": 60}})
    d.feed(b.agent("a1", capacity=1))
    served_once(d, b, "v1", "a1")
    d.feed(b.request("x", "busy"), b.agent("a2", capacity=1))
    assert assigned(d.outputs)["busy"] == "a1"
    out = d.feed(b.arrive("v1"), b.request("v1", "c1"))
    requested_at = b.now
    assert types(out) == ["chat.queued"]
    assert d.feed(b.clock(ts=requested_at + 59_999)) == []
    out = d.feed(b.clock(ts=requested_at + 60_000))
    a = one(out, "chat.assigned")
    assert (a["chat"], a["agent"], a["cause"]) == ("c1", "a2", "timer")
    assert a["reason"] == "best" and a["score"]["sticky"] == 0.0
    assert a["wait_ms"] == 60_000 and a["ts"] == requested_at + 60_000


def test_sticky_not_kept_for_an_offline_last_agent() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=1))
    served_once(d, b, "v1", "a1")
    d.feed(b.offline("a1"), b.agent("a2", capacity=1))
    out = d.feed(b.arrive("v1"), b.request("v1", "c1"))
    assert assigned(out) == {"c1": "a2"}


def test_sticky_reservation_released_when_last_agent_goes_away() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=1))
    served_once(d, b, "v1", "a1")
    d.feed(b.request("x", "busy"), b.agent("a2", capacity=1))
    d.feed(b.arrive("v1"), b.request("v1", "c1"))
    out = d.feed(b.away("a1"))  # no sense waiting for an agent on a break
    assert assigned(out) == {"c1": "a2"}
    assert not of(out, "chat.requeued")  # "busy" was accepted (no acceptance required)


# --------------------------------------------------------------- exclusive


def test_exclusive_agent_preferred_over_a_free_one() -> None:
    b = EventBuilder()
    out = run([
        b.agent("a1", capacity=3), b.agent("a2", capacity=3),
        b.arrive("v1", exclusive_agent="a2"), b.request("v1", "c1"),
    ])
    a = one(out, "chat.assigned")
    assert (a["agent"], a["reason"], a["score"]["exclusive"]) == ("a2", "exclusive", 100.0)


def test_exclusive_waits_for_busy_agent_within_bound() -> None:
    b = EventBuilder()
    d = Driver({"assignment": {"exclusive_wait_s": 120}})
    d.feed(b.agent("a2", capacity=1), b.request("x", "busy"), b.agent("a1", capacity=1))
    out = d.feed(b.arrive("v1", exclusive_agent="a2"), b.request("v1", "c1"))
    assert types(out) == ["chat.queued"]
    b.wait(100)
    out = d.feed(b.end("busy"))
    a = one(out, "chat.assigned")
    assert (a["chat"], a["agent"], a["reason"]) == ("c1", "a2", "exclusive")


def test_exclusive_falls_back_after_bound() -> None:
    b = EventBuilder()
    d = Driver({"assignment": {"exclusive_wait_s": 120, "sticky_wait_s": 60}})
    d.feed(b.agent("a2", capacity=1), b.request("x", "busy"), b.agent("a1", capacity=1))
    d.feed(b.arrive("v1", exclusive_agent="a2"), b.request("v1", "c1"))
    requested_at = b.now
    assert d.feed(b.clock(ts=requested_at + 119_000)) == []
    out = d.feed(b.clock(ts=requested_at + 121_000))
    a = one(out, "chat.assigned")
    assert (a["chat"], a["agent"], a["cause"], a["wait_ms"]) == ("c1", "a1", "timer", 120_000)
    assert a["reason"] == "best" and a["ts"] == requested_at + 120_000


def test_exclusive_customer_waits_out_an_away_break_but_not_offline() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a2", capacity=1), b.request("x", "busy"), b.agent("a1", capacity=1))
    d.feed(b.arrive("v1", exclusive_agent="a2"), b.request("v1", "c1"))
    assert of(d.feed(b.away("a2")), "chat.assigned") == []  # still reserved for a2
    out = d.feed(b.offline("a2"))
    assert assigned(out) == {"c1": "a1"}


# ------------------------------------------------------------------- skill

SKILL_RULES = {
    "skills": {
        "keywords": {"refund": "after_sales", "invoice": "billing"},
        "pages": {"after_sales": "after_sales", "cart": "sales"},
        "search": {"earbuds": "audio"},
        "categories": {"shoes": "fashion"},
    },
}


@pytest.mark.parametrize(
    ("setup", "request_fields", "skill"),
    [
        ([], {"skill": "vip"}, "vip"),
        ([], {"message": "I want a REFUND please"}, "after_sales"),
        ([("page", "after_sales", {})], {}, "after_sales"),
        ([("page", "cart", {})], {}, "sales"),
        ([("page", "search", {"keyword": "wireless Earbuds pro"})], {}, "audio"),
        ([("page", "detail", {"category": "shoes"})], {}, "fashion"),
        # precedence: explicit > message > page > search > category
        ([("page", "cart", {})], {"skill": "vip", "message": "refund"}, "vip"),
        ([("page", "cart", {})], {"message": "invoice"}, "billing"),
        ([("page", "search", {"keyword": "earbuds", "category": "shoes"})], {}, "audio"),
    ],
)
def test_skill_of_the_chat_picks_the_skilled_agent(
    setup: list[tuple[str, str, dict[str, str]]], request_fields: dict[str, str], skill: str
) -> None:
    b = EventBuilder()
    events = [
        b.agent("generalist", capacity=5),  # first in order, emptiest: wins without skills
        b.agent("expert", capacity=5, skills={skill: 2}),
        b.agent("other", capacity=5, skills={"unrelated": 5}),
    ]
    for _, page, fields in setup:
        events.append(b.page("v1", page, **fields))
    events.append(b.request("v1", "c1", **request_fields))
    a = one(run(events, SKILL_RULES), "chat.assigned")
    assert (a["agent"], a["reason"], a["skill"]) == ("expert", "skill", skill)
    assert a["score"]["skill"] == 20.0


def test_no_skill_goes_to_best_agent() -> None:
    b = EventBuilder()
    out = run([b.agent("a1", skills={"sales": 5}), b.agent("a2"), b.request("v1", "c1")],
              SKILL_RULES)
    a = one(out, "chat.assigned")
    assert (a["agent"], a["reason"]) == ("a1", "best") and "skill" not in a


def test_higher_skill_level_wins() -> None:
    b = EventBuilder()
    out = run([
        b.agent("a1", skills={"after_sales": 2}), b.agent("a2", skills={"after_sales": 5}),
        b.page("v1", "after_sales"), b.request("v1", "c1"),
    ], SKILL_RULES)
    assert assigned(out) == {"c1": "a2"}


def test_without_a_skilled_agent_the_chat_still_goes_to_someone() -> None:
    b = EventBuilder()
    out = run([b.agent("a1"), b.page("v1", "after_sales"), b.request("v1", "c1")], SKILL_RULES)
    a = one(out, "chat.assigned")
    assert (a["agent"], a["reason"], a["skill"]) == ("a1", "best", "after_sales")


def test_skill_required_waits_for_a_skilled_agent() -> None:
    rules = {**SKILL_RULES, "assignment": {"skill_required": True}}
    b = EventBuilder()
    d = Driver(rules)
    out = d.feed(b.agent("a1"), b.page("v1", "after_sales"), b.request("v1", "c1"))
    assert types(out) == ["chat.queued"]
    out = d.feed(b.agent("a2", skills={"after_sales": 1}))
    assert assigned(out) == {"c1": "a2"}


# -------------------------------------------------------------------- load


def test_least_loaded_among_equals() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=4, skills={"sales": 3}),
           b.agent("a2", capacity=4, skills={"sales": 3}))
    out = d.feed(*(b.request(f"v{i}", f"c{i}", skill="sales") for i in range(4)))
    assert list(assigned(out).values()) == ["a1", "a2", "a1", "a2"]
    d.feed(b.end("c0"), b.end("c2"))  # a1 now empty, a2 holds two
    a = one(d.feed(b.request("v9", "c9", skill="sales")), "chat.assigned")
    assert a["agent"] == "a1" and a["score"]["load"] == 20.0


def test_load_is_a_share_of_capacity() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("small", capacity=2), b.request("x", "x1"))  # small: 1/2 in use
    d.feed(b.agent("big", capacity=10))
    for i in range(4):  # big takes chats until its share in use reaches small's
        d.feed(b.request(f"v{i}", f"c{i}"))
    assert list(assigned(d.outputs).values()) == ["small", "big", "big", "big", "big"]
    a = one(d.feed(b.request("v9", "c9")), "chat.assigned")
    assert a["agent"] == "big" and a["score"]["load"] == 12.0  # 20 * (1 - 4/10) > 20 * 1/2


def test_capacity_is_never_exceeded() -> None:
    b = EventBuilder()
    out = run([b.agent("a1", capacity=2)] + [b.request(f"v{i}", f"c{i}") for i in range(5)])
    assert list(assigned(out)) == ["c0", "c1"]
    assert [q["position"] for q in of(out, "chat.queued")] == [1, 2, 3]


# ----------------------------------------------------------------- modes


def test_robot_first_then_escalation_queues_with_original_arrival_time() -> None:
    rules = {"modes": {"pages": {"help": "robot_first"}}}
    b = EventBuilder()
    d = Driver(rules)
    d.feed(b.agent("a1", capacity=1), b.request("v0", "c0"))
    out = d.feed(b.page("v1", "help"), b.request("v1", "c1"))
    bot_at = b.now
    assert one(out, "chat.to_bot") == {
        "type": "chat.to_bot", "ts": bot_at, "tenant": "shop", "cause": out[0]["cause"],
        "offset": 3, "chat": "c1", "visitor": "v1",
    }
    assert types(out) == ["chat.to_bot"]
    b.wait(20)
    d.feed(b.page("v2", "home"), b.request("v2", "c2"))  # same page weight, later
    b.wait(20)
    out = d.feed(b.escalate("c1"))
    q = one(out, "chat.queued")
    assert (q["chat"], q["position"]) == ("c1", 1)  # ahead of c2: it came first
    out = d.feed(b.end("c0"))
    a = one(out, "chat.assigned")
    assert a["chat"] == "c1"
    assert a["wait_ms"] == b.now - bot_at  # counted from the request, bot time included


def test_robot_first_by_default_escalates_to_free_agent() -> None:
    b = EventBuilder()
    d = Driver({"modes": {"default": "robot_first"}})
    d.feed(b.agent("a1"))
    assert types(d.feed(b.request("v1", "c1"))) == ["chat.to_bot"]
    requested_at = b.now
    assert d.feed(b.accept("c1", "a1"), b.end("c2")) == []  # nothing to do with a bot chat
    b.wait(45)
    a = one(d.feed(b.escalate("c1")), "chat.assigned")
    assert a["agent"] == "a1" and a["wait_ms"] == b.now - requested_at
    assert d.feed(b.escalate("c1")) == []  # already with a human


def test_robot_only_never_escalates() -> None:
    b = EventBuilder()
    d = Driver({"modes": {"pages": {"faq": "robot_only"}}})
    d.feed(b.agent("a1"), b.page("v1", "faq"))
    assert types(d.feed(b.request("v1", "c1"))) == ["chat.to_bot"]
    assert d.feed(b.escalate("c1")) == []


def test_human_first_without_agents_goes_to_bot() -> None:
    b = EventBuilder()
    d = Driver()
    assert types(d.feed(b.request("v1", "c1"))) == ["chat.to_bot"]
    d.feed(b.agent("a1"))
    assert assigned(d.feed(b.escalate("c1"))) == {"c1": "a1"}


def test_human_only_queues_without_agents() -> None:
    b = EventBuilder()
    out = run([b.request("v1", "c1")], {"modes": {"default": "human_only"}})
    assert types(out) == ["chat.queued"]


def test_tenant_mode_overrides_global() -> None:
    rules = {"modes": {"default": "human_only", "tenants": {"bots": {"default": "robot_first"}}}}
    b = EventBuilder()
    out = run([
        b.agent("a1"), b.agent("a1", tenant="bots"),
        b.request("v1", "c1"), b.request("v1", "c1", tenant="bots"),
    ], rules)
    assert types(out) == ["chat.assigned", "chat.to_bot"]
    assert out[1]["tenant"] == "bots"


# ---------------------------------------------------------------- overflow

OVERFLOW = {"overflow": {"enabled": True, "after_s": 120}}


def overflow_setup(d: Driver, b: EventBuilder, platform_capacity: int = 2) -> int:
    """shop's only agent busy, a free platform agent; c1 requested. Returns its ts."""
    d.feed(
        b.agent("m1", capacity=1), b.request("x", "busy"),
        b.agent("p1", capacity=platform_capacity, tenant="platform"),
        b.arrive("v1", customer={"member": True}), b.page("v1", "cart"),
    )
    out = d.feed(b.request("v1", "c1"))
    assert types(out) == ["chat.queued"]
    return b.now


def test_overflow_to_platform_after_bound() -> None:
    b = EventBuilder()
    d = Driver(OVERFLOW)
    requested_at = overflow_setup(d, b)
    assert d.feed(b.clock(ts=requested_at + 119_999)) == []
    out = d.feed(b.clock(ts=requested_at + 120_500))
    assert types(out) == ["chat.overflowed", "chat.assigned"]
    ov, a = out
    assert ov == {
        "type": "chat.overflowed", "ts": requested_at + 120_000, "tenant": "shop",
        "cause": "timer", "offset": ov["offset"], "chat": "c1", "visitor": "v1",
        "to": "platform",
    }
    assert a["tenant"] == "platform" and a["origin"] == "shop"
    assert (a["chat"], a["visitor"], a["agent"], a["reason"]) == ("c1", "v1", "p1", "overflow")
    assert a["wait_ms"] == 120_000
    assert a["score"]["page"] == 30.0 and a["score"]["loyalty"] == 10.0  # carried over
    assert a["skill"] == "sales"


def test_chat_requeued_past_its_overflow_bound_overflows_at_once() -> None:
    # c1 is served in time, then declined after the bound: it overflows with the
    # decline itself, not at whatever event the shop happens to get next
    b = EventBuilder()
    d = Driver({**OVERFLOW, "assignment": {"acceptance_required": True,
                                           "offer_timeout_s": 300}})
    d.feed(b.agent("m1", capacity=1), b.agent("p1", capacity=1, tenant="platform"))
    d.feed(b.request("v1", "c1"))
    assert assigned(d.outputs) == {"c1": "m1"}
    b.wait(150)
    out = d.feed(b.decline("c1", "m1"))
    assert types(out) == ["chat.requeued", "chat.queued", "chat.overflowed", "chat.assigned"]
    assert {o["offset"] for o in out} == {d.offset - 1}
    assert out[2]["cause"] == "timer" and out[3]["tenant"] == "platform"


def test_overflowed_chat_is_handled_through_the_merchant_ids() -> None:
    b = EventBuilder()
    d = Driver({**OVERFLOW, "assignment": {"acceptance_required": True, "offer_timeout_s": 300}})
    requested_at = overflow_setup(d, b, platform_capacity=1)
    d.feed(b.accept("busy", "m1"), b.clock(ts=requested_at + 121_000))
    assert assigned(d.outputs, tenant="platform") == {"c1": "p1"}
    # the chat server speaks of c1 in the merchant's tenant
    assert d.feed(b.accept("c1", "p1")) == []
    b.wait(600)
    out = d.feed(b.clock())
    assert not of(out, "chat.requeued")  # accepted: no offer timeout
    assert d.feed(b.end("c1")) == []
    # p1's capacity unit is free again and c1 is gone from both tenants
    out = d.feed(b.request("y", "c2"), b.clock(ts=b.now + 121_000))
    assert one(out, "chat.assigned", chat="c2")["agent"] == "p1"
    assert d.feed(b.end("c1")) == []


@pytest.mark.parametrize("platform_first", [False, True])
def test_overflow_on_a_global_clock_happens_at_the_deadline(platform_first: bool) -> None:
    # the platform tenant may be known before the merchant: a clock for every
    # tenant must still hand the chat over at the overflow deadline, not at the
    # clock's ts (the platform agent was free all along)
    b = EventBuilder()
    platform_agent = b.agent("p1", tenant="platform")
    shop = [b.agent("m1", capacity=1), b.request("x", "busy"), b.request("v1", "c1")]
    d = Driver(OVERFLOW)
    d.feed(*([platform_agent, *shop] if platform_first else [*shop, platform_agent]))
    requested_at = shop[-1]["ts"]
    out = d.feed(b.clock(ts=requested_at + 500_000))
    assert types(out) == ["chat.overflowed", "chat.assigned"]
    assert [o["ts"] for o in out] == [requested_at + 120_000] * 2
    assert out[1]["wait_ms"] == 120_000


def test_no_overflow_when_disabled_or_served_in_time() -> None:
    b = EventBuilder()
    d = Driver()
    overflow_setup(d, b)
    assert d.feed(b.clock(ts=b.now + 600_000)) == []
    b = EventBuilder()
    d = Driver(OVERFLOW)
    requested_at = overflow_setup(d, b)
    assert assigned(d.feed(b.end("busy"))) == {"c1": "m1"}
    assert d.feed(b.clock(ts=requested_at + 600_000)) == []


def test_overflow_queues_at_platform_when_no_platform_agent_free() -> None:
    b = EventBuilder()
    d = Driver({**OVERFLOW, "platform": "mall"})
    d.feed(b.agent("m1", capacity=1), b.request("x", "busy"), b.request("v1", "c1"))
    out = d.feed(b.clock(ts=b.now + 120_000))
    assert types(out) == ["chat.overflowed", "chat.queued"]
    assert out[0]["to"] == "mall"
    assert (out[1]["tenant"], out[1]["origin"], out[1]["chat"]) == ("mall", "shop", "c1")
    out = d.feed(b.agent("p1", tenant="mall"))
    a = one(out, "chat.assigned")
    assert (a["tenant"], a["agent"], a["reason"], a["visitor"]) == ("mall", "p1", "overflow", "v1")


def test_platform_chats_do_not_overflow() -> None:
    b = EventBuilder("platform")
    out = run([b.agent("p1", capacity=0), b.request("v1", "c1"), b.clock(ts=b.now + 10**6)],
              OVERFLOW)
    assert types(out) == ["chat.queued"]


# ------------------------------------------------- requeues: decline etc.


def test_decline_requeues_to_another_agent_and_never_back() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=1), b.agent("a2", capacity=1))
    out = d.feed(b.request("v1", "c1"))
    assert assigned(out) == {"c1": "a1"}
    out = d.feed(b.decline("c1", "a1"))
    assert types(out) == ["chat.requeued", "chat.assigned"]
    assert {k: out[0][k] for k in ("chat", "agent", "why")} == {
        "chat": "c1", "agent": "a1", "why": "declined"}
    assert (out[1]["agent"], out[1]["wait_ms"]) == ("a2", 1000)
    out = d.feed(b.decline("c1", "a2"))
    assert types(out) == ["chat.requeued", "chat.queued"]  # nobody left who may take it
    # a1 gets other chats, never c1 again
    out = d.feed(b.request("v2", "c2"), b.end("c2"), b.request("v3", "c3"))
    assert assigned(out) == {"c2": "a1", "c3": "a1"}
    d.feed(b.agent("a3", capacity=1))
    assert assigned(d.outputs)["c1"] == "a3"
    assert d.feed(b.decline("c1", "a1")) == []  # a1 does not hold it


def test_sticky_agent_who_declines_is_not_offered_the_chat_again() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=2))
    served_once(d, b, "v1", "a1")
    d.feed(b.agent("a2", capacity=2))
    out = d.feed(b.arrive("v1"), b.request("v1", "c1"), b.decline("c1", "a1"))
    assert [(o["type"], o["agent"], o.get("reason")) for o in out] == [
        ("chat.assigned", "a1", "sticky"), ("chat.requeued", "a1", None),
        ("chat.assigned", "a2", "best"),
    ]


def test_exclusive_agent_offer_timeout_falls_back() -> None:
    b = EventBuilder()
    d = Driver({"assignment": {"acceptance_required": True, "offer_timeout_s": 10}})
    d.feed(b.agent("a1"), b.agent("a2"), b.arrive("v1", exclusive_agent="a2"))
    assert one(d.feed(b.request("v1", "c1")), "chat.assigned")["reason"] == "exclusive"
    out = d.feed(b.clock(ts=b.now + 10_000))
    assert [(o["type"], o["agent"], o.get("why")) for o in out] == [
        ("chat.requeued", "a2", "offer_timeout"), ("chat.assigned", "a1", None),
    ]


def test_decline_by_someone_else_or_for_unknown_chat_does_nothing() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1"), b.agent("a2"), b.request("v1", "c1"))
    assert d.feed(b.decline("c1", "a2"), b.decline("nope", "a1"), b.accept("nope", "a1")) == []
    assert d.feed(b.end("nope"), b.escalate("nope"), b.leave("ghost")) == []


def test_offer_timeout_requeues_and_excludes() -> None:
    b = EventBuilder()
    d = Driver({"assignment": {"acceptance_required": True, "offer_timeout_s": 30}})
    d.feed(b.agent("a1", capacity=1), b.agent("a2", capacity=1))
    d.feed(b.request("v1", "c1"))
    offered_at = b.now
    assert assigned(d.outputs) == {"c1": "a1"}
    assert d.feed(b.clock(ts=offered_at + 29_999)) == []
    out = d.feed(b.clock(ts=offered_at + 30_000))
    assert types(out) == ["chat.requeued", "chat.assigned"]
    r, a = out
    assert (r["agent"], r["why"], r["cause"], r["ts"]) == ("a1", "offer_timeout", "timer",
                                                          offered_at + 30_000)
    assert (a["agent"], a["wait_ms"]) == ("a2", 30_000)
    # a2 does not accept either: back to the queue, not to a1
    out = d.feed(b.clock(ts=offered_at + 60_000))
    assert types(out) == ["chat.requeued", "chat.queued"]


def test_accepted_offer_does_not_time_out() -> None:
    b = EventBuilder()
    d = Driver({"assignment": {"acceptance_required": True, "offer_timeout_s": 30}})
    d.feed(b.agent("a1", capacity=1), b.request("v1", "c1"), b.accept("c1", "a1"))
    assert d.feed(b.clock(ts=b.now + 3_600_000)) == []


def test_agent_offline_requeues_to_another_agent() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=2), b.request("v1", "c1"), b.request("v2", "c2"))
    d.feed(b.agent("a2", capacity=1))
    out = d.feed(b.offline("a1"))
    assert [(o["type"], o["chat"]) for o in out] == [
        ("chat.requeued", "c1"), ("chat.assigned", "c1"),
        ("chat.requeued", "c2"), ("chat.queued", "c2"),
    ]
    assert {o["why"] for o in of(out, "chat.requeued")} == {"agent_offline"}
    assert one(out, "chat.assigned")["agent"] == "a2"
    # a1 may take c2 again when back: going offline is no refusal
    assert assigned(d.feed(b.agent("a1"))) == {"c2": "a1"}


def test_agent_away_requeues_only_unaccepted_chats_by_default() -> None:
    b = EventBuilder()
    d = Driver({"assignment": {"acceptance_required": True}})
    d.feed(b.agent("a1", capacity=2), b.request("v1", "c1"), b.request("v2", "c2"),
           b.accept("c1", "a1"), b.agent("a2"))
    out = d.feed(b.away("a1"))
    assert [(o["type"], o["chat"], o.get("why")) for o in out] == [
        ("chat.requeued", "c2", "agent_away"), ("chat.assigned", "c2", None),
    ]
    out = d.feed(b.request("v3", "c3"))  # an away agent gets nothing new
    assert assigned(out) == {"c3": "a2"}


# ------------------------------------------------------------ abandonment


def test_visitor_left_while_waiting_abandons() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=1), b.request("v0", "c0"), b.request("v1", "c1"))
    requested_at = b.now
    b.wait(42)
    out = d.feed(b.leave("v1"))
    assert out == [{
        "type": "chat.abandoned", "ts": b.now, "tenant": "shop", "cause": out[0]["cause"],
        "offset": 3, "chat": "c1", "visitor": "v1", "wait_ms": b.now - requested_at,
    }]
    assert d.feed(b.leave("v1")) == []  # a second time changes nothing
    assert d.feed(b.end("c0")) == []  # c1 is not served any more


def test_chat_ended_while_waiting_abandons() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=1), b.request("v0", "c0"), b.request("v1", "c1"))
    b.wait(10)
    out = d.feed(b.end("c1"))
    assert types(out) == ["chat.abandoned"] and out[0]["wait_ms"] == 11_000
    assert d.feed(b.end("c1")) == []


def test_visitor_left_while_served_frees_the_agent_without_abandonment() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=1), b.request("v0", "c0"), b.request("v1", "c1"))
    out = d.feed(b.leave("v0"))
    assert types(out) == ["chat.assigned"] and out[0]["chat"] == "c1"


def test_reserved_chat_abandoned_is_not_served_later() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=1))
    served_once(d, b, "v1", "a1")
    d.feed(b.request("x", "busy"), b.arrive("v1"), b.request("v1", "c1"))
    assert types(d.feed(b.leave("v1"))) == ["chat.abandoned"]
    assert d.feed(b.end("busy"), b.clock(ts=b.now + 10**6)) == []


# ------------------------------------------------- duplicates, time order


def test_duplicate_events_are_ignored() -> None:
    b = EventBuilder()
    d = Driver()
    agent, req = b.agent("a1", capacity=1), b.request("v1", "c1")
    assert types(d.feed(agent, req)) == ["chat.assigned"]
    assert d.feed(agent, req) == []
    end = b.end("c1")
    d.feed(end, b.request("v2", "c2"))
    assert d.feed(end) == []  # replayed end does not free a1 again
    out = d.feed(b.request("v3", "c3"))
    assert types(out) == ["chat.queued"]


def test_same_id_in_another_tenant_is_not_a_duplicate() -> None:
    b = EventBuilder()
    out = run([b.agent("a1", id="same"), b.agent("a1", id="same", tenant="other"),
               b.request("v1", "c1", id="r"), b.request("v1", "c1", id="r", tenant="other")])
    assert [(o["tenant"], o["agent"]) for o in out] == [("shop", "a1"), ("other", "a1")]


def test_request_for_an_open_chat_is_ignored() -> None:
    b = EventBuilder()
    out = run([b.agent("a1"), b.request("v1", "c1"), b.request("v1", "c1")])
    assert types(out) == ["chat.assigned"]


def test_ts_going_backwards_is_applied_at_tenant_time() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a1", capacity=1), b.request("v0", "c0"))
    d.feed(b.request("v1", "c1", ts=T0 + 50_000))
    out = d.feed(b.end("c0", ts=T0 + 10_000))  # late: before c1 was even requested
    a = one(out, "chat.assigned")
    assert a["ts"] == T0 + 50_000 and a["wait_ms"] == 0
    out = d.feed(b.leave("v1", ts=T0))
    assert out == []  # c1 is being served; nothing to abandon
    out = d.feed(b.request("v2", "c2", ts=T0 + 1))
    assert out[0]["ts"] == T0 + 50_000


def test_clock_without_tenant_fires_every_tenants_timers() -> None:
    b = EventBuilder()
    d = Driver({"assignment": {"acceptance_required": True, "offer_timeout_s": 10}})
    d.feed(b.agent("a1"), b.request("v1", "c1"),
           b.agent("a1", tenant="t2"), b.request("v1", "c1", tenant="t2"))
    tick = b.clock(ts=b.now + 60_000)
    out = d.feed(tick)
    assert sorted((o["tenant"], o["why"]) for o in of(out, "chat.requeued")) == [
        ("shop", "offer_timeout"), ("t2", "offer_timeout")]
    assert {o["cause"] for o in out} == {"timer"}
    # the same clock again is a duplicate, even with a later ts
    d.feed(b.request("v2", "c2"), b.request("v2", "c2", tenant="t2"))
    assert d.feed({**tick, "ts": b.now + 60_000}) == []
    assert len(of(d.feed(b.clock(ts=b.now + 60_000)), "chat.requeued")) == 2


# ---------------------------------------------------------------- policies


def three_agents(b: EventBuilder) -> list[dict[str, object]]:
    return [b.agent(f"a{i}", capacity=2) for i in range(1, 4)]


def test_fifo_round_robin_rotates_agents_and_serves_in_order() -> None:
    b = EventBuilder()
    d = Driver({"policy": "fifo_round_robin"})
    d.feed(*three_agents(b))
    out = d.feed(*(b.request(f"v{i}", f"c{i}") for i in range(5)))
    assert list(assigned(out).values()) == ["a1", "a2", "a3", "a1", "a2"]
    assert {o["reason"] for o in of(out, "chat.assigned")} == {"fifo_round_robin"}
    d.feed(b.request("w", "full"))  # a3 takes the sixth; all full now
    d.feed(b.page("v6", "home"), b.request("v6", "c6"),
           b.page("v7", "checkout"), b.request("v7", "c7"))
    out = d.feed(b.end("c0"))  # first come, first served: page weight ignored
    assert assigned(out) == {"c6": "a1"}


def test_round_robin_ignores_sticky_and_exclusive() -> None:
    b = EventBuilder()
    d = Driver({"policy": "fifo_round_robin"})
    d.feed(*three_agents(b))
    d.feed(b.request("v1", "c1"), b.end("c1"))  # v1 served by a1
    out = d.feed(b.arrive("v1", exclusive_agent="a1"), b.request("v1", "c2"))
    a = one(out, "chat.assigned")
    assert (a["agent"], a["reason"]) == ("a2", "fifo_round_robin")


def test_least_loaded_policy_picks_lowest_share_in_use() -> None:
    b = EventBuilder()
    d = Driver({"policy": "least_loaded"})
    d.feed(b.agent("a1", capacity=4), b.agent("a2", capacity=2), b.agent("a3", capacity=4))
    out = d.feed(*(b.request(f"v{i}", f"c{i}") for i in range(6)))
    # share in use, then fewer chats, then longest idle (a1 came online first):
    # 0/4 0/2 0/4 -> a1, a2, a3; 1/4 = 1/4 < 1/2 -> a1, a3; all 1/2, a2 holds fewest
    assert list(assigned(out).values()) == ["a1", "a2", "a3", "a1", "a3", "a2"]
    assert {o["reason"] for o in of(out, "chat.assigned")} == {"least_loaded"}


def test_longest_idle_policy_picks_who_waited_longest() -> None:
    b = EventBuilder()
    d = Driver({"policy": "longest_idle"})
    d.feed(b.agent("a1", capacity=1), b.agent("a2", capacity=1), b.agent("a3", capacity=1))
    out = d.feed(b.request("v1", "c1"), b.request("v2", "c2"))
    assert list(assigned(out).values()) == ["a1", "a2"]
    d.feed(b.end("c2"))  # a2 finished just now; a3 has been idle since it came online
    d.feed(b.end("c1"))  # a1 finished later still
    out = d.feed(b.request("v3", "c3"), b.request("v4", "c4"), b.request("v5", "c5"))
    assert list(assigned(out).values()) == ["a3", "a2", "a1"]
    assert {o["reason"] for o in of(out, "chat.assigned")} == {"longest_idle"}


def test_least_loaded_policy_serves_fifo() -> None:
    b = EventBuilder()
    d = Driver({"policy": "least_loaded"})
    d.feed(b.agent("a1", capacity=1), b.request("v0", "c0"))
    d.feed(b.page("v1", "home"), b.request("v1", "c1"),
           b.page("v2", "checkout"), b.request("v2", "c2"))
    assert [q["position"] for q in of(d.outputs, "chat.queued")] == [1, 2]
    assert assigned(d.feed(b.end("c0"))) == {"c1": "a1"}


@pytest.mark.parametrize("policy", ["fifo_round_robin", "least_loaded", "longest_idle"])
def test_baselines_still_overflow(policy: str) -> None:
    b = EventBuilder()
    d = Driver({**OVERFLOW, "policy": policy})
    overflow_setup(d, b)
    out = d.feed(b.clock(ts=b.now + 120_000))
    assert one(out, "chat.assigned")["reason"] == "overflow"


# ------------------------------------------------------------- explanation


@pytest.mark.parametrize("policy", ["priority", "fifo_round_robin", "least_loaded",
                                    "longest_idle"])
def test_every_assignment_carries_score_breakdown_and_rules_hash(policy: str) -> None:
    rules = parse_rules({**SKILL_RULES, **OVERFLOW, "policy": policy,
                         "assignment": {"acceptance_required": True}})
    b = EventBuilder()
    eng = Engine(rules)
    events = [
        b.agent("a1", capacity=2, skills={"sales": 3}), b.agent("a2", capacity=1),
        b.agent("p1", tenant="platform"),
        b.arrive("v1", "app", region="sh", customer={"member": True, "tier": 2}),
        b.page("v1", "cart"), b.request("v1", "c1"), b.decline("c1", "a1"),
        b.arrive("v2", exclusive_agent="a1"), b.request("v2", "c2"),
        b.request("v3", "c3", message="refund"), b.request("v4", "c4"),
        b.clock(ts=b.now + 200_000),
    ]
    outs = [o for ev in events for o in eng.apply(validate(ev))]
    done = of(outs, "chat.assigned")
    assert len(done) >= 4
    assert any(o["tenant"] == "platform" for o in done)
    for o in done:
        assert set(o["score"]) >= SCORE and tuple(o["score"]) == SCORE_KEYS
        assert all(isinstance(o["score"][k], float) for k in SCORE)
        assert o["rules"] == rules.hash
        assert o["match"] == pytest.approx(
            o["score"]["skill"] + o["score"]["load"] + o["score"]["sticky"]
            + o["score"]["exclusive"] + o["score"].get("region", 0.0)
            + o["score"].get("channel", 0.0), abs=1e-3)
        assert o["priority"] == pytest.approx(
            sum(o["score"][k] for k in ("page", "loyalty", "returning", "level", "aging")),
            abs=1e-3)
        if o["tenant"] == "platform":
            assert o["reason"] == "overflow"
        elif policy != "priority":
            assert o["reason"] == policy
        else:
            assert o["reason"] in ("exclusive", "sticky", "skill", "best")


def test_outputs_carry_offset_and_cause() -> None:
    b = EventBuilder()
    eng = Engine()
    agent, req = b.agent("a1"), b.request("v1", "c1")
    assert eng.apply(validate(agent), 0) == []
    (a,) = eng.apply(validate(req), 1)
    assert list(a)[:5] == ["type", "ts", "tenant", "cause", "offset"]
    assert (a["cause"], a["offset"]) == (req["id"], 1)
    (q,) = Engine().apply(validate(req))
    assert "offset" not in q


def test_same_events_give_identical_outputs() -> None:
    b = EventBuilder()
    events = [
        b.agent("a1", capacity=2, skills={"sales": 2}), b.agent("a2", capacity=1),
        b.arrive("v1", customer={"member": True}), b.page("v1", "checkout"),
        b.request("v1", "c1"), b.request("v2", "c2"), b.request("v3", "c3"),
        b.request("v4", "c4"), b.decline("c1", "a1"), b.end("c2"), b.leave("v4"),
        b.clock(ts=b.now + 500_000),
    ]
    rules = {**OVERFLOW, "assignment": {"acceptance_required": True}}
    assert run(events, rules) == run(events, rules)
