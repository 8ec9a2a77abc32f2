"""``routeq plan``: agents per interval for a sales peak, checked by simulation, as shifts.

See ``simulators/plan.py`` for the method. The forecast comes from a scenario,
a recorded history or a CSV, plus an order backlog; the targets from the
flags, else the scenario's ``[targets]`` table, else the defaults below.
Writes ``DIR/plan.csv``, ``DIR/plan.json``, ``DIR/plan.html``, ``DIR/shifts.toml`` (the shifts
as ``[[tenants.agents]]`` groups) and ``DIR/plan-scenario.toml`` (the whole
plan, for ``routeq simulate``), and prints the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import time
from pathlib import Path
from typing import Any

from engine import RulesError, parse_rules
from simulators.forecast import (
    Forecast,
    ForecastError,
    add_orders,
    from_csv,
    from_history,
    from_scenario,
)
from simulators.plan import (
    AgentProfile,
    build,
    default_rules_data,
    queue_scenario,
    scenario_agent_hours,
    simulation_runner,
)
from simulators.plan_report import shifts_text, summary_lines, table, write_all
from simulators.scenario import ScenarioError, bundled, load_scenario, resolve_rules_data
from simulators.staffing import PlanError, Targets

TARGET_FLAGS = (
    ("service_level", "SHARE", "share of chats answered within --within-s, abandoned chats "
     "counted (default 0.8)"),
    ("within_s", "S", "the service level's answer time in seconds (default 20)"),
    ("max_abandonment", "SHARE", "highest share of chats abandoned (default 0.05)"),
    ("max_occupancy", "SHARE", "highest share of agents' chat slots busy (default 0.85)"),
    ("shrinkage", "SHARE", "share of paid time off line besides the shifts' breaks: "
     "absence, meetings (default 0)"),
)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p: argparse.ArgumentParser = sub.add_parser(
        "plan",
        help="staff a sales peak: agents per interval by Erlang A, checked by simulation, "
        "as shifts",
        description="A staffing plan. Forecast contacts per 15 or 30 minutes (from a "
        "scenario, a recorded history or a CSV, plus an order backlog); size each interval "
        "with Erlang A (Erlang C when nobody leaves); run the closed-loop simulation of the "
        "whole horizon with those agents under the real rules and raise the intervals that "
        "miss the targets; then choose shifts of least agent-hours with an integer program "
        "(HiGHS) and simulate them as written. Bundled scenarios: " + ", ".join(bundled()),
        epilog="Exit status: 0 every interval meets the targets in simulation; 1 some "
        "interval cannot (named in the table, with why); 2 bad input (the message says "
        "what).",
    )
    src = p.add_argument_group("forecast (one of --scenario, --history, --csv; --orders adds)")
    src.add_argument("--scenario", metavar="NAME",
                     help="a bundled scenario or a .toml: simulated once with its own staffing "
                     "for the forecast, then re-staffed by the plan")
    src.add_argument("--history", metavar="EVENTS",
                     help="a recorded events.jsonl (or a routeq simulate directory)")
    src.add_argument("--csv", metavar="FILE",
                     help="columns start (ISO date-time), chats, handle_s, patience_s "
                     "(empty: nobody leaves), optional skill; one row per interval")
    src.add_argument("--growth", type=float, default=1.0, metavar="X",
                     help="multiply a history's or scenario's chats, e.g. 3.0 for a peak "
                     "three times last year's (default 1)")
    src.add_argument("--interval-min", type=int, default=30, choices=(15, 30),
                     help="interval of a history or scenario forecast (default 30)")
    src.add_argument("--orders", metavar="FILE",
                     help="order backlog CSV: start, then one column of orders per state "
                     "(e.g. placed, unshipped); adds count x --contact probability chats")
    src.add_argument("--contact", action="append", default=[], metavar="STATE=P",
                     help="chance an order in STATE contacts the shop within the row's "
                     "period, the step to the next row (repeatable, one per column of "
                     "--orders)")
    src.add_argument("--handle-s", type=float, metavar="S",
                     help="handle time of the order backlog's chats when there is no other "
                     "forecast")
    src.add_argument("--patience-s", type=float, metavar="S",
                     help="patience of the order backlog's chats when there is no other "
                     "forecast (default: nobody leaves)")
    tg = p.add_argument_group("targets (default: the scenario's [targets], else as below)")
    for dest, meta, text in TARGET_FLAGS:
        tg.add_argument("--" + dest.replace("_", "-"), dest=dest, type=float, metavar=meta,
                        help=text)
    ag = p.add_argument_group("agents and shifts")
    ag.add_argument("--capacity", type=int, metavar="N",
                    help="chats an agent takes at once (default: the scenario's largest agent "
                    "group, else 1)")
    ag.add_argument("--min-agents", type=int, default=0, metavar="N",
                    help="agents on line in every interval, chats or not (default 0)")
    ag.add_argument("--shifts", default="4,6,8", metavar="H,H",
                    help="allowed shift lengths in hours (default 4,6,8)")
    ag.add_argument("--start-every-min", type=int, default=30, metavar="M",
                    help="shifts start on this grid of minutes (default 30)")
    ag.add_argument("--start-window", metavar="HH:MM-HH:MM",
                    help="local times a shift may start in, e.g. 07:00-22:00 (may wrap "
                    "midnight: 22:00-02:00; default any)")
    ag.add_argument("--breaks", type=int, default=0, metavar="N",
                    help="breaks per shift, spread evenly through it (default 0)")
    ag.add_argument("--break-min", type=float, default=15.0, metavar="M",
                    help="length of a break in minutes (default 15)")
    run = p.add_argument_group("simulation")
    run.add_argument("--rules", metavar="R.toml",
                     help="the tenant's rules (default: the scenario's; for a CSV: first "
                     "come first served, people only)")
    run.add_argument("--tenant", metavar="NAME",
                     help="the tenant to staff: a scenario's (default: its first), or the "
                     "one tenant of a history whose chats are forecast (default: all)")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="override a scenario key (repeatable), as in routeq simulate")
    run.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    run.add_argument("--rounds", type=int, default=6, metavar="N",
                     help="most simulation rounds correcting the Erlang numbers (default 6)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="directory for plan.csv, plan.json, plan.html, shifts.toml, "
                   "plan-scenario.toml")
    p.add_argument("--quiet", action="store_true", help="print only where the files are")
    return p


def _contacts(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        state, sep, p = item.partition("=")
        try:
            v = float(p)
        except ValueError:
            v = -1.0
        if not sep or not state or not 0.0 <= v <= 1.0:
            raise ForecastError(f"--contact {item!r}: expected STATE=P with P from 0 to 1")
        out[state] = v
    return out


def _targets(args: argparse.Namespace, scenario: dict[str, Any] | None) -> Targets:
    own = dict((scenario or {}).get("targets", {}))
    values: dict[str, Any] = {}
    for dest, _, _ in TARGET_FLAGS:
        v = getattr(args, dest)
        if v is None and dest in own:
            v = own[dest]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise PlanError(f"scenario key 'targets.{dest}' must be a number, got {v!r}")
        if v is not None:
            values[dest] = float(v)
    unknown = set(own) - {d for d, _, _ in TARGET_FLAGS}
    if unknown:
        raise PlanError(f"scenario table [targets] has unknown keys: {', '.join(sorted(unknown))}")
    return Targets(**values)


def _lengths(text: str) -> list[float]:
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        out = []
    if not out or any(not 0 < x <= 24 for x in out):
        raise PlanError(f"--shifts {text!r}: expected shift lengths in hours, e.g. 4,8")
    return out


def _start_slots(window: str | None, fc: Forecast) -> set[int] | None:
    """The intervals whose local start time falls in ``window`` (HH:MM-HH:MM)."""
    if window is None:
        return None
    try:
        lo, hi = (dt.time.fromisoformat(x.strip()) for x in window.split("-"))
    except ValueError:
        raise PlanError(f"--start-window {window!r}: expected HH:MM-HH:MM, e.g. 07:00-22:00"
                        ) from None
    out = set()
    for i in range(fc.slots):
        t = dt.time.fromisoformat(fc.label(i)[-5:])
        if (lo <= t <= hi) if lo <= hi else (t >= lo or t <= hi):
            out.add(i)
    if not out:
        raise PlanError(f"--start-window {window}: no interval of the forecast starts in it")
    return out


def _progress(quiet: bool) -> Any:
    started = time.perf_counter()

    def say(text: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - started:6.1f} s] {text}", file=sys.stderr)
    return say


def main(args: argparse.Namespace) -> int:
    try:
        return _main(args)
    except (ScenarioError, RulesError, ForecastError, PlanError, ValueError) as exc:
        # ValueError: the queueing maths refusing an input (an absurd load)
        print(f"routeq plan: {exc}", file=sys.stderr)
        return 2


def _check_numbers(args: argparse.Namespace) -> None:
    """Each numeric flag finite and in its range; the message names the flag."""
    checks = (
        ("growth", args.growth, 0.0, False), ("handle_s", args.handle_s, 0.0, False),
        ("patience_s", args.patience_s, 0.0, True), ("break_min", args.break_min, 0.0, False),
        ("within_s", args.within_s, 0.0, True),
    )
    for name, v, low, inclusive in checks:
        if v is None:
            continue
        if not math.isfinite(v) or v < low or (v == low and not inclusive):
            flag = "--" + name.replace("_", "-")
            raise PlanError(f"{flag} {v:g}: expected a number "
                            f"{'>=' if inclusive else '>'} {low:g}")
    for name, v, low in (("min_agents", args.min_agents, 0), ("breaks", args.breaks, 0),
                         ("rounds", args.rounds, 1)):
        if v < low:
            raise PlanError(f"--{name.replace('_', '-')} {v}: expected {low} or more")
    if args.capacity is not None and not 1 <= args.capacity <= 100:
        raise PlanError("--capacity must be 1 to 100 chats at once")


def _scaled(scenario: dict[str, Any], growth: float) -> dict[str, Any]:
    """The scenario with every tenant's visitors (and the merchants') times ``growth``."""
    sc = dict(scenario)
    sc["tenants"] = [dict(t, visitors_per_hour=float(t.get("visitors_per_hour", 0.0)) * growth)
                     for t in scenario.get("tenants", [])]
    if "merchants" in sc:
        m = dict(sc["merchants"])
        m["visitors_per_hour"] = float(m.get("visitors_per_hour", 0.0)) * growth
        sc["merchants"] = m
    if sc.get("kind") == "queue":
        raise PlanError("--growth with a queue scenario: scale queue.offered_erlangs with "
                        "--param instead")
    return sc


def _main(args: argparse.Namespace) -> int:
    sources = [x for x in (args.scenario, args.history, args.csv) if x]
    if len(sources) > 1:
        raise PlanError("give one forecast: --scenario, --history or --csv (--orders adds)")
    if not sources and not args.orders:
        raise PlanError("no forecast: give --scenario, --history, --csv or --orders")
    _check_numbers(args)
    lengths = _lengths(args.shifts)
    say = _progress(args.quiet)
    scenario = load_scenario(args.scenario, args.param) if args.scenario else None
    targets = _targets(args, scenario)
    targets.check()
    tenant = "queue"
    if scenario is not None and scenario.get("kind", "shop") == "shop":
        names = [t.get("name") for t in scenario.get("tenants", [])]
        tenant = args.tenant or (names[0] if names else "")
        if tenant not in names:
            raise PlanError(f"--tenant {tenant!r}: a plan re-staffs a tenant the scenario "
                            f"lists ({', '.join(map(str, names)) or 'none'}); generated "
                            "merchants share one agents table")
    if scenario is not None and args.growth != 1.0:
        scenario = _scaled(scenario, args.growth)
    fc: Forecast | None
    if scenario is not None:
        rules = parse_rules(resolve_rules_data(scenario, args.rules, None))
        say(f"forecast: simulating scenario {scenario['name']} with its own staffing")
        fc = from_scenario(scenario, rules, seed=args.seed, interval_min=args.interval_min,
                           tenant=tenant if scenario.get("kind", "shop") == "shop" else None)
        if args.growth != 1.0:
            fc.notes.append(f"the scenario's visitors x {args.growth:g}")
    elif args.history:
        rules = parse_rules(resolve_rules_data({}, args.rules, None))
        say(f"forecast: reading the history {args.history}")
        fc = from_history(args.history, rules, args.interval_min, args.growth,
                          tenant=args.tenant)
    else:
        fc = from_csv(args.csv) if args.csv else None
    if args.orders:
        fc = add_orders(fc, args.orders, _contacts(args.contact), handle_s=args.handle_s,
                        patience_s=args.patience_s)
    elif args.contact:
        raise PlanError("--contact without --orders: give the order backlog CSV")
    assert fc is not None
    if fc.total_chats() <= 0:
        raise ForecastError(f"the forecast ({fc.source}) has no chats: nothing to staff")
    if args.start_every_min <= 0 or args.start_every_min % fc.interval_min:
        raise PlanError(f"--start-every-min {args.start_every_min}: expected a multiple of "
                        f"the forecast's {fc.interval_min}-min intervals")
    if scenario is not None and scenario.get("kind", "shop") == "shop":
        groups = next(t for t in scenario["tenants"] if t["name"] == tenant).get("agents", [])
        largest: dict[str, Any] = max(groups, key=lambda g: g.get("count", 0), default={})
        profile = AgentProfile(args.capacity or int(largest.get("capacity", 1)),
                               dict(largest.get("skills", {})))
        base = scenario
        base_rules = rules
        own_hours = scenario_agent_hours(scenario, tenant)
        hours = float(scenario.get("hours", 8.0))
    else:
        if scenario is None:
            rules = parse_rules(resolve_rules_data({}, args.rules, None)
                                if args.rules else default_rules_data(fc))
        profile = AgentProfile(args.capacity or 1)
        base = queue_scenario(fc, [], f"plan-{Path(args.out).name}")
        base_rules = rules
        own_hours = None
        hours = None
    base = dict(base)
    base["rules"] = base_rules.data
    if isinstance(base.get("start"), dt.datetime):
        base["start"] = base["start"].isoformat()
    say(f"forecast: {fc.slots} intervals of {fc.interval_min} min, "
        f"{fc.total_chats():,.0f} chats; sizing with Erlang")
    res = build(fc, targets, profile, scenario=base, tenant=tenant,
                run=simulation_runner(base_rules, tenant, args.seed, fc.interval_min, hours,
                                      bar=not args.quiet and sys.stderr.isatty(),
                                      within_s=targets.within_s),
                shift_lengths_h=lengths, start_every=args.start_every_min // fc.interval_min,
                starts=_start_slots(args.start_window, fc),
                breaks=args.breaks, break_min=args.break_min, rounds=args.rounds,
                min_agents=args.min_agents, own_agent_hours=own_hours, progress=say)
    out = Path(args.out)
    files = write_all(res, out)
    if not args.quiet:
        print("\n".join(summary_lines(res)) + "\n")
        print(table(res))
        print("\nshifts:\n" + shifts_text(res))
    print(f"\nfiles in {out}/: {', '.join(files)}")
    print(f"load-test the plan: routeq simulate --scenario {out / 'plan-scenario.toml'} "
          f"--seed {args.seed} --out {out / 'check'}")
    return 0 if not res.unmet else 1
