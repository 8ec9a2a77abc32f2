"""Invariants of the routing engine over random multi-tenant event streams."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine, Rules, parse_rules, records, views
from engine.state import ASSIGNED, ONLINE, WAITING
from schemas.events import validate
from schemas.outputs import encode_lines
from tests.strategies import SKILLS, rules, streams

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def run(r: Rules, events: list[dict[str, Any]], engine: Engine | None = None,
        start: int = 0) -> list[dict[str, Any]]:
    eng = engine if engine is not None else Engine(r)
    out: list[dict[str, Any]] = []
    for i, ev in enumerate(events, start=start):
        out.extend(eng.apply(validate(ev), i))
    return out


def check_state(eng: Engine, outputs: list[dict[str, Any]], event: dict[str, Any]) -> None:
    """Invariants that must hold after every event."""
    assigned_now = {(o["tenant"], o["agent"]) for o in outputs if o["type"] == "chat.assigned"}
    # an agent set away for missed offers in the same step may have had a chat
    # offered first (a unit freed by one timeout, before the next timed out)
    assigned_now -= {(o["tenant"], o["agent"]) for o in outputs if o["type"] == "agent.away"}
    if event["type"] == "agent.state":
        # a timer may have given this agent a chat before the event changed them
        assigned_now.discard((event["tenant"], event["agent"]))
    for t in eng.tenants.values():
        holders: dict[str, str] = {}
        for a in t.agents.values():
            if (t.name, a.id) in assigned_now:
                assert a.status == ONLINE, f"offline agent {a.id} got a chat"
                assert a.used <= a.capacity, f"{a.id} over capacity (wrap-ups counted)"
            for key in a.active:
                assert key not in holders, f"chat {key} held by {holders.get(key)} and {a.id}"
                holders[key] = a.id
                c = t.chats[key]
                assert c.status == ASSIGNED and c.agent == a.id
        for c in t.chats.values():
            if c.status == ASSIGNED:
                assert holders.get(c.key) == c.agent


@SETTINGS
@given(rules(), streams())
def test_capacity_single_holder_online_only(r: Rules, events: list[dict[str, Any]]) -> None:
    eng = Engine(r)
    for i, ev in enumerate(events):
        check_state(eng, eng.apply(validate(ev), i), ev)


@SETTINGS
@given(rules(), streams())
def test_no_cross_tenant_assignment_except_overflow(r: Rules, events: list[dict[str, Any]]) -> None:
    eng = Engine(r)
    agents: dict[str, set[str]] = {}
    overflowed: set[tuple[str, str, str]] = set()
    for i, ev in enumerate(events):
        if ev["type"] == "agent.state":
            agents.setdefault(ev["tenant"], set()).add(ev["agent"])
        for o in eng.apply(validate(ev), i):
            if o["type"] == "chat.overflowed":
                overflowed.add((o["tenant"], o["chat"], o["to"]))
            if o["type"] == "chat.assigned":
                assert o["agent"] in agents.get(o["tenant"], set())
                if "origin" in o:
                    assert (o["origin"], o["chat"], o["tenant"]) in overflowed
                    assert o["reason"] == "overflow"


@SETTINGS
@given(rules(), streams())
def test_waiting_chats_are_served_once_capacity_appears(
    r: Rules, events: list[dict[str, Any]]
) -> None:
    eng = Engine(r)
    run(r, events, eng)
    before = {(t.name, c.id) for t in eng.tenants.values() for c in t.chats.values()
              if c.status == WAITING and c.origin is None}
    ts = max(ev["ts"] for ev in events)
    extra: list[dict[str, Any]] = []
    for k, tenant in enumerate(sorted(set(eng.tenants) | {r.platform})):
        for j in range(3):
            extra.append({"type": "agent.state", "id": f"x{k}-{j}", "ts": ts, "tenant": tenant,
                          "agent": f"super{j}", "status": "online", "capacity": 100,
                          "skills": {s: 5 for s in SKILLS}})
    extra.append({"type": "clock", "id": "x-clock", "ts": ts + 86_400_000})
    out = run(r, extra, eng, start=len(events))
    served = {(o.get("origin", o["tenant"]), o["chat"]) for o in out
              if o["type"] == "chat.assigned"}
    assert before <= served, f"never served: {before - served}"
    if not r.acceptance_required:  # without offers to time out, nobody is left waiting
        waiting = [c.key for t in eng.tenants.values() for c in t.chats.values()
                   if c.status == WAITING]
        assert waiting == [], f"still waiting: {waiting}"


@SETTINGS
@given(rules(), streams())
def test_same_events_same_bytes(r: Rules, events: list[dict[str, Any]]) -> None:
    assert encode_lines(run(r, events)) == encode_lines(run(r, events))


@SETTINGS
@given(rules(), streams(), st.data())
def test_restore_from_dirty_records_at_any_cut(
    r: Rules, events: list[dict[str, Any]], data: st.DataObject
) -> None:
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(events)), min_size=1, max_size=3))))
    assert encode_lines(restored_at(r, events, cuts)) == encode_lines(run(r, events))


def restored_at(r: Rules, events: list[dict[str, Any]], cuts: list[int]) -> list[dict[str, Any]]:
    """The outputs of ``events`` with the engine persisted (its change records,
    as bytes) and restored from them at each of ``cuts``."""
    store: dict[Any, bytes] = {}
    eng = Engine(r)
    out: list[dict[str, Any]] = []
    pos = 0
    for cut in cuts:
        out.extend(run(r, events[pos:cut], eng, start=pos))
        for key, rec in records.by_key(eng.take_changes()).items():
            if rec is None:
                store.pop(key, None)
            else:
                store[key] = orjson.dumps(rec)  # persisted as bytes, like a real store
        eng = Engine.restore(r, ((k, orjson.loads(v)) for k, v in store.items()))
        pos = cut
    out.extend(run(r, events[pos:], eng, start=pos))
    return out


@SETTINGS
@given(rules(), streams(duplicates=True))
def test_duplicates_change_nothing(r: Rules, events: list[dict[str, Any]]) -> None:
    big = parse_rules({**r.data, "dedup": {"window": 10_000}})
    seen: set[tuple[str | None, str]] = set()
    unique = []
    for ev in events:
        key = (ev.get("tenant"), ev["id"])
        if key not in seen:
            seen.add(key)
            unique.append(ev)

    def strip(outs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in o.items() if k != "offset"} for o in outs]

    assert strip(run(big, events)) == strip(run(big, unique))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules(), streams())
def test_sticky_goes_only_to_an_agent_who_served_the_visitor(
    r: Rules, events: list[dict[str, Any]]
) -> None:
    """``reason: "sticky"`` names an agent who served the visitor before, as a
    chat server sees it: who accepted one of their chats while holding it, or
    held one when it ended (``chat.ended``, ``visitor.left``); never an agent
    who only declined or let an offer time out (issue 21, item 3)."""
    eng = Engine(r)
    holder: dict[tuple[str, str], tuple[str, str]] = {}  # (tenant, chat) -> (visitor, agent)
    served: dict[tuple[str, str], set[str]] = {}  # (tenant, visitor) -> agents

    def output(o: dict[str, Any]) -> None:
        if "origin" in o or "chat" not in o:
            return
        key = (o["tenant"], o["chat"])
        if o["type"] == "chat.assigned":
            if o["reason"] == "sticky":
                assert o["agent"] in served.get((o["tenant"], o["visitor"]), set()), o
            holder[key] = (o["visitor"], o["agent"])
        elif o["type"] in ("chat.requeued", "chat.overflowed"):
            holder.pop(key, None)

    for i, ev in enumerate(events):
        out = eng.apply(validate(ev), i)
        own = next((k for k, o in enumerate(out) if o["cause"] != "timer"), len(out))
        for o in out[:own]:
            output(o)
        tenant, etype = ev.get("tenant"), ev["type"]
        if etype == "chat.accepted" and holder.get((tenant, ev["chat"]), ("", ""))[1] == ev[
                "agent"]:
            visitor, agent = holder[(tenant, ev["chat"])]
            served.setdefault((tenant, visitor), set()).add(agent)
        elif etype == "chat.ended" and (tenant, ev["chat"]) in holder:
            visitor, agent = holder.pop((tenant, ev["chat"]))
            served.setdefault((tenant, visitor), set()).add(agent)
        elif etype == "visitor.left":
            for key, (visitor, agent) in list(holder.items()):
                if key[0] == tenant and visitor == ev["visitor"]:
                    del holder[key]
                    served.setdefault((tenant, visitor), set()).add(agent)
        for o in out[own:]:
            output(o)


@SETTINGS
@given(rules(), streams())
def test_queue_positions_are_one_order_per_tenant(r: Rules, events: list[dict[str, Any]]) -> None:
    """After every event, each tenant's waiting chats have positions 1..N, a
    permutation, in one order with reserved chats and every skill's chats
    (issue 21, item 4); a ``chat.queued`` caused by the step's event that is
    the tenant's last output of the step gives the position the chat still
    has (a timer's ``chat.queued`` comes before the event, which may still move
    the chat: an arriving visitor's loyalty raises its priority silently)."""
    eng = Engine(r)
    for i, ev in enumerate(events):
        out = eng.apply(validate(ev), i)
        for name, t in eng.tenants.items():
            waiting = sorted(c.key for c in t.chats.values() if c.status == WAITING)
            order = views.queue(eng, name)
            assert sorted(order) == waiting
            got = [views.position(eng, name, key) for key in order]
            assert got == list(range(1, len(waiting) + 1))
            mine = [o for o in out if o["tenant"] == name]
            if mine and mine[-1]["type"] == "chat.queued" and mine[-1]["cause"] != "timer":
                q = mine[-1]
                key = q["chat"] if "origin" not in q else q["origin"] + "/" + q["chat"]
                assert views.position(eng, name, key) == q["position"], q
