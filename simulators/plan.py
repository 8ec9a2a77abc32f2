"""A staffing plan: Erlang sizing, checked and corrected by simulation, then shifts.

1. **Size** every interval of the forecast with Erlang A (Erlang C where
   nobody leaves): the fewest agents on line meeting the targets
   (:mod:`simulators.staffing`), per skill where the forecast has skills.
2. **Check** by running the closed-loop simulation of the whole horizon with
   those agents on line, through the tenant's real rules: the scenario itself
   with its agents replaced (a scenario forecast), or a queue with the
   forecast's arrivals, handle times and patience (a CSV or a history). Each
   interval's simulated service level and abandonment are compared with the
   targets; an interval misses when it is worse by more than the sampling
   noise of its chats (1.96 standard errors of a share, ``noise``). Missed
   intervals get 10 % more agents (at least one) and the horizon is run
   again, up to ``rounds`` times; an interval still missing, or one whose
   raise did not help, is reported with the reason rather than raised forever.
3. **Shifts** cover the checked requirement plus shrinkage at least cost
   (:mod:`simulators.shifts`), written as ``[[tenants.agents]]`` groups and as
   a whole scenario that ``routeq simulate`` runs as written; that run is the
   plan's last check.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine import Rules
from simulators.forecast import Forecast, Interval
from simulators.shifts import Shift, agent_hours, coverage, schedule
from simulators.simulation import Simulation, relaxed_gc
from simulators.staffing import Need, PlanError, Targets, size

HOUR_MS = 3_600_000
Z = 1.96


@dataclass(frozen=True)
class AgentProfile:
    """What a planned agent is: chats at once and skills (a shift group's keys)."""

    capacity: int = 1
    skills: dict[str, int] = field(default_factory=dict)


@dataclass
class SlotCheck:
    """One interval of a simulated run: [human, within SL, abandoned, assigned]."""

    human: int = 0
    within: int = 0
    abandoned: int = 0
    assigned: int = 0

    @property
    def service_level(self) -> float | None:
        return self.within / self.human if self.human else None

    @property
    def abandonment(self) -> float | None:
        return self.abandoned / self.human if self.human else None

    def verdict(self, targets: Targets) -> str:
        """``meets``, ``noise`` (worse than a target, within the sampling noise)
        or ``misses``."""
        if not self.human:
            return "meets"
        worst = "meets"
        checks = [(targets.service_level - (self.service_level or 0.0), targets.service_level)]
        if targets.max_abandonment is not None:
            checks.append(((self.abandonment or 0.0) - targets.max_abandonment,
                           targets.max_abandonment))
        for gap, p in checks:
            if gap > Z * math.sqrt(p * (1 - p) / self.human):
                return "misses"
            if gap > 1e-12:
                worst = "noise"
        return worst


@dataclass
class Slot:
    label: str
    chats: float
    handle_s: float
    patience_s: float
    erlang: dict[str, Need]  # skill ("" none) -> Erlang need
    agents: dict[str, int]  # on line after the simulation's corrections
    check: SlotCheck = field(default_factory=SlotCheck)
    verdict: str = "meets"
    note: str = ""
    scheduled: int = 0  # with shrinkage
    covered: float = 0.0  # on line under the shifts, breaks out
    final: SlotCheck = field(default_factory=SlotCheck)
    final_verdict: str = "meets"

    @property
    def total_agents(self) -> int:
        return sum(self.agents.values())

    @property
    def erlang_agents(self) -> int:
        return sum(n.agents for n in self.erlang.values())


@dataclass
class PlanResult:
    forecast: Forecast
    targets: Targets
    profile: AgentProfile
    slots: list[Slot]
    rounds: int
    shifts: dict[str, list[Shift]]  # skill -> shifts
    shift_lengths_h: list[float]
    breaks: int
    break_min: float
    scenario: dict[str, Any]  # the plan as a scenario, shifts as written
    tenant: str
    own_agent_hours: float | None  # the scenario's own staffing, where it had one
    shift_rounds: int = 0
    final_overall: SlotCheck = field(default_factory=SlotCheck)
    erlang_overall: SlotCheck = field(default_factory=SlotCheck)

    @property
    def agent_hours(self) -> float:
        return sum(agent_hours(s, self.forecast.interval_min) for s in self.shifts.values())

    @property
    def unmet(self) -> list[Slot]:
        return [s for s in self.slots if s.final_verdict == "misses"]


Runner = Callable[[dict[str, Any]], dict[int, SlotCheck]]


def _groups_for(staff: list[int], skill: str, profile: AgentProfile, interval_h: float,
                tag: str) -> list[dict[str, Any]]:
    """Agent groups (shift = [start_h, end_h]) putting ``staff[i]`` agents on
    line in interval i: agents join as the level rises and the latest to join
    leave first as it falls."""
    groups: list[dict[str, Any]] = []
    stack: list[list[int]] = []  # [first interval, agents]
    prev = 0
    for i, n in enumerate([*staff, 0]):
        if n > prev:
            stack.append([i, n - prev])
        drop = prev - n
        while drop > 0:
            top = stack[-1]
            k = min(drop, top[1])
            groups.append(_group(f"{tag}{len(groups)}-", k, top[0] * interval_h,
                                 i * interval_h, skill, profile, 0, 15.0))
            top[1] -= k
            drop -= k
            if top[1] == 0:
                stack.pop()
        prev = n
    return groups


def _group(prefix: str, count: int, on_h: float, off_h: float, skill: str,
           profile: AgentProfile, breaks: int, break_min: float) -> dict[str, Any]:
    skills = dict(profile.skills)
    if skill:
        skills = {skill: max(3, skills.get(skill, 0))}
    return {"prefix": prefix, "count": count, "capacity": profile.capacity,
            "skills": skills, "shift": [round(on_h, 4), round(off_h, 4)],
            "breaks": breaks, "break_min": break_min}


def shift_groups(shifts: dict[str, list[Shift]], profile: AgentProfile, fc: Forecast,
                 breaks: int, break_min: float) -> list[dict[str, Any]]:
    """One group per shift, named by its local start, length (and skill)."""
    out = []
    h = fc.interval_min / 60
    for skill, ss in sorted(shifts.items()):
        for s in ss:
            when = fc.label(s.start).replace("-", "").replace(":", "").replace(" ", "-")
            name = f"s{when}-{s.length * h:g}h-{skill + '-' if skill else ''}"
            out.append(_group(name, s.count, s.start * h, (s.start + s.length) * h, skill,
                              profile, breaks, break_min))
    return out


# ------------------------------------------------------------------ scenarios

def queue_scenario(fc: Forecast, groups: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """A queue scenario with the forecast's arrivals, handle times and patience."""
    import datetime as dt

    start = dt.datetime.fromtimestamp(fc.start_ms / 1000, dt.UTC).astimezone(
        dt.timezone(dt.timedelta(milliseconds=fc.utc_offset_ms)))
    h = fc.interval_min / 60
    rows = []
    for iv in fc.intervals:
        row: dict[str, Any] = {"start_h": round(fc.slot(iv) * h, 4),
                               "chats_per_h": round(iv.chats / h, 4),
                               "handle_s": iv.handle_s, "patience_s": iv.patience_s}
        if iv.skill:
            row["skill"] = iv.skill
        rows.append(row)
    return {"name": name, "description": f"staffing plan for {fc.source}", "kind": "queue",
            "start": start.isoformat(), "hours": fc.slots * h,
            "queue": {"intervals": rows, "groups": groups}}


def staffed(scenario: dict[str, Any], tenant: str, groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The scenario with ``tenant``'s agents replaced by ``groups`` (a queue
    scenario's ``queue.groups``)."""
    sc = copy.deepcopy(scenario)
    if sc.get("kind") == "queue":
        sc["queue"]["groups"] = groups
        return sc
    for t in sc.get("tenants", []):
        if t.get("name") == tenant:
            t["agents"] = groups
            return sc
    raise PlanError(f"scenario {sc.get('name')}: no tenant named {tenant!r}")


def default_rules_data(fc: Forecast) -> dict[str, Any]:
    """Rules for a forecast's queue when none are given: first come first
    served, straight to people, a chat of a skill only to its skill's agents."""
    data: dict[str, Any] = {"policy": "fifo_round_robin", "modes": {"default": "human_only"}}
    if any(iv.skill for iv in fc.intervals):
        data["assignment"] = {"skill_required": True}
    return data


def simulation_runner(rules: Rules, tenant: str, seed: int, interval_min: int,
                      hours: float | None = None, bar: bool = False,
                      within_s: float = 20.0) -> Runner:
    """Each call simulates the horizon once (same seed: the same visitors and
    luck for every staffing) and returns its per-interval counts."""
    def run(scenario: dict[str, Any]) -> dict[int, SlotCheck]:
        sim = Simulation(scenario, rules, seed=seed, hours=hours, interval_s=interval_min * 60,
                         sl_s=within_s)
        with relaxed_gc():
            stats = sim.run(None, None, progress=bar)
        series = sim.summary(stats).get("intervals", {}).get(tenant, [])
        return {row[0]: SlotCheck(*row[1:]) for row in series}
    return run


# ------------------------------------------------------------------ the plan

def _sum(checks: list[SlotCheck]) -> SlotCheck:
    out = SlotCheck()
    for c in checks:
        out.human += c.human
        out.within += c.within
        out.abandoned += c.abandoned
        out.assigned += c.assigned
    return out


def _judge(slots: list[Slot], checks: dict[int, SlotCheck], targets: Targets,
           final: bool) -> list[int]:
    """Record each slot's simulated figures; the slots that miss a target."""
    missed = []
    for i, s in enumerate(slots):
        c = checks.get(i, SlotCheck())
        v = c.verdict(targets)
        if final:
            s.final, s.final_verdict = c, v
        else:
            s.check, s.verdict = c, v
        if v == "misses":
            missed.append(i)
    return missed


def build(fc: Forecast, targets: Targets, profile: AgentProfile, *, scenario: dict[str, Any],
          tenant: str, run: Runner, shift_lengths_h: list[float], start_every: int = 1,
          starts: set[int] | None = None,
          breaks: int = 0, break_min: float = 15.0, rounds: int = 6, min_agents: int = 0,
          own_agent_hours: float | None = None,
          progress: Callable[[str], None] = lambda _: None) -> PlanResult:
    targets.check()
    n = fc.slots
    h = fc.interval_min / 60
    skills = fc.skills()
    by_slot: dict[int, dict[str, Interval]] = {}
    for iv in fc.intervals:
        by_slot.setdefault(fc.slot(iv), {})[iv.skill or ""] = iv
    if min_agents < 0:
        raise PlanError("--min-agents must be 0 or more")
    slots: list[Slot] = []
    for i in range(n):
        ivs = by_slot.get(i, {})
        chats = sum(iv.chats for iv in ivs.values())
        erl = {}
        for skill in skills:
            iv = ivs.get(skill) or Interval(fc.start_ms + i * fc.interval_ms, 0.0, 1.0, 0.0)
            try:
                erl[skill] = size(iv, targets, capacity=profile.capacity,
                                  interval_s=fc.interval_min * 60.0, min_agents=min_agents)
            except PlanError as exc:
                raise PlanError(f"interval {fc.label(i)}"
                                + (f", skill {skill}" if skill else "") + f": {exc}") from None
        handle = (sum(iv.chats * iv.handle_s for iv in ivs.values()) / chats if chats else 0.0)
        patience = (sum(iv.chats * iv.patience_s for iv in ivs.values()) / chats if chats
                    else 0.0)
        slots.append(Slot(fc.label(i), chats, handle, patience, erl,
                          {k: v.agents for k, v in erl.items()}))

    def staff_groups(level: Callable[[Slot, str], int]) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = []
        for skill in skills:
            tag = f"p{'-' + skill if skill else ''}-"
            groups += _groups_for([level(s, skill) for s in slots], skill, profile, h, tag)
        return groups

    done = 0
    erlang_checks: dict[int, SlotCheck] = {}
    best: dict[int, float] = {}  # slot -> its best simulated service level so far
    stalled: dict[int, int] = {}  # slot -> raises that did not improve it
    for done in range(1, rounds + 1):
        progress(f"simulating the requirement, round {done} of at most {rounds}")
        checks = run(staffed(scenario, tenant, staff_groups(lambda s, k: s.agents[k])))
        if done == 1:
            erlang_checks = checks
        missed = _judge(slots, checks, targets, final=False)
        if done == 1 and not any(c.human for c in checks.values()):
            raise PlanError(f"the simulation of tenant {tenant} saw no chat for a person "
                            f"while the forecast has {fc.total_chats():,.0f}: the scenario "
                            "routes them elsewhere (bots, another tenant)")
        if not missed or done == rounds:
            break
        for i in missed:
            s = slots[i]
            sl = s.check.service_level or 0.0
            if i in best and sl <= best[i] + 1e-9:
                stalled[i] = stalled.get(i, 0) + 1
            best[i] = max(sl, best.get(i, 0.0))
            if stalled.get(i, 0) >= 2:
                s.note = ("more agents did not raise its service level: staffing is not "
                          "what limits it (acceptance delays, bots, skills, or chats "
                          "arriving at the end)")
                continue
            for k in s.agents:
                s.agents[k] += max(1, math.ceil(s.agents[k] * 0.1))
    for s in slots:
        if s.verdict == "misses" and not s.note:
            s.note = f"still short after {done} rounds of simulation"
        s.scheduled = sum(targets.scheduled(v) for v in s.agents.values())
    # shifts over the checked requirement plus shrinkage; the shifts as written
    # are simulated too (agents join a few minutes late, breaks move), and an
    # interval they leave short gets one more agent in the program
    extra = [0] * n
    for shift_round in range(1, rounds + 1):
        progress(f"solving the shifts (HiGHS) and simulating them, round {shift_round}")
        shifts: dict[str, list[Shift]] = {}
        for skill in skills:
            need = [targets.scheduled(s.agents[skill]) + extra[i]
                    for i, s in enumerate(slots)]
            try:
                shifts[skill] = schedule(need, interval_min=fc.interval_min,
                                         lengths_h=shift_lengths_h, start_every=start_every,
                                         starts=starts,
                                         breaks=breaks, break_min=break_min,
                                         labels=[s.label for s in slots])
            except PlanError as exc:
                raise PlanError((f"skill {skill}: " if skill else "") + str(exc)) from None
        plan_scenario = staffed(scenario, tenant, shift_groups(shifts, profile, fc, breaks,
                                                               break_min))
        final = run(plan_scenario)
        missed = _judge(slots, final, targets, final=True)
        if not missed:
            break
        for i in missed:
            if slots[i].verdict == "misses":
                continue  # short with the requirement itself: more shifts will not help
            extra[i] += max(1, math.ceil(slots[i].scheduled * 0.1))
    cover = [0.0] * n
    for ss in shifts.values():
        for i, v in enumerate(coverage(ss, n, interval_min=fc.interval_min, breaks=breaks,
                                       break_min=break_min)):
            cover[i] += v
    for i, s in enumerate(slots):
        s.covered = round(cover[i], 2)
        if s.final_verdict != "misses" and s.verdict != "misses":
            s.note = ""
        elif s.final_verdict == "misses" and not s.note:
            s.note = "short under the shifts as written"
    result = PlanResult(fc, targets, profile, slots, done, shifts, shift_lengths_h, breaks,
                        break_min, plan_scenario, tenant, own_agent_hours)
    result.shift_rounds = shift_round
    result.final_overall = _sum([s.final for s in slots])
    result.erlang_overall = _sum([erlang_checks.get(i, SlotCheck()) for i in range(n)])
    return result


def scenario_agent_hours(scenario: dict[str, Any], tenant: str) -> float | None:
    """Agent-hours of a shop scenario's own staffing of ``tenant`` (shift lengths)."""
    hours = float(scenario.get("hours", 8.0))
    for t in scenario.get("tenants", []):
        if t.get("name") == tenant:
            total = 0.0
            for g in t.get("agents", []):
                on, off = g.get("shift", [0.0, hours])
                total += int(g["count"]) * max(0.0, min(float(off), hours) - max(float(on), 0.0))
            return total
    return None
