"""One tenant: its entities and the indexes derived from them.

The entities (``engine/state.py``) are persisted; the indexes (queues of
waiting chats, agents with room, the roster, timers, online counts) are
derived from them and rebuilt by ``Engine.restore``. The index methods keep
them in step with the entities; placement (``engine/core.py``) calls them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from engine.dedup import IdWindow
from engine.eta import QueuePace, eta_s
from engine.queue import Entry, WaitQueue, find
from engine.roster import Roster
from engine.rules import Rules
from engine.state import WAITING, Agent, Chat, Record, Visitor
from engine.timers import TimerHeap


class Tenant:
    """One tenant's entities and the indexes derived from them."""

    __slots__ = (
        "name", "seq", "now", "next_seq", "rr", "agents", "visitors", "chats", "ids",
        "rules", "uses_roster", "queues", "personal", "avail", "avail_all", "roster", "timers",
        "online_agents", "online_capacity", "agent_changes", "visitor_changes", "chat_changes",
        "paces", "predictive",
    )

    def __init__(self, name: str, seq: int, now: int, rules: Rules, *,
                 uses_roster: bool = False, track_changes: bool = False) -> None:
        self.name = name
        self.seq = seq  # creation order among tenants
        self.now = now
        self.next_seq = 0  # numbers agents and chats in order of first mention
        self.rr = -1  # seq of the agent the round-robin pointer last gave a chat
        self.agents: dict[str, Agent] = {}
        self.visitors: dict[str, Visitor] = {}
        self.chats: dict[str, Chat] = {}
        self.ids = IdWindow(rules.dedup_window, track_changes, rules.dedup_window_ms)
        # derived indexes
        self.rules = rules
        self.uses_roster = uses_roster  # keep ``roster`` up to date (the priority policy)
        self.queues: dict[str | None, WaitQueue] = {}  # skill bucket -> waiting chats
        self.personal: dict[str, WaitQueue] = {}  # agent -> chats reserved for them
        self.avail: dict[str, dict[str, Agent]] = {}  # skill -> agents with room
        self.avail_all: dict[str, Agent] = {}  # agents with room
        self.roster = Roster()  # agents with room by score class
        self.timers = TimerHeap()
        self.online_agents = 0
        self.online_capacity = 0
        # how fast the queue moves: the common order's (None) and each required
        # skill's queue's (engine/eta.py)
        self.paces: dict[str | None, QueuePace] = {}
        # derived: waiting chats in a predictive step (keys; stale ones are skipped)
        self.predictive: dict[str, None] = {}
        # ids of the entities changed since the engine last handed out its
        # changes (``Engine.take_changes``), in the order first changed
        self.agent_changes: dict[str, None] = {}
        self.visitor_changes: dict[str, None] = {}
        self.chat_changes: dict[str, None] = {}

    def take_seq(self) -> int:
        self.next_seq += 1
        return self.next_seq

    def to_record(self) -> Record:
        r: Record = {"seq": self.seq, "now": self.now, "next_seq": self.next_seq, "rr": self.rr}
        if self.paces:
            r["paces"] = {"" if k is None else k: v.to_record() for k, v in self.paces.items()}
        return r

    @classmethod
    def from_record(cls, name: str, r: Record, rules: Rules, *, uses_roster: bool = False,
                    track_changes: bool = False) -> Tenant:
        t = cls(name, r["seq"], r["now"], rules, uses_roster=uses_roster,
                track_changes=track_changes)
        t.next_seq, t.rr = r["next_seq"], r["rr"]
        # a record written before the live ETA has no paces
        t.paces = {k or None: QueuePace.from_record(v) for k, v in r.get("paces", {}).items()}
        return t

    # ------------------------------------------------------- agents with room

    def index(self, a: Agent) -> None:
        """File an agent that has room in the availability indexes."""
        if a.has_room():
            self.avail_all[a.id] = a
            for s in a.skills:
                d = self.avail.get(s)
                if d is None:
                    d = self.avail[s] = {}
                d[a.id] = a
            if self.uses_roster:
                self.roster.file(a, self.rules.w_skill, self.rules.w_load)

    def unindex(self, a: Agent) -> None:
        if self.avail_all.pop(a.id, None) is not None:
            for s in a.skills:
                d = self.avail.get(s)
                if d is not None:
                    d.pop(a.id, None)
            if self.uses_roster:
                self.roster.unfile(a)

    def refile(self, a: Agent) -> None:
        """An agent with room took or gave back a chat: its load class changed."""
        if self.uses_roster:
            self.roster.unfile(a)
            self.roster.file(a, self.rules.w_skill, self.rules.w_load)

    # ------------------------------------------------------- waiting chats

    def queue_of(self, c: Chat) -> WaitQueue:
        """The queue a waiting chat is in: its reserved agent's, its skill's
        (required, or its step asks for it), or the shared one."""
        if c.reserved_for is not None:
            q = self.personal.get(c.reserved_for)
            if q is None:
                q = self.personal[c.reserved_for] = WaitQueue()
            return q
        bucket = c.skill if c.need or self.rules.requires(c.skill) else None
        q = self.queues.get(bucket)
        if q is None:
            q = self.queues[bucket] = WaitQueue()
        return q

    def eta_place(self, c: Chat, entry: Entry, position: int) -> tuple[str | None, int]:
        """Which pace a chat waiting at ``entry`` goes by, and its place there:
        a required skill's chat counts the chats ahead in its skill's queue,
        any other its ``position`` in the tenant's order."""
        if c.reserved_for is None and self.rules.requires(c.skill):
            q = self.queues.get(c.skill)
            return c.skill, (find(q.entries, entry) + 1 if q is not None else 1)
        return None, position

    def eta_s(self, c: Chat, entry: Entry, position: int) -> int:
        """The estimated wait of chat ``c`` waiting at ``entry`` (queued or
        about to be), 1-based ``position`` in the tenant's order."""
        key, place = self.eta_place(c, entry, position)
        return eta_s(self.rules, place, self.online_capacity, self.paces.get(key))

    def measured(self, c: Chat) -> None:
        """Chat ``c``, queued once at ``c.place``, is assigned for the first
        time now: its wait in the queue (not its time with the bot, nor at the
        merchant it overflowed from) goes into its pace."""
        key = c.skill if self.rules.requires(c.skill) else None
        pace = self.paces.get(key)
        if pace is None:
            pace = self.paces[key] = QueuePace()
        pace.measured(self.now, self.now - c.queued_since, c.place, self.rules.eta_window_ms)

    def all_queues(self) -> Iterator[WaitQueue]:
        """Every queue of waiting chats: shared or per skill, and reserved."""
        yield from self.queues.values()
        for q in self.personal.values():
            if q.entries:
                yield q

    def rank(self, entry: Entry) -> int:
        """The 1-based place of a queued entry in the tenant's one service
        order (every queue's entries merged: reserved chats and every skill's
        chats included): the entries before it, counted queue by queue. Done
        when asked, so that re-keying a chat moves it in one list only."""
        n = 1
        for q in self.queues.values():
            n += find(q.entries, entry)
        for q in self.personal.values():
            if q.entries:  # most agents have nothing reserved: skip the search
                n += find(q.entries, entry)
        return n

    def order(self) -> list[str]:
        """Keys of the waiting chats in the one service order."""
        return [e[2] for e in heapq.merge(*(q.entries for q in self.all_queues()))]

    def waiting(self) -> int:
        """How many chats wait."""
        return sum(len(q) for q in self.queues.values()) + sum(
            len(q) for q in self.personal.values())

    def is_waiting(self, c: Chat) -> bool:
        return c.status == WAITING and c.qkey is not None
