"""Presence and capacity as contact centres run them (issue 18): an agent who
misses offers is set away, a chat that ended holds its unit through the
wrap-up, an agent whose app flapped offline keeps their chats for a grace."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Engine, views
from tests.helpers import Driver, EventBuilder, assigned, of, one, types

OFFERS = {"assignment": {"acceptance_required": True, "offer_timeout_s": 5.0,
                         "max_missed_offers": 2}}


def presence(**assignment: Any) -> dict[str, Any]:
    return {"assignment": assignment}


# ------------------------------------------------------------ missed offers


def test_two_missed_offers_in_a_row_set_the_agent_away() -> None:
    b = EventBuilder()
    d = Driver(OFFERS)
    d.feed(b.agent("ann", capacity=3), b.agent("bob", capacity=3))
    d.feed(b.request("v1", "c1"), b.request("v2", "c2"), b.request("v3", "c3"))
    holders = {o["chat"]: o["agent"] for o in of(d.outputs, "chat.assigned")}
    ann_chats = sorted(c for c, a in holders.items() if a == "ann")
    assert ann_chats, holders
    d.feed(*(b.accept(c, "bob") for c, a in holders.items() if a == "bob"))
    # ann lets her offers time out; each comes back to the queue or to bob
    b.wait(5)
    out = d.feed(b.clock(tenant="shop"))
    away = one(out, "agent.away")
    assert away == {**away, "agent": "ann", "why": "missed_offers", "cause": "timer"}
    requeued = of(out, "chat.requeued", agent="ann")
    assert {o["chat"] for o in requeued} == set(ann_chats)
    assert all(o["why"] == "offer_timeout" for o in requeued)
    # set away: no new chat for ann until she says she is online
    out = d.feed(b.request("v4", "c4"), b.request("v5", "c5"), b.request("v6", "c6"),
                 b.request("v7", "c7"))
    assert "ann" not in assigned(out).values()
    out = d.feed(b.agent("ann"))
    assert set(assigned(out).values()) == {"ann"}


def test_the_timed_out_chat_is_requeued_before_the_agent_is_set_away() -> None:
    b = EventBuilder()
    d = Driver(presence(acceptance_required=True, offer_timeout_s=5.0, max_missed_offers=1))
    d.feed(b.agent("ann", capacity=2), b.request("v1", "c1"))
    d.feed(b.request("v2", "c2"))  # both offered to ann, 1 s apart
    b.wait(4.5)
    out = d.feed(b.clock(tenant="shop"))
    assert [(o["type"], o.get("chat")) for o in out] == [
        ("chat.requeued", "c1"), ("chat.queued", "c1"), ("agent.away", None),
        ("chat.requeued", "c2"), ("chat.queued", "c2")]


def test_an_accepted_offer_resets_the_count() -> None:
    b = EventBuilder()
    d = Driver(OFFERS)
    d.feed(b.agent("ann", capacity=1), b.request("v1", "c1"))
    b.wait(5)
    d.feed(b.clock(tenant="shop"))  # missed 1 (c1 cannot come back to her)
    d.feed(b.request("v2", "c2"))
    out = d.feed(b.accept("c2", "ann"), b.end("c2"), b.request("v3", "c3"))
    assert assigned(out) == {"c3": "ann"}
    b.wait(5)
    out = d.feed(b.clock(tenant="shop"))  # missed 1 again, not 2: she stays online
    assert types(out) == ["chat.requeued", "chat.queued"] and not of(out, "agent.away")


def test_an_offer_timing_out_the_instant_the_agent_comes_back() -> None:
    """Timers due at an event's ts fire before it: the timeout is missed offer
    number 2 and sets her away; her agent.state online at that same
    millisecond then brings her back with a fresh count."""
    b = EventBuilder()
    d = Driver(OFFERS)
    d.feed(b.agent("ann", capacity=1), b.request("v1", "c1"))
    b.wait(5)
    d.feed(b.clock(tenant="shop"))
    out = d.feed(b.request("v2", "c2"))
    deadline = one(out, "chat.assigned")["ts"] + 5_000
    out = d.feed(b.agent("ann", ts=deadline, status="online"))
    assert types(out)[:3] == ["chat.requeued", "chat.queued", "agent.away"]
    assert all(o["cause"] == "timer" for o in out[:3])
    _, rows = views.agent_rows(d.engine, "shop")  # type: ignore[misc]
    assert rows[0]["status"] == "online"
    out = d.feed(b.request("v3", "c3"))
    assert assigned(out) == {"c3": "ann"}


# ------------------------------------------------------------------ wrap-up


def test_a_unit_comes_back_only_after_the_wrap_up() -> None:
    b = EventBuilder()
    d = Driver(presence(wrap_up_s=30.0))
    d.feed(b.agent("ann", capacity=1), b.request("v1", "c1"))
    d.feed(b.end("c1"))
    out = d.feed(b.request("v2", "c2"))
    assert types(out) == ["chat.queued"]
    b.wait(25)
    assert not assigned(d.feed(b.clock(tenant="shop")))
    b.wait(10)
    out = d.feed(b.clock(tenant="shop"))
    assert assigned(out) == {"c2": "ann"} and one(out, "chat.assigned")["cause"] == "timer"


def test_a_chat_ending_during_the_wrap_up_of_another() -> None:
    b = EventBuilder(step_ms=1)
    d = Driver(presence(wrap_up_s=10.0))
    d.feed(b.agent("ann", capacity=2), b.request("v1", "c1"), b.request("v2", "c2"))
    t1 = b.wait(1)
    d.feed(b.end("c1", ts=t1))
    d.feed(b.end("c2", ts=t1 + 4_000))  # while c1's wrap-up runs
    d.feed(*(b.request(f"w{i}", f"q{i}") for i in range(3)))
    out = d.feed(b.clock(tenant="shop", ts=t1 + 10_000))
    assert assigned(out) == {"q0": "ann"}  # c1's unit, at its end
    out = d.feed(b.clock(tenant="shop", ts=t1 + 14_000))
    assert assigned(out) == {"q1": "ann"}  # c2's unit
    assert not assigned(d.feed(b.clock(tenant="shop", ts=t1 + 60_000)))  # full again


def test_an_agents_own_wrap_up_replaces_the_rules() -> None:
    b = EventBuilder()
    d = Driver(presence(wrap_up_s=60.0))
    d.feed(b.agent("ann", capacity=1, wrap_up_s=0.0), b.agent("bob", capacity=1,
                                                              wrap_up_s=5.0))
    d.feed(b.request("v1", "c1"), b.request("v2", "c2"))
    d.feed(b.end("c1"), b.end("c2"))
    out = d.feed(b.request("v3", "c3"), b.request("v4", "c4"))
    held = assigned(of(d.outputs, "chat.assigned"))
    first = {"c1": held["c1"], "c2": held["c2"]}
    assert sorted(first.values()) == ["ann", "bob"]
    # ann (no wrap-up) takes the next chat at once; bob's unit is still wrapping
    assert assigned(out) == {"c3": "ann"} and one(out, "chat.queued")["chat"] == "c4"
    b.wait(5)
    out = d.feed(b.clock(tenant="shop"))
    assert assigned(out) == {"c4": "bob"}


def test_wrap_up_counts_as_load_in_the_agent_view() -> None:
    b = EventBuilder()
    d = Driver(presence(wrap_up_s=30.0))
    d.feed(b.agent("ann", capacity=2), b.request("v1", "c1"), b.end("c1"))
    _, rows = views.agent_rows(d.engine, "shop")  # type: ignore[misc]
    assert rows[0]["load"] == 1 and rows[0]["chats"] == []


# ------------------------------------------------------------- offline grace


def test_back_online_within_the_grace_nothing_is_requeued() -> None:
    b = EventBuilder()
    d = Driver(presence(offline_grace_s=20.0))
    # bob, online and full, keeps new chats from going to the bot
    d.feed(b.agent("ann", capacity=2), b.agent("bob", capacity=0), b.request("v1", "c1"))
    out = d.feed(b.offline("ann"))
    assert not out
    out = d.feed(b.request("v2", "c2"))
    assert types(out) == ["chat.queued"]  # not offered to an agent who is offline
    b.wait(15)
    out = d.feed(b.agent("ann"))
    assert assigned(out) == {"c2": "ann"} and not of(d.outputs, "chat.requeued")
    b.wait(60)
    assert not d.feed(b.clock(tenant="shop"))  # the grace timer has nothing left to do


def test_the_grace_ends_and_the_chats_wait_again() -> None:
    b = EventBuilder()
    d = Driver(presence(offline_grace_s=20.0))
    d.feed(b.agent("ann", capacity=2), b.agent("bob", capacity=1),
           b.request("v1", "c1"), b.request("v2", "c2"), b.request("v3", "c3"))
    held = [c for c, a in assigned(d.outputs).items() if a == "ann"]
    t_off = d.feed(b.offline("ann")) or b.now
    out = d.feed(b.clock(tenant="shop", ts=t_off + 20_000))
    assert [o["chat"] for o in of(out, "chat.requeued")] == held
    assert all(o["why"] == "agent_offline" and o["cause"] == "timer"
               and o["ts"] == t_off + 20_000 for o in of(out, "chat.requeued"))


def test_the_grace_expiring_on_the_same_millisecond_as_a_return() -> None:
    """The grace is half-open: at offline + grace it has run out, and the
    timer fires before the agent.state at that millisecond."""
    b = EventBuilder()
    d = Driver(presence(offline_grace_s=20.0))
    d.feed(b.agent("ann", capacity=1), b.request("v1", "c1"))
    d.feed(b.offline("ann"))
    out = d.feed(b.agent("ann", ts=b.now + 20_000))
    assert types(out) == ["chat.requeued", "chat.queued", "chat.assigned"]
    assert [o["cause"] for o in out[:2]] == ["timer", "timer"]
    assert one(out, "chat.assigned")["agent"] == "ann"


def test_away_is_not_offline_no_grace_applies() -> None:
    b = EventBuilder()
    d = Driver({"assignment": {"offline_grace_s": 20.0, "away_requeues": "all"}})
    d.feed(b.agent("ann", capacity=1), b.request("v1", "c1"))
    out = d.feed(b.away("ann"))
    assert one(out, "chat.requeued")["why"] == "agent_away"


# -------------------------------------------------------- records, restore


def test_a_restored_engine_keeps_wrap_ups_graces_and_counts() -> None:
    rules = {"assignment": {"acceptance_required": True, "offer_timeout_s": 5.0,
                            "max_missed_offers": 2, "wrap_up_s": 8.0,
                            "offline_grace_s": 12.0}}
    b = EventBuilder()
    first = [b.agent("ann", capacity=2), b.agent("bob", capacity=1),
             b.request("v1", "c1"), b.request("v2", "c2"), b.request("v3", "c3")]
    d = Driver(rules)
    d.feed(*first)
    held = assigned(d.outputs)
    ann = sorted(c for c, a in held.items() if a == "ann")
    bob = sorted(c for c, a in held.items() if a == "bob")
    middle = [b.accept(bob[0], "bob"), b.end(bob[0]), b.offline("ann")]
    d.feed(*middle)
    rest = [b.request("v4", "c4"), b.clock(tenant="shop", ts=b.now + 3_000),
            b.agent("ann"), b.clock(tenant="shop", ts=b.now + 30_000)]
    restored = Engine.restore(d.engine.rules, d.engine.snapshot())
    again = Driver(rules)
    again.engine = restored
    again.offset = d.offset
    assert again.feed(*rest) == d.feed(*rest)
    assert ann  # ann held chats through the grace


# --------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["offline", "online", "request", "end"]),
                          st.integers(0, 9_000)), max_size=30))
def test_flapping_within_the_grace_requeues_nothing(steps: list[tuple[str, int]]) -> None:
    """An agent whose every offline lasts less than the grace never has a
    chat requeued for agent_offline."""
    b = EventBuilder(step_ms=1)
    d = Driver(presence(offline_grace_s=10.0))
    d.feed(b.agent("ann", capacity=3))
    n = 0
    online = True
    for what, gap in steps:
        b.wait(gap / 1000)
        if what == "offline" and online:
            d.feed(b.offline("ann"))
            online = False
        elif what == "online" or not online:
            d.feed(b.agent("ann"))  # back before the 10 s grace (gaps are under 9 s)
            online = True
        elif what == "request":
            n += 1
            d.feed(b.request(f"v{n}", f"c{n}"))
        elif n:
            d.feed(b.end(f"c{n}"))
    assert not of(d.outputs, "chat.requeued", why="agent_offline")


# --------------------------------------------------------- weighted capacity


WEIGHTS = {"capacity": {"weights": {"after_sales": 2, "billing": 5}}}


def test_a_weighted_chat_holds_its_units() -> None:
    b = EventBuilder()
    d = Driver(WEIGHTS)
    d.feed(b.agent("ann", capacity=3))
    out = d.feed(b.request("v1", "c1", skill="after_sales"))
    assert one(out, "chat.assigned")["units"] == 2
    out = d.feed(b.request("v2", "c2", skill="after_sales"))  # 2 + 2 > 3
    assert types(out) == ["chat.queued"]
    out = d.feed(b.request("v3", "c3"))  # one unit left: a light chat fits
    assert assigned(out) == {"c3": "ann"} and one(out, "chat.assigned")["units"] == 1
    out = d.feed(b.end("c1"))  # 2 units back: the waiting heavy chat fits now
    assert assigned(out) == {"c2": "ann"}


def test_an_agent_takes_the_best_waiting_chat_that_fits() -> None:
    b = EventBuilder()
    d = Driver(WEIGHTS)
    d.feed(b.agent("ann", capacity=2), b.request("v0", "c0"), b.request("vx", "cx"))  # full
    d.feed(b.page("v1", "checkout"), b.request("v1", "c1", skill="after_sales"))
    d.feed(b.page("v2", "home"), b.request("v2", "c2"))
    out = d.feed(b.end("c0"))
    # one unit free: the after-sales chat (2 units, first in the queue) waits,
    # the light one behind it is taken
    assert views.queue(d.engine, "shop")[0] == "c1"
    assert assigned(out) == {"c2": "ann"}


def test_a_chat_heavier_than_every_agent_is_never_assigned_and_the_queue_says_why() -> None:
    b = EventBuilder()
    d = Driver(WEIGHTS)
    d.feed(b.agent("ann", capacity=3), b.agent("bob", capacity=4))
    out = d.feed(b.request("v1", "c1", skill="billing"))
    assert types(out) == ["chat.queued"]
    _, rows = views.queue_rows(d.engine, "shop")  # type: ignore[misc]
    assert rows[0]["units"] == 5
    assert rows[0]["blocked"] == ("needs 5 units of an agent's capacity; no online agent "
                                  "has more than 4")
    out = d.feed(b.agent("cat", capacity=5))
    assert assigned(out) == {"c1": "cat"}


def test_weights_with_wrap_up_free_the_units_together() -> None:
    b = EventBuilder()
    d = Driver({**WEIGHTS, "assignment": {"wrap_up_s": 10.0}})
    d.feed(b.agent("ann", capacity=2), b.request("v1", "c1", skill="after_sales"))
    d.feed(b.end("c1"), b.request("v2", "c2"))
    assert not assigned(d.outputs[-1:])
    b.wait(10)
    out = d.feed(b.clock(tenant="shop"))
    assert assigned(out) == {"c2": "ann"}


def test_without_weights_outputs_have_no_units() -> None:
    b = EventBuilder()
    d = Driver()
    out = d.feed(b.agent("ann"), b.request("v1", "c1", skill="after_sales"))
    assert "units" not in one(out, "chat.assigned")


def test_a_heavy_chat_ending_at_a_full_agent_keeps_the_indexes_right() -> None:
    """A full agent whose 3-unit chat ends takes three 1-unit chats at once:
    they must leave the agent full in every index (a fourth chat waits), and
    an agent filed twice must not break a later pick."""
    b = EventBuilder()
    d = Driver({"capacity": {"weights": {"video": 3}}})
    d.feed(b.agent("a1", capacity=3), b.request("v0", "cv", skill="video"))
    d.feed(*(b.request(f"v{i}", f"c{i}") for i in (1, 2, 3)))
    out = d.feed(b.end("cv"))
    assert assigned(out) == {"c1": "a1", "c2": "a1", "c3": "a1"}
    out = d.feed(b.request("v4", "c4"))
    assert types(out) == ["chat.queued"]  # a1 is full: 3 units of 3


def test_two_chats_taken_after_a_heavy_one_then_away_then_a_request() -> None:
    b = EventBuilder()
    d = Driver({"capacity": {"weights": {"video": 3}}})
    d.feed(b.agent("a1", capacity=3), b.agent("a2", capacity=1),
           b.request("v0", "cv", skill="video"), b.request("vx", "cx"))
    d.feed(b.request("v1", "c1"), b.request("v2", "c2"))
    out = d.feed(b.end("cv"))
    assert assigned(out) == {"c1": "a1", "c2": "a1"}
    d.feed(b.away("a1"))
    out = d.feed(b.request("v5", "c5"))  # neither a1 (away) nor a2 (full): it waits
    assert types(out) == ["chat.queued"]
