"""Visitor.to_record is spelled out for speed: it must still hold every slot, in order."""

from __future__ import annotations

import ast

import orjson

from engine.state import Agent, Chat, Visitor
from tests.routeq import ROOT


def slots(cls: type) -> tuple[str, ...]:
    """A class's ``__slots__`` as its source writes them (a class compiled
    with mypyc keeps its fields but has no ``__slots__`` attribute)."""
    tree = ast.parse((ROOT / "engine" / "state.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            for item in node.body:
                if isinstance(item, ast.Assign) and getattr(item.targets[0], "id", "") == (
                        "__slots__"):
                    return tuple(ast.literal_eval(item.value))
    raise AssertionError(f"{cls.__name__} has no __slots__")


def test_visitor_record_has_every_slot_but_id_in_slot_order() -> None:
    v = Visitor("v1", 5)
    want = {}
    for i, s in enumerate(slots(Visitor)):
        if s not in ("id", "chats"):
            now = getattr(v, s)  # a value of the field's type, distinct per field
            want[s] = (i % 2 == 0 if isinstance(now, bool) else
                       i if isinstance(now, int) else f"value-{i}")
            setattr(v, s, want[s])
    v.chats = ("c1", "c2")
    r = v.to_record()
    assert list(r) == [s for s in slots(Visitor) if s != "id"]
    assert all(r[s] == want[s] for s in want)
    assert r["chats"] == ["c1", "c2"]  # a list in a record, as JSON has it
    back = Visitor.from_record("v1", r)
    assert back.to_record() == r


def test_chat_record_round_trips_every_persisted_field() -> None:
    c = Chat("M/c1", "c1", 7, "M/v1", 5)
    c.move("waiting")
    c.origin, c.skill, c.reserved_for, c.reserve_kind, c.reserve_until = (
        "M", "sales", "a1", "sticky", 9)
    c.excluded = ["a0"]
    c.step, c.step_since, c.transfer_to, c.place, c.queued_since = -1, 8, "a2", 3, 6
    r = c.to_record()
    assert list(r) == ["id", "origin", "seq", "visitor", "t0", "status", "skill", "agent",
                       "accepted", "offer_until", "excluded", "reserved_for", "reserve_kind",
                       "reserve_until", "to", "mode", "units", "step", "step_since",
                       "transfer_to", "place", "queued_since"]
    back = Chat.from_record("M/c1", r)
    assert back.to_record() == r and back.excluded is not c.excluded and back.key == "M/c1"


def test_a_chat_record_written_before_routing_steps_reads_as_in_its_first_step() -> None:
    c = Chat("c1", "c1", 7, "v1", 5)
    r = c.to_record()
    for key in ("step", "step_since", "transfer_to", "place", "queued_since"):
        del r[key]
    back = Chat.from_record("c1", r)
    assert (back.step, back.step_since, back.transfer_to, back.place, back.queued_since) == (
        0, 5, None, -1, 5)


def test_agent_record_round_trips_presence_and_capacity() -> None:
    a = Agent("a1", 3)
    a.status, a.capacity, a.active, a.used = "offline", 4, {"c1": 7}, 3
    a.wrap, a.wrap_up_ms, a.missed, a.grace_until = {5: (9_000, 2)}, 2_500, 1, 12_000
    r = orjson.loads(orjson.dumps(a.to_record()))  # persisted as JSON
    back = Agent.from_record("a1", r)
    assert back.to_record() == a.to_record()
    assert (back.used, back.wrap, back.wrap_up_ms, back.missed, back.grace_until) == (
        3, {5: (9_000, 2)}, 2_500, 1, 12_000)


def test_an_agent_record_written_before_them_reads_with_the_defaults() -> None:
    old = {"seq": 3, "status": "online", "capacity": 2, "skills": {}, "channels": None,
           "regions": None, "active": {"c1": 7, "c2": 8}, "idle_since": 0}
    a = Agent.from_record("a1", old)
    assert (a.used, a.wrap, a.wrap_up_ms, a.missed, a.grace_until) == (2, {}, None, 0, 0)
    assert not a.has_room()
