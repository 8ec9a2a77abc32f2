"""Read queries: what the shells may ask the engine, answered from its state.

Every function takes the engine and reads only; none changes anything. The
answers are plain values (dicts, lists, numbers), computed with the formulas
the engine's outputs use (``engine/scoring.py``), so a view of a chat says
what its next ``chat.queued`` would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from engine.core import Engine
from engine.handover import platform_key
from engine.lifecycle import ASSIGNED, BOT, FORWARDED, WAITING
from engine.scoring import priority_at, units_of
from engine.state import ONLINE


def tenants(engine: Engine) -> list[str]:
    """The tenants the engine has seen, sorted."""
    return sorted(engine.tenants)


def now(engine: Engine, tenant: str) -> int | None:
    """The tenant's clock (event time, ms); None for a tenant never seen."""
    t = engine.tenants.get(tenant)
    return t.now if t is not None else None


def seen(engine: Engine, tenant: str | None, event_id: str) -> bool:
    """Whether ``apply`` would take an event with this id as a duplicate
    (``tenant`` None: a clock event for every tenant)."""
    if tenant is None:
        return event_id in engine.ids.seen
    t = engine.tenants.get(tenant)
    return t is not None and event_id in t.ids.seen


def remembered_ids(engine: Engine) -> int:
    """How many event ids the engine has taken in (duplicates are not counted)."""
    return engine.ids.count + sum(t.ids.count for t in engine.tenants.values())


def queue(engine: Engine, tenant: str) -> list[str]:
    """Keys of ``tenant``'s waiting chats in its one service order: the
    chat at index i has ``position`` i + 1 (reserved chats and every
    skill's chats included, as in ``chat.queued``)."""
    t = engine.tenants.get(tenant)
    return t.order() if t is not None else []


def position(engine: Engine, tenant: str, chat: str) -> int:
    """The 1-based ``position`` of a waiting chat (its key in ``tenant``)
    in the tenant's one order; 0 if it is not waiting."""
    t = engine.tenants.get(tenant)
    c = t.chats.get(chat) if t is not None else None
    if t is None or c is None or c.qkey is None:
        return 0
    return t.rank(c.qkey)


def waiting_count(engine: Engine) -> int:
    """How many chats wait, over every tenant."""
    return sum(t.waiting() for t in engine.tenants.values())


def is_open(engine: Engine, tenant: str, chat: str) -> bool:
    """Whether the tenant holds the chat (under its key there)."""
    t = engine.tenants.get(tenant)
    return t is not None and chat in t.chats


def visitor_chats(engine: Engine, tenant: str, visitor: str) -> set[str]:
    """Ids of the visitor's open chats that started at ``tenant``."""
    t = engine.tenants.get(tenant)
    if t is None:
        return set()
    return {c.id for c in t.chats.values() if c.visitor == visitor and c.origin is None}


def chat(engine: Engine, tenant: str, chat: str) -> dict[str, Any] | None:
    """A live chat's state (None: the tenant holds no such chat). A chat
    handed over inline is shown where it is served (``handled_by``)."""
    t = engine.tenants.get(tenant)
    c = t.chats.get(chat) if t is not None else None
    where = t
    if c is not None and c.status == FORWARDED and c.to:
        p = engine.tenants.get(c.to)
        pc = p.chats.get(platform_key(tenant, chat)) if p is not None else None
        if p is not None and pc is not None:
            where, c = p, pc
    if c is None or where is None:
        return None
    view: dict[str, Any] = {
        "tenant": tenant, "chat": chat, "state": c.status, "visitor": c.server_ids()[1],
        "skill": c.skill, "since_ms": c.t0, "waited_ms": max(0, where.now - c.t0),
    }
    if where is not t:
        view["handled_by"] = where.name
    if c.status == WAITING:
        pos = position(engine, where.name, c.key)
        qlen = len(where.order()) if pos else 0
        view.update(position=pos, queue_length=qlen,
                    eta_s=where.eta_s(c, c.qkey, pos) if c.qkey is not None else 0,
                    priority=priority_at(engine.rules, c, where.now),
                    step=engine.rules.step_at(where.name, c.step, c.transfer_to).name)
        if c.reserved_for is not None:
            view["reserved_for"] = c.reserved_for
            view["reserve_kind"] = c.reserve_kind
    elif c.status == ASSIGNED:
        view.update(agent=c.agent, accepted=c.accepted)
    elif c.status == BOT:
        view["mode"] = c.mode
    return view


