"""The engine's stored entities: agents, visitors and chats.

Plain classes with ``__slots__`` (fast, about 300 bytes a visitor). Each
converts to a JSON-able record and back. A tenant and the indexes derived from
its entities are in ``engine/tenant.py``.
"""

from __future__ import annotations

from typing import Any

from engine.lifecycle import ASSIGNED, BOT, ENDED, FORWARDED, NEW, WAITING, step

Record = dict[str, Any]
EntityKey = tuple[str, str, str]  # (kind, tenant, id)

ONLINE, AWAY, OFFLINE = "online", "away", "offline"

__all__ = [
    "ASSIGNED", "AWAY", "BOT", "DEFAULT_CAPACITY", "ENDED", "FORWARDED", "NEW", "OFFLINE",
    "ONLINE", "WAITING", "Agent", "Chat", "EntityKey", "Record", "Visitor",
]

#: a new agent's capacity when its first ``agent.state`` gives none
DEFAULT_CAPACITY = 5


class Agent:
    __slots__ = (
        "id", "seq", "status", "capacity", "skills", "channels", "regions", "active",
        "idle_since", "used", "wrap", "wrap_up_ms", "missed", "grace_until",
    )

    def __init__(self, agent_id: str, seq: int) -> None:
        self.id = agent_id
        self.seq = seq
        self.status = OFFLINE
        self.capacity = 0
        self.skills: dict[str, int] = {}
        self.channels: tuple[str, ...] | None = None
        self.regions: tuple[str, ...] | None = None
        self.active: dict[str, int] = {}  # chat key -> chat seq
        self.idle_since = 0
        # units of capacity in use: the held chats' (each its ``Chat.units``)
        # and the wrap-ups'
        self.used = 0
        # units still held by chats that ended: ended chat's seq -> (when the
        # wrap-up frees them (ms), how many)
        self.wrap: dict[int, tuple[int, int]] = {}
        self.wrap_up_ms: int | None = None  # the agent's own wrap-up; None: the rules'
        self.missed = 0  # offers in a row let time out
        self.grace_until = 0  # offline with chats kept until then (0: no grace running)

    def has_room(self) -> bool:
        """Online with at least one unit free (a heavier chat must also ``fit``)."""
        return self.status == ONLINE and self.used < self.capacity

    def to_record(self) -> Record:
        return {
            "seq": self.seq, "status": self.status, "capacity": self.capacity,
            "skills": dict(self.skills), "channels": self.channels, "regions": self.regions,
            "active": dict(self.active), "idle_since": self.idle_since,
            "used": self.used,
            "wrap": [[seq, until, units] for seq, (until, units) in self.wrap.items()],
            "wrap_up_ms": self.wrap_up_ms, "missed": self.missed,
            "grace_until": self.grace_until,
        }

    @classmethod
    def from_record(cls, agent_id: str, r: Record) -> Agent:
        a = cls(agent_id, r["seq"])
        a.status, a.capacity, a.skills = r["status"], r["capacity"], dict(r["skills"])
        a.channels = tuple(r["channels"]) if r["channels"] is not None else None
        a.regions = tuple(r["regions"]) if r["regions"] is not None else None
        a.active, a.idle_since = dict(r["active"]), r["idle_since"]
        # records written before wrap-up, missed offers and offline grace lack them
        a.wrap = {w[0]: (w[1], w[2]) for w in r.get("wrap", [])}
        a.used = r.get("used", len(a.active))
        a.wrap_up_ms = r.get("wrap_up_ms")
        a.missed = r.get("missed", 0)
        a.grace_until = r.get("grace_until", 0)
        return a


class Visitor:
    __slots__ = (
        "id", "first_ts", "last_ts", "pages", "page", "keyword", "category", "channel",
        "region", "member", "tier", "orders", "ltv", "last_agent", "exclusive", "returning",
        "left", "chats",
    )

    def __init__(self, visitor_id: str, ts: int) -> None:
        self.id = visitor_id
        self.first_ts = ts
        self.last_ts = ts
        self.pages = 0
        self.page: str | None = None
        self.keyword: str | None = None
        self.category: str | None = None
        self.channel: str | None = None
        self.region: str | None = None
        self.member = False
        self.tier = 0
        self.orders = 0
        self.ltv: int | float = 0  # an int stays an int in records and outputs
        self.last_agent: str | None = None
        self.exclusive: str | None = None
        self.returning = False
        self.left = False
        # open chat keys: a tuple, so that the many visitors with none share
        # the one empty tuple rather than each holding an empty list
        self.chats: tuple[str, ...] = ()

    def time_on_site_ms(self) -> int:
        return self.last_ts - self.first_ts

    def to_record(self) -> Record:
        # spelled out (a comprehension over __slots__ took twice as long: this
        # runs for every visitor a page view touched, at every checkpoint);
        # tests/engine/test_state_records.py checks it against __slots__
        return {
            "first_ts": self.first_ts, "last_ts": self.last_ts, "pages": self.pages,
            "page": self.page, "keyword": self.keyword, "category": self.category,
            "channel": self.channel, "region": self.region, "member": self.member,
            "tier": self.tier, "orders": self.orders, "ltv": self.ltv,
            "last_agent": self.last_agent, "exclusive": self.exclusive,
            "returning": self.returning, "left": self.left, "chats": list(self.chats),
        }

    @classmethod
    def from_record(cls, visitor_id: str, r: Record) -> Visitor:
        v = cls(visitor_id, r["first_ts"])
        v.last_ts, v.pages, v.page, v.keyword = r["last_ts"], r["pages"], r["page"], r["keyword"]
        v.category, v.channel, v.region = r["category"], r["channel"], r["region"]
        v.member, v.tier, v.orders, v.ltv = r["member"], r["tier"], r["orders"], r["ltv"]
        v.last_agent, v.exclusive = r["last_agent"], r["exclusive"]
        v.returning, v.left, v.chats = r["returning"], r["left"], tuple(r["chats"])
        return v


