"""Visitor.to_record is spelled out for speed: it must still hold every slot, in order."""

from __future__ import annotations

from engine.state import Chat, Visitor


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


def test_chat_record_round_trips_every_persisted_field() -> None:
    c = Chat("M/c1", "c1", 7, "M/v1", 5)
    c.move("waiting")
    c.origin, c.skill, c.reserved_for, c.reserve_kind, c.reserve_until = (
        "M", "sales", "a1", "sticky", 9)
    c.excluded = ["a0"]
    r = c.to_record()
    assert list(r) == ["id", "origin", "seq", "visitor", "t0", "status", "skill", "agent",
                       "accepted", "offer_until", "excluded", "reserved_for", "reserve_kind",
                       "reserve_until", "to", "mode"]
    back = Chat.from_record("M/c1", r)
    assert back.to_record() == r and back.excluded is not c.excluded and back.key == "M/c1"
