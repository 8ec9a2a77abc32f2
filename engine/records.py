"""The engine's persisted records: changes, snapshot and restore.

A record is keyed ``(kind, tenant, id)``: ``engine`` (its clock and count of
ids), ``ids`` (a chunk of an id window; tenant ``*`` for clock events without
a tenant), ``tenant``, ``agent``, ``visitor``, ``chat``; ``None`` is a
deleted entity. ``take_changes`` groups the records of what changed since it
was last called; ``snapshot`` gives every record; ``load`` reads them back
into entities (the derived indexes are rebuilt by ``Engine.restore``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from engine.dedup import IdWindow
from engine.rules import Rules
from engine.state import Agent, Chat, EntityKey, Visitor
from engine.tenant import Tenant

ALL_TENANTS = "*"  # namespace of event ids of clock events without a tenant

#: (kind, tenant, [(id, record or None when deleted), ...])
Group = tuple[str, str, list[tuple[str, Any]]]


def engine_record(now: int, ids: IdWindow) -> dict[str, Any]:
    return {"now": now, "ids": ids.count}


def tenant_record(t: Tenant) -> dict[str, Any]:
    r = t.to_record()
    r["ids"] = t.ids.count
    return r


def _chunk_records(ids: IdWindow, nums: list[int]) -> list[tuple[str, Any]]:
    """(number, ids or None when dropped) of an id window's chunks."""
    return [(str(n), ids.record(n)) for n in dict.fromkeys(nums)]


def _records(live: Mapping[str, Agent | Visitor | Chat],
             changed: Iterable[str]) -> list[tuple[str, Any]]:
    """(id, record or None when deleted) of the changed entities of one kind."""
    return [(i, e.to_record() if (e := live.get(i)) is not None else None) for i in changed]


def take_changes(engine_changed: bool, tenant_changes: Mapping[str, Tenant], now: int,
                 ids: IdWindow, tenants: Mapping[str, Tenant]) -> list[Group]:
    """The records of what changed: the engine record (when ``engine_changed``
    or any tenant's record did: its ``now`` moves with every tenant's), the
    ``tenant_changes``' records, the id chunks and entities each tenant noted.
    Clears the changes the id windows and tenants hold."""
    groups: list[Group] = []
    if engine_changed or tenant_changes:
        groups.append(("engine", "", [("", engine_record(now, ids))]))
    nums = ids.take_changes()
    if nums:
        groups.append(("ids", ALL_TENANTS, _chunk_records(ids, nums)))
    for name, t in tenants.items():
        if name in tenant_changes:
            groups.append(("tenant", name, [("", tenant_record(t))]))
        nums = t.ids.take_changes()
        if nums:
            groups.append(("ids", name, _chunk_records(t.ids, nums)))
        for kind, live, changed in (("agent", t.agents, t.agent_changes),
                                    ("visitor", t.visitors, t.visitor_changes),
                                    ("chat", t.chats, t.chat_changes)):
            if changed:
                groups.append((kind, name, _records(live, changed)))
                changed.clear()
    return groups


def by_key(groups: Iterable[Group]) -> dict[EntityKey, Any]:
    """``take_changes``' groups as one mapping ``(kind, tenant, id) -> record``."""
    return {(kind, name, ident): rec for kind, name, group in groups for ident, rec in group}


def snapshot(now: int, ids: IdWindow,
             tenants: Mapping[str, Tenant]) -> Iterator[tuple[EntityKey, Any]]:
    """Every entity's record (a full checkpoint)."""
    yield ("engine", "", ""), engine_record(now, ids)
    for n in ids.chunks:
        yield ("ids", ALL_TENANTS, str(n)), ids.record(n)
    for t in tenants.values():
        yield ("tenant", t.name, ""), tenant_record(t)
        for n in t.ids.chunks:
            yield ("ids", t.name, str(n)), t.ids.record(n)
        for a in t.agents.values():
            yield ("agent", t.name, a.id), a.to_record()
        for v in t.visitors.values():
            yield ("visitor", t.name, v.id), v.to_record()
        for c in t.chats.values():
            yield ("chat", t.name, c.key), c.to_record()


def load(rules: Rules, records: Iterable[tuple[EntityKey, Any]], *, uses_roster: bool,
         track_changes: bool) -> tuple[int, IdWindow, dict[str, Tenant]]:
    """(now, ids of clock events, tenants) from persisted records: entities
    only, with empty derived indexes."""
    by_kind: dict[str, list[tuple[str, str, Any]]] = {}
    for (kind, name, ident), rec in records:
        if rec is not None:
            by_kind.setdefault(kind, []).append((name, ident, rec))
    now = 0
    ids = IdWindow(rules.dedup_window, track_changes, rules.dedup_window_ms)
    for _, _, rec in by_kind.get("engine", []):
        now = rec["now"]
        ids.count = rec["ids"]
    tenants: dict[str, Tenant] = {}
    counts: dict[str, int] = {ALL_TENANTS: ids.count}
    for name, _, rec in sorted(by_kind.get("tenant", []), key=lambda x: x[2]["seq"]):
        tenants[name] = Tenant.from_record(name, rec, rules, uses_roster=uses_roster,
                                           track_changes=track_changes)
        counts[name] = rec["ids"]
    for name, ident, rec in by_kind.get("ids", []):
        # a record of ids alone (written before chunks had a start) starts now
        if name == ALL_TENANTS:
            ids.restore_chunk(int(ident), rec, now)
        else:
            t = tenants[name]
            t.ids.restore_chunk(int(ident), rec, t.now)
    ids.finish_restore(counts[ALL_TENANTS])
    for name, ident, rec in by_kind.get("agent", []):
        tenants[name].agents[ident] = Agent.from_record(ident, rec)
    for name, ident, rec in by_kind.get("visitor", []):
        tenants[name].visitors[ident] = Visitor.from_record(ident, rec)
    for name, ident, rec in by_kind.get("chat", []):
        tenants[name].chats[ident] = Chat.from_record(ident, rec)
    for t in tenants.values():
        t.ids.finish_restore(counts[t.name])
    return now, ids, tenants
