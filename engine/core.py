"""The routing engine: a deterministic fold of events into decisions.

``Engine(rules).apply(event, offset) -> list[output]``. Time is the event's
``ts`` (per tenant, never backwards); timers fire in deadline order before any
event that passes them. The engine records which entities changed
(``take_dirty``) and can be rebuilt from them (``Engine.restore``) to produce
the same future outputs as if it had never stopped. No I/O, no clock, no
randomness.
"""

from __future__ import annotations

import hashlib
import heapq
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from engine.dedup import IdWindow
from engine.policies import policy_for
from engine.queue import Entry, WaitQueue
from engine.rules import Rules, default_rules
from engine.scoring import (
    eligible,
    match_parts,
    priority_base,
    priority_parts,
    skill_of_request,
)
from engine.state import (
    ASSIGNED,
    AWAY,
    BOT,
    DEFAULT_CAPACITY,
    FORWARDED,
    OFFLINE,
    ONLINE,
    WAITING,
    Agent,
    Chat,
    EntityKey,
    Tenant,
    Visitor,
)
from engine.timers import OFFER, OVERFLOW, RESERVE
from schemas.events import OVERFLOW_SEP, Event, EventError
from schemas.outputs import Output, rejected

ALL_TENANTS = "*"  # namespace of event ids of clock events without a tenant


HANDOFFS = ("inline", "external")


def _chunk_records(ids: IdWindow, nums: list[int]) -> list[tuple[str, Any]]:
    """(number, ids or None when dropped) of an id window's chunks."""
    return [(str(n), ids.record(n)) for n in dict.fromkeys(nums)]


def _records(live: Mapping[str, Any], changed: Iterable[str]) -> list[tuple[str, Any]]:
    """(id, record or None when deleted) of the changed entities of one kind."""
    return [(i, e.to_record() if (e := live.get(i)) is not None else None) for i in changed]


def forward_id(tenant: str, event_id: str) -> str:
    """A unique id, within the receiving tenant, for an event forwarded from ``tenant``."""
    fid = tenant + OVERFLOW_SEP + event_id
    if len(fid) <= 128:
        return fid
    return tenant + OVERFLOW_SEP + hashlib.sha256(event_id.encode()).hexdigest()[:40]


