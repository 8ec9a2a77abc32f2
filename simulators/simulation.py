"""The closed-loop, discrete-event simulation.

One heap of ``(time_ms, seq, what, arg)``; taking a step may emit input
events, each applied to the engine at once (its offset is its position in the
log, exactly as ``routeq run`` numbers input lines). The engine's outputs are
read back and schedule the endogenous events: an agent's acceptance or decline
after a delay, the end of a chat after a handle time that depends on skill
match and the agent's load, the visitor's patience (``visitor.left``), the
bot's resolution or ``bot.escalated``, an order after the chat, and ``clock``
events at the deadlines of the engine's timers (offer timeout, reservation
bounds, overflow) so they fire on time even when the tenant is quiet.

Exogenous events come from the scenario: arrivals (a time-of-day curve with
peaks, by thinning), page journeys (a Markov chain over page types with dwell
times and a chance of asking for help per page), returning customers, members,
tiers and exclusive customers, channels and regions, and agent shifts with
breaks. Every draw comes from one ``random.Random(seed)``; the same scenario,
rules and seed give the same bytes.

Input events are built as dicts that already have the shape
``schemas.events.decode`` gives their JSON line (defaults filled in), so the
log replays through ``routeq run`` to the same outputs, byte for byte.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from engine import POLICIES, Engine, Rules, views
from schemas.outputs import encode_lines
from simulators.metrics import SL_S, Collector
from simulators.scenario import ScenarioError, get, need, start_ms
from simulators.traffic import (
    HOUR_MS,
    MINUTE_MS,
    Choice,
    expovariate,
    lognormal_params,
    multipliers,
)

PAGES = ("home", "list", "search", "detail", "cart", "checkout", "order", "after_sales")

# a simulated chat's state, as the simulator knows it from the engine's outputs
NEW, BOT, WAITING, ASSIGNED, REQUEUED, CLOSED = range(6)
# what a scheduled step does (see Simulation._act), the commonest first
(END, ARRIVAL, GIVE_UP, CLOCK, ACCEPT, DECLINE, REQUEST, PAGE, BOT_DONE, TICK, AGENT_CLOSE,
 ORDER_THEN_LEAVE, AGENT_STATE, DROP_START, DROP_END, BACK) = range(16)
FLUSH_EVERY = 8192


@contextmanager
def relaxed_gc() -> Iterator[None]:
    """The cyclic collector off while a simulation (or a re-simulation) runs.

    A run keeps millions of small objects alive (one per visitor) and drops
    no reference cycles while it lasts, so every pass of the cyclic
    collector over them is pure overhead: a quarter of the wall time of a
    simulated 11.11 day with the default thresholds, 7 % of an M/M/c run
    with relaxed ones (the engine, the simulator, the figures collector and
    the what-if reader and re-simulation keep no tables of their own bound
    methods, which would make each of them a cycle). On the way out it is
    switched back on, and its next pass frees any cycle the run left.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Profile:
    """A customer: kept between visits so a returning visitor is the same one."""

    __slots__ = ("id", "channel", "region", "customer", "exclusive", "last_agent")

    def __init__(self, pid: str, channel: str, region: str | None,
                 customer: dict[str, Any] | None, exclusive: str | None) -> None:
        self.id = pid
        self.channel = channel
        self.region = region
        self.customer = customer
        self.exclusive = exclusive
        self.last_agent: str | None = None


class SimChat:
    __slots__ = ("id", "tenant", "profile", "page", "t_req", "entered", "status", "gen",
                 "agent", "agent_tenant", "skill", "accepted", "wait_ms", "overflow_clock")

    def __init__(self, cid: str, tenant: str, profile: Profile, page: str | None, t: int) -> None:
        self.id = cid
        self.tenant = tenant
        self.profile = profile
        self.page = page
        self.t_req = t
        self.entered = t  # when the chat last started waiting for a human
        self.status = NEW
        self.gen = 0  # bumped on every state change; stale scheduled actions compare it
        self.agent = ""
        self.agent_tenant = ""
        self.skill: str | None = None
        self.accepted = False
        self.wait_ms = -1  # wait before the first assignment
        self.overflow_clock = False


class TenantModel:
    __slots__ = ("name", "weight", "agents", "vip", "pool")

    def __init__(self, name: str, weight: float) -> None:
        self.name = name
        self.weight = weight
        self.agents: list[str] = []
        self.vip: list[str] = []  # agents who may be a customer's dedicated agent
        self.pool: list[Profile] = []  # customers who have left and may come back


@dataclass
class RunStats:
    events: int
    outputs: int
    visitors: int
    chats: int
    wall_s: float
    sim_start_ms: int
    sim_end_ms: int  # end of arrivals
    drained_ms: int  # time of the last event

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else 0.0


