"""``position`` means the same in ``chat.queued``, ``/v1/queue`` and
``/v1/chats/{chat}`` (issue 21, item 4): one order per tenant, reserved chats
included (the service core without HTTP)."""

from __future__ import annotations

import orjson

from engine import parse_rules
from streams.embedded.state import StateLayout
from streams.embedded.store import MemoryStore
from streams.http.service import Service
from tests.http.server import ev


def test_queue_chat_view_and_chat_queued_agree() -> None:
    svc = Service(parse_rules({"assignment": {"sticky_wait_s": 60}}),
                  StateLayout(MemoryStore()), history=1000)
    svc.start()
    sub = svc.subscribe(None, lambda: None)
    t = 1_000
    svc.submit([[orjson.dumps(e) for e in (
        ev("agent.state", "a", t, "s1", agent="ann", status="online", capacity=1),
        ev("visitor.arrived", "v0", t + 1, "s1", visitor="v1", channel="web"),
        ev("chat.requested", "r0", t + 2, "s1", visitor="v1", chat="c0"),
        ev("chat.ended", "e0", t + 3, "s1", chat="c0"),  # ann served v1
        ev("chat.requested", "r1", t + 4, "s1", visitor="x", chat="busy"),  # ann is full
        ev("visitor.arrived", "v1", t + 5, "s1", visitor="v1", channel="web"),
        ev("chat.requested", "r2", t + 6, "s1", visitor="v1", chat="c1"),  # reserved for ann
        ev("chat.requested", "r3", t + 7, "s1", visitor="w", chat="c2"),
        ev("chat.requested", "r4", t + 8, "s1", visitor="y", chat="c3"),
    )]])
    queued = {o["chat"]: o["position"] for o in (orjson.loads(it.line) for it in sub.items)
              if o["type"] == "chat.queued"}
    assert queued == {"c1": 1, "c2": 2, "c3": 3}
    rows = svc.queue_view("s1")["chats"]
    assert [(r["chat"], r["position"], r["reserved_for"]) for r in rows] == [
        ("c1", 1, "ann"), ("c2", 2, None), ("c3", 3, None)]
    for chat, pos in queued.items():
        view = svc.chat_view("s1", chat)
        assert view is not None and (view["position"], view["queue_length"]) == (pos, 3)