class Engine:
    """The routing engine.

    ``handoff`` says how a chat that overflows to the platform tenant gets
    there. ``inline`` (one engine holds every tenant, the embedded runtime):
    the platform takes it over at once. ``external`` (tenants partitioned over
    workers): the engine emits ``event.forwarded`` outputs carrying a
    ``chat.handed_over`` input for the platform, and later events about the
    chat sent to the merchant are forwarded the same way; the shell publishes
    them as inputs keyed by the platform tenant.
    """

    def __init__(
        self, rules: Rules | None = None, *, track_dirty: bool = True, handoff: str = "inline"
    ) -> None:
        if handoff not in HANDOFFS:
            raise ValueError(f"handoff must be one of {', '.join(HANDOFFS)}, got {handoff!r}")
        self.handoff = handoff
        self.rules = rules if rules is not None else default_rules()
        self.policy = policy_for(self.rules)
        self._roster = self.policy.uses_roster  # keep Tenant.roster up to date
        self.tenants: dict[str, Tenant] = {}
        # clocks for all tenants
        self.ids = IdWindow(self.rules.dedup_window, track_dirty, self.rules.dedup_window_ms)
        self.now = 0  # latest time of any tenant (for rejected outputs)
        self.track_dirty = track_dirty
        # changed since the last take_dirty: the engine record, and the
        # tenants whose record changed; each tenant keeps its changed agents,
        # visitors and chats, and its id window its changed chunks
        self._engine_dirty = False
        self._touched: dict[str, Tenant] = {}
        self._out: list[Output] = []
        self._cause = ""
        self._offset: int | None = None
        self._handlers: dict[str, Callable[[Tenant, Event], None]] = {
            "agent.state": self._on_agent_state,
            "visitor.arrived": self._on_visitor_arrived,
            "page.viewed": self._on_page_viewed,
            "chat.requested": self._on_chat_requested,
            "chat.accepted": self._on_chat_accepted,
            "chat.declined": self._on_chat_declined,
            "bot.escalated": self._on_bot_escalated,
            "chat.ended": self._on_chat_ended,
            "visitor.left": self._on_visitor_left,
            "order.placed": self._on_order_placed,
            "clock": self._on_clock,
            "chat.handed_over": self._on_handed_over,
        }

    # ------------------------------------------------------------------ entry

    def apply(self, event: Event, offset: int | None = None) -> list[Output]:
        """Apply one validated event; return the outputs it caused, in order."""
        out: list[Output] = []
        self._out = out
        eid = event["id"]
        self._cause = eid
        self._offset = offset
        name = event.get("tenant")
        ts = event["ts"]
        if name is None:  # a clock for every tenant
            self._clock_all(eid, ts)
            return out
        t = self.tenants.get(name)
        if t is None:
            t = self._tenant(name, ts)
            ids = t.ids
        else:
            ids = t.ids
            if eid in ids.seen:
                return out
        if ids._room:  # IdWindow.add, inlined on its common path
            ids._room -= 1
            ids.count += 1
            ids._cur.append(eid)
            ids.seen[eid] = ids._n
        else:
            ids.add(eid, ts if ts > t.now else t.now)  # a new chunk: its start time
        # _advance, inlined on the common path (no timer due)
        track = self.track_dirty
        heap = t.timers.heap
        if heap and heap[0][0] <= ts:
            self._advance(t, ts)
        else:
            if ts > t.now:
                t.now = ts
            if ts > self.now:
                self.now = ts
            if track:
                self._touched[name] = t
        etype = event["type"]
        if etype == "page.viewed":  # nine events in ten: no dict lookup
            self._on_page_viewed(t, event)
        else:
            self._handlers[etype](t, event)
        if heap and heap[0][0] <= t.now:
            # a deadline the event itself left behind (a chat requeued after its
            # overflow bound): it fires now, not at the tenant's next event
            self._advance(t, t.now)
        return out

    def _clock_all(self, eid: str, ts: int) -> None:
        """A clock event without a tenant: every tenant's time moves to ``ts``."""
        if eid in self.ids:
            return
        self.ids.add(eid, ts if ts > self.now else self.now)
        self._engine_dirty = self.track_dirty  # its count of ids
        # the overflow target last, so that merchants' overflow timers hand
        # it their chats at the deadline, before its own clock moves on to ts
        platform = self.rules.platform
        for t in sorted(self.tenants.values(), key=lambda t: t.name == platform):
            self._advance(t, ts)
        if ts > self.now:
            self.now = ts

    def reject(
        self, error: EventError, raw: bytes | str, *, line: int | None = None,
        offset: int | None = None,
    ) -> Output:
        """The ``event.rejected`` output for a malformed input."""
        tenant = error.tenant or ""
        t = self.tenants.get(tenant)
        ts = t.now if t is not None else self.now
        return rejected(str(error), raw, ts=ts, tenant=tenant, line=line, offset=offset,
                        cause=error.event_id or "")

    def next_deadline(self, tenant: str | None = None) -> int | None:
        """The earliest timer deadline (event time, ms) of ``tenant`` (None:
        of every tenant), or None when no timer is set. A live runtime sends a
        ``clock`` only once its wall time reaches it. It may be a timer that
        has nothing left to do (its chat moved on): that clock then fires
        nothing, and the deadline after it is the next one."""
        if tenant is not None:
            t = self.tenants.get(tenant)
            return t.timers.next_deadline() if t is not None else None
        heads = [t.timers.heap[0][0] for t in self.tenants.values() if t.timers.heap]
        return min(heads) if heads else None

    # --------------------------------------------------------------- time

    def _tenant(self, name: str, now: int) -> Tenant:
        t = Tenant(name, len(self.tenants), now, self.rules.dedup_window,
                   self.rules.dedup_window_ms)
        t.ids.track = self.track_dirty
        self.tenants[name] = t
        if self.track_dirty:
            self._touched[name] = t
        return t

    def _advance(self, t: Tenant, ts: int) -> None:
        heap = t.timers.heap
        if heap and heap[0][0] <= ts:
            cause = self._cause
            self._cause = "timer"
            while True:
                timer = t.timers.due(ts)
                if timer is None:
                    break
                deadline, kind, _, key = timer
                if deadline > t.now:
                    t.now = deadline
                self._fire(t, kind, key, deadline)
            self._cause = cause
        if ts > t.now:
            t.now = ts
        if ts > self.now:
            self.now = ts
        if self.track_dirty:
            self._touched[t.name] = t

    def _fire(self, t: Tenant, kind: int, key: str, deadline: int) -> None:
        c = t.chats.get(key)
        if c is None:
            return
        if kind == OFFER:
            if c.status == ASSIGNED and not c.accepted and c.offer_until == deadline:
                a = t.agents[c.agent]  # type: ignore[index]
                self._requeue(t, c, "offer_timeout")
                self._fill(t, a)
        elif kind == RESERVE:
            if c.status == WAITING and c.reserved_for is not None and c.reserve_until == deadline:
                self._unqueue(t, c)
                c.reserved_for = None
                c.reserve_kind = None
                self._mark_chat(t, c)
                self._route(t, c, t.visitors[c.visitor], announce=False)
        elif (kind == OVERFLOW and c.status == WAITING and c.origin is None
              and self.rules.may_overflow(t.name)):
            self._overflow(t, c)

    # ----------------------------------------------------------- handlers

    def _on_clock(self, t: Tenant, ev: Event) -> None:
        return None

    def _on_agent_state(self, t: Tenant, ev: Event) -> None:
        aid = ev["agent"]
        a = t.agents.get(aid)
        if a is None:
            a = t.agents[aid] = Agent(aid, t.take_seq())
            a.capacity = DEFAULT_CAPACITY  # the defaults, for a new agent only
        old = a.status
        self._unindex(t, a)
        if old == ONLINE:
            t.online_agents -= 1
            t.online_capacity -= a.capacity
        # a field the event leaves out keeps the agent's current value
        cap, skills = ev.get("capacity"), ev.get("skills")
        if cap is not None:
            a.capacity = cap
        if skills is not None:
            a.skills = dict(skills)
        ch, rg = ev.get("channels"), ev.get("regions")
        if ch is not None:
            a.channels = tuple(ch)
        if rg is not None:
            a.regions = tuple(rg)
        a.status = status = ev["status"]
        if status == ONLINE:
            t.online_agents += 1
            t.online_capacity += a.capacity
            if old != ONLINE:
                a.idle_since = t.now
        self._index(t, a)
        if self.track_dirty:
            t.changed_agents[aid] = None
        if status != ONLINE and old != status:
            self._agent_gone(t, a, status)
        if a.has_room():
            self._fill(t, a)

    def _agent_gone(self, t: Tenant, a: Agent, status: str) -> None:
        """An agent went away or offline: release reservations, requeue chats."""
        pq = t.personal.get(a.id)
        if pq is not None and len(pq):
            for entry in list(pq):
                c = t.chats[entry[2]]
                if c.reserve_kind == "exclusive" and status == AWAY:
                    continue  # an exclusive customer waits out a short break
                self._unqueue(t, c)
                c.reserved_for = None
                c.reserve_kind = None
                self._mark_chat(t, c)
                self._route(t, c, t.visitors[c.visitor], announce=False)
        if status == OFFLINE:
            held = sorted(a.active, key=a.active.__getitem__)
            why = "agent_offline"
        elif self.rules.away_requeues == "all":
            held = sorted(a.active, key=a.active.__getitem__)
            why = "agent_away"
        elif self.rules.away_requeues == "unaccepted":
            held = sorted((k for k in a.active if not t.chats[k].accepted),
                          key=a.active.__getitem__)
            why = "agent_away"
        else:
            held = []
            why = ""
        for key in held:
            self._requeue(t, t.chats[key], why)

    def _visitor(self, t: Tenant, vid: str) -> Visitor:
        v = t.visitors.get(vid)
        if v is None:
            v = t.visitors[vid] = Visitor(vid, t.now)
        return v

    def _on_visitor_arrived(self, t: Tenant, ev: Event) -> None:
        vid = ev["visitor"]
        v = t.visitors.get(vid)
        if v is None:
            v = t.visitors[vid] = Visitor(vid, t.now)
        else:
            v.returning = True
        v.left = False
        v.last_ts = t.now
        v.channel = ev["channel"]
        if "region" in ev:
            v.region = ev["region"]
        cust = ev.get("customer")
        if cust is not None:
            v.member, v.tier, v.orders, v.ltv = (
                cust["member"], cust["tier"], cust["orders"], cust["ltv"])
        if "exclusive_agent" in ev:
            v.exclusive = ev["exclusive_agent"]
        if self.track_dirty:
            t.changed_visitors[vid] = None
        if v.chats:
            self._rekey(t, v)

    def _on_page_viewed(self, t: Tenant, ev: Event) -> None:
        vid = ev["visitor"]
        v = t.visitors.get(vid)
        if v is None:
            v = t.visitors[vid] = Visitor(vid, t.now)
        v.page = ev["page"]
        v.pages += 1
        v.last_ts = t.now
        if "keyword" in ev:
            v.keyword = ev["keyword"]
        if "category" in ev:
            v.category = ev["category"]
        if self.track_dirty:
            t.changed_visitors[vid] = None
        if v.chats:
            self._rekey(t, v)

    def _on_order_placed(self, t: Tenant, ev: Event) -> None:
        v = self._visitor(t, ev["visitor"])
        v.orders += 1
        v.ltv += ev["amount"]
        v.last_ts = t.now
        if self.track_dirty:
            t.changed_visitors[v.id] = None
        if v.chats:
            self._rekey(t, v)

    def _on_chat_requested(self, t: Tenant, ev: Event) -> None:
        key = ev["chat"]
        if key in t.chats:
            return  # that chat is still open: nothing changes
        v = self._visitor(t, ev["visitor"])
        v.left = False
        v.last_ts = t.now
        c = Chat(key, key, t.take_seq(), v.id, t.now)
        c.skill = skill_of_request(self.rules, ev.get("skill"), ev.get("message"), v)
        t.chats[key] = c
        v.chats.append(key)
        if self.track_dirty:
            t.changed_visitors[v.id] = None
        mode = self.rules.mode_for(t.name, v.page)
        c.mode = mode
        if mode in ("robot_first", "robot_only") or (
            mode == "human_first" and t.online_agents == 0
        ):
            c.status = BOT
            self._mark_chat(t, c)
            out = self._head(t, "chat.to_bot", c)
            out["chat"], out["visitor"] = self._ids(c)
            self._out.append(out)
            return
        self._route(t, c, v)

    def _resolve(self, t: Tenant, ev: Event) -> tuple[Tenant, Chat] | None:
        """The chat an event names, following it to the tenant it overflowed to.

        With ``handoff="external"`` an event about a forwarded chat is passed
        on (``event.forwarded``) and nothing happens here.
        """
        origin = ev.get("origin")
        if origin is not None:
            c = t.chats.get(origin + OVERFLOW_SEP + ev["chat"])
            return (t, c) if c is not None else None
        c = t.chats.get(ev["chat"])
        if c is None:
            return None
        if c.status == FORWARDED and c.to is not None:
            if self.handoff == "external":
                fwd = {k: v for k, v in ev.items() if k not in ("tenant", "id", "ts")}
                fwd["type"] = "chat.ended" if ev["type"] == "visitor.left" else ev["type"]
                fwd["chat"] = c.id
                fwd.pop("visitor", None)
                ended = fwd["type"] == "chat.ended"
                self._forward(t, c.to, ev["id"], fwd, c)  # takes fwd["type"]
                if ended:
                    self._drop(t, c)
                return None
            target = self.tenants[c.to]
            self._advance(target, t.now)
            fc = target.chats.get(t.name + OVERFLOW_SEP + c.id)
            return (target, fc) if fc is not None else None
        return t, c

    def _forward(self, t: Tenant, to: str, event_id: str, fields: Event, c: Chat) -> None:
        """Emit an input event for tenant ``to`` that a distributed shell publishes."""
        event: Event = {"type": fields.pop("type"), "id": forward_id(t.name, event_id),
                        "ts": t.now, "tenant": to}
        if event["type"] != "chat.handed_over":
            fields["origin"] = t.name
        event.update(fields)
        out = self._head(t, "event.forwarded", c)
        out.pop("origin", None)
        out["to"] = to
        out["event"] = event
        self._out.append(out)

    def _on_chat_accepted(self, t: Tenant, ev: Event) -> None:
        found = self._resolve(t, ev)
        if found is None:
            return
        t, c = found
        if c.status == ASSIGNED and c.agent == ev["agent"]:
            if not c.accepted:
                c.accepted = True
                self._mark_chat(t, c)
            self._served(t, c, ev["agent"])

    def _on_chat_declined(self, t: Tenant, ev: Event) -> None:
        found = self._resolve(t, ev)
        if found is None:
            return
        t, c = found
        if c.status == ASSIGNED and c.agent == ev["agent"]:
            a = t.agents[ev["agent"]]
            self._requeue(t, c, "declined")
            self._fill(t, a)

    def _on_bot_escalated(self, t: Tenant, ev: Event) -> None:
        c = t.chats.get(ev["chat"])
        if c is None or c.status != BOT or c.mode == "robot_only":
            return
        self._route(t, c, t.visitors[c.visitor])

    def _on_chat_ended(self, t: Tenant, ev: Event) -> None:
        found = self._resolve(t, ev)
        if found is not None:
            self._close(*found)

    def _on_visitor_left(self, t: Tenant, ev: Event) -> None:
        v = t.visitors.get(ev["visitor"])
        if v is None or v.left:
            return
        v.left = True
        v.last_ts = t.now
        if self.track_dirty:
            t.changed_visitors[v.id] = None
        found = [f for key in list(v.chats)
                 if (f := self._resolve(t, {**ev, "chat": key})) is not None]
        # the chats that wait end first: an agent freed by the visitor's
        # served chat must not be handed one of the visitor's waiting ones
        for tc in found:
            if tc[1].status != ASSIGNED:
                self._close(*tc)
        for tc in found:
            if tc[1].status == ASSIGNED:
                self._close(*tc)

    # --------------------------------------------------------- placement

    def _route(self, t: Tenant, c: Chat, v: Visitor, announce: bool = True) -> None:
        """Place a waiting chat: reserved agent, else the best agent, else the queue."""
        rules = self.rules
        c.status = WAITING
        c.agent = None
        c.accepted = False
        c.base = priority_base(rules, v)
        self._mark_chat(t, c)
        if self.policy.reserves and c.reserved_for is None and c.origin is None:
            reserved = self._reservation(t, c, v)
            if reserved is not None:
                a, kind, until = reserved
                if a.has_room():
                    self._assign(t, c, v, a, kind)
                    return
                c.reserved_for, c.reserve_kind, c.reserve_until = a.id, kind, until
                t.timers.push(until, RESERVE, c.seq, c.key)
                self._enqueue(t, c, announce)
                return
        a2 = self.policy.pick(rules, t, c, v)
        if a2 is not None:
            self._assign(t, c, v, a2, None)
        else:
            self._enqueue(t, c, announce)

    def _reservation(self, t: Tenant, c: Chat, v: Visitor) -> tuple[Agent, str, int] | None:
        rules = self.rules
        if v.exclusive is not None:
            a = t.agents.get(v.exclusive)
            until = c.t0 + rules.exclusive_wait_ms
            if (a is not None and a.status != OFFLINE and t.now < until
                    and eligible(rules, a, c, v)):
                return a, "exclusive", until
        if v.last_agent is not None:
            a = t.agents.get(v.last_agent)
            until = c.t0 + rules.sticky_wait_ms
            if a is not None and a.status == ONLINE and t.now < until and eligible(rules, a, c, v):
                return a, "sticky", until
        return None

    def _queue_of(self, t: Tenant, c: Chat) -> WaitQueue:
        if c.reserved_for is not None:
            q = t.personal.get(c.reserved_for)
            if q is None:
                q = t.personal[c.reserved_for] = WaitQueue()
            return q
        # a chat of a required skill waits in its skill's queue
        bucket = c.skill if self.rules.requires(c.skill) else None
        q = t.queues.get(bucket)
        if q is None:
            q = t.queues[bucket] = WaitQueue()
        return q

    def _entry(self, c: Chat) -> Entry:
        return (self.policy.queue_key(self.rules, c.base, c.t0), c.seq, c.key)

    def _enqueue(self, t: Tenant, c: Chat, announce: bool) -> None:
        entry = c.qkey = self._entry(c)
        self._queue_of(t, c).push(entry)
        position = self._rank(t, entry)
        if c.origin is None and self.rules.may_overflow(t.name):
            t.timers.push(c.t0 + self.rules.overflow_after_ms, OVERFLOW, c.seq, c.key)
        if announce:
            out = self._head(t, "chat.queued", c)
            out["chat"], out["visitor"] = self._ids(c)
            out["position"] = position
            out["eta_s"] = int(position * self.rules.eta_handle_s / max(1, t.online_capacity))
            out["priority"] = self._priority(t, c)
            self._out.append(out)

    def _unqueue(self, t: Tenant, c: Chat) -> None:
        if c.qkey is not None:
            self._queue_of(t, c).remove(c.qkey)
            c.qkey = None

    def _rekey(self, t: Tenant, v: Visitor) -> None:
        """The visitor's priority changed: move their waiting chats in the queue."""
        base: float | None = None
        chats = t.chats
        for key in v.chats:
            c = chats.get(key)
            if c is None or c.status != WAITING:
                continue
            if base is None:
                base = priority_base(self.rules, v)
            if base == c.base:
                continue
            c.base = base
            old = c.qkey
            if old is not None and self.policy.prioritised:
                new = c.qkey = self._entry(c)
                self._queue_of(t, c).move(old, new)

    def _assign(self, t: Tenant, c: Chat, v: Visitor, a: Agent, reason: str | None) -> None:
        rules = self.rules
        self._unqueue(t, c)
        c.status = ASSIGNED
        c.agent = a.id
        c.reserved_for = None
        c.reserve_kind = None
        c.accepted = not rules.acceptance_required
        if rules.acceptance_required:
            c.offer_until = t.now + rules.offer_timeout_ms
            t.timers.push(c.offer_until, OFFER, c.seq, c.key)
        parts = match_parts(rules, a, c, v)
        if c.origin is not None:
            reason = "overflow"
        elif not self.policy.reserves:
            reason = self.policy.name
        elif reason is None:
            if v.exclusive == a.id:
                reason = "exclusive"
            elif v.last_agent == a.id:
                reason = "sticky"
            elif c.skill is not None and c.skill in a.skills:
                reason = "skill"
            else:
                reason = "best"
        page, loyalty, returning, level = priority_parts(rules, v)
        aging = rules.aging_per_ms * (t.now - c.t0)
        a.active[c.key] = c.seq
        if len(a.active) >= a.capacity:
            self._unindex(t, a)
        elif self._roster:
            self._refile(t, a)
        t.rr = a.seq
        if self.track_dirty:
            t.changed_chats[c.key] = None
            t.changed_agents[a.id] = None
        out = self._head(t, "chat.assigned", c)
        out["chat"], out["visitor"] = self._ids(c)
        out["agent"] = a.id
        out["wait_ms"] = t.now - c.t0
        out["priority"] = round(c.base + aging, 3)
        out["match"] = round(sum(parts.values()), 3)
        out["score"] = {
            "page": page, "loyalty": round(loyalty, 3), "returning": returning,
            "level": level, "aging": round(aging, 3), "skill": parts["skill"],
            "load": round(parts["load"], 3), "sticky": parts["sticky"],
            "exclusive": parts["exclusive"], "region": parts["region"],
            "channel": parts["channel"],
        }
        out["reason"] = reason
        out["rules"] = rules.hash
        if c.skill is not None:
            out["skill"] = c.skill
        self._out.append(out)

    def _fill(self, t: Tenant, a: Agent) -> None:
        """An agent has room: give them the best waiting chats they can take."""
        while a.has_room():
            c = self._next_for(t, a)
            if c is None:
                return
            self._assign(t, c, t.visitors[c.visitor], a, c.reserve_kind)

    def _next_for(self, t: Tenant, a: Agent) -> Chat | None:
        pq = t.personal.get(a.id)
        if pq is not None and pq.entries:
            return t.chats[pq.entries[0][2]]
        rules = self.rules
        best: Chat | None = None
        best_entry: Entry | None = None
        buckets: Iterable[str | None] = (
            (None, *(s for s in a.skills if rules.requires(s))) if rules.any_required
            else (None,))
        for bucket in buckets:
            q = t.queues.get(bucket)
            if not q:
                continue
            for entry in q.entries:
                if best_entry is not None and entry >= best_entry:
                    break
                c = t.chats[entry[2]]
                if eligible(rules, a, c, t.visitors[c.visitor]):
                    best, best_entry = c, entry
                    break
        return best

    def _requeue(self, t: Tenant, c: Chat, why: str) -> None:
        a = t.agents[c.agent]  # type: ignore[index]
        self._release(t, a, c)
        if why in ("declined", "offer_timeout"):
            c.excluded.append(a.id)
        out = self._head(t, "chat.requeued", c)
        out["chat"] = self._ids(c)[0]
        out["agent"] = a.id
        out["why"] = why
        self._out.append(out)
        self._route(t, c, t.visitors[c.visitor])

    def _release(self, t: Tenant, a: Agent, c: Chat) -> None:
        had_room = a.has_room()
        del a.active[c.key]
        a.idle_since = t.now
        if not had_room:
            if a.has_room():
                self._index(t, a)
        elif self._roster:
            self._refile(t, a)
        if self.track_dirty:
            t.changed_agents[a.id] = None

    def _served(self, t: Tenant, c: Chat, agent: str) -> None:
        """``agent`` serves the chat's visitor (accepted it, or held it when it
        ended): their last agent, for stickiness. An offer alone, declined or
        timed out, never is."""
        v = t.visitors.get(c.visitor)
        if v is not None and v.last_agent != agent:
            v.last_agent = agent
            if self.track_dirty:
                t.changed_visitors[v.id] = None

    def _close(self, t: Tenant, c: Chat) -> None:
        """A chat ends (ended or the visitor left), whatever state it is in."""
        if c.status == ASSIGNED:
            self._served(t, c, c.agent)  # type: ignore[arg-type]
        if c.status == WAITING:
            self._unqueue(t, c)
            out = self._head(t, "chat.abandoned", c)
            out["chat"], out["visitor"] = self._ids(c)
            out["wait_ms"] = t.now - c.t0
            self._out.append(out)
        elif c.status == ASSIGNED:
            a = t.agents[c.agent]  # type: ignore[index]
            if a.status == ONLINE and len(a.active) == a.capacity:
                # a full agent gets one place back, which _fill usually takes
                # again at once: index them only if it stays free (indexing
                # then unindexing leaves every index as it was)
                del a.active[c.key]
                a.idle_since = t.now
                if self.track_dirty:
                    t.changed_agents[a.id] = None
                self._drop(t, c)
                self._fill(t, a)
                if a.has_room():
                    self._index(t, a)
                return
            self._release(t, a, c)
            self._drop(t, c)
            self._fill(t, a)
            return
        self._drop(t, c)

    def _drop(self, t: Tenant, c: Chat) -> None:
        del t.chats[c.key]
        v = t.visitors.get(c.visitor)
        if self.track_dirty:
            t.changed_chats[c.key] = None
        if v is not None and c.key in v.chats:
            v.chats.remove(c.key)
            if self.track_dirty:
                t.changed_visitors[v.id] = None
        if c.origin is not None and self.handoff == "inline":
            home = self.tenants.get(c.origin)
            if home is not None:
                hc = home.chats.get(c.id)
                if hc is not None and hc.status == FORWARDED:
                    self._drop(home, hc)

    def _overflow(self, t: Tenant, c: Chat) -> None:
        """A merchant's chat waited past the bound: hand it to the platform."""
        rules = self.rules
        self._unqueue(t, c)
        c.status = FORWARDED
        c.to = rules.platform
        c.reserved_for = None
        c.reserve_kind = None
        self._mark_chat(t, c)
        v = t.visitors[c.visitor]
        out = self._head(t, "chat.overflowed", c)
        out["chat"], out["visitor"] = c.id, v.id
        out["to"] = rules.platform
        self._out.append(out)
        handover: Event = {
            "type": "chat.handed_over", "chat": c.id, "visitor": v.id, "from": t.name,
            "requested_ts": c.t0,
        }
        if c.skill is not None:
            handover["skill"] = c.skill
        for field in ("page", "keyword", "category", "channel", "region"):
            value = getattr(v, field)
            if value is not None:
                handover[field] = value
        handover["customer"] = {"member": v.member, "tier": v.tier, "orders": v.orders,
                                "ltv": v.ltv}
        handover["returning"] = v.returning
        if self.handoff == "external":
            self._forward(t, rules.platform, "overflow:" + c.id, handover, c)
            return
        p = self.tenants.get(rules.platform)
        if p is None:
            p = self._tenant(rules.platform, t.now)
        self._advance(p, t.now)
        self._on_handed_over(p, handover)

    def _on_handed_over(self, p: Tenant, ev: Event) -> None:
        """A merchant's overflowed chat arrives at the platform tenant."""
        origin = ev["from"]
        key = origin + OVERFLOW_SEP + ev["chat"]
        if key in p.chats:
            return
        pv_id = origin + OVERFLOW_SEP + ev["visitor"]
        pv = self._visitor(p, pv_id)
        for field in ("page", "keyword", "category", "channel", "region"):
            setattr(pv, field, ev.get(field))
        cust = ev.get("customer")
        if cust is not None:
            pv.member, pv.tier, pv.orders, pv.ltv = (
                cust["member"], cust["tier"], cust["orders"], cust["ltv"])
        pv.returning = bool(ev.get("returning", False))
        pv.left = False
        pc = Chat(key, ev["chat"], p.take_seq(), pv_id, ev["requested_ts"])
        pc.origin = origin
        pc.skill = ev.get("skill")
        pc.mode = "human_only"
        p.chats[key] = pc
        pv.chats.append(key)
        if self.track_dirty:
            p.changed_visitors[pv_id] = None
        self._route(p, pc, pv)

    # ------------------------------------------------------------ outputs

    def _head(self, t: Tenant, otype: str, c: Chat) -> Output:
        out: Output = {"type": otype, "ts": t.now, "tenant": t.name, "cause": self._cause}
        if self._offset is not None:
            out["offset"] = self._offset
        if c.origin is not None:
            out["origin"] = c.origin
        return out

    @staticmethod
    def _ids(c: Chat) -> tuple[str, str]:
        """(chat, visitor) as the chat server knows them."""
        if c.origin is None:
            return c.id, c.visitor
        return c.id, c.visitor[len(c.origin) + 1:]

    def _priority(self, t: Tenant, c: Chat) -> float:
        return round(c.base + self.rules.aging_per_ms * (t.now - c.t0), 3)

    # ------------------------------------------------------------ indexes

    def _index(self, t: Tenant, a: Agent) -> None:
        if a.has_room():
            t.avail_all[a.id] = a
            for s in a.skills:
                d = t.avail.get(s)
                if d is None:
                    d = t.avail[s] = {}
                d[a.id] = a
            if self._roster:
                t.roster.file(a, self.rules.w_skill, self.rules.w_load)

    def _unindex(self, t: Tenant, a: Agent) -> None:
        if t.avail_all.pop(a.id, None) is not None:
            for s in a.skills:
                d = t.avail.get(s)
                if d is not None:
                    d.pop(a.id, None)
            if self._roster:
                t.roster.unfile(a)

    def _refile(self, t: Tenant, a: Agent) -> None:
        """An agent with room took or gave back a chat: its load class changed."""
        t.roster.unfile(a)
        t.roster.file(a, self.rules.w_skill, self.rules.w_load)

    # ------------------------------------------------------------ reading

    def queue(self, tenant: str) -> list[str]:
        """Keys of ``tenant``'s waiting chats in its one service order: the
        chat at index i has ``position`` i + 1 (reserved chats and every
        skill's chats included, as in ``chat.queued``)."""
        t = self.tenants.get(tenant)
        if t is None:
            return []
        return [e[2] for e in heapq.merge(*(q.entries for q in self._queues(t)))]

    def position(self, tenant: str, chat: str) -> int:
        """The 1-based ``position`` of a waiting chat (its key in ``tenant``)
        in the tenant's one order; 0 if it is not waiting."""
        t = self.tenants.get(tenant)
        c = t.chats.get(chat) if t is not None else None
        if t is None or c is None or c.qkey is None:
            return 0
        return self._rank(t, c.qkey)

    @staticmethod
    def _queues(t: Tenant) -> Iterator[WaitQueue]:
        """Every queue of waiting chats: shared or per skill, and reserved."""
        yield from t.queues.values()
        for q in t.personal.values():
            if q.entries:
                yield q

    def _rank(self, t: Tenant, entry: Entry) -> int:
        """The 1-based place of a queued entry in the tenant's one service
        order (every queue's entries merged: reserved chats and every skill's
        chats included): the entries before it, counted queue by queue. Done
        when asked, so that re-keying a chat moves it in one list only."""
        n = 1
        for q in self._queues(t):
            n += bisect_left(q.entries, entry)
        return n

    # ------------------------------------------------------------ dirty set

    def _mark_chat(self, t: Tenant, c: Chat) -> None:
        if self.track_dirty:
            t.changed_chats[c.key] = None

    def take_dirty(self) -> dict[EntityKey, Any]:
        """Records of the entities changed since the last call (None = deleted)."""
        return {(kind, name, ident): rec
                for kind, name, group in self.take_changes() for ident, rec in group}

    def take_changes(self) -> list[tuple[str, str, list[tuple[str, Any]]]]:
        """``take_dirty`` grouped: ``(kind, tenant, [(id, record or None), ...])``.

        Every entity changed since the last call is in it (an unchanged one may
        be too: its record is its current one all the same).
        """
        groups: list[tuple[str, str, list[tuple[str, Any]]]] = []
        if not self.track_dirty:
            return groups
        touched, self._touched = self._touched, {}
        if self._engine_dirty or touched:  # its ``now`` moves with every tenant's
            self._engine_dirty = False
            groups.append(("engine", "", [("", self._record(("engine", "", "")))]))
        nums = self.ids.take_changed()
        if nums:
            groups.append(("ids", ALL_TENANTS, _chunk_records(self.ids, nums)))
        for name, t in self.tenants.items():
            if name in touched:
                groups.append(("tenant", name, [("", self._record(("tenant", name, "")))]))
            nums = t.ids.take_changed()
            if nums:
                groups.append(("ids", name, _chunk_records(t.ids, nums)))
            for kind, live, changed in (("agent", t.agents, t.changed_agents),
                                        ("visitor", t.visitors, t.changed_visitors),
                                        ("chat", t.chats, t.changed_chats)):
                if changed:
                    groups.append((kind, name, _records(live, changed)))
                    changed.clear()
        return groups

    def snapshot(self) -> Iterator[tuple[EntityKey, Any]]:
        """Every entity's record (a full checkpoint)."""
        yield ("engine", "", ""), self._record(("engine", "", ""))
        for n in self.ids.chunks:
            yield ("ids", ALL_TENANTS, str(n)), self.ids.record(n)
        for t in self.tenants.values():
            yield ("tenant", t.name, ""), self._record(("tenant", t.name, ""))
            for n in t.ids.chunks:
                yield ("ids", t.name, str(n)), t.ids.record(n)
            for a in t.agents.values():
                yield ("agent", t.name, a.id), a.to_record()
            for v in t.visitors.values():
                yield ("visitor", t.name, v.id), v.to_record()
            for c in t.chats.values():
                yield ("chat", t.name, c.key), c.to_record()

    def _record(self, key: EntityKey) -> Any:
        kind, name, ident = key
        if kind == "engine":
            return {"now": self.now, "ids": self.ids.count}
        if kind == "ids":
            ids = self.ids if name == ALL_TENANTS else self.tenants[name].ids
            return ids.record(int(ident))
        t = self.tenants.get(name)
        if t is None:
            return None
        if kind == "tenant":
            r = t.to_record()
            r["ids"] = t.ids.count
            return r
        entity: Agent | Visitor | Chat | None
        if kind == "agent":
            entity = t.agents.get(ident)
        elif kind == "visitor":
            entity = t.visitors.get(ident)
        else:
            entity = t.chats.get(ident)
        return entity.to_record() if entity is not None else None

    # ------------------------------------------------------------ restore

    @classmethod
    def restore(
        cls, rules: Rules, records: Iterable[tuple[EntityKey, Any]], *, track_dirty: bool = True,
        handoff: str = "inline",
    ) -> Engine:
        """Rebuild an engine from persisted records (``take_dirty``/``snapshot``).

        Indexes, queues and timers are derived again; priorities are computed
        under ``rules``, which may differ from the rules that wrote the records.
        ``handoff`` is as for :class:`Engine` (not a persisted setting).
        """
        eng = cls(rules, track_dirty=track_dirty, handoff=handoff)
        by_kind: dict[str, list[tuple[str, str, Any]]] = {}
        for (kind, name, ident), rec in records:
            if rec is not None:
                by_kind.setdefault(kind, []).append((name, ident, rec))
        for _, _, rec in by_kind.get("engine", []):
            eng.now = rec["now"]
            eng.ids.count = rec["ids"]
        tenants = sorted(by_kind.get("tenant", []), key=lambda x: x[2]["seq"])
        counts: dict[str, int] = {ALL_TENANTS: eng.ids.count}
        for name, _, rec in tenants:
            t = eng.tenants[name] = Tenant.from_record(name, rec, rules.dedup_window,
                                                       rules.dedup_window_ms)
            t.ids.track = track_dirty
            counts[name] = rec["ids"]
        for name, ident, rec in by_kind.get("ids", []):
            # a record of ids alone (written before chunks had a start) starts now
            owner_now = eng.now if name == ALL_TENANTS else eng.tenants[name].now
            ids = eng.ids if name == ALL_TENANTS else eng.tenants[name].ids
            ids.restore_chunk(int(ident), rec, owner_now)
        eng.ids.finish_restore(counts[ALL_TENANTS])
        for name, ident, rec in by_kind.get("agent", []):
            eng.tenants[name].agents[ident] = Agent.from_record(ident, rec)
        for name, ident, rec in by_kind.get("visitor", []):
            eng.tenants[name].visitors[ident] = Visitor.from_record(ident, rec)
        for name, ident, rec in by_kind.get("chat", []):
            eng.tenants[name].chats[ident] = Chat.from_record(ident, rec)
        for t in eng.tenants.values():
            t.ids.finish_restore(counts[t.name])
            eng._rebuild(t)
        return eng

    def _rebuild(self, t: Tenant) -> None:
        rules = self.rules
        for a in sorted(t.agents.values(), key=lambda a: a.seq):
            if a.status == ONLINE:
                t.online_agents += 1
                t.online_capacity += a.capacity
            self._index(t, a)
        for c in sorted(t.chats.values(), key=lambda c: c.seq):
            if c.status == WAITING:
                c.base = priority_base(rules, t.visitors[c.visitor])
                c.qkey = self._entry(c)
                self._queue_of(t, c).push(c.qkey)
                if c.reserved_for is not None:
                    t.timers.push(c.reserve_until, RESERVE, c.seq, c.key)
                if c.origin is None and rules.may_overflow(t.name):
                    t.timers.push(c.t0 + rules.overflow_after_ms, OVERFLOW, c.seq, c.key)
            elif c.status == ASSIGNED and not c.accepted and rules.acceptance_required:
                t.timers.push(c.offer_until, OFFER, c.seq, c.key)