class Simulation:
    """Build with a scenario mapping (``load_scenario``) and rules; ``run`` once."""

    def __init__(self, scenario: dict[str, Any], rules: Rules, *, seed: int = 1,
                 hours: float | None = None, track_queue: bool = False,
                 interval_s: float = 0.0, sl_s: float = SL_S) -> None:
        self.scenario = scenario
        self.rules = rules
        self.seed = seed
        self.rng = random.Random(seed)
        self.kind = scenario.get("kind", "shop")
        self.t0, self.utc_offset = start_ms(scenario)
        h = hours if hours is not None else get(scenario, "hours", 8.0)
        if not isinstance(h, (int, float)) or h <= 0:
            raise ScenarioError("scenario key 'hours' (or --hours) must be a number > 0")
        self.hours = float(h)
        self.end = self.t0 + int(self.hours * HOUR_MS)
        # drain = false: the history stops at the end of the horizon, as an
        # export of a live server does, with chats still open
        self.drain = bool(scenario.get("drain", True))
        # every event's id is its own offset's: no duplicate to drop
        self.engine = Engine(rules, track_changes=False, dedup=False)
        # (time, sequence, what, its argument): steps at one time in the order
        # they were scheduled
        self.heap: list[tuple[int, int, int, Any]] = []
        self._seq = 0
        self.offset = 0
        self.n_outputs = 0
        self.n_visitors = 0
        self.n_chats = 0
        self.now = self.t0
        self.chats: dict[str, SimChat] = {}
        self.active: dict[str, dict[str, int]] = {}  # tenant -> agent -> chats held
        self.skills: dict[tuple[str, str], dict[str, int]] = {}
        self.tenants: dict[str, TenantModel] = {}
        self._ev_buf: list[bytes] = []
        self._out_buf: list[bytes] = []
        # with track_queue: the time integral of the number of chats waiting in
        # the engine's queues (read from the engine itself), for Little's law
        self.track_queue = track_queue
        self.queue_area_ms = 0
        self._queue_len = 0
        self._queue_t = 0
        self._events_out: BinaryIO | None = None
        self._outputs_out: BinaryIO | None = None
        # mobile agents whose app drops: (tenant, agent) -> when the drop ends
        self.dark: dict[tuple[str, str], int] = {}
        # the status each agent's own schedule gave them last (shift, breaks)
        self.planned: dict[tuple[str, str], str] = {}
        self.set_away: set[tuple[str, str]] = set()  # by the engine, for missed offers
        # a queue from a forecast: each interval's start, handle time and patience
        self.interval_starts: list[int] = []
        self.interval_handle: list[dict[str, float]] = []
        self.interval_patience: list[dict[str, float]] = []
        self.interval_mix: list[Choice | None] = []
        self._chat_model(scenario)
        if self.kind == "queue":
            self._queue_model(scenario)
        else:
            self._shop_model(scenario)
        # the report leaves out the warm-up (queue scenarios) and the drain;
        # with interval_s it also counts service per interval (a staffing plan)
        series = (self.t0, int(interval_s * 1000)) if interval_s > 0 else None
        if self.kind == "queue":
            self.collector = Collector(since_ms=self.t0 + self.warmup_ms, until_ms=self.end,
                                       wrap_up_ms=rules.wrap_up_ms, intervals=series,
                                       sl_s=sl_s)
        else:
            self.collector = Collector(busy_until_ms=self.end, wrap_up_ms=rules.wrap_up_ms,
                                       intervals=series, sl_s=sl_s)

    # ------------------------------------------------------------ building

    def _chat_model(self, sc: dict[str, Any]) -> None:
        chat = sc.get("chat", {})
        self.patience_s = get(chat, "patience_s", 90.0, "chat.")
        self.accept_s = get(chat, "accept_s", 0.0, "chat.")
        self.decline = get(chat, "decline", 0.0, "chat.")
        # chance an offer goes unanswered (the agent's app in the background)
        self.miss = get(chat, "miss", 0.0, "chat.")
        # an agent the engine set away comes back this long after (when not in a drop)
        self.back_s = get(chat, "back_after_away_s", 60.0, "chat.")
        self.handle_s = get(chat, "handle_s", 180.0, "chat.")
        self.handle_dist = get(chat, "handle_dist", "exponential", "chat.")
        if self.handle_dist not in ("exponential", "lognormal"):
            raise ScenarioError("scenario key 'chat.handle_dist' must be exponential or lognormal")
        self.handle_mu, self.handle_sigma = lognormal_params(
            1.0, get(chat, "handle_cv", 1.0, "chat."))
        self.skill_speedup = get(chat, "skill_speedup", 0.0, "chat.")
        self.unskilled = get(chat, "unskilled", 1.0, "chat.")
        self.concurrency = get(chat, "concurrency", 0.0, "chat.")
        self.bot_s = get(chat, "bot_s", 40.0, "chat.")
        self.bot_resolves: dict[str, float] = dict(chat.get("bot_resolves", {"default": 0.5}))
        self.order_after_chat: dict[str, float] = dict(chat.get("order_after_chat", {}))
        self.wait_decay_s = get(chat, "wait_decay_s", 120.0, "chat.")
        # what chat servers do beside the visitors' patience: an agent closes a
        # waiting chat (spam, a duplicate) after closed_after_s on average;
        # a visitor closes the window in the middle of a chat with an agent
        self.agent_closes = get(chat, "agent_closes_waiting", 0.0, "chat.")
        self.closed_after_s = get(chat, "closed_after_s", 30.0, "chat.")
        self.left_mid_chat = get(chat, "left_mid_chat", 0.0, "chat.")
        rules = self.rules
        self.send_accept = rules.acceptance_required or self.accept_s > 0 or self.decline > 0
        self.reserves = POLICIES[rules.policy].reserves

    def _agent_group(self, tenant: TenantModel, g: dict[str, Any], where: str,
                     prefix: str) -> None:
        count = need(g, "count", where, int)
        capacity = get(g, "capacity", 1, where)
        skills = dict(g.get("skills", {}))
        shift = g.get("shift", [0.0, self.hours])
        if not (isinstance(shift, list) and len(shift) == 2):
            raise ScenarioError(f"scenario key '{where}shift' must be [start_h, end_h]")
        breaks = get(g, "breaks", 0, where)
        break_ms = int(get(g, "break_min", 15.0, where) * MINUTE_MS)
        # mobile agents: their app drops this often per hour on shift, for
        # flap_s on average; a drop shows as offline then online with chance
        # flap_reported, else the agent just misses their offers meanwhile
        flap_rate = get(g, "flap_per_h", 0.0, where) / HOUR_MS
        flap_ms = get(g, "flap_s", 20.0, where) * 1000.0
        flap_reported = get(g, "flap_reported", 1.0, where)
        base: dict[str, Any] = {"capacity": capacity, "skills": skills}
        if "channels" in g:
            base["channels"] = list(g["channels"])
        if "regions" in g:
            base["regions"] = list(g["regions"])
        rnd = self.rng.random
        for i in range(count):
            aid = f"{prefix}{i + 1:03d}"
            tenant.agents.append(aid)
            if g.get("exclusive", False):
                tenant.vip.append(aid)
            self.skills[(tenant.name, aid)] = skills
            self.active.setdefault(tenant.name, {})[aid] = 0
            on = self.t0 + int(shift[0] * HOUR_MS)
            if shift[0] > 0:
                on += int(rnd() * 5 * MINUTE_MS)
            off = self.t0 + int(shift[1] * HOUR_MS)
            plan = [(on, "online")]
            for b in range(breaks):
                at = on + (off - on) * (b + 1) // (breaks + 1) + int((rnd() - 0.5) * 40 * MINUTE_MS)
                plan += [(at, "away"), (at + break_ms, "online")]
            plan += [(off, "away"), (off + 10 * MINUTE_MS, "offline")]
            for t, status in plan:
                if t < self.end or t == self.t0:
                    self._push(t, AGENT_STATE, (tenant.name, aid, status, base))
            if flap_rate > 0:
                at_f = on + expovariate(self.rng, flap_rate)
                while at_f < min(off, self.end):
                    length = int(expovariate(self.rng, 1.0 / flap_ms))
                    self._push(int(at_f), DROP_START,
                               (tenant.name, aid, length, rnd() < flap_reported))
                    at_f += length + expovariate(self.rng, flap_rate)

    def _queue_model(self, sc: dict[str, Any]) -> None:
        """One queue: either stationary (``agents``, ``offered_erlangs``,
        ``handle_s``, ``patience_s``: the Erlang C and A tests) or a forecast
        (``intervals``: one table per interval with ``start_h``,
        ``chats_per_h``, ``handle_s``, ``patience_s``; staffed by ``groups``,
        agent groups as a shop's ``[[tenants.agents]]``), as a staffing plan
        checks itself."""
        q = need(sc, "queue", "", dict)
        self.warmup_ms = int(get(q, "warmup_h", 0.0, "queue.") * HOUR_MS)
        self.handle_dist = "exponential"
        self.accept_s = self.decline = self.skill_speedup = self.concurrency = 0.0
        self.unskilled = 1.0
        self.send_accept = self.rules.acceptance_required
        name = self.queue_tenant = str(sc.get("tenant", "queue"))
        tm = self.tenants[name] = TenantModel(name, 1.0)
        self._mult = [1.0]
        self._mmax = 1.0
        self._tenant_choice: Choice | None = None
        if "intervals" in q:
            self._forecast_model(q, tm)
            return
        c = need(q, "agents", "queue.", int)
        load = float(need(q, "offered_erlangs", "queue.", (int, float)))
        self.handle_s = float(need(q, "handle_s", "queue.", (int, float)))
        self.patience_s = float(get(q, "patience_s", 0.0, "queue."))
        self.queue_params = {"agents": c, "offered_erlangs": load, "handle_s": self.handle_s,
                             "patience_s": self.patience_s}
        self._agent_group(tm, {"count": c, "capacity": 1, "shift": [0.0, self.hours + 1e6]},
                          "queue.", "a")
        self.arrival_rate_ms = load / self.handle_s / 1000.0
        first = self.t0 + expovariate(self.rng, self.arrival_rate_ms)
        if first < self.end:
            self._push(int(first), ARRIVAL, first)

    def _forecast_model(self, q: dict[str, Any], tm: TenantModel) -> None:
        rows = need(q, "intervals", "queue.", list)
        if not rows:
            raise ScenarioError("scenario key 'queue.intervals' is empty")
        # slot start -> skill ("" for none) -> (chats per hour, handle s, patience s)
        slots: dict[int, dict[str, tuple[float, float, float]]] = {}
        for i, row in enumerate(rows):
            where = f"queue.intervals.{i}."
            start = self.t0 + int(float(need(row, "start_h", where, (int, float))) * HOUR_MS)
            skill = str(row.get("skill", ""))
            slots.setdefault(start, {})[skill] = (
                float(need(row, "chats_per_h", where, (int, float))),
                float(need(row, "handle_s", where, (int, float))),
                float(get(row, "patience_s", 0.0, where)))
        starts = sorted(slots)
        self.interval_starts = starts
        rates: list[float] = []
        for start in starts:
            mix = slots[start]
            rates.append(sum(r for r, _, _ in mix.values()))
            self.interval_mix.append(
                Choice({k: r for k, (r, _, _) in mix.items()}, "queue.intervals")
                if len(mix) > 1 and rates[-1] > 0 else None)
            self.interval_handle.append({k: h for k, (_, h, _) in mix.items()})
            self.interval_patience.append({k: p for k, (_, _, p) in mix.items()})
        self.handle_s = 1.0
        self.patience_s = max(p for d in self.interval_patience for p in d.values())
        for j, g in enumerate(need(q, "groups", "queue.", list)):
            self._agent_group(tm, g, f"queue.groups.{j}.", str(g.get("prefix", f"g{j}-")))
        peak = max(rates)
        if peak <= 0:
            return
        self.arrival_rate_ms = peak / HOUR_MS
        minutes = (self.end - self.t0) // MINUTE_MS + 1
        self._mult = [rates[self._interval_of(self.t0 + m * MINUTE_MS)] / peak
                      for m in range(minutes)]
        first = self._next_arrival(float(self.t0))
        if first is not None:
            self._push(int(first), ARRIVAL, first)

    def _interval_of(self, t: int) -> int:
        return max(0, bisect.bisect_right(self.interval_starts, t) - 1)

    def _interval_mean(self, table: list[dict[str, float]], c: SimChat) -> float:
        """A forecast queue's handle time or patience for the chat's interval and skill."""
        return table[self._interval_of(c.entered)].get(c.skill or "", 0.0)

    def _shop_model(self, sc: dict[str, Any]) -> None:
        traffic = need(sc, "traffic", "", dict)
        journey = need(sc, "journey", "", dict)
        self.warmup_ms = 0
        self.p_returning = get(traffic, "returning", 0.0, "traffic.")
        self.p_member = get(traffic, "member", 0.0, "traffic.")
        self.p_exclusive = get(traffic, "exclusive", 0.0, "traffic.")
        self.tiers = Choice({str(i): w for i, w in enumerate(traffic.get("tiers", [1.0]))},
                            "traffic.tiers")
        self.channels = Choice(need(traffic, "channels", "traffic.", dict), "traffic.channels")
        self.regions = (Choice(traffic["regions"], "traffic.regions")
                        if traffic.get("regions") else None)
        ov = traffic.get("order_value", {})
        self.order_mean = float(get(ov, "mean", 200.0, "traffic.order_value."))
        self.order_sigma = float(get(ov, "sigma", 0.7, "traffic.order_value."))
        self.keywords: list[str] = list(traffic.get("keywords", [])) or ["sale"]
        self.categories: list[str] = list(traffic.get("categories", [])) or ["general"]
        self.entry = Choice(need(journey, "entry", "journey.", dict), "journey.entry")
        dwell = need(journey, "dwell_s", "journey.", dict)
        self.dwell_rate = {p: 1.0 / (float(dwell.get(p, 30.0)) * 1000.0) for p in PAGES}
        help_ = journey.get("help", {})
        self.help = {p: float(help_.get(p, 0.0)) for p in PAGES}
        nxt = need(journey, "next", "journey.", dict)
        self.next: dict[str, Choice] = {}
        for p in PAGES:
            self.next[p] = Choice(nxt.get(p, {"exit": 1.0}), f"journey.next.{p}")
        for p in list(nxt):
            if p not in self.next:
                self.next[p] = Choice(nxt[p], f"journey.next.{p}")
        msgs = sc.get("messages", {})
        default_msgs = list(msgs.get("default", ["hello?"]))
        self.messages = {p: list(msgs.get(p, default_msgs)) for p in PAGES}
        self.default_messages = default_msgs
        # tenants: listed, then generated merchants
        for i, t in enumerate(sc.get("tenants", [])):
            where = f"tenants.{i}."
            name = need(t, "name", where, str)
            tm = self.tenants[name] = TenantModel(name, float(get(t, "visitors_per_hour", 0.0,
                                                                   where)))
            for j, g in enumerate(t.get("agents", [])):
                self._agent_group(tm, g, f"{where}agents.{j}.", str(g.get("prefix", "a")))
        m = sc.get("merchants")
        if m:
            count = need(m, "count", "merchants.", int)
            total = float(need(m, "visitors_per_hour", "merchants.", (int, float)))
            s = float(get(m, "zipf", 1.0, "merchants."))
            per_agent = float(get(m, "visitors_per_agent_hour", 300.0, "merchants."))
            min_agents = int(get(m, "min_agents", 1, "merchants."))
            z = sum(1.0 / k**s for k in range(1, count + 1))
            prefix = str(m.get("prefix", "m"))
            width = len(str(count))
            for k in range(1, count + 1):
                name = f"{prefix}{k:0{width}d}"
                rate = total / k**s / z
                tm = self.tenants[name] = TenantModel(name, rate)
                group = dict(m.get("agents", {}))
                group["count"] = max(min_agents, round(rate / per_agent))
                group.setdefault("exclusive", True)
                self._agent_group(tm, group, "merchants.agents.", f"{name}-a")
        weights = {n: t.weight for n, t in self.tenants.items() if t.weight > 0}
        if not weights:
            raise ScenarioError("scenario: no tenant has visitors_per_hour > 0")
        self._tenant_choice = Choice(weights, "tenants")
        self.arrival_rate_ms = sum(weights.values()) / HOUR_MS
        self._mult = multipliers(list(traffic.get("curve", [1.0] * 24)),
                                 list(traffic.get("peaks", [])), self.t0, self.utc_offset,
                                 self.end - self.t0)
        self._mmax = max(self._mult) or 1.0
        first = self._next_arrival(float(self.t0))
        if first is not None:
            self._push(int(first), ARRIVAL, first)

    def theory(self) -> dict[str, Any] | None:
        """For a queue scenario, what Erlang C (no patience) or Erlang A predicts."""
        if self.kind != "queue" or self.interval_starts:
            return None
        from simulators import theory

        q = self.queue_params
        c, handle = int(q["agents"]), float(q["handle_s"])
        lam, mu = float(q["offered_erlangs"]) / handle, 1.0 / handle
        out: dict[str, Any] = dict(q)
        if self.patience_s > 0:
            a = theory.erlang_a(c, lam, mu, 1.0 / self.patience_s)
            out.update(model="erlang_a", p_wait=a.p_wait, abandonment_rate=a.p_abandon,
                       wait_all_mean_s=a.mean_wait_s, occupancy=a.occupancy)
        elif lam < c * mu:
            e = theory.erlang_c(c, lam, mu)
            out.update(model="erlang_c", p_wait=e.p_wait, wait_all_mean_s=e.mean_wait_s,
                       service_level=theory.erlang_c_service_level(c, lam, mu, 20.0),
                       occupancy=e.occupancy)
        else:
            out.update(model="erlang_c", unstable=True)
        return out

    def summary(self, stats: RunStats) -> dict[str, Any]:
        """Everything ``summary.json`` holds: the run, the metrics, theory where it applies."""
        doc: dict[str, Any] = {
            "scenario": self.scenario.get("name"),
            "seed": self.seed,
            "hours": self.hours,
            "policy": self.rules.policy,
            "rules": self.rules.hash,
            # no wall-clock figures here: the same seed gives the same bytes
            "run": {
                "events": stats.events, "outputs": stats.outputs, "visitors": stats.visitors,
                "chats": stats.chats,
                "start_ms": stats.sim_start_ms, "end_ms": stats.sim_end_ms,
                "drained_ms": stats.drained_ms,
            },
        }
        if self.kind == "queue":
            doc["warmup_h"] = self.warmup_ms / HOUR_MS
        doc.update(self.collector.summary())
        th = self.theory()
        if th is not None:
            doc["theory"] = th
        return doc

    def expected_visitors(self) -> float:
        """Expected arrivals over the horizon (from the rate curve)."""
        if self.kind == "queue":
            return float(self.arrival_rate_ms * (self.end - self.t0))
        return float(sum(self._mult) * self.arrival_rate_ms * MINUTE_MS)

    # ------------------------------------------------------------ the loop

    def _push(self, t: int, what: int, arg: Any) -> None:
        self._seq += 1
        heapq.heappush(self.heap, (t, self._seq, what, arg))

    def _act(self, t: int, what: int, arg: Any) -> None:
        """Take one scheduled step. A chain over step kinds, not bound methods
        on the heap: those would be allocated at every push, called through
        the interpreter, and make the heap a cycle with the simulation."""
        if what == END:
            self._end(t, arg)
        elif what == ARRIVAL:
            self._arrival(t, arg)
        elif what == GIVE_UP:
            self._give_up(t, arg)
        elif what == CLOCK:
            self._clock(t, arg)
        elif what == ACCEPT:
            self._accept(t, arg)
        elif what == DECLINE:
            self._decline(t, arg)
        elif what == REQUEST:
            self._request(t, arg)
        elif what == PAGE:
            self._page(t, arg)
        elif what == BOT_DONE:
            self._bot_done(t, arg)
        elif what == TICK:
            self._tick(t, arg)
        elif what == AGENT_CLOSE:
            self._agent_close(t, arg)
        elif what == ORDER_THEN_LEAVE:
            self._order_then_leave(t, arg)
        elif what == AGENT_STATE:
            self._agent_state(t, arg)
        elif what == DROP_START:
            self._drop_start(t, arg)
        elif what == DROP_END:
            self._drop_end(t, arg)
        elif what == BACK:
            self._back(t, arg)

    def run(self, events_out: BinaryIO | None = None, outputs_out: BinaryIO | None = None,
            progress: bool = False) -> RunStats:
        """Run to the end of the horizon and drain; write the log and the outputs."""
        self._events_out, self._outputs_out = events_out, outputs_out
        bar = None
        if progress:
            from tqdm import tqdm  # type: ignore[import-untyped]
            bar = tqdm(total=round(self.hours * 60), unit="min", desc="simulating",
                       dynamic_ncols=True, leave=False)
        tick = self.t0 + MINUTE_MS
        ticked = 0
        started = time.perf_counter()
        heap, pop = self.heap, heapq.heappop
        stop = 2**62 if self.drain else self.end
        while heap and heap[0][0] < stop:
            t, _, what, arg = pop(heap)
            self.now = t
            if t >= tick and bar is not None:
                step = min((t - self.t0) // MINUTE_MS, bar.total) - ticked
                if step > 0:
                    bar.update(step)
                    ticked += step
                    bar.set_postfix(events=self.offset, refresh=False)
                tick = self.t0 + (ticked + 1) * MINUTE_MS
            self._act(t, what, arg)
        wall = time.perf_counter() - started
        if bar is not None:
            bar.close()
        self._flush()
        return RunStats(events=self.offset, outputs=self.n_outputs, visitors=self.n_visitors,
                        chats=self.n_chats, wall_s=wall, sim_start_ms=self.t0,
                        sim_end_ms=self.end, drained_ms=self.now)

    def _flush(self) -> None:
        if self._ev_buf:
            if self._events_out is not None:
                self._events_out.write(b"\n".join(self._ev_buf) + b"\n")
            self._ev_buf.clear()
        if self._out_buf:
            if self._outputs_out is not None:
                self._outputs_out.write(b"".join(self._out_buf))
            self._out_buf.clear()

    def emit(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        """Log one input event, apply it at the next offset, react to its outputs."""
        buf = self._ev_buf
        if self._events_out is not None:
            buf.append(orjson.dumps(ev))
        if self.track_queue:
            self._queue_before(ev["ts"])
        outs = self.engine.apply(ev, self.offset)
        if self.track_queue:
            self._queue_after()
        self.offset += 1
        self.collector.event(ev)
        if outs:
            self.n_outputs += len(outs)
            if self._outputs_out is not None:
                self._out_buf.append(encode_lines(outs))
            collector = self.collector  # a method called on it, not a bound one kept: native
            for o in outs:
                collector.output(o)
                self._react(o)
        if len(buf) >= FLUSH_EVERY:
            self._flush()
        return outs

    def _react(self, o: dict[str, Any]) -> None:
        """What the simulated world does about an output (a chain, not a table
        of bound methods: see Engine._handle)."""
        otype = o["type"]
        if otype == "chat.assigned":
            self._on_assigned(o)
        elif otype == "chat.queued":
            self._on_queued(o)
        elif otype == "chat.to_bot":
            self._on_to_bot(o)
        elif otype == "chat.requeued":
            self._on_requeued(o)
        elif otype == "chat.overflowed":
            self._on_overflowed(o)
        elif otype in ("chat.abandoned", "chat.closed"):  # closed: nothing opened
            self._on_abandoned(o)
        elif otype == "agent.away":
            self._on_set_away(o)

    def _queue_before(self, ts: int) -> None:
        if ts > self._queue_t:
            self.queue_area_ms += self._queue_len * (ts - self._queue_t)
            self._queue_t = ts

    def _queue_after(self) -> None:
        self._queue_len = views.waiting_count(self.engine)

    def _eid(self) -> str:
        return f"e{self.offset}"

    # ------------------------------------------------------------ exogenous

    def _agent_state(self, t: int, arg: tuple[str, str, str, dict[str, Any]]) -> None:
        tenant, aid, status, base = arg
        self.planned[(tenant, aid)] = status
        ev = {"type": "agent.state", "id": self._eid(), "ts": t, "tenant": tenant,
              "agent": aid, "status": status, **base}
        self.emit(ev)
        self._grace_clock(t, tenant, status)

    def _presence(self, t: int, tenant: str, aid: str, status: str) -> None:
        """A presence change only (the agent's other fields are kept)."""
        self.emit({"type": "agent.state", "id": self._eid(), "ts": t, "tenant": tenant,
                   "agent": aid, "status": status})
        self._grace_clock(t, tenant, status)

    def _grace_clock(self, t: int, tenant: str, status: str) -> None:
        """An agent went offline: a clock when the offline grace would end."""
        if status == "offline" and self.rules.offline_grace_ms:
            self._push(t + self.rules.offline_grace_ms, TICK, tenant)

    def _tick(self, t: int, tenant: str) -> None:
        """A clock for ``tenant``, so that an engine timer fires on time."""
        self.emit({"type": "clock", "id": self._eid(), "ts": t, "tenant": tenant})

    def _drop_start(self, t: int, arg: tuple[str, str, int, bool]) -> None:
        tenant, aid, length, reported = arg
        key = (tenant, aid)
        if self.planned.get(key) != "online" or key in self.dark:
            return  # on a break, off shift, or already dark
        self.dark[key] = t + length
        if reported:
            self._presence(t, tenant, aid, "offline")
        self._push(t + length, DROP_END, (tenant, aid, reported))

    def _drop_end(self, t: int, arg: tuple[str, str, bool]) -> None:
        tenant, aid, reported = arg
        key = (tenant, aid)
        self.dark.pop(key, None)
        if self.planned.get(key) == "online" and (reported or key in self.set_away):
            self.set_away.discard(key)
            self._presence(t, tenant, aid, "online")

    def _on_set_away(self, o: dict[str, Any]) -> None:
        """The engine set an agent away (missed offers): they come back online
        when their app does, or a while after they notice."""
        key = (o["tenant"], o["agent"])
        self.set_away.add(key)
        if key not in self.dark:
            self._push(o["ts"] + int(self.back_s * 1000), BACK, key)

    def _back(self, t: int, key: tuple[str, str]) -> None:
        if key in self.set_away and key not in self.dark and self.planned.get(key) == "online":
            self.set_away.discard(key)
            self._presence(t, key[0], key[1], "online")

    def _next_arrival(self, tf: float) -> float | None:
        """The next arrival time after ``tf`` (thinning against the rate curve)."""
        rng = self.rng
        rnd = rng.random
        mult, mmax = self._mult, self._mmax
        rate = self.arrival_rate_ms * mmax
        end, t0 = self.end, self.t0
        n = len(mult)
        while True:
            tf += expovariate(rng, rate)
            if tf >= end:
                return None
            m = int(tf - t0) // MINUTE_MS
            if rnd() * mmax < mult[m if m < n else n - 1]:
                return tf

    def _arrival(self, t: int, tf: float) -> None:
        if self.kind == "queue":
            self._queue_arrival(t)
            if self.interval_starts:
                nxt: float | None = self._next_arrival(tf)
            else:
                after = tf + expovariate(self.rng, self.arrival_rate_ms)
                nxt = after if after < self.end else None
        else:
            assert self._tenant_choice is not None
            self._visit(t, self.tenants[self._tenant_choice.draw(self.rng.random)])
            nxt = self._next_arrival(tf)
        if nxt is not None:
            self._push(int(nxt), ARRIVAL, nxt)

    def _queue_arrival(self, t: int) -> None:
        self.n_visitors += 1
        n = self.n_chats = self.n_chats + 1
        tenant = self.queue_tenant
        p = Profile(f"v{n}", "web", None, None, None)
        cid = f"c{n}"
        c = self.chats[cid] = SimChat(cid, tenant, p, None, t)
        ev = {"type": "chat.requested", "id": self._eid(), "ts": t, "tenant": tenant,
              "visitor": p.id, "chat": cid}
        if self.interval_starts:
            mix = self.interval_mix[self._interval_of(t)]
            skill = (mix.draw(self.rng.random) if mix is not None
                     else next(iter(self.interval_handle[self._interval_of(t)])))
            if skill:
                c.skill = ev["skill"] = skill
        self.emit(ev)

    def _new_profile(self, tm: TenantModel) -> Profile:
        rnd = self.rng.random
        customer = None
        exclusive = None
        if rnd() < self.p_member:
            tier = int(self.tiers.draw(rnd))
            orders = int(expovariate(self.rng, 1 / 4.0))
            ltv = round(orders * self.order_mean * (0.5 + rnd()), 2)
            customer = {"member": True, "tier": tier, "orders": orders, "ltv": ltv}
            if tier >= 4 and tm.vip and rnd() < self.p_exclusive:
                exclusive = tm.vip[int(rnd() * len(tm.vip))]
        region = self.regions.draw(rnd) if self.regions is not None else None
        return Profile(f"v{self.n_visitors}", self.channels.draw(rnd), region, customer,
                       exclusive)

    def _visit(self, t: int, tm: TenantModel) -> None:
        rnd = self.rng.random
        self.n_visitors += 1
        pool = tm.pool
        if pool and rnd() < self.p_returning:
            i = int(rnd() * len(pool))
            p = pool[i]
            pool[i] = pool[-1]
            pool.pop()
        else:
            p = self._new_profile(tm)
        ev: dict[str, Any] = {"type": "visitor.arrived", "id": self._eid(), "ts": t,
                              "tenant": tm.name, "visitor": p.id, "channel": p.channel}
        if p.region is not None:
            ev["region"] = p.region
        if p.customer is not None:
            ev["customer"] = p.customer
        if p.exclusive is not None:
            ev["exclusive_agent"] = p.exclusive
        self.emit(ev)
        self._page(t, (tm, p, self.entry.draw(rnd)))

    def _page(self, t: int, arg: tuple[TenantModel, Profile, str]) -> None:
        tm, p, page = arg
        rnd = self.rng.random
        ev: dict[str, Any] = {"type": "page.viewed", "id": self._eid(), "ts": t,
                              "tenant": tm.name, "visitor": p.id, "page": page}
        if page == "search":
            ev["keyword"] = self.keywords[int(rnd() * len(self.keywords))]
        elif page == "detail":
            ev["category"] = self.categories[int(rnd() * len(self.categories))]
        self.emit(ev)
        if page == "order":
            self._place_order(t, tm, p)
        if rnd() < self.help.get(page, 0.0):
            dwell = self.dwell_rate.get(page, 1 / 30_000)
            self._push(t + int(rnd() / dwell), REQUEST, (tm, p, page))
        else:
            self._move_on(t, tm, p, page)

    def _move_on(self, t: int, tm: TenantModel, p: Profile, page: str) -> None:
        choice = self.next.get(page)
        nxt = choice.draw(self.rng.random) if choice is not None else "exit"
        if nxt == "exit":
            self._leave_site(tm, p)
            return
        dwell = self.dwell_rate.get(page, 1 / 30_000)
        self._push(t + int(expovariate(self.rng, dwell)), PAGE, (tm, p, nxt))

    def _leave_site(self, tm: TenantModel, p: Profile) -> None:
        pool = tm.pool
        if len(pool) < 100_000:
            pool.append(p)
        else:
            pool[int(self.rng.random() * len(pool))] = p

    def _place_order(self, t: int, tm: TenantModel, p: Profile) -> None:
        amount = round(self.rng.lognormvariate(math.log(self.order_mean)
                                               - self.order_sigma**2 / 2, self.order_sigma), 2)
        self.emit({"type": "order.placed", "id": self._eid(), "ts": t, "tenant": tm.name,
                   "visitor": p.id, "amount": amount})

    def _request(self, t: int, arg: tuple[TenantModel, Profile, str]) -> None:
        tm, p, page = arg
        n = self.n_chats = self.n_chats + 1
        cid = f"c{n}"
        c = self.chats[cid] = SimChat(cid, tm.name, p, page, t)
        msgs = self.messages.get(page, self.default_messages)
        self.emit({"type": "chat.requested", "id": self._eid(), "ts": t, "tenant": tm.name,
                   "visitor": p.id, "chat": c.id,
                   "message": msgs[int(self.rng.random() * len(msgs))]})

    # ------------------------------------------------------------ reactions

    def _on_queued(self, o: dict[str, Any]) -> None:
        c = self.chats.get(o["chat"])
        if c is None:
            return
        t: int = o["ts"]
        if c.status != WAITING:
            c.status = WAITING
            c.gen += 1
            patience_s = (self._interval_mean(self.interval_patience, c)
                          if self.interval_starts else self.patience_s)
            if patience_s > 0:
                wait = expovariate(self.rng, 1.0 / (patience_s * 1000.0))
                self._push(t + int(wait), GIVE_UP, (c, c.gen))
            if self.agent_closes > 0 and self.rng.random() < self.agent_closes:
                after = expovariate(self.rng, 1.0 / (self.closed_after_s * 1000.0))
                self._push(t + int(after), AGENT_CLOSE, (c, c.gen))
            if self.reserves and o["tenant"] == c.tenant:
                p = c.profile
                rules = self.rules
                if p.last_agent is not None and c.t_req + rules.sticky_wait_ms > t:
                    self._push(c.t_req + rules.sticky_wait_ms, CLOCK, (c.tenant, c, -1))
                if p.exclusive is not None and c.t_req + rules.exclusive_wait_ms > t:
                    self._push(c.t_req + rules.exclusive_wait_ms, CLOCK, (c.tenant, c, -1))
        if (not c.overflow_clock and o["tenant"] == c.tenant
                and self.rules.may_overflow(c.tenant)):
            c.overflow_clock = True
            self._push(max(t, c.t_req + self.rules.overflow_ms(c.page)), CLOCK,
                       (c.tenant, c, -1))

    def _on_assigned(self, o: dict[str, Any]) -> None:
        c = self.chats.get(o["chat"])
        if c is None:
            return
        t: int = o["ts"]  # typed: compiled, native arithmetic
        agent: str = o["agent"]
        tenant: str = o["tenant"]
        c.status = ASSIGNED
        c.gen += 1
        c.agent = agent
        c.agent_tenant = tenant
        c.skill = o.get("skill")
        c.accepted = False
        if c.wait_ms < 0:
            c.wait_ms = t - c.entered
        self.active[tenant][agent] += 1
        if tenant == c.tenant:
            c.profile.last_agent = agent
        if not self.send_accept:
            self._push(t + self._handle_ms(c), END, (c, c.gen))
            return
        rnd = self.rng.random
        delay = int(expovariate(self.rng, 1.0 / (self.accept_s * 1000.0))) if self.accept_s else 0
        declines = rnd() < self.decline
        # an agent whose app is dark, or who misses this one, never answers
        missed = (self.dark.get((tenant, agent), 0) > t
                  or (self.miss > 0 and rnd() < self.miss))
        if not missed:
            self._push(t + delay, DECLINE if declines else ACCEPT, (c, c.gen))
        if self.rules.acceptance_required:
            self._push(t + self.rules.offer_timeout_ms, CLOCK, (tenant, c, c.gen))

    def _on_to_bot(self, o: dict[str, Any]) -> None:
        c = self.chats.get(o["chat"])
        if c is None:
            return
        c.status = BOT
        c.gen += 1
        self._push(o["ts"] + int(expovariate(self.rng, 1.0 / (self.bot_s * 1000.0))),
                   BOT_DONE, (c, c.gen))

    def _on_requeued(self, o: dict[str, Any]) -> None:
        self.active[o["tenant"]][o["agent"]] -= 1
        c = self.chats.get(o["chat"])
        if c is not None:
            c.status = REQUEUED
            c.gen += 1

    def _on_overflowed(self, o: dict[str, Any]) -> None:
        return None  # still waiting, now in the platform's queue

    def _on_abandoned(self, o: dict[str, Any]) -> None:
        c = self.chats.pop(o["chat"], None)
        if c is not None:
            c.status = CLOSED
            c.gen += 1
            tm = self.tenants[c.tenant]
            if self.kind == "shop":
                self._leave_site(tm, c.profile)

    # ------------------------------------------------------------ endogenous

    def _handle_ms(self, c: SimChat) -> int:
        factor = 1.0
        if c.skill is not None:
            level = self.skills.get((c.agent_tenant, c.agent), {}).get(c.skill, 0)
            factor = self.unskilled if level == 0 else 1.0 + self.skill_speedup * (3 - level)
        held = self.active[c.agent_tenant][c.agent]
        if held > 1:
            factor *= 1.0 + self.concurrency * (held - 1)
        handle_s = (self._interval_mean(self.interval_handle, c) if self.interval_starts
                    else self.handle_s)
        mean_ms = handle_s * 1000.0 * factor
        if self.handle_dist == "exponential":
            return int(expovariate(self.rng, 1.0 / mean_ms))
        return int(mean_ms * self.rng.lognormvariate(self.handle_mu, self.handle_sigma))

    def _clock(self, t: int, arg: tuple[str, SimChat, int]) -> None:
        tenant, c, gen = arg
        if gen < 0:
            if c.status != WAITING:
                return
        elif c.gen != gen or c.status != ASSIGNED or c.accepted:
            return
        self.emit({"type": "clock", "id": self._eid(), "ts": t, "tenant": tenant})

    def _accept(self, t: int, arg: tuple[SimChat, int]) -> None:
        c, gen = arg
        if c.gen != gen or c.status != ASSIGNED:
            return
        self.emit({"type": "chat.accepted", "id": self._eid(), "ts": t, "tenant": c.tenant,
                   "chat": c.id, "agent": c.agent})
        if c.gen == gen:  # not requeued by a timer that fired first
            c.accepted = True
            self._push(t + self._handle_ms(c), END, (c, gen))

    def _decline(self, t: int, arg: tuple[SimChat, int]) -> None:
        c, gen = arg
        if c.gen != gen or c.status != ASSIGNED:
            return
        self.emit({"type": "chat.declined", "id": self._eid(), "ts": t, "tenant": c.tenant,
                   "chat": c.id, "agent": c.agent})

    def _end(self, t: int, arg: tuple[SimChat, int]) -> None:
        c, gen = arg
        if c.gen != gen or c.status != ASSIGNED:
            return
        c.status = CLOSED
        c.gen += 1
        self.active[c.agent_tenant][c.agent] -= 1
        del self.chats[c.id]
        if self.left_mid_chat > 0 and self.rng.random() < self.left_mid_chat:
            # the visitor closes the window: the engine ends the chat (and
            # any other of theirs), and they are gone from the site
            self.emit({"type": "visitor.left", "id": self._eid(), "ts": t,
                       "tenant": c.tenant, "visitor": c.profile.id})
            if self.rules.wrap_up_ms:
                self._push(t + self.rules.wrap_up_ms, TICK, c.agent_tenant)
            if self.kind == "shop":
                self._leave_site(self.tenants[c.tenant], c.profile)
            return
        self.emit({"type": "chat.ended", "id": self._eid(), "ts": t, "tenant": c.tenant,
                   "chat": c.id, "resolved": True})
        if self.rules.wrap_up_ms:  # the unit comes back when the wrap-up's timer fires
            self._push(t + self.rules.wrap_up_ms, TICK, c.agent_tenant)
        self._after_chat(t, c, c.wait_ms)

    def _agent_close(self, t: int, arg: tuple[SimChat, int]) -> None:
        c, gen = arg
        if c.gen != gen or c.status != WAITING:
            return
        self.emit({"type": "chat.ended", "id": self._eid(), "ts": t, "tenant": c.tenant,
                   "chat": c.id, "resolved": False})

    def _give_up(self, t: int, arg: tuple[SimChat, int]) -> None:
        c, gen = arg
        if c.gen != gen or c.status != WAITING:
            return
        self.emit({"type": "visitor.left", "id": self._eid(), "ts": t, "tenant": c.tenant,
                   "visitor": c.profile.id})

    def _bot_done(self, t: int, arg: tuple[SimChat, int]) -> None:
        c, gen = arg
        if c.gen != gen or c.status != BOT:
            return
        page = c.page or "default"
        p_ok = self.bot_resolves.get(page, self.bot_resolves.get("default", 0.5))
        if self.rng.random() < p_ok:
            self._close_bot(t, c, True)
            return
        c.entered = t
        self.emit({"type": "bot.escalated", "id": self._eid(), "ts": t, "tenant": c.tenant,
                   "chat": c.id})
        if c.status == BOT:  # robot_only: the engine keeps it with the bot
            self._close_bot(t, c, False)

    def _close_bot(self, t: int, c: SimChat, resolved: bool) -> None:
        c.status = CLOSED
        c.gen += 1
        del self.chats[c.id]
        self.emit({"type": "chat.ended", "id": self._eid(), "ts": t, "tenant": c.tenant,
                   "chat": c.id, "resolved": resolved})
        if resolved:
            self._after_chat(t, c, 0)
        elif self.kind == "shop":
            self._leave_site(self.tenants[c.tenant], c.profile)

    def _after_chat(self, t: int, c: SimChat, wait_ms: int) -> None:
        if self.kind != "shop":
            return
        tm = self.tenants[c.tenant]
        page = c.page or "home"
        p = self.order_after_chat.get(page, self.order_after_chat.get("default", 0.0))
        if p and self.rng.random() < p * math.exp(-wait_ms / (self.wait_decay_s * 1000.0)):
            self._push(t + int(expovariate(self.rng, 1 / 60_000)), ORDER_THEN_LEAVE,
                       (tm, c.profile))
        else:
            self._move_on(t, tm, c.profile, page)

    def _order_then_leave(self, t: int, arg: tuple[TenantModel, Profile]) -> None:
        tm, p = arg
        self._place_order(t, tm, p)
        self._leave_site(tm, p)
