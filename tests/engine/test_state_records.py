"""Visitor.to_record is spelled out for speed: it must still hold every slot, in order."""

from __future__ import annotations

from engine.state import Visitor


def test_visitor_record_has_every_slot_but_id_in_slot_order() -> None:
    v = Visitor("v1", 5)
    for i, s in enumerate(Visitor.__slots__):
        if s not in ("id", "chats"):
            setattr(v, s, f"value-{i}")
    v.chats = ["c1", "c2"]
    r = v.to_record()
    assert list(r) == [s for s in Visitor.__slots__ if s != "id"]
    assert all(r[s] == f"value-{i}" for i, s in enumerate(Visitor.__slots__)
               if s not in ("id", "chats"))
    assert r["chats"] == ["c1", "c2"] and r["chats"] is not v.chats
    back = Visitor.from_record("v1", r)
    assert back.to_record() == r
