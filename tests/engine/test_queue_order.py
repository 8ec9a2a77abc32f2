"""One queue order per tenant (issue 21, item 4): ``position`` is a waiting
chat's rank among all the tenant's waiting chats, in service order, reserved
chats and every skill's chats included; ``chat.queued``, ``Engine.queue`` and
``Engine.position`` (what ``/v1/queue`` and ``/v1/chats/{chat}`` show) agree."""

from __future__ import annotations

from engine import Engine, views
from tests.helpers import Driver, EventBuilder, of, one


def positions(e: Engine, tenant: str) -> dict[str, int]:
    return {key: views.position(e, tenant, key) for key in views.queue(e, tenant)}


def test_a_reserved_chat_and_a_common_one_are_not_both_first() -> None:
    """The issue's /v1/queue: a chat reserved for its last agent was number 1,
    and so was the first chat of the common queue."""
    b = EventBuilder()
    d = Driver({"assignment": {"sticky_wait_s": 60}})
    d.feed(b.agent("a1", capacity=1))
    d.feed(b.arrive("v1"), b.request("v1", "v1-0"), b.end("v1-0"))  # a1 served v1
    d.feed(b.request("x", "busy"))  # a1 is full
    q1 = one(d.feed(b.arrive("v1"), b.request("v1", "c1")), "chat.queued")  # reserved for a1
    q2 = one(d.feed(b.request("w", "c2")), "chat.queued")  # the common queue
    t = d.engine.tenants["shop"]
    assert t.chats["c1"].reserved_for == "a1"
    assert (q1["position"], q2["position"]) == (1, 2)  # returning v1 first
    assert views.queue(d.engine, "shop") == ["c1", "c2"]
    assert positions(d.engine, "shop") == {"c1": 1, "c2": 2}


def test_chats_of_different_skills_share_one_order() -> None:
    b = EventBuilder()
    d = Driver({"assignment": {"skill_required": True}})
    d.feed(b.agent("a0", capacity=1, skills={"sales": 1, "billing": 1}), b.request("v0", "c0"))
    out = d.feed(b.request("v1", "c1", skill="sales"), b.request("v2", "c2", skill="billing"),
                 b.request("v3", "c3", skill="sales"))
    assert [(q["chat"], q["position"]) for q in of(out, "chat.queued")] == [
        ("c1", 1), ("c2", 2), ("c3", 3)]
    assert positions(d.engine, "shop") == {"c1": 1, "c2": 2, "c3": 3}


def test_a_chat_that_leaves_the_queue_moves_the_others_up() -> None:
    b = EventBuilder()
    d = Driver()
    d.feed(b.agent("a0", capacity=1), b.request("v0", "c0"))
    d.feed(b.request("v1", "c1"), b.request("v2", "c2"), b.request("v3", "c3"))
    d.feed(b.end("c1"))
    assert positions(d.engine, "shop") == {"c2": 1, "c3": 2}
    d.feed(b.page("v3", "checkout"))  # v3's chat now comes first
    assert views.queue(d.engine, "shop") == ["c3", "c2"]
    assert views.position(d.engine, "shop", "c3") == 1
    assert views.position(d.engine, "shop", "c1") == 0  # not waiting
    assert views.position(d.engine, "nobody", "c1") == 0 and views.queue(d.engine, "nobody") == []