class Chat:
    __slots__ = (
        "key", "id", "origin", "seq", "visitor", "t0", "status", "skill", "agent", "accepted",
        "offer_until", "excluded", "reserved_for", "reserve_kind", "reserve_until", "to",
        "mode", "units", "step", "step_since", "transfer_to", "place", "queued_since", "base",
        "qkey", "need", "step_until",
    )

    def __init__(self, key: str, chat_id: str, seq: int, visitor: str, t0: int) -> None:
        self.key = key  # id inside this tenant (``M/chat`` for a chat overflowed from M)
        self.id = chat_id  # the id the chat server knows
        self.origin: str | None = None  # merchant it overflowed from
        self.seq = seq
        self.visitor = visitor
        self.t0 = t0
        self.status = NEW  # moves only through ``move`` (engine/lifecycle.py)
        self.skill: str | None = None
        self.agent: str | None = None
        self.accepted = False
        self.offer_until = 0
        self.excluded: list[str] = []
        self.reserved_for: str | None = None
        self.reserve_kind: str | None = None
        self.reserve_until = 0
        self.to: str | None = None  # tenant it was forwarded to
        self.mode = "human_only"  # service mode decided at request
        self.units = 1  # of its agent's capacity, set when it is assigned
        # its routing step (engine/steps.py): the index in its tenant's steps
        # (-1: the first step of a transfer, to ``transfer_to`` or its skill)
        self.step = 0
        self.step_since = t0  # when it entered that step
        self.transfer_to: str | None = None
        # its place in the queue when first queued (0: not yet; -1: assigned
        # since, or never queued): its wait measures the queue's pace (engine/eta.py)
        self.place = 0
        self.queued_since = t0  # when it was first queued (its measured wait starts)
        # derived, not persisted
        self.base = 0.0
        self.qkey: tuple[float, int, str] | None = None
        self.need = 0  # in a skilled step: the least level of its skill an agent needs
        self.step_until = 0  # when its step's time is up (0: never)

    def move(self, to: str) -> None:
        """Change status as ``engine/lifecycle.py`` allows."""
        self.status = step(self.status, to)

    def server_ids(self) -> tuple[str, str]:
        """(chat, visitor) as the chat server knows them."""
        if self.origin is None:
            return self.id, self.visitor
        return self.id, self.visitor[len(self.origin) + 1:]

    def to_record(self) -> Record:
        # every field but key (the record's id) and the derived base and qkey
        return {
            "id": self.id, "origin": self.origin, "seq": self.seq, "visitor": self.visitor,
            "t0": self.t0, "status": self.status, "skill": self.skill, "agent": self.agent,
            "accepted": self.accepted, "offer_until": self.offer_until,
            "excluded": list(self.excluded), "reserved_for": self.reserved_for,
            "reserve_kind": self.reserve_kind, "reserve_until": self.reserve_until,
            "to": self.to, "mode": self.mode, "units": self.units, "step": self.step,
            "step_since": self.step_since, "transfer_to": self.transfer_to,
            "place": self.place, "queued_since": self.queued_since,
        }

    @classmethod
    def from_record(cls, key: str, r: Record) -> Chat:
        c = cls(key, r["id"], r["seq"], r["visitor"], r["t0"])
        c.origin, c.status, c.skill, c.agent = r["origin"], r["status"], r["skill"], r["agent"]
        c.accepted, c.offer_until, c.excluded = r["accepted"], r["offer_until"], list(r["excluded"])
        c.reserved_for, c.reserve_kind = r["reserved_for"], r["reserve_kind"]
        c.reserve_until, c.to, c.mode = r["reserve_until"], r["to"], r["mode"]
        c.units = r.get("units", 1)
        # records written before routing steps lack them
        c.step, c.step_since = r.get("step", 0), r.get("step_since", c.t0)
        c.transfer_to = r.get("transfer_to")
        c.place = r.get("place", -1)
        c.queued_since = r.get("queued_since", c.t0)
        return c