def queue_rows(engine: Engine, tenant: str) -> tuple[int, list[dict[str, Any]]] | None:
    """(the tenant's clock, its waiting chats in service order: row i has
    position i + 1, as in ``chat.queued``); None for a tenant never seen."""
    t = engine.tenants.get(tenant)
    if t is None:
        return None
    rows = []
    weights = engine.rules.capacity_weights
    # the most units any online agent could take: a chat heavier waits in vain
    most = max((a.capacity for a in t.agents.values() if a.status == ONLINE),
               default=0) if weights else 0
    for pos, key in enumerate(t.order(), start=1):
        c = t.chats[key]
        v = t.visitors.get(c.visitor)
        row: dict[str, Any] = {
            "chat": c.id, "visitor": c.server_ids()[1], "position": pos,
            "eta_s": t.eta_s(c, c.qkey, pos) if c.qkey is not None else 0, "skill": c.skill,
            "page": v.page if v is not None else None,
            "waited_ms": max(0, t.now - c.t0),
            "priority": priority_at(engine.rules, c, t.now),
            "reserved_for": c.reserved_for, "origin": c.origin,
            "step": engine.rules.step_at(t.name, c.step, c.transfer_to).name,
        }
        if weights:
            units = row["units"] = units_of(engine.rules, c.skill)
            if units > 1 and units > most:
                row["blocked"] = (f"needs {units} units of an agent's capacity; no online "
                                  f"agent has more than {most}")
        rows.append(row)
    return t.now, rows


def agent_rows(engine: Engine, tenant: str) -> tuple[int, list[dict[str, Any]]] | None:
    """(the tenant's clock, its agents sorted by id); None for a tenant never seen."""
    t = engine.tenants.get(tenant)
    if t is None:
        return None
    rows: list[dict[str, Any]] = [{"agent": a.id, "status": a.status, "load": a.used,
                                   "capacity": a.capacity, "skills": dict(a.skills),
                                   "chats": sorted(a.active)} for a in t.agents.values()]
    rows.sort(key=lambda r: r["agent"])
    return t.now, rows


def tenant_state(engine: Engine, tenant: str) -> dict[str, Any] | None:
    """A tenant's figures: ``now``, ``queue`` (waiting chats), ``waiting_by_page``
    (a Counter), ``bots`` (chats with the bot), ``agents`` (online first, then
    by id), ``held`` and ``capacity`` (of online agents); None for a tenant
    never seen."""
    t = engine.tenants.get(tenant)
    if t is None:
        return None
    by_page: Counter[str] = Counter()
    queued = 0
    for c in t.chats.values():
        if t.is_waiting(c):
            queued += 1
            v = t.visitors.get(c.visitor)
            by_page[(v.page if v is not None else None) or "(no page)"] += 1
    agents: list[dict[str, Any]] = []
    held = cap = 0
    for a in t.agents.values():
        if a.status == ONLINE:
            held += a.used
            cap += a.capacity
        agents.append({"agent": a.id, "status": a.status, "load": a.used,
                       "capacity": a.capacity})
    agents.sort(key=lambda r: (r["status"] != ONLINE, r["agent"]))
    return {"now": t.now, "queue": queued, "waiting_by_page": by_page,
            "bots": sum(1 for c in t.chats.values() if c.status == BOT),
            "agents": agents, "held": held, "capacity": cap}


def gauges(engine: Engine) -> Iterator[tuple[str, int, int, int, int]]:
    """(tenant, waiting, online agents, chats held by online agents, their capacity)."""
    for name, t in engine.tenants.items():
        online = held = cap = 0
        for a in t.agents.values():
            if a.status == ONLINE:
                online += 1
                held += a.used
                cap += a.capacity
        yield name, t.waiting(), online, held, cap
