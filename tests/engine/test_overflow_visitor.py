"""A visitor's second chat overflowed to the platform updates the platform's
copy of the visitor: their chat already waiting there is re-keyed as on any
other change of the visitor, so a restored engine (which keys every waiting
chat from the visitor's record) decides the same (found by
test_restore_from_dirty_records_at_any_cut)."""

from __future__ import annotations

import orjson

from engine import Engine, records
from tests.helpers import Driver, EventBuilder, one

RULES = {"overflow": {"enabled": True, "after_s": 10.0}, "modes": {"default": "human_only"}}


def stream() -> list[dict]:
    b = EventBuilder("m1", step_ms=0)
    return [
        b.request("v0", "c0", ts=b.at(1_790_000_000_000)),
        b.event("visitor.arrived", visitor="v0", channel="web", ts=b.now + 15_000),  # returning now
        b.request("v0", "c1"),
        b.clock(tenant=None, ts=b.now + 10_000),  # both overflowed
        b.event("agent.state", tenant="platform", agent="p1", status="online", capacity=1),
    ]


def test_the_waiting_chat_takes_the_visitors_new_priority_at_the_platform() -> None:
    d = Driver(RULES)
    out = d.feed(*stream())
    # c0 waited longer and its visitor is returning now, as for c1: it goes first
    assert one(out, "chat.assigned")["chat"] == "c0"
    assert one(out, "chat.assigned")["score"]["returning"] == 15.0


def test_a_restored_engine_decides_the_same() -> None:
    events = stream()
    full = Driver(RULES).feed(*events)
    for cut in range(len(events) + 1):
        d = Driver(RULES)
        out = d.feed(*events[:cut])
        recs = records.by_key(d.engine.take_changes())
        store = {k: orjson.dumps(v) for k, v in recs.items() if v is not None}
        again = Driver(RULES)
        again.engine = Engine.restore(d.engine.rules,
                                      ((k, orjson.loads(v)) for k, v in store.items()))
        again.offset = cut
        assert out + again.feed(*events[cut:]) == full, f"cut at {cut}"
