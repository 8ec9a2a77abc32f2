"""A chat server's model of routeq's contract (CONTRACT.md), independent of the engine.

It reads what a chat server sees — the input lines it sent and the outputs it
got back for each — and keeps what a chat server would keep: per agent the
chats it holds, its status and capacity as last sent; per chat its state.
Every rule it checks is a sentence of CONTRACT.md ("Invariants"); a broken
one raises ``Violation`` naming the step and the output.

It imports nothing of routeq: a contract that can only be checked with the
engine's own code is not checked at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

Obj = dict[str, Any]
ChatKey = tuple[str, str]  # (home tenant, chat id) as the chat server names the chat
AgentKey = tuple[str, str]  # (tenant, agent id)

DEFAULT_CAPACITY = 5
ALL_TENANTS = "*"  # the id namespace of a clock without a tenant
#: outputs a distributed runtime may show that are not decisions for a chat server
INTERNAL_OUTPUTS = frozenset({"event.forwarded"})


class Violation(AssertionError):
    """An output a chat server can see breaks the contract."""


@dataclass
class Chat:
    visitor: str
    state: str = "requested"  # requested | waiting | assigned | bot | ended
    holder: AgentKey | None = None
    overflowed_to: str | None = None
    decided: str = ""  # the type of its first decision
    # when its request was applied, at the earliest and at the latest: the
    # request's ts and the latest ts sent by then (its tenant's clock lies between)
    requested: tuple[int, int] = (0, 0)
    # agents who transferred it away (chat.transferred): never its holder again
    transferred_by: set[AgentKey] = field(default_factory=set)
    transfer_to: str | None = None  # the to_agent of its latest transfer, if it named one


@dataclass
class Agent:
    status: str = "offline"
    capacity: int = DEFAULT_CAPACITY
    held: dict[ChatKey, int] = field(default_factory=dict)  # chat -> its units
    # (when, units): the units of a chat that ended free again after its
    # wrap-up, at the latest: the model counts from the end event's own ts,
    # which is at most the tenant's clock the engine counts from
    wrapping: list[tuple[int, int]] = field(default_factory=list)
    wrap_up_ms: int | None = None  # the agent's own wrap-up, where it sent one
    offline_since: int | None = None
    missed: int = 0  # offers in a row let time out

    def units(self, now: int) -> int:
        """Units of capacity in use at ``now``: chats held and wrap-ups running."""
        return sum(self.held.values()) + sum(u for until, u in self.wrapping if until > now)


@dataclass
class Step:
    """One input line and the outputs the runtime gave for it, in order."""

    line: bytes
    outputs: list[Obj]


class ChatServerModel:
    """Feed it ``Step``s in input order; it raises ``Violation`` on the first
    output that breaks the contract. ``dedup_window``: event ids a tenant
    remembers (duplicates are checked while fewer ids were seen)."""

    def __init__(self, dedup_window: int = 100_000, dedup_window_s: float = 86_400.0, *,
                 max_missed_offers: int = 0, wrap_up_s: float = 0.0,
                 offline_grace_s: float = 0.0,
                 capacity_weights: dict[str, int] | None = None,
                 hours: dict[str, dict[str, Any]] | None = None) -> None:
        self.window = dedup_window
        # presence and capacity rules ([assignment], CONTRACT.md §2)
        self.max_missed = max_missed_offers
        self.wrap_up_ms = round(wrap_up_s * 1000)
        self.grace_ms = round(offline_grace_s * 1000)
        self.weights = capacity_weights or {}  # skill -> units a chat of it holds
        self.hours = hours or {}  # tenant -> its [hours] table, as the rules wrote it
        # an id is remembered at least while its tenant's clock is at most this
        # far past the time it was applied (CONTRACT.md §3)
        self.window_ms = round(dedup_window_s * 1000)
        # the latest ts sent for any tenant: an upper bound of every tenant's
        # clock (overflow and tenantless clocks move other tenants' clocks)
        self.latest: int | None = None
        self.first_ts: dict[tuple[str, str], int] = {}
        self.chats: dict[ChatKey, Chat] = {}
        self.agents: dict[AgentKey, Agent] = {}
        self.visitors_left: dict[tuple[str, str], bool] = {}
        self.visitor_chats: dict[tuple[str, str], list[ChatKey]] = {}
        self.ids: dict[str, set[str]] = {}
        self.steps = 0
        self.decisions = 0
        self.event: Obj = {}  # the input being read

    # ------------------------------------------------------------- feeding

    def feed(self, step: Step) -> None:
        self.steps += 1
        event = _parse(step.line)
        if event is None:
            self._check(len(step.outputs) == 1 and step.outputs[0]["type"] == "event.rejected",
                        step, "a malformed line gets exactly one event.rejected")
            self._check("error" in step.outputs[0] and step.outputs[0]["error"], step,
                        "event.rejected names what is wrong")
            return
        tenant = event.get("tenant", ALL_TENANTS)
        seen = self.ids.setdefault(tenant, set())
        now = self.latest if self.latest is not None else event["ts"]
        if event["id"] in seen:
            # the original was applied at its ts or later: within the window
            # if even this upper bound of the clock is
            within = now - self.first_ts[(tenant, event["id"])] <= self.window_ms
            if len(seen) < self.window and within:
                self._check(not step.outputs, step, "a duplicate input changes nothing")
            return
        seen.add(event["id"])
        self.event = event
        self.first_ts[(tenant, event["id"])] = event["ts"]
        self.latest = max(now, event["ts"])
        for out in step.outputs:
            self._check(out.get("cause") in (event["id"], "timer"), step,
                        "every output's cause is its input's id or 'timer'", out)
        # Timers due before the event fire first (cause 'timer'), then the
        # event's own decisions; timers the event left behind come after them.
        own = next((i for i, o in enumerate(step.outputs) if o["cause"] == event["id"]),
                   len(step.outputs))
        for out in step.outputs[:own]:
            self._output(step, out)
        held_before = self._holder(event)
        new_chat = self._input(event)
        for out in step.outputs[own:]:
            self._output(step, out)
        self._after(step, event, held_before, new_chat)

    def finish(self) -> None:
        """After the drain (an agent with every skill and room online in every
        tenant, time moved on past every bound): nothing waits any more."""
        waiting = sorted(k for k, c in self.chats.items() if c.state in ("waiting", "requested"))
        if waiting:
            raise Violation(f"chats still waiting once capacity appeared: {waiting[:5]}")

    # -------------------------------------------------------------- inputs

    def _holder(self, ev: Obj) -> AgentKey | None:
        """The agent a chat.declined or chat.transferred names, where that
        agent holds the chat as the input comes (the timers before it read)."""
        if ev["type"] in ("chat.declined", "chat.transferred"):
            c = self.chats.get((ev["tenant"], ev["chat"]))
            # an overflowed chat's holder is an agent of the target tenant
            if c is not None and c.holder is not None and c.holder[1] == ev["agent"]:
                return c.holder
        return None

    def _input(self, ev: Obj) -> ChatKey | None:
        """The input's own effect as the chat server knows it; returns a chat
        the input opened (it must get a decision in the same step)."""
        etype = ev["type"]
        tenant = ev.get("tenant", ALL_TENANTS)
        if etype == "agent.state":
            # a field left out keeps its value; a new agent starts with capacity 5
            a = self.agents.setdefault((tenant, ev["agent"]), Agent())
            if ev["status"] == "online" and a.status != "online":
                a.missed = 0  # back online: a fresh count of missed offers
            if ev["status"] == "offline" and a.status != "offline":
                # at least the tenant's clock: its grace ends no sooner than this + grace
                a.offline_since = self.latest
            elif ev["status"] != "offline":
                a.offline_since = None
            a.status = ev["status"]
            if ev.get("capacity") is not None:
                a.capacity = ev["capacity"]
            if ev.get("wrap_up_s") is not None:
                a.wrap_up_ms = round(ev["wrap_up_s"] * 1000)
        elif etype == "chat.requested":
            key = (tenant, ev["chat"])
            vkey = (tenant, ev["visitor"])
            self.visitors_left[vkey] = False
            c = self.chats.get(key)
            if c is None or c.state == "ended":
                assert self.latest is not None
                self.chats[key] = Chat(ev["visitor"], requested=(ev["ts"], self.latest))
                self.visitor_chats.setdefault(vkey, []).append(key)
                return key
        elif etype == "visitor.arrived":
            self.visitors_left[(tenant, ev["visitor"])] = False
        elif etype == "chat.ended":
            self._end((tenant, ev["chat"]), ev["ts"])
        elif etype == "chat.accepted":
            c = self.chats.get((tenant, ev["chat"]))
            if c is not None and c.holder is not None and c.holder[1] == ev["agent"]:
                self.agents[c.holder].missed = 0  # an accepted offer resets the count
        elif etype == "visitor.left":
            vkey = (tenant, ev["visitor"])
            if self.visitors_left.get(vkey) is False:
                self.visitors_left[vkey] = True
                for key in self.visitor_chats.pop(vkey, []):
                    if self.chats[key].visitor == ev["visitor"]:  # not an id reused since
                        self._end(key, ev["ts"])
        return None

    def _end(self, key: ChatKey, ts: int) -> None:
        c = self.chats.get(key)
        if c is None or c.state == "ended":
            return
        if c.holder is not None:
            a = self.agents[c.holder]
            units = a.held.pop(key)
            wrap = a.wrap_up_ms if a.wrap_up_ms is not None else self.wrap_up_ms
            if wrap > 0:
                a.wrapping.append((ts + wrap, units))
            c.holder = None
        c.state = "ended"

    def _after(self, step: Step, ev: Obj, held_by: AgentKey | None,
               new_chat: ChatKey | None) -> None:
        if new_chat is not None:
            c = self.chats[new_chat]
            self._check(c.state != "requested", step,
                        "a chat.requested gets a decision (queued, assigned, to_bot or closed)")
            self._check_hours(step, ev, c)
        if ev["type"] == "chat.declined" and held_by is not None:
            c = self.chats[(ev["tenant"], ev["chat"])]
            self._check(c.holder != held_by, step,
                        "a chat declined by the agent holding it is taken from them")
        if ev["type"] == "chat.transferred":
            self._check_transfer(step, ev, held_by)
        if ev["type"] == "agent.state" and ev["status"] == "offline" and not self.grace_ms:
            a = self.agents[(ev["tenant"], ev["agent"])]
            self._check(not a.held, step, "an agent going offline holds no chat")
        elif self.grace_ms:
            # an agent offline for offline_grace_s holds no chat (the step's ts
            # is at most its tenant's clock, offline_since at least it was)
            tenant = ev.get("tenant")
            for (t, aid), a in self.agents.items():
                if (a.status == "offline" and a.held and a.offline_since is not None
                        and tenant in (t, None) and ev["ts"] >= a.offline_since + self.grace_ms):
                    raise Violation(f"step {self.steps}: an agent offline for offline_grace_s "
                                    f"holds no chat ({t}/{aid} holds {sorted(a.held)})")

    # ------------------------------------------------------------- outputs

    def _output(self, step: Step, out: Obj) -> None:
        otype = out["type"]
        if otype in INTERNAL_OUTPUTS:
            return
        if otype == "event.rejected":
            raise Violation(f"step {self.steps}: a well-formed input was rejected: {out}")
        tenant = out["tenant"]
        if otype == "agent.away":
            a = self.agents.get((tenant, out["agent"]))
            self._check(a is not None and a.status == "online", step,
                        "agent.away names an online agent", out)
            assert a is not None
            self._check(out["why"] == "missed_offers" and self.max_missed > 0
                        and a.missed >= self.max_missed, step,
                        "agent.away follows max_missed_offers offers in a row let time out",
                        out)
            a.status = "away"
            return
        key = (out.get("origin", tenant), out["chat"])
        c = self.chats.get(key)
        if c is None:
            raise Violation(f"step {self.steps}: {otype} of a chat never requested: {out}")
        self._check(tenant == (c.overflowed_to or key[0]), step,
                    "a chat is decided in its own tenant, or in its overflow target "
                    "once it overflowed", out)
        if otype == "chat.abandoned":
            self._check(c.state == "ended" and c.holder is None, step,
                        "chat.abandoned follows the end of a waiting chat", out)
            return
        if otype == "chat.requeued":
            holder = (tenant, out["agent"])
            self._check(c.holder == holder, step, "a requeued chat was held by that agent", out)
            a = self.agents[holder]
            if out["why"] == "agent_offline":
                self._check(a.status == "offline", step,
                            "chats are requeued for agent_offline only while the agent is "
                            "offline (back in time: nothing is requeued)", out)
            if out["why"] == "offer_timeout":
                a.missed += 1
            if out["why"] == "transferred":
                ev = self.event
                self._check(ev.get("type") == "chat.transferred" and out["cause"] == ev["id"]
                            and (ev["tenant"], ev["chat"]) == key
                            and ev["agent"] == out["agent"], step,
                            "a chat.requeued (transferred) comes only from a chat.transferred "
                            "naming that chat and the agent holding it", out)
                c.transferred_by.add(holder)
                c.transfer_to = ev.get("to_agent")
            a.held.pop(key, None)
            c.holder = None
            c.state = "waiting"
            return
        self._check(c.state != "ended", step,
                    "no decision for a chat that ended or whose visitor left", out)
        self._check(c.holder is None, step, "a chat is held by at most one agent", out)
        self.decisions += 1
        if not c.decided:
            c.decided = otype
        if otype == "chat.closed":
            self._check(c.state == "requested" and out["why"] == "after_hours", step,
                        "chat.closed (after_hours) is the decision of a new request", out)
            c.state = "ended"
            return
        if otype == "chat.queued":
            c.state = "waiting"
        elif otype == "chat.to_bot":
            c.state = "bot"
        elif otype == "chat.overflowed":
            self._check(tenant == key[0], step, "a chat overflows from its own tenant", out)
            c.overflowed_to = out["to"]
            c.state = "waiting"
        elif otype == "chat.assigned":
            akey = (tenant, out["agent"])
            a = self.agents.get(akey)
            self._check(a is not None and a.status == "online", step,
                        "only online agents receive chats", out)
            assert a is not None
            self._check(isinstance(out.get("step"), str) and out["step"] != "", step,
                        "chat.assigned names the routing step (a non-empty string)", out)
            self._check(akey not in c.transferred_by, step,
                        "a chat is never assigned again to an agent who transferred it", out)
            if out.get("reason") == "transfer":
                self._check(c.transfer_to == out["agent"], step,
                            "chat.assigned with reason transfer names the agent the chat "
                            "was last transferred to", out)
            # the chat's units by the skill the output names ([capacity.weights])
            units = self.weights.get(out.get("skill", ""), 1)
            self._check(out.get("units", 1) == units, step,
                        "chat.assigned's units are its skill's weight", out)
            self._check(a.units(out["ts"]) + units <= a.capacity, step,
                        "an agent never holds more units than its capacity (a chat of a "
                        "weighted skill holds its weight; one that ended holds its units "
                        "through the wrap-up)", out)
            lo, hi = c.requested
            self._check(out["ts"] - hi <= out["wait_ms"] <= out["ts"] - lo, step,
                        "chat.assigned's wait_ms counts from the chat's request (an "
                        "escalated, overflowed, requeued or transferred chat keeps it)", out)
            a.held[key] = units
            c.holder = akey
            c.state = "assigned"
        else:
            raise Violation(f"step {self.steps}: output type not in the contract: {out}")

    def _check_transfer(self, step: Step, ev: Obj, held_by: AgentKey | None) -> None:
        """A chat.transferred from the agent holding it takes the chat from
        them: its chat.requeued (``transferred``), then, for the same cause,
        the chat's chat.queued or chat.assigned (or its chat.overflowed, where
        its next routing step names the platform). From anyone else (a chat
        unknown, waiting, ended or held by another agent) it gives no output."""
        own = [o for o in step.outputs if o.get("cause") == ev["id"]]
        if held_by is None:
            self._check(not own, step, "a chat.transferred for a chat the named agent does "
                        "not hold gives no output", own[0] if own else None)
            return
        key = (ev["tenant"], ev["chat"])
        c = self.chats[key]
        self._check(c.holder != held_by, step,
                    "a chat transferred by the agent holding it is taken from them")

        def about(o: Obj) -> bool:
            return o.get("chat") == ev["chat"] and o.get("origin", o["tenant"]) == ev["tenant"]

        mine = [o for o in own if about(o)]
        self._check(bool(mine) and mine[0]["type"] == "chat.requeued"
                    and mine[0]["why"] == "transferred", step,
                    "a chat transferred by the agent holding it is requeued (transferred)",
                    mine[0] if mine else None)
        self._check(len(mine) > 1 and mine[1]["type"] in ("chat.queued", "chat.assigned",
                                                          "chat.overflowed"),
                    step, "a chat.requeued is followed, for the same cause, by the chat's "
                    "chat.queued, chat.assigned or (a routing step naming the platform) "
                    "chat.overflowed", mine[1] if len(mine) > 1 else mine[0])

    def _check_hours(self, step: Step, ev: Obj, c: Chat) -> None:
        """Outside its hours a tenant's new chat goes to the bot or is closed;
        inside them it is never closed. The engine decides at its tenant's
        clock, between the event's ts and ``latest``: both must agree."""
        table = self.hours.get(ev["tenant"])
        if table is None:
            self._check(c.decided != "chat.closed", step,
                        "chat.closed only for a tenant with business hours")
            return
        assert self.latest is not None
        lo, hi = _open(table, ev["ts"]), _open(table, self.latest)
        if lo and hi:
            self._check(c.decided != "chat.closed", step,
                        "a chat requested within the tenant's hours is not closed")
        elif not lo and not hi:
            want = ("chat.closed" if table.get("after_hours") == "closed" else "chat.to_bot")
            self._check(c.decided == want, step,
                        f"a chat requested outside the tenant's hours: {want}")

    def _check(self, ok: bool, step: Step, rule: str, out: Obj | None = None) -> None:
        if not ok:
            shown = f"\n  output: {json.dumps(out)}" if out is not None else ""
            raise Violation(f"step {self.steps}: {rule}\n  input: "
                            f"{step.line.decode(errors='replace')}{shown}")


def _parse(line: bytes) -> Obj | None:
    """The input as the chat server meant it, or None for a line that is not
    a well-formed event (the suite's streams mark those; see conformance/streams)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("_bad"):
        return None
    return obj


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _open(table: dict[str, Any], ts: int) -> bool:
    """Whether a tenant with these [hours] is open at ``ts``, by the calendar
    (the standard library's, not the engine's arithmetic)."""
    sign, hh, mm = table.get("utc_offset", "+00:00")[0], *table.get(
        "utc_offset", "+00:00")[1:].split(":")
    offset = timedelta(hours=int(hh), minutes=int(mm)) * (1 if sign == "+" else -1)
    local = (datetime.fromtimestamp(ts // 1000, tz=timezone(offset))
             + timedelta(milliseconds=ts % 1000))
    if local.date().isoformat() in table.get("closed", []):
        return False
    spans = table.get("week", {}).get(DAYS[local.weekday()])
    if spans is None:
        return True
    at = f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}.{local.microsecond:06d}"
    for span in spans:
        start, end = span.split("-")
        if f"{start}:00.000000" <= at and (end == "24:00" or at < f"{end}:00.000000"):
            return True
    return False
