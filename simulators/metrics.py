"""Service metrics computed from a run's input events and the engine's outputs.

One module for everything that reports on routing: ``routeq simulate`` feeds
a :class:`Collector` event by event while it runs; replays and rule tuning
call :func:`summarize_files` (or feed a ``Collector`` themselves) over a
recorded ``events.jsonl`` and ``outputs.jsonl``. Both give the same numbers.

Per tenant (the tenant the chat was requested at: an overflowed chat stays
its merchant's) and overall:

- ``chats`` requested; ``to_bot`` (sent to the bot first), ``escalated``,
  ``bot_ended`` (ended with the bot, resolved or not); ``human`` (chats that
  waited for a person: requested without the bot, or escalated); ``assigned``
  (got an agent at least once), ``abandoned`` (ended while waiting, before
  any agent was assigned), ``left_after_answer`` (assigned, requeued, then
  ended while waiting again: each chat counts once, and such a chat was
  answered, so it is not abandoned), ``overflowed``, ``requeued``;
- ``waited`` (chats that were queued rather than assigned at once) and
  ``p_wait`` = waited / human;
- waits, in seconds, from entering the human queue (the request, or the
  escalation) to the first assignment, over assigned chats: ``wait_mean_s``,
  ``wait_p50_s``, ``wait_p90_s``, ``wait_p99_s``; ``wait_all_mean_s`` over
  assigned and abandoned chats (an abandoned chat counts the time it waited);
- ``service_level``: chats first assigned within ``sl_s`` (20 s) of entering
  the human queue / ``human``, i.e. answered in time over *every* chat offered
  to a person: abandoned chats (however soon they were abandoned) and chats
  still waiting at the end count in the denominator and never as answered.
  That is the contact-centre service level that counts abandoned contacts as
  offered; the same definition, with the same denominator, is used per page;
  ``abandonment_rate``: abandoned / human;
- ``occupancy``: units-time held by the tenant's agents (a chat holds its
  ``units``, 1 unless ``[capacity.weights]``, from its assignment to its
  end and through the wrap-up after it) / capacity-time of its online
  agents (1.0 = every slot busy the whole time);
- ``sticky_hit_rate``: of assigned chats whose visitor had been served
  before, the share that went to that same agent;
- ``skill_match_rate``: of assigned chats that needed a skill, the share
  whose agent has it;
- ``by_page``: by the page the visitor was on when asking: ``chats``,
  ``human``, ``assigned``, ``abandoned``, ``wait_mean_s`` (over assigned
  chats, as overall) and ``service_level`` (within ``sl_s`` / ``human``, as
  overall);
- ``orders``, ``revenue``; ``chat_orders`` and ``chat_revenue``: those placed
  by a visitor within ``attribution_s`` (1 h) of a chat of theirs that was
  not abandoned.

With ``intervals=(origin_ms, length_ms)``, the summary also has
``intervals``: per tenant, one row per interval of that length from that
origin, by when each chat entered the human queue: ``[index, human,
within_sl, abandoned, assigned]``, the same counts as ``service_level`` and
``abandonment_rate`` above, for a staffing plan to check interval by interval.

``since_ms``/``until_ms`` restrict the report to chats requested (visitors
arrived, orders placed) in that window and the time integrals to it (the
warm-up of a queueing test); ``busy_until_ms`` ends the time integrals
earlier (the end of a simulated day, before the drain).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

SL_S = 20.0
_PAGE_FIELDS = 6  # a page's row in a _Tally: see _Tally.pages
ATTRIBUTION_S = 3600.0
OUTCOMES = ("served", "abandoned", "bot")


class _Visitor:
    """What the figures keep of one visitor of one tenant."""

    __slots__ = ("page", "last_agent", "last_chat", "last_t", "last_abandoned", "open")

    def __init__(self) -> None:
        self.page: str | None = None  # the page they are on
        self.last_agent: str | None = None  # of this tenant, who answered them last
        # their latest request (an order is credited to it): its id, when it
        # was made, and whether it was abandoned
        self.last_chat: str | None = None
        self.last_t = 0
        self.last_abandoned = False
        # the ids of their chats not ended yet, None for none (ids, not chats:
        # a chat points at its visitor, and the two must not make a reference
        # cycle; None, not an empty list, for the many who are done)
        self.open: list[str] | None = None


class _Chat:
    __slots__ = ("id", "tenant", "visitor", "vis", "tally", "row", "page", "t_req", "entered",
                 "counted", "human", "bot", "queued", "assigned_ts", "agent", "agent_tenant",
                 "outcome", "escalated", "units", "eta_ms")

    def __init__(self, cid: str, tenant: str, visitor: str, vis: _Visitor, t: int,
                 counted: bool, tally: _Tally, row: list[float]) -> None:
        self.id = cid
        self.tenant = tenant
        self.visitor = visitor
        self.vis = vis
        self.counted = counted
        # where it counts: its tenant's tally and the row of its page there
        # (if it does not count, the collector's scratch ones)
        self.tally = tally
        self.row = row
        self.page = vis.page
        self.t_req = t
        self.entered = t
        self.human = False
        self.bot = False
        self.escalated = False
        self.queued = False
        self.assigned_ts = -1
        self.agent: str | None = None  # the agent holding it now
        self.agent_tenant = ""
        self.outcome: str | None = None
        self.units = 1  # of its agent's capacity while held
        self.eta_ms = -1  # the estimated wait its first chat.queued gave (-1: none)


#: the fields of a tenant's tally
_TALLY_FIELDS = (
    "chats", "to_bot", "escalated", "bot_ended", "human", "assigned", "abandoned",
    "overflowed", "requeued", "waited", "waits", "abandoned_wait_ms",
    "within_sl", "sticky_seen", "sticky_hits", "skill_seen", "skill_hits",
    "pages", "orders", "revenue", "chat_orders", "chat_revenue", "visitors",
    "busy", "cap", "held", "online_cap", "last_t", "served", "bot_resolved",
    "left_after_answer", "etas")


class _Tally:
    """Counters of one tenant."""

    __slots__ = _TALLY_FIELDS

    def __init__(self) -> None:
        self.chats = self.to_bot = self.escalated = self.bot_ended = self.human = 0
        self.assigned = self.abandoned = self.overflowed = self.requeued = self.waited = 0
        self.served = self.bot_resolved = self.left_after_answer = 0
        self.waits: list[int] = []
        # (request ms, estimated wait ms, actual wait ms) of each chat that was
        # queued and then assigned (the estimate of its first chat.queued)
        self.etas: list[tuple[int, int, int]] = []
        self.abandoned_wait_ms = 0
        self.within_sl = 0
        self.sticky_seen = self.sticky_hits = 0
        self.skill_seen = self.skill_hits = 0
        # page -> [chats, waits ms, answered, within sl, human, abandoned]
        self.pages: dict[str, list[float]] = {}
        self.orders = self.chat_orders = self.visitors = 0
        self.revenue = self.chat_revenue = 0.0
        # time integrals (agents of this tenant)
        self.busy = 0.0  # chat-ms held
        self.cap = 0.0  # capacity-ms online
        self.held = 0
        self.online_cap = 0
        self.last_t: int | None = None


class Collector:
    """Feed it every input event (``event``) and every output (``output``) in order."""

    def __init__(self, *, since_ms: int | None = None, until_ms: int | None = None,
                 busy_until_ms: int | None = None, sl_s: float = SL_S,
                 attribution_s: float = ATTRIBUTION_S, wrap_up_ms: int = 0,
                 intervals: tuple[int, int] | None = None,
                 tenants: frozenset[str] | None = None) -> None:
        # unbounded: the widest ints that compiled code compares natively
        self.since = since_ms if since_ms is not None else -(2**62)
        self.until = until_ms if until_ms is not None else 2**62 - 1
        self.busy_until = busy_until_ms if busy_until_ms is not None else self.until
        self.sl_ms = sl_s * 1000.0
        self.sl_s = sl_s
        self.attribution_ms = attribution_s * 1000.0
        self.tenants: dict[str, _Tally] = {}
        # what the chats outside the report count in (written, never read)
        self._scratch = _Tally()
        self._scratch_row: list[float] = [0] * _PAGE_FIELDS
        # with tenants: the report covers these tenants' chats, visitors,
        # orders and agents only (the others still route as recorded)
        self.only = tenants
        self.chats: dict[tuple[str, str], _Chat] = {}
        self.visitors: dict[str, dict[str, _Visitor]] = {}  # tenant -> visitor id -> record
        self.agents: dict[tuple[str, str], tuple[str, int, dict[str, int]]] = {}
        # wrap-up: an ended chat's units stay busy this long (the rules', or
        # the agent's own from agent.state); per tenant, a heap of (until,
        # agent, units), given back when that tenant's time passes ``until``
        # (each tenant has its own clock: another's later events do not)
        self.wrap_up_ms = wrap_up_ms
        self.agent_wrap: dict[tuple[str, str], int] = {}
        self.wrapping: dict[str, list[tuple[int, str, int]]] = {}
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        # (tenant, interval index) -> [human, within_sl, abandoned, assigned]
        self.interval_origin, self.interval_ms = intervals if intervals is not None else (0, 0)
        self.series: dict[tuple[str, int], list[int]] = {}

    # ------------------------------------------------------------ feeding

    def event(self, ev: dict[str, Any]) -> None:
        ts: int = ev["ts"]  # typed: compiled, compared as a native int
        if self.wrapping:
            tenant = ev.get("tenant")
            if tenant is not None:
                self._unwrap(tenant, ts)
            else:  # a clock for every tenant
                for name in list(self.wrapping):
                    self._unwrap(name, ts)
        if self.first_ts is None:
            self.first_ts = ts
        last = self.last_ts
        if last is None or ts > last:
            self.last_ts = ts
        # a chain, not a table of bound methods (see Engine._handle)
        etype = ev["type"]
        if etype == "page.viewed":
            self._page(ev)
        elif etype == "chat.requested":
            self._requested(ev)
        elif etype == "chat.ended":
            self._ended(ev)
        elif etype == "visitor.arrived":
            self._arrived(ev)
        elif etype == "visitor.left":
            self._left(ev)
        elif etype == "agent.state":
            self._agent_state(ev)
        elif etype == "order.placed":
            self._order(ev)
        elif etype == "bot.escalated":
            self._escalated(ev)

    def output(self, o: dict[str, Any]) -> None:
        if self.wrapping:
            self._unwrap(o["tenant"], o["ts"])
        otype = o["type"]
        if otype == "chat.assigned":
            self._assigned(o)
        elif otype == "chat.queued":
            self._queued(o)
        elif otype == "chat.to_bot":
            self._to_bot(o)
        elif otype == "chat.requeued":
            self._requeued(o)
        elif otype == "chat.abandoned":
            self._abandoned(o)
        elif otype == "chat.overflowed":
            self._overflowed(o)
        elif otype == "chat.closed":
            self._closed(o)

    def _in(self, tenant: str) -> bool:
        return self.only is None or tenant in self.only

    def _tally(self, tenant: str) -> _Tally:
        t = self.tenants.get(tenant)
        if t is None:
            t = self.tenants[tenant] = _Tally()
        return t

    def _integrate(self, t: _Tally, now: int) -> None:
        lo, hi = self.since, self.busy_until
        last = t.last_t
        if last is not None and now > last:
            a = last if last > lo else lo
            b = now if now < hi else hi
            if b > a:
                t.busy += t.held * (b - a)
                t.cap += t.online_cap * (b - a)
        t.last_t = now if last is None or now > last else last

    def _release(self, c: _Chat, ts: int) -> None:
        """An assigned chat ended: its units come back now, or after the wrap-up."""
        assert c.agent is not None
        wrap = (self.agent_wrap.get((c.agent_tenant, c.agent), self.wrap_up_ms)
                if self.agent_wrap else self.wrap_up_ms)
        if wrap > 0:
            heap = self.wrapping.get(c.agent_tenant)
            if heap is None:
                heap = self.wrapping[c.agent_tenant] = []
            heapq.heappush(heap, (ts + wrap, c.agent, c.units))
        else:
            self._hold(c.agent_tenant, c.agent, -c.units, ts)

    def _unwrap(self, tenant: str, now: int) -> None:
        """The tenant's wrap-ups over by ``now`` give their units back, each at its time."""
        heap = self.wrapping.get(tenant)
        while heap and heap[0][0] <= now:
            until, agent, units = heapq.heappop(heap)
            self._hold(tenant, agent, -units, until)

    def _hold(self, tenant: str, agent: str, delta: int, now: int) -> None:
        if self.wrapping:
            self._unwrap(tenant, now)
        t = self._tally(tenant)
        self._integrate(t, now)
        t.held += delta

    # ------------------------------------------------------------ inputs

    def _agent_state(self, ev: dict[str, Any]) -> None:
        tenant = ev["tenant"]
        key = (tenant, ev["agent"])
        t = self._tally(tenant)
        self._integrate(t, ev["ts"])
        old = self.agents.get(key)
        if old is not None and old[0] == "online":
            t.online_cap -= old[1]
        # a field left out keeps the agent's value (a new agent: capacity 5, no skills)
        status = ev["status"]
        cap = ev.get("capacity")
        if cap is None:
            cap = old[1] if old is not None else 5
        skills = ev.get("skills")
        if skills is None:
            skills = old[2] if old is not None else {}
        if status == "online":
            t.online_cap += cap
        self.agents[key] = (status, cap, skills)
        wrap = ev.get("wrap_up_s")
        if wrap is not None:
            self.agent_wrap[key] = round(wrap * 1000)

    def _arrived(self, ev: dict[str, Any]) -> None:
        if self.since <= ev["ts"] < self.until and self._in(ev["tenant"]):
            self._tally(ev["tenant"]).visitors += 1

    def _visitor(self, tenant: str, vid: str) -> _Visitor:
        """The visitor's record, made at their first event."""
        vs = self.visitors.get(tenant)
        if vs is None:
            vs = self.visitors[tenant] = {}
        v = vs.get(vid)
        if v is None:
            v = vs[vid] = _Visitor()
        return v

    def _visitor_of(self, tenant: str, vid: str) -> _Visitor | None:
        vs = self.visitors.get(tenant)
        return vs.get(vid) if vs is not None else None

    def _page(self, ev: dict[str, Any]) -> None:
        self._visitor(ev["tenant"], ev["visitor"]).page = ev["page"]

    def _requested(self, ev: dict[str, Any]) -> None:
        tenant: str = ev["tenant"]
        vid: str = ev["visitor"]
        ts: int = ev["ts"]
        key = (tenant, ev["chat"])
        if key in self.chats:
            return
        v = self._visitor(tenant, vid)
        counted = self.since <= ts < self.until and self._in(tenant)
        if counted:
            t = self._tally(tenant)
            page = v.page or "(none)"
            row = t.pages.get(page)
            if row is None:
                row = t.pages[page] = [0] * _PAGE_FIELDS
            t.chats += 1
            row[0] += 1
        else:
            t, row = self._scratch, self._scratch_row
        c = self.chats[key] = _Chat(ev["chat"], tenant, vid, v, ts, counted, t, row)
        v.last_chat, v.last_t, v.last_abandoned = c.id, ts, False
        if v.open is None:
            v.open = [c.id]
        else:
            v.open.append(c.id)

    def _escalated(self, ev: dict[str, Any]) -> None:
        c = self.chats.get((ev["tenant"], ev["chat"]))
        if c is None or not c.bot or c.human or c.escalated:
            return
        c.escalated = True
        c.entered = ev["ts"]

    def _finish(self, c: _Chat, outcome: str, ts: int) -> None:
        c.outcome = outcome
        del self.chats[(c.tenant, c.id)]
        v = c.vis
        if v.open is not None:
            v.open.remove(c.id)
            if not v.open:
                v.open = None
        if outcome == "abandoned" and v.last_chat == c.id:
            v.last_abandoned = True
        if c.counted:
            # "closed" (outside business hours) only where it happened
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            t = c.tally
            if outcome == "served":
                t.served += 1
            elif outcome == "bot":
                t.bot_ended += 1

    def _ended(self, ev: dict[str, Any]) -> None:
        c = self.chats.get((ev["tenant"], ev["chat"]))
        if c is None:
            return
        ts: int = ev["ts"]
        if c.agent is not None:
            self._release(c, ts)
            c.agent = None
            self._finish(c, "served", ts)
        elif not c.human:  # still with the bot (never escalated, or robot_only)
            if c.counted and ev.get("resolved"):
                c.tally.bot_resolved += 1
            self._finish(c, "bot", ts)
        # else it ended while it waited: the engine reports chat.abandoned

    def _left(self, ev: dict[str, Any]) -> None:
        tenant = ev["tenant"]
        v = self._visitor_of(tenant, ev["visitor"])
        if v is None or v.open is None:
            return
        for c in [self.chats[(tenant, cid)] for cid in v.open]:
            if c.agent is not None:  # the engine closes an assigned chat too
                self._release(c, ev["ts"])
                c.agent = None
                self._finish(c, "served", ev["ts"])
            elif not c.human:  # with the bot: the engine drops it
                self._finish(c, "bot", ev["ts"])

    def _order(self, ev: dict[str, Any]) -> None:
        ts = ev["ts"]
        tenant = ev["tenant"]
        if not self.since <= ts < self.until or not self._in(tenant):
            return
        t = self._tally(tenant)
        amount = float(ev["amount"])
        t.orders += 1
        t.revenue += amount
        v = self._visitor_of(tenant, ev["visitor"])
        if (v is not None and v.last_chat is not None and ts - v.last_t <= self.attribution_ms
                and not v.last_abandoned):
            t.chat_orders += 1
            t.chat_revenue += amount

    # ------------------------------------------------------------ outputs

    def _chat_of(self, o: dict[str, Any]) -> _Chat | None:
        """The open chat an output names (kept under (tenant, chat) of its request)."""
        return self.chats.get((o.get("origin") or o["tenant"], o["chat"]))

    def _queued(self, o: dict[str, Any]) -> None:
        c = self._chat_of(o)
        if c is None:
            return
        if not c.human:
            self._human(c)
        if not c.queued and c.assigned_ts < 0:
            c.queued = True
            c.eta_ms = o["eta_s"] * 1000
            if c.counted:
                c.tally.waited += 1

    def _interval(self, c: _Chat, field: int) -> None:
        key = (c.tenant, (c.entered - self.interval_origin) // self.interval_ms)
        row = self.series.get(key)
        if row is None:
            row = self.series[key] = [0, 0, 0, 0]
        row[field] += 1

    def _human(self, c: _Chat) -> None:
        c.human = True
        if c.counted:
            if self.interval_ms:
                self._interval(c, 0)
            t = c.tally
            t.human += 1
            c.row[4] += 1
            if c.escalated:
                t.escalated += 1

    def _assigned(self, o: dict[str, Any]) -> None:
        c = self._chat_of(o)
        if c is None:
            return
        ts: int = o["ts"]
        if not c.human:
            self._human(c)
        agent: str = o["agent"]
        at: str = o["tenant"]
        c.agent, c.agent_tenant = agent, at
        c.units = o.get("units", 1)  # of the agent's capacity ([capacity.weights])
        self._hold(at, agent, c.units, ts)
        if c.assigned_ts >= 0:
            return  # a reassignment after a requeue: the wait was counted once
        c.assigned_ts = ts
        last = c.vis.last_agent
        if at == c.tenant:
            c.vis.last_agent = agent
        if not c.counted:
            return
        t = c.tally
        wait = ts - c.entered
        t.assigned += 1
        t.waits.append(wait)
        if c.eta_ms >= 0:
            t.etas.append((c.entered, c.eta_ms, wait))
        within = wait <= self.sl_ms
        if within:
            t.within_sl += 1
        if self.interval_ms:
            self._interval(c, 3)
            if within:
                self._interval(c, 1)
        row = c.row
        row[1] += wait
        row[2] += 1
        if within:
            row[3] += 1
        if last is not None:
            t.sticky_seen += 1
            if last == agent:
                t.sticky_hits += 1
        skill = o.get("skill")
        if skill is not None:
            t.skill_seen += 1
            info = self.agents.get((at, agent))
            if info is not None and skill in info[2]:
                t.skill_hits += 1

    def _to_bot(self, o: dict[str, Any]) -> None:
        c = self._chat_of(o)
        if c is None:
            return
        c.bot = True
        if c.counted:
            c.tally.to_bot += 1

    def _requeued(self, o: dict[str, Any]) -> None:
        c = self._chat_of(o)
        if c is None:
            return
        if c.agent is not None:
            self._hold(c.agent_tenant, c.agent, -c.units, o["ts"])
            c.agent = None
        if c.counted:
            c.tally.requeued += 1

    def _overflowed(self, o: dict[str, Any]) -> None:
        c = self._chat_of(o)
        if c is not None and c.counted:
            c.tally.overflowed += 1

    def _closed(self, o: dict[str, Any]) -> None:
        """The tenant was closed: no chat opened (neither served nor abandoned)."""
        c = self._chat_of(o)
        if c is not None:
            self._finish(c, "closed", o["ts"])

    def _abandoned(self, o: dict[str, Any]) -> None:
        c = self._chat_of(o)
        if c is None:
            return
        if not c.human:
            self._human(c)
        if c.assigned_ts >= 0:
            # answered once, requeued, then given up: it counts once, answered
            if c.counted:
                c.tally.left_after_answer += 1
            self._finish(c, "served", o["ts"])
            return
        if c.counted:
            t = c.tally
            t.abandoned += 1
            if self.interval_ms:
                self._interval(c, 2)
            t.abandoned_wait_ms += o["ts"] - c.entered
            c.row[5] += 1
        self._finish(c, "abandoned", o["ts"])

    # ------------------------------------------------------------ report

    def open_chats(self) -> int:
        """Chats requested (in the window) that have not ended one way or another."""
        return sum(1 for c in self.chats.values() if c.counted)

    def summary(self) -> dict[str, Any]:
        """``{"overall": {...}, "tenants": {name: {...}}}``; see the module doc."""
        end = self.last_ts if self.last_ts is not None else 0
        for name in list(self.wrapping):
            self._unwrap(name, end)
        for t in self.tenants.values():
            self._integrate(t, end)
        tallies = {name: t for name, t in sorted(self.tenants.items()) if self._in(name)}
        tenants = {name: _report(t, self.sl_s) for name, t in tallies.items()}
        total = _Tally()
        for t in tallies.values():
            _add(total, t)
        overall = _report(total, self.sl_s)
        overall["outcomes"] = dict(self.outcomes)
        overall["open"] = self.open_chats()
        doc: dict[str, Any] = {"overall": overall, "tenants": tenants}
        if self.interval_ms:
            series: dict[str, list[list[int]]] = {}
            for (tenant, i), row in sorted(self.series.items()):
                if not self._in(tenant):
                    continue
                series.setdefault(tenant, []).append([i, *row])
            doc["intervals"] = series
        return doc


def _add(into: _Tally, t: _Tally) -> None:
    for name in _TALLY_FIELDS:
        v = getattr(t, name)
        if name in ("last_t", "held", "online_cap"):
            continue
        if isinstance(v, list):
            getattr(into, name).extend(v)
        elif isinstance(v, dict):
            dst = into.pages
            for page, row in v.items():
                acc = dst.setdefault(page, [0] * _PAGE_FIELDS)
                for i in range(_PAGE_FIELDS):
                    acc[i] += row[i]
        else:
            setattr(into, name, getattr(into, name) + v)


def percentile(sorted_values: list[int] | list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; 0 for no values."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 6) if b else None


def _report(t: _Tally, sl_s: float) -> dict[str, Any]:
    waits = sorted(t.waits)
    human = t.human
    answered_or_left = t.assigned + t.abandoned
    by_page = {}
    for page, (n, wait_ms, answered, within, page_human, abandoned) in sorted(t.pages.items()):
        by_page[page] = {
            "chats": int(n),
            "human": int(page_human),
            "assigned": int(answered),
            "abandoned": int(abandoned),
            "wait_mean_s": round(wait_ms / answered / 1000.0, 3) if answered else None,
            "service_level": _ratio(within, page_human),
        }
    return {
        "visitors": t.visitors,
        "chats": t.chats,
        "to_bot": t.to_bot,
        "escalated": t.escalated,
        "bot_ended": t.bot_ended,
        "bot_resolved": t.bot_resolved,
        "human": human,
        "assigned": t.assigned,
        "served": t.served,
        "abandoned": t.abandoned,
        "left_after_answer": t.left_after_answer,
        "overflowed": t.overflowed,
        "requeued": t.requeued,
        "waited": t.waited,
        "p_wait": _ratio(t.waited, human),
        "wait_mean_s": round(sum(waits) / len(waits) / 1000.0, 3) if waits else None,
        "wait_p50_s": round(percentile(waits, 0.5) / 1000.0, 3) if waits else None,
        "wait_p90_s": round(percentile(waits, 0.9) / 1000.0, 3) if waits else None,
        "wait_p99_s": round(percentile(waits, 0.99) / 1000.0, 3) if waits else None,
        "wait_all_mean_s": (round((sum(waits) + t.abandoned_wait_ms) / answered_or_left / 1000.0,
                                  3) if answered_or_left else None),
        "sl_s": sl_s,
        "service_level": _ratio(t.within_sl, human),
        "abandonment_rate": _ratio(t.abandoned, human),
        "occupancy": _ratio(t.busy, t.cap),
        "sticky_hit_rate": _ratio(t.sticky_hits, t.sticky_seen),
        "skill_match_rate": _ratio(t.skill_hits, t.skill_seen),
        "orders": t.orders,
        "revenue": round(t.revenue, 2),
        "chat_orders": t.chat_orders,
        "chat_revenue": round(t.chat_revenue, 2),
        "by_page": by_page,
        "eta": eta_accuracy(t.etas),
    }


def eta_accuracy(etas: list[tuple[int, int, int]]) -> dict[str, Any]:
    """How well ``chat.queued``'s ``eta_s`` foretold the wait of the chats that
    were then assigned: mean absolute error and bias (estimate − wait) in
    seconds, the error as a share of the mean wait, overall and in the peak
    hour (the clock hour in which most of these chats were requested)."""
    def block(rows: list[tuple[int, int, int]]) -> dict[str, Any]:
        if not rows:
            return {"chats": 0, "mae_s": None, "bias_s": None, "mean_wait_s": None,
                    "mae_share": None}
        n = len(rows)
        mae = sum(abs(e - w) for _, e, w in rows) / n / 1000.0
        bias = sum(e - w for _, e, w in rows) / n / 1000.0
        wait = sum(w for _, _, w in rows) / n / 1000.0
        return {"chats": n, "mae_s": round(mae, 3), "bias_s": round(bias, 3),
                "mean_wait_s": round(wait, 3), "mae_share": _ratio(mae, wait)}

    out = block(etas)
    hours: dict[int, list[tuple[int, int, int]]] = {}
    for row in etas:
        hours.setdefault(row[0] // 3_600_000, []).append(row)
    if hours:
        peak = max(sorted(hours), key=lambda h: len(hours[h]))
        out["peak"] = {"hour_start_ms": peak * 3_600_000, **block(hours[peak])}
    return out


def collect(events: Iterable[dict[str, Any]], outputs: Iterable[dict[str, Any]],
            collector: Collector | None = None) -> Collector:
    """Feed events and outputs, interleaved by the outputs' ``offset`` (their cause)."""
    col = collector if collector is not None else Collector()
    outs = iter(outputs)
    pending = next(outs, None)
    for offset, ev in enumerate(events):
        col.event(ev)
        while pending is not None and pending.get("offset", offset) <= offset:
            col.output(pending)
            pending = next(outs, None)
    while pending is not None:
        col.output(pending)
        pending = next(outs, None)
    return col


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)


def summarize_files(events: str | Path, outputs: str | Path, **window: Any) -> dict[str, Any]:
    """The summary of a recorded run (``events.jsonl`` + ``outputs.jsonl``).

    Outputs must carry the ``offset`` of their input (``routeq run`` and
    ``routeq simulate`` write it); ``window`` is passed to :class:`Collector`.
    """
    col = collect(_jsonl(Path(events)), _jsonl(Path(outputs)), Collector(**window))
    return col.summary()


# ---------------------------------------------------------------- the table

_ROWS: tuple[tuple[str, str, str], ...] = (
    ("visitors", "visitors", "d"),
    ("chats", "chats", "d"),
    ("to_bot", "to bot", "d"),
    ("bot_ended", "ended with bot", "d"),
    ("human", "for a human", "d"),
    ("assigned", "assigned", "d"),
    ("abandoned", "abandoned", "d"),
    ("overflowed", "overflowed", "d"),
    ("requeued", "requeued", "d"),
    ("p_wait", "P(wait)", "%"),
    ("wait_mean_s", "wait mean s", "f"),
    ("wait_p50_s", "wait p50 s", "f"),
    ("wait_p90_s", "wait p90 s", "f"),
    ("wait_p99_s", "wait p99 s", "f"),
    ("service_level", "answered <= {sl} s", "%"),
    ("abandonment_rate", "abandonment", "%"),
    ("occupancy", "occupancy", "%"),
    ("sticky_hit_rate", "sticky hits", "%"),
    ("skill_match_rate", "skill match", "%"),
    ("orders", "orders", "d"),
    ("chat_orders", "orders after chat", "d"),
    ("revenue", "revenue", "m"),
    ("chat_revenue", "revenue after chat", "m"),
)


def cell(v: Any, fmt: str) -> str:
    """A table cell: ``d`` count, ``%`` share, ``m`` money, else one decimal; '-' for None."""
    if v is None:
        return "-"
    if fmt == "d":
        return f"{v:,}"
    if fmt == "%":
        return f"{100 * v:.1f}%"
    if fmt == "m":
        return f"{v:,.0f}"
    return f"{v:.1f}"


def table(summary: dict[str, Any], max_tenants: int = 6) -> str:
    """The summary as a text table: overall, then the busiest tenants, then by page."""
    overall = summary["overall"]
    tenants = summary.get("tenants", {})
    busiest = sorted(tenants, key=lambda n: (-tenants[n]["chats"], n))
    shown = busiest[:max_tenants] if len(tenants) > 1 else []
    cols = ["overall", *shown]
    data = [overall, *(tenants[n] for n in shown)]
    sl = f"{overall.get('sl_s', SL_S):g}"
    labels = [label.format(sl=sl) for _, label, _ in _ROWS]
    width = max(len(label) for label in labels)
    cells = [[cell(d.get(key), fmt) for d in data] for key, _, fmt in _ROWS]
    colw = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join([" " * width, *(c.rjust(w) for c, w in zip(cols, colw, strict=True))])]
    for label, row in zip(labels, cells, strict=True):
        lines.append("  ".join([label.ljust(width),
                                *(c.rjust(w) for c, w in zip(row, colw, strict=True))]))
    if len(tenants) > len(shown) + (0 if shown else 1):
        lines.append(f"({len(tenants)} tenants in all; every one is in summary.json)")
    pages = overall.get("by_page", {})
    if pages:
        # the same definitions as the rows above: service level over the chats
        # for a human (abandoned included), mean wait over the assigned ones
        head = ("chats", "for a human", "abandoned", "wait mean s", f"answered <= {sl} s")
        lines.append("")
        lines.append("  ".join([f"{'page':{width}}", *head]))
        for page, stats in sorted(pages.items(), key=lambda kv: -kv[1]["chats"]):
            vals = (cell(stats["chats"], "d"), cell(stats.get("human"), "d"),
                    cell(stats.get("abandoned"), "d"), cell(stats["wait_mean_s"], "f"),
                    cell(stats["service_level"], "%"))
            lines.append("  ".join([f"{page:{width}}",
                                    *(v.rjust(len(h)) for v, h in zip(vals, head, strict=True))]))
    return "\n".join(lines)
