"""engine/views.py: what the shells read answers as the engine's outputs do."""

from __future__ import annotations

from engine import views
from tests.helpers import Driver, EventBuilder, one


def test_a_waiting_chat_reads_as_its_chat_queued_said() -> None:
    b = EventBuilder()
    d = Driver({})
    d.feed(b.agent("a1", capacity=1), b.arrive("v0"), b.request("v0", "c0"))  # a1 is full
    q1 = one(d.feed(b.arrive("v1"), b.request("v1", "c1")), "chat.queued")
    q2 = one(d.feed(b.page("v2", "cart"), b.request("v2", "c2")), "chat.queued")
    for q in (q1, q2):
        view = views.chat(d.engine, "shop", q["chat"])
        assert view is not None and view["state"] == "waiting"
        assert view["position"] == views.position(d.engine, "shop", q["chat"])
        assert view["queue_length"] == 2 == len(views.queue(d.engine, "shop"))
    v2 = views.chat(d.engine, "shop", "c2")
    assert v2 is not None
    # nothing happened since c2 was queued: the same position, ETA and priority
    assert (v2["eta_s"], v2["priority"]) == (q2["eta_s"], q2["priority"])
    now, rows = views.queue_rows(d.engine, "shop") or (0, [])
    assert [r["chat"] for r in rows] == views.queue(d.engine, "shop")
    c0 = views.chat(d.engine, "shop", "c0")
    assert c0 is not None and (c0["state"], c0["agent"], c0["accepted"]) == ("assigned", "a1", True)
    assert c0["waited_ms"] == now - c0["since_ms"]
    assert views.chat(d.engine, "shop", "nope") is None
    assert views.waiting_count(d.engine) == 2


def test_seen_ids_and_tenants() -> None:
    b = EventBuilder()
    d = Driver({})
    ev = b.arrive("v1")
    assert not views.seen(d.engine, "shop", ev["id"])
    d.feed(ev)
    assert views.seen(d.engine, "shop", ev["id"]) and not views.seen(d.engine, "other", ev["id"])
    tick = b.clock()
    d.feed(tick)
    assert views.seen(d.engine, None, tick["id"])
    assert views.tenants(d.engine) == ["shop"]
    assert views.remembered_ids(d.engine) == 2
    assert views.now(d.engine, "shop") == tick["ts"] and views.now(d.engine, "x") is None
