"""The routing engine: a deterministic fold of events into decisions.

``Engine(rules).apply(event, offset) -> list[output]``. Time is the event's
``ts`` (per tenant, never backwards); timers fire in deadline order before any
event that passes them. This module holds dispatch, time and the placement
cycle (route, queue, assign, fill, requeue, close); records of changes,
snapshots and restore are in ``engine/records.py``, the hand-over to another
tenant in ``engine/handover.py``, a tenant's derived indexes in
``engine/tenant.py``, the chat lifecycle in ``engine/lifecycle.py`` and read
queries in ``engine/views.py``. No I/O, no clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from engine import handover, records
from engine.dedup import IdWindow
from engine.policies import policy_for
from engine.queue import Entry
from engine.records import ALL_TENANTS, Group
from engine.rules import Rules, default_rules
from engine.scoring import (
    eligible,
    fits,
    match_parts,
    match_sum,
    priority_at,
    priority_base,
    priority_parts,
    round3,
    skill_of_request,
    units_of,
)
from engine.state import (
    ASSIGNED,
    AWAY,
    BOT,
    DEFAULT_CAPACITY,
    ENDED,
    FORWARDED,
    OFFLINE,
    ONLINE,
    WAITING,
    Agent,
    Chat,
    EntityKey,
    Visitor,
)
from engine.steps import EXCLUSIVE, LAST, RESERVING, SKILLED, Step
from engine.tenant import Tenant
from engine.timers import GRACE, OFFER, OVERFLOW, RESERVE, STEP, WRAP
from schemas.events import Event, EventError
from schemas.outputs import Output, rejected

__all__ = ["ALL_TENANTS", "Engine"]


class Engine:
    """The routing engine.

    ``handoff`` says how a chat that overflows to the platform tenant gets
    there (``inline`` or ``external``, see ``engine/handover.py``).
    ``track_changes``: note what changed, for ``take_changes``.
    ``dedup``: ignore an event whose id was applied already (CONTRACT.md
    section 3); off only where every id is unique by construction (the
    simulator numbers its events; a what-if re-simulation replays what its
    history applied), which saves the id window's work on every event.
    """

    def __init__(
        self, rules: Rules | None = None, *, track_changes: bool = True,
        handoff: str = handover.INLINE, dedup: bool = True,
    ) -> None:
        if handoff not in handover.STRATEGIES:
            raise ValueError(
                f"handoff must be one of {', '.join(handover.HANDOFFS)}, got {handoff!r}")
        self.handoff = handoff
        self._handover = handover.STRATEGIES[handoff]
        self.rules = rules if rules is not None else default_rules()
        self.policy = policy_for(self.rules)
        self.tenants: dict[str, Tenant] = {}
        # ids of clock events for all tenants
        self.ids = IdWindow(self.rules.dedup_window, track_changes, self.rules.dedup_window_ms)
        self.now = 0  # latest time of any tenant (for rejected outputs)
        self.track_changes = track_changes
        self.dedup = dedup
        # changed since the last take_changes: the engine record, and the
        # tenants whose record changed; each tenant notes its changed agents,
        # visitors and chats, and its id window its changed chunks
        self._engine_changed = False
        self._tenant_changes: dict[str, Tenant] = {}
        self._out: list[Output] = []
        self._cause = ""
        self._offset: int | None = None

    # ------------------------------------------------------------------ entry

    def _handle(self, t: Tenant, etype: str, event: Event) -> None:
        """The handler of ``etype``, the commonest types first. A chain, not a
        table of bound methods: those make every engine a reference cycle,
        freed only by the cyclic collector, and compiled the calls are direct."""
        if etype == "page.viewed":
            self._on_page_viewed(t, event)
        elif etype == "chat.requested":
            self._on_chat_requested(t, event)
        elif etype == "chat.ended":
            self._on_chat_ended(t, event)
        elif etype == "visitor.arrived":
            self._on_visitor_arrived(t, event)
        elif etype == "visitor.left":
            self._on_visitor_left(t, event)
        elif etype == "agent.state":
            self._on_agent_state(t, event)
        elif etype == "chat.accepted":
            self._on_chat_accepted(t, event)
        elif etype == "order.placed":
            self._on_order_placed(t, event)
        elif etype == "bot.escalated":
            self._on_bot_escalated(t, event)
        elif etype == "chat.declined":
            self._on_chat_declined(t, event)
        elif etype == "clock":
            self._on_clock(t, event)
        elif etype == "chat.transferred":
            self._on_chat_transferred(t, event)
        elif etype == "chat.handed_over":
            self._receive(t, event)
        else:
            raise KeyError(etype)

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
        if self.dedup and not t.ids.admit(eid, ts if ts > t.now else t.now):
            return out  # a duplicate
        before = t.now
        self._advance(t, ts)
        etype = event["type"]
        self._handle(t, etype, event)
        heap = t.timers.heap
        if heap and heap[0][0] <= t.now:
            # a deadline the event itself left behind (a chat requeued after its
            # overflow bound): it fires now, not at the tenant's next event
            self._advance(t, t.now)
        # predictive steps are checked at the first input of each second of the
        # tenant's time and at every agent.state (what takes capacity away)
        if self.rules.predictive and (ts // 1000 > before // 1000 or etype == "agent.state"):
            self._predict(t)
            p = self.tenants.get(self.rules.platform)
            if p is not None and p is not t and self.handoff == handover.INLINE:
                self._predict(p)  # a chat handed over inline went ahead of its chats
        return out

    def _clock_all(self, eid: str, ts: int) -> None:
        """A clock event without a tenant: every tenant's time moves to ``ts``."""
        if self.dedup and not self.ids.admit(eid, ts if ts > self.now else self.now):
            return
        self._engine_changed = self.track_changes  # its count of ids
        # the overflow target last, so that merchants' overflow timers hand
        # it their chats at the deadline, before its own clock moves on to ts
        platform = self.rules.platform
        for t in sorted(self.tenants.values(), key=lambda t: t.name == platform):
            before = t.now
            self._advance(t, ts)
            if self.rules.predictive and ts // 1000 > before // 1000:
                self._predict(t)
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

    # ------------------------------------------------------------ records

    def take_changes(self) -> list[Group]:
        """The records of the entities changed since the last call, grouped
        ``(kind, tenant, [(id, record or None when deleted), ...])`` (see
        ``engine/records.py``). Every entity changed since the last call is in
        it (an unchanged one may be too: its record is its current one all the
        same)."""
        if not self.track_changes:
            return []
        groups = records.take_changes(self._engine_changed, self._tenant_changes, self.now,
                                      self.ids, self.tenants)
        self._engine_changed = False
        self._tenant_changes = {}
        return groups

    def snapshot(self) -> Iterator[tuple[EntityKey, Any]]:
        """Every entity's record (a full checkpoint)."""
        return records.snapshot(self.now, self.ids, self.tenants)

    @classmethod
    def restore(
        cls, rules: Rules, recs: Iterable[tuple[EntityKey, Any]], *,
        track_changes: bool = True, handoff: str = handover.INLINE, dedup: bool = True,
    ) -> Engine:
        """Rebuild an engine from persisted records (``take_changes``/``snapshot``).

        Indexes, queues and timers are derived again; priorities are computed
        under ``rules``, which may differ from the rules that wrote the records.
        ``handoff`` and ``dedup`` are as for :class:`Engine` (not persisted settings).
        """
        eng = cls(rules, track_changes=track_changes, handoff=handoff, dedup=dedup)
        eng.now, eng.ids, eng.tenants = records.load(
            rules, recs, uses_roster=eng.policy.uses_roster, track_changes=track_changes)
        for t in eng.tenants.values():
            eng._rebuild(t)
        return eng

    def _rebuild(self, t: Tenant) -> None:
        """A restored tenant's derived indexes, queues and timers."""
        rules = self.rules
        for a in sorted(t.agents.values(), key=lambda a: a.seq):
            if a.status == ONLINE:
                t.online_agents += 1
                t.online_capacity += a.capacity
            t.index(a)
        for c in sorted(t.chats.values(), key=lambda c: c.seq):
            if c.status == WAITING:
                c.base = priority_base(rules, t.visitors[c.visitor])
                step = self._step(t, c)
                c.need = step.min_level if step.agents == SKILLED else 0
                c.step_until = self._step_end(c, step)
                c.qkey = self._entry(c)
                t.queue_of(c).push(c.qkey)
                if c.reserved_for is not None:
                    if c.reserve_until:
                        t.timers.push(c.reserve_until, RESERVE, c.seq, c.key)
                elif c.step_until:
                    t.timers.push(c.step_until, STEP, c.seq, c.key)
                    if step.predictive:
                        t.predictive[c.key] = None
                if c.origin is None and c.step >= 0 and rules.may_overflow(t.name):
                    t.timers.push(c.t0 + rules.overflow_ms(t.visitors[c.visitor].page),
                                  OVERFLOW, c.seq, c.key)
            elif c.status == ASSIGNED and not c.accepted and rules.acceptance_required:
                t.timers.push(c.offer_until, OFFER, c.seq, c.key)
        for a in t.agents.values():
            for seq, (until, _) in a.wrap.items():
                t.timers.push(until, WRAP, seq, a.id)
            if a.status == OFFLINE and a.grace_until:
                t.timers.push(a.grace_until, GRACE, a.seq, a.id)

    def _note_agent(self, t: Tenant, a: Agent) -> None:
        if self.track_changes:
            t.agent_changes[a.id] = None

    def _note_visitor(self, t: Tenant, v: Visitor) -> None:
        if self.track_changes:
            t.visitor_changes[v.id] = None

    def _note_chat(self, t: Tenant, c: Chat) -> None:
        if self.track_changes:
            t.chat_changes[c.key] = None

    # --------------------------------------------------------------- time

    def _tenant(self, name: str, now: int) -> Tenant:
        t = Tenant(name, len(self.tenants), now, self.rules,
                   uses_roster=self.policy.uses_roster, track_changes=self.track_changes)
        self.tenants[name] = t
        if self.track_changes:
            self._tenant_changes[name] = t
        return t

    def _advance(self, t: Tenant, ts: int) -> None:
        """Fire the tenant's timers due by ``ts``, then move its clock to ``ts``."""
        heap = t.timers.heap
        if heap and heap[0][0] <= ts:
            self._fire_due(t, ts)
        if ts > t.now:
            t.now = ts
        if ts > self.now:
            self.now = ts
        if self.track_changes:
            self._tenant_changes[t.name] = t

    def _fire_due(self, t: Tenant, ts: int) -> None:
        cause = self._cause
        self._cause = "timer"
        while True:
            timer = t.timers.due(ts)
            if timer is None:
                break
            deadline, kind, seq, key = timer
            if deadline > t.now:
                t.now = deadline
            self._fire(t, kind, seq, key, deadline)
        self._cause = cause

    def _fire(self, t: Tenant, kind: int, seq: int, key: str, deadline: int) -> None:
        if kind in (WRAP, GRACE):  # an agent's timer: ``key`` is the agent
            a = t.agents.get(key)
            if a is not None and kind == WRAP:
                self._wrapped(t, a, seq, deadline)
            elif a is not None:
                self._grace_over(t, a, deadline)
            return
        c = t.chats.get(key)
        if c is None:
            return
        if kind == OFFER:
            if c.status == ASSIGNED and not c.accepted and c.offer_until == deadline:
                a = t.agents[c.agent]  # type: ignore[index]
                self._requeue(t, c, "offer_timeout")
                self._missed(t, a)
        elif kind == RESERVE:
            if c.status == WAITING and c.reserved_for is not None and c.reserve_until == deadline:
                self._move_on(t, c)
        elif kind == STEP:
            if c.status == WAITING and c.reserved_for is None and c.step_until == deadline:
                self._move_on(t, c)
        elif (kind == OVERFLOW and c.status == WAITING and c.origin is None and c.step >= 0
              and self.rules.may_overflow(t.name)
              # by value, the visitor's page may since have set a later one
              and deadline >= c.t0 + self.rules.overflow_ms(t.visitors[c.visitor].page)):
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
        self._leave_online(t, a)
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
        wrap_up = ev.get("wrap_up_s")
        if wrap_up is not None:
            a.wrap_up_ms = round(wrap_up * 1000)
        a.status = status = ev["status"]
        if status != OFFLINE:
            a.grace_until = 0  # back before the grace ran out: every chat stays
        if status == ONLINE and old != ONLINE:
            a.missed = 0
        if status == ONLINE:
            t.online_agents += 1
            t.online_capacity += a.capacity
            if old != ONLINE:
                a.idle_since = t.now
        t.index(a)
        self._note_agent(t, a)
        if status != ONLINE and old != status:
            self._agent_gone(t, a, status)
        if a.has_room():
            self._fill(t, a)

    def _release_reservations(self, t: Tenant, a: Agent, status: str) -> None:
        """Chats waiting for the agent in person wait for anyone again."""
        pq = t.personal.get(a.id)
        if pq is not None and len(pq):
            for entry in list(pq):
                c = t.chats[entry[2]]
                if c.reserve_kind in ("exclusive", "transfer") and status == AWAY:
                    continue  # an exclusive customer waits out a short break
                self._unreserve(t, c)

    def _agent_gone(self, t: Tenant, a: Agent, status: str) -> None:
        """An agent went away or offline: release reservations, requeue chats."""
        self._release_reservations(t, a, status)
        if status == OFFLINE and self.rules.offline_grace_ms and a.active:
            # the chats stay theirs for the grace (a phone app that flapped)
            a.grace_until = t.now + self.rules.offline_grace_ms
            t.timers.push(a.grace_until, GRACE, a.seq, a.id)
            held = []
            why = ""
        elif status == OFFLINE:
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
        self._note_visitor(t, v)
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
        self._note_visitor(t, v)
        if v.chats:
            self._rekey(t, v)

    def _on_order_placed(self, t: Tenant, ev: Event) -> None:
        v = self._visitor(t, ev["visitor"])
        v.orders += 1
        v.ltv += ev["amount"]
        v.last_ts = t.now
        self._note_visitor(t, v)
        if v.chats:
            self._rekey(t, v)

    def _on_chat_requested(self, t: Tenant, ev: Event) -> None:
        key = ev["chat"]
        if key in t.chats:
            return  # that chat is still open: nothing changes
        v = self._visitor(t, ev["visitor"])
        v.left = False
        v.last_ts = t.now
        hours = self.rules.hours.get(t.name)
        # outside the tenant's hours: the after_hours mode (robot_only or closed)
        after_hours = None if hours is None or hours.is_open(t.now) else hours.after_hours
        if after_hours == "closed":
            # nothing opens: the chat server tells the visitor the shop is closed
            self._note_visitor(t, v)
            out = self._head(t, "chat.closed", None)
            out["chat"], out["visitor"], out["why"] = key, v.id, "after_hours"
            self._out.append(out)
            return
        c = Chat(key, key, t.take_seq(), v.id, t.now)
        c.skill = skill_of_request(self.rules, ev.get("skill"), ev.get("message"), v)
        t.chats[key] = c
        v.chats += (key,)
        self._note_visitor(t, v)
        mode = after_hours if after_hours is not None else self.rules.mode_for(t.name, v.page)
        c.mode = mode
        if mode in ("robot_first", "robot_only") or (
            mode == "human_first" and t.online_agents == 0
        ):
            c.move(BOT)
            self._note_chat(t, c)
            out = self._head(t, "chat.to_bot", c)
            out["chat"], out["visitor"] = c.server_ids()
            self._out.append(out)
            return
        self._route(t, c, v)

    def _resolve(self, t: Tenant, ev: Event) -> tuple[Tenant, Chat] | None:
        """The chat an event names, following it to the tenant it overflowed to.

        The hand-over strategy says where an event about a forwarded chat
        applies (``external``: nowhere here; it is passed on).
        """
        origin = ev.get("origin")
        if origin is not None:
            c = t.chats.get(handover.platform_key(origin, ev["chat"]))
            return (t, c) if c is not None else None
        c = t.chats.get(ev["chat"])
        if c is None:
            return None
        if c.status == FORWARDED and c.to is not None:
            return self._handover.follow(self, t, ev, c)
        return t, c

    def _on_chat_accepted(self, t: Tenant, ev: Event) -> None:
        found = self._resolve(t, ev)
        if found is None:
            return
        t, c = found
        if c.status == ASSIGNED and c.agent == ev["agent"]:
            if not c.accepted:
                c.accepted = True
                self._note_chat(t, c)
            a = t.agents[ev["agent"]]
            if a.missed:
                a.missed = 0
                self._note_agent(t, a)
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
        c.step_since = t.now  # its first step starts now, not when the bot took it
        self._route(t, c, t.visitors[c.visitor])

    def _on_chat_transferred(self, t: Tenant, ev: Event) -> None:
        """The agent holding a chat hands it to another agent or skill group."""
        found = self._resolve(t, ev)
        if found is None:
            return
        t, c = found
        if c.status != ASSIGNED or c.agent != ev["agent"]:
            return  # not theirs to hand over: nothing changes
        a = t.agents[ev["agent"]]
        c.transfer_to = ev.get("to_agent")
        skill = ev.get("to_skill")
        if skill is not None:
            c.skill = skill
        c.step = -1  # the transfer's own step first
        c.step_since = t.now
        self._requeue(t, c, "transferred")
        self._fill(t, a)

    def _on_chat_ended(self, t: Tenant, ev: Event) -> None:
        found = self._resolve(t, ev)
        if found is not None:  # unpacked, not *found: compiled, that is a direct call
            self._close(found[0], found[1])

    def _on_visitor_left(self, t: Tenant, ev: Event) -> None:
        v = t.visitors.get(ev["visitor"])
        if v is None or v.left:
            return
        v.left = True
        v.last_ts = t.now
        self._note_visitor(t, v)
        found = [f for key in v.chats
                 if (f := self._resolve(t, {**ev, "chat": key})) is not None]
        # the chats that wait end first: an agent freed by the visitor's
        # served chat must not be handed one of the visitor's waiting ones
        for tc in found:
            if tc[1].status != ASSIGNED:
                self._close(tc[0], tc[1])
        for tc in found:
            if tc[1].status == ASSIGNED:
                self._close(tc[0], tc[1])

    # --------------------------------------------------------- placement

    def _route(self, t: Tenant, c: Chat, v: Visitor, announce: bool = True) -> None:
        """Place a waiting chat in the first routing step, from its current
        one on, that applies: there its reserved agent or the best agent the
        step allows takes it, else it waits in the queue."""
        rules = self.rules
        c.move(WAITING)
        c.agent = None
        c.accepted = False
        c.base = priority_base(rules, v)
        self._note_chat(t, c)
        steps = rules.steps_for(t.name)
        if c.step >= 0 and steps[0].from_arrival:
            c.step = 0  # derived steps: windows from arrival, looked at from the first
        # a transfer with no time to wait: its target takes the chat now or not at all
        at_once = c.step < 0 and not rules.transfer_wait_ms
        n = len(steps)
        while True:
            i = c.step
            step = steps[i] if 0 <= i < n else rules.step_at(t.name, i, c.transfer_to)
            # the least skill level the step asks (the checks of ``_applies`` use it)
            c.need = step.min_level if step.agents == SKILLED else 0
            if i < n and not self._applies(t, c, v, step):
                self._enter(t, c, c.step + 1)
                continue
            if step.tenant is not None and c.origin is None and step.tenant != t.name:
                self._overflow(t, c)
                return
            c.step_until = self._step_end(c, step)
            if step.agents in RESERVING and i < n:
                a = self._target(t, c, v, step)
                assert a is not None  # it applies
                kind = "transfer" if c.step < 0 else (
                    "exclusive" if step.agents == EXCLUSIVE else "sticky")
                if a.has_room() and fits(rules, a, c):
                    self._assign(t, c, v, a, kind)
                    return
                if at_once and c.step < 0:
                    self._enter(t, c, 0)
                    continue
                c.reserved_for, c.reserve_kind, c.reserve_until = a.id, kind, c.step_until
                if c.reserve_until:
                    t.timers.push(c.reserve_until, RESERVE, c.seq, c.key)
                self._enqueue(t, c, announce)
                return
            a2 = self.policy.pick(rules, t, c, v)
            if a2 is not None:
                self._assign(t, c, v, a2, None)
                return
            if at_once and c.step < 0:
                self._enter(t, c, 0)
                continue
            if step.predictive and self._predicted_late(t, c, self._entry(c)):
                self._enter(t, c, c.step + 1)  # at once: it would wait too long here
                continue
            if c.step_until:
                t.timers.push(c.step_until, STEP, c.seq, c.key)
            if step.predictive:
                t.predictive[c.key] = None
            self._enqueue(t, c, announce)
            return

    def _predicted_late(self, t: Tenant, c: Chat, entry: Entry) -> bool:
        """Whether the chat's estimated wait at ``entry`` is longer than what
        is left of its step's time."""
        return t.eta_s(c, entry, t.rank(entry)) * 1000 > c.step_until - t.now

    def _predict(self, t: Tenant) -> None:
        """Chats waiting in a predictive step whose estimated wait has grown
        past what is left of the step move on now, in service order."""
        if not t.predictive:
            return
        chats = t.chats
        due = []
        for key in list(t.predictive):
            c = chats.get(key)
            if (c is None or c.status != WAITING or c.qkey is None
                    or c.reserved_for is not None or not self._step(t, c).predictive):
                del t.predictive[key]
            elif self._predicted_late(t, c, c.qkey):
                due.append(c)
        for c in sorted(due, key=lambda c: c.qkey):  # type: ignore[arg-type, return-value]
            # (a move before may have assigned chats ahead of it: late still?)
            if (c.status == WAITING and c.key in t.predictive and c.qkey is not None
                    and self._predicted_late(t, c, c.qkey)):
                del t.predictive[c.key]
                self._move_on(t, c)

    def _step(self, t: Tenant, c: Chat) -> Step:
        """The chat's routing step (past the last: the last, for anyone)."""
        return self.rules.step_at(t.name, c.step, c.transfer_to)

    def _enter(self, t: Tenant, c: Chat, index: int) -> None:
        """The chat moves to step ``index`` (nothing is emitted; ``_route``,
        which follows, notes the chat changed)."""
        if index == 0 and c.step < 0:
            c.transfer_to = None
        c.step = index
        c.step_since = t.now

    def _step_end(self, c: Chat, step: Step) -> int:
        """When the chat's time in ``step`` is up (0: never)."""
        if not step.timeout_ms:
            return 0
        return (c.t0 if step.from_arrival else c.step_since) + step.timeout_ms

    def _applies(self, t: Tenant, c: Chat, v: Visitor, step: Step) -> bool:
        """Whether ``step`` can take the chat now: its time is not up and its
        target exists."""
        end = self._step_end(c, step)
        if end and t.now >= end:
            return False
        if step.agents in RESERVING:
            return self._target(t, c, v, step) is not None
        if step.agents == SKILLED:
            return c.skill is not None
        return True

    def _target(self, t: Tenant, c: Chat, v: Visitor, step: Step) -> Agent | None:
        """The agent a reserving step holds the chat for, where there is one."""
        if c.step < 0:
            aid = c.transfer_to
        elif c.origin is not None:
            return None  # a chat from another tenant: its agents are not here
        else:
            aid = v.exclusive if step.agents == EXCLUSIVE else v.last_agent
        a = t.agents.get(aid) if aid is not None else None
        if a is None or not eligible(self.rules, a, c, v):
            return None
        if step.agents == LAST:
            return a if a.status == ONLINE else None
        return a if a.status != OFFLINE else None

    def _move_on(self, t: Tenant, c: Chat) -> None:
        """The chat's time in its step is up: the next step that applies."""
        self._unqueue(t, c)
        c.reserved_for = None
        c.reserve_kind = None
        self._enter(t, c, c.step + 1)
        self._route(t, c, t.visitors[c.visitor], announce=False)

    def _unreserve(self, t: Tenant, c: Chat) -> None:
        """A waiting chat's reserved agent went: its step again, or the next."""
        self._unqueue(t, c)
        c.reserved_for = None
        c.reserve_kind = None
        self._note_chat(t, c)
        self._route(t, c, t.visitors[c.visitor], announce=False)

    def _entry(self, c: Chat) -> Entry:
        return (self.policy.queue_key(self.rules, c.base, c.t0), c.seq, c.key)

    def _enqueue(self, t: Tenant, c: Chat, announce: bool) -> None:
        entry = c.qkey = self._entry(c)
        t.queue_of(c).push(entry)
        position = t.rank(entry)
        if c.place == 0:  # queued for the first time: the place its wait is measured by
            c.place = t.eta_place(c, entry, position)[1]
            c.queued_since = t.now
        # (a transferred chat waits for its target first: [overflow] after_s
        # bounds it again from its first routing step on)
        if c.origin is None and c.step >= 0 and self.rules.may_overflow(t.name):
            t.timers.push(c.t0 + self.rules.overflow_ms(t.visitors[c.visitor].page),
                          OVERFLOW, c.seq, c.key)
        if announce:
            out = self._head(t, "chat.queued", c)
            out["chat"], out["visitor"] = c.server_ids()
            out["position"] = position
            out["eta_s"] = t.eta_s(c, entry, position)
            out["priority"] = priority_at(self.rules, c, t.now)
            self._out.append(out)

    def _unqueue(self, t: Tenant, c: Chat) -> None:
        if c.qkey is not None:
            t.queue_of(c).remove(c.qkey)
            c.qkey = None

    def _rekey(self, t: Tenant, v: Visitor) -> None:
        """The visitor's priority changed: move their waiting chats in the queue."""
        base: float | None = None
        chats = t.chats
        due: list[Chat] = []
        by_value = bool(self.rules.overflow_ms_by_page) and self.rules.may_overflow(t.name)
        for key in v.chats:
            c = chats.get(key)
            if c is None or c.status != WAITING:
                continue
            if by_value and c.origin is None and c.step >= 0:
                # the page's class sets the overflow wait: a timer at the new one
                # (one set for the old page finds it not yet due, and does nothing);
                # one already past overflows the chat with this event
                at = c.t0 + self.rules.overflow_ms(v.page)
                if at <= t.now:
                    due.append(c)
                else:
                    t.timers.push(at, OVERFLOW, c.seq, c.key)
            if base is None:
                base = priority_base(self.rules, v)
            if base == c.base:
                continue
            c.base = base
            old = c.qkey
            if old is not None and self.policy.prioritised:
                new = c.qkey = self._entry(c)
                t.queue_of(c).move(old, new)
        for c in due:
            if c.status == WAITING:
                self._overflow(t, c)

    def _assign(self, t: Tenant, c: Chat, v: Visitor, a: Agent, reason: str | None) -> None:
        rules = self.rules
        if c.place > 0:  # its first assignment after waiting: how fast the queue moved
            t.measured(c)
        c.place = -1
        self._unqueue(t, c)
        c.move(ASSIGNED)
        c.agent = a.id
        c.reserved_for = None
        c.reserve_kind = None
        c.accepted = not rules.acceptance_required
        if rules.acceptance_required:
            c.offer_until = t.now + rules.offer_timeout_ms
            t.timers.push(c.offer_until, OFFER, c.seq, c.key)
        match = match_parts(rules, a, c, v)
        skill, load, sticky, exclusive, region, channel = match
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
        c.units = units_of(rules, c.skill)
        a.active[c.key] = c.seq
        a.used += c.units
        if a.used >= a.capacity:
            t.unindex(a)
        else:
            t.refile(a)
        t.rr = a.seq
        self._note_chat(t, c)
        self._note_agent(t, a)
        out = self._head(t, "chat.assigned", c)
        out["chat"], out["visitor"] = c.server_ids()
        out["agent"] = a.id
        out["wait_ms"] = t.now - c.t0
        out["priority"] = round3(c.base + aging)
        out["match"] = round3(match_sum(match))
        out["score"] = {
            "page": page, "loyalty": round3(loyalty), "returning": returning,
            "level": level, "aging": round3(aging), "skill": skill,
            "load": round3(load), "sticky": sticky, "exclusive": exclusive,
            "region": region, "channel": channel,
        }
        out["reason"] = reason
        out["step"] = self._step(t, c).name
        out["rules"] = rules.hash
        if c.skill is not None:
            out["skill"] = c.skill
        if rules.capacity_weights:
            out["units"] = c.units
        if rules.value_classes:
            cls = rules.value_class(v.page)
            if cls is not None:
                out["value"] = {"stake": cls[0], "handle_s": cls[1], "patience_s": cls[2]}
        self._out.append(out)

    def _fill(self, t: Tenant, a: Agent) -> None:
        """An agent has room: give them the best waiting chats they can take."""
        while a.has_room():
            c = self._next_for(t, a)
            if c is None:
                return
            self._assign(t, c, t.visitors[c.visitor], a, c.reserve_kind)

    def _next_for(self, t: Tenant, a: Agent) -> Chat | None:
        rules = self.rules
        pq = t.personal.get(a.id)
        if pq is not None and pq.entries:
            first = t.chats[pq.entries[0][2]]
            if fits(rules, a, first):
                return first
        best: Chat | None = None
        best_entry: Entry | None = None
        weighted = bool(rules.capacity_weights)  # else an agent with room fits any chat
        queues = t.queues
        # the shared queue, and those of the agent's skills (required skills'
        # chats, and chats whose step asks for a skill)
        buckets: tuple[str | None, ...] = (
            (None, *(s for s in a.skills if s in queues)) if a.skills else (None,))
        for bucket in buckets:
            q = queues.get(bucket)
            if not q:
                continue
            for entry in q.entries:
                if best_entry is not None and entry >= best_entry:
                    break
                c = t.chats[entry[2]]
                if (eligible(rules, a, c, t.visitors[c.visitor])
                        and (not weighted or fits(rules, a, c))):
                    best, best_entry = c, entry
                    break
        return best

    def _requeue(self, t: Tenant, c: Chat, why: str) -> None:
        a = t.agents[c.agent]  # type: ignore[index]
        self._release(t, a, c)
        if why in ("declined", "offer_timeout", "transferred"):
            c.excluded.append(a.id)  # never offered to them again
        out = self._head(t, "chat.requeued", c)
        out["chat"] = c.id
        out["agent"] = a.id
        out["why"] = why
        self._out.append(out)
        self._route(t, c, t.visitors[c.visitor])

    def _release(self, t: Tenant, a: Agent, c: Chat) -> None:
        had_room = a.has_room()
        del a.active[c.key]
        a.used -= c.units
        self._unit_freed(t, a, had_room)

    def _unit_freed(self, t: Tenant, a: Agent, had_room: bool) -> None:
        """A unit of the agent's capacity came back: file them anew."""
        a.idle_since = t.now
        if not had_room:
            if a.has_room():
                t.index(a)
        else:
            t.refile(a)
        self._note_agent(t, a)

    def _wrapped(self, t: Tenant, a: Agent, seq: int, deadline: int) -> None:
        """A wrap-up ends: its unit comes back."""
        wrap = a.wrap.get(seq)
        if wrap is None or wrap[0] != deadline:
            return
        had_room = a.has_room()
        del a.wrap[seq]
        a.used -= wrap[1]
        self._unit_freed(t, a, had_room)
        self._fill(t, a)

    def _grace_over(self, t: Tenant, a: Agent, deadline: int) -> None:
        """An agent stayed offline through the grace: their chats wait again."""
        if a.status != OFFLINE or a.grace_until != deadline:
            return
        a.grace_until = 0
        self._note_agent(t, a)
        for key in sorted(a.active, key=a.active.__getitem__):
            self._requeue(t, t.chats[key], "agent_offline")

    def _missed(self, t: Tenant, a: Agent) -> None:
        """An offer to ``a`` timed out: one more missed in a row; at the rules'
        ``max_missed_offers`` an online agent is set away."""
        a.missed += 1
        self._note_agent(t, a)
        limit = self.rules.max_missed_offers
        if limit and a.missed >= limit and a.status == ONLINE:
            self._leave_online(t, a)
            a.status = AWAY
            out = self._head(t, "agent.away", None)
            out["agent"] = a.id
            out["why"] = "missed_offers"
            self._out.append(out)
            self._release_reservations(t, a, AWAY)
            # not responding: every offer they have not accepted goes elsewhere
            for key in sorted((k for k in a.active if not t.chats[k].accepted),
                              key=a.active.__getitem__):
                self._requeue(t, t.chats[key], "offer_timeout")
        else:
            self._fill(t, a)

    def _leave_online(self, t: Tenant, a: Agent) -> None:
        """Take the agent out of the indexes and the online counts (before a
        change of status or capacity)."""
        t.unindex(a)
        if a.status == ONLINE:
            t.online_agents -= 1
            t.online_capacity -= a.capacity

    def _served(self, t: Tenant, c: Chat, agent: str) -> None:
        """``agent`` serves the chat's visitor (accepted it, or held it when it
        ended): their last agent, for stickiness. An offer alone, declined or
        timed out, never is."""
        v = t.visitors.get(c.visitor)
        if v is not None and v.last_agent != agent:
            v.last_agent = agent
            self._note_visitor(t, v)

    def _close(self, t: Tenant, c: Chat) -> None:
        """A chat ends (ended or the visitor left), whatever state it is in."""
        if c.status == ASSIGNED:
            self._served(t, c, c.agent)  # type: ignore[arg-type]
        if c.status == WAITING:
            self._unqueue(t, c)
            out = self._head(t, "chat.abandoned", c)
            out["chat"], out["visitor"] = c.server_ids()
            out["wait_ms"] = t.now - c.t0
            self._out.append(out)
        elif c.status == ASSIGNED:
            a = t.agents[c.agent]  # type: ignore[index]
            wrap_up = a.wrap_up_ms if a.wrap_up_ms is not None else self.rules.wrap_up_ms
            if wrap_up:
                # the unit stays taken through the wrap-up: no room, no refiling
                del a.active[c.key]
                until = t.now + wrap_up
                a.wrap[c.seq] = (until, c.units)
                t.timers.push(until, WRAP, c.seq, a.id)
                self._note_agent(t, a)
                self._drop(t, c)
                return
            if a.status == ONLINE and a.used == a.capacity and c.units == 1:
                # a full agent gets one unit back, which _fill usually takes
                # again at once: index them only if it stays free (indexing
                # then unindexing leaves every index as it was); more units
                # back may take several chats: the indexes must follow each
                del a.active[c.key]
                a.used -= c.units
                a.idle_since = t.now
                self._note_agent(t, a)
                self._drop(t, c)
                self._fill(t, a)
                if a.has_room():
                    t.index(a)
                return
            self._release(t, a, c)
            self._drop(t, c)
            self._fill(t, a)
            return
        self._drop(t, c)

    def _drop(self, t: Tenant, c: Chat) -> None:
        """The chat is gone from its tenant (and, handed over inline, from
        the merchant it came from)."""
        c.move(ENDED)
        del t.chats[c.key]
        v = t.visitors.get(c.visitor)
        self._note_chat(t, c)
        if v is not None and c.key in v.chats:
            v.chats = tuple(k for k in v.chats if k != c.key)
            self._note_visitor(t, v)
        self._handover.dropped(self, t, c)

    # ----------------------------------------------------------- hand-over

    def _overflow(self, t: Tenant, c: Chat) -> None:
        """A merchant's chat waited past the bound: hand it to the platform."""
        platform = self.rules.platform
        self._unqueue(t, c)
        c.move(FORWARDED)
        c.to = platform
        c.reserved_for = None
        c.reserve_kind = None
        self._note_chat(t, c)
        v = t.visitors[c.visitor]
        out = self._head(t, "chat.overflowed", c)
        out["chat"], out["visitor"] = c.id, v.id
        out["to"] = platform
        self._out.append(out)
        self._handover.overflowed(self, t, c, handover.handover_input(t.name, c, v), platform)

    def _tenant_at(self, name: str, now: int) -> Tenant:
        """Tenant ``name`` (created if new) with its time moved to ``now``."""
        t = self.tenants.get(name)
        if t is None:
            t = self._tenant(name, now)
        self._advance(t, now)
        return t

    def _receive(self, p: Tenant, ev: Event) -> None:
        """A merchant's overflowed chat arrives at the platform tenant."""
        got = handover.receive(p, ev)
        if got is not None:
            pc, pv = got
            pc.step_since = p.now  # its steps here start when it arrives
            self._note_visitor(p, pv)
            # the visitor as the merchant sees them now: their chats already
            # waiting here take the new priority too
            self._rekey(p, pv)
            self._route(p, pc, pv)

    def _forward(self, t: Tenant, to: str, event_id: str, fields: Event, c: Chat) -> None:
        """Emit an input event for tenant ``to`` that a distributed shell publishes."""
        out = self._head(t, "event.forwarded", c)
        out.pop("origin", None)
        out["to"] = to
        out["event"] = handover.forwarded_input(t.name, to, event_id, fields, t.now)
        self._out.append(out)

    # ------------------------------------------------------------ outputs

    def _head(self, t: Tenant, otype: str, c: Chat | None) -> Output:
        out: Output = {"type": otype, "ts": t.now, "tenant": t.name, "cause": self._cause}
        if self._offset is not None:
            out["offset"] = self._offset
        if c is not None and c.origin is not None:
            out["origin"] = c.origin
        return out
