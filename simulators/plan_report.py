"""What ``routeq plan`` writes: the table, the CSV, the HTML report and the
shifts as ``[[tenants.agents]]`` groups (and the whole plan as a scenario)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson

from simulators.plan import PlanResult, SlotCheck
from simulators.report import CSS, _esc, line_chart
from simulators.rules_toml import to_toml

COLUMNS = ("interval", "chats", "handle_s", "patience_s", "erlang_agents", "on_line",
           "scheduled", "shift_on_line", "service_level", "abandonment", "result", "note")
VERDICT = {"meets": "meets", "noise": "meets (noise)", "misses": "MISSES"}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def rows(res: PlanResult) -> list[dict[str, Any]]:
    out = []
    for s in res.slots:
        out.append({
            "interval": s.label, "chats": round(s.chats, 1),
            "handle_s": round(s.handle_s, 1), "patience_s": round(s.patience_s, 1),
            "erlang_agents": s.erlang_agents, "on_line": s.total_agents,
            "scheduled": s.scheduled, "shift_on_line": s.covered,
            "service_level": s.final.service_level, "abandonment": s.final.abandonment,
            "result": s.final_verdict, "note": s.note,
        })
    return out


def _targets(res: PlanResult) -> str:
    t = res.targets
    parts = [f"service level {t.service_level:.0%} within {t.within_s:g} s"]
    if t.max_abandonment is not None:
        parts.append(f"abandonment <= {t.max_abandonment:.1%}")
    if t.max_occupancy is not None:
        parts.append(f"occupancy <= {t.max_occupancy:.0%}")
    parts.append(f"shrinkage {t.shrinkage:.0%}")
    return ", ".join(parts)


def _overall(c: SlotCheck) -> str:
    return (f"service level {_pct(c.service_level)}, abandonment {_pct(c.abandonment)} "
            f"over {c.human:,} chats")


def summary_lines(res: PlanResult) -> list[str]:
    fc = res.forecast
    lines = [f"forecast: {fc.source}; {fc.slots} intervals of {fc.interval_min} min, "
             f"{fc.total_chats():,.0f} chats", *(f"  {n}" for n in fc.notes),
             f"targets: {_targets(res)}",
             f"agents: capacity {res.profile.capacity} chats at once"
             + (f", skills {res.profile.skills}" if res.profile.skills else ""),
             f"Erlang agents simulated: {_overall(res.erlang_overall)}",
             f"requirement checked by simulation in {res.rounds} round(s), shifts in "
             f"{res.shift_rounds}; the shifts as written: " + _overall(res.final_overall),
             f"agent-hours: {res.agent_hours:,.1f} in "
             f"{sum(s.count for ss in res.shifts.values() for s in ss)} shift assignments"
             + (f" (the scenario's own staffing: {res.own_agent_hours:,.1f})"
                if res.own_agent_hours is not None else "")]
    unmet = res.unmet
    lines.append("every interval meets the targets in simulation (within sampling noise)"
                 if not unmet else
                 f"{len(unmet)} interval(s) miss the targets in simulation: "
                 + ", ".join(s.label for s in unmet[:8]) + (" ..." if len(unmet) > 8 else ""))
    return lines


def table(res: PlanResult) -> str:
    head = (f"{'interval':11} {'chats':>7} {'handle':>7} {'patience':>8} {'Erlang':>6} "
            f"{'on line':>7} {'sched.':>6} {'shifts':>6} {'SL':>6} {'aband.':>6}  result")
    out = [head]
    for r in rows(res):
        out.append(f"{r['interval']:11} {r['chats']:>7.1f} {r['handle_s']:>7.0f} "
                   f"{r['patience_s']:>8.0f} {r['erlang_agents']:>6} {r['on_line']:>7} "
                   f"{r['scheduled']:>6} {r['shift_on_line']:>6.1f} "
                   f"{_pct(r['service_level']):>6} {_pct(r['abandonment']):>6}  "
                   f"{VERDICT[r['result']]}" + (f": {r['note']}" if r["note"] else ""))
    return "\n".join(out)


def shifts_text(res: PlanResult) -> str:
    h = res.forecast.interval_min / 60
    out = []
    for skill, ss in sorted(res.shifts.items()):
        for s in sorted(ss, key=lambda s: (s.start, s.length)):
            out.append(f"  {res.forecast.label(s.start)} + {s.length * h:g} h: {s.count} "
                       "agent(s)" + (f" ({skill})" if skill else ""))
    return "\n".join(out) or "  (none: no chats)"


def write_csv(res: PlanResult, path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows(res):
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    path.write_text(buf.getvalue(), encoding="utf-8")


def groups_toml(res: PlanResult) -> str:
    if res.scenario.get("kind") == "queue":
        return to_toml({"queue": {"groups": res.scenario["queue"]["groups"]}},
                       "routeq plan: the shifts as agent groups of the forecast's queue "
                       "(plan-scenario.toml has them in place).")
    groups = next(t["agents"] for t in res.scenario["tenants"] if t["name"] == res.tenant)
    return to_toml({"tenants": [{"name": res.tenant, "agents": groups}]},
                   "routeq plan: the shifts as agent groups; the [[tenants.agents]] tables "
                   "replace the tenant's\nin a scenario (plan-scenario.toml has them in place).")


def scenario_toml(res: PlanResult) -> str:
    return to_toml(res.scenario, f"routeq plan: {res.forecast.source} staffed by the plan's "
                   f"shifts;\nrouteq simulate --scenario THIS_FILE --out DIR load-tests it")


def render(res: PlanResult) -> str:
    xs = list(range(len(res.slots)))
    h = res.forecast.interval_min / 60

    def clock(x: float) -> str:
        i = int(round(x / h)) if h else 0
        return res.forecast.label(min(max(i, 0), len(res.slots) - 1))[-5:]

    def pts(vals: list[float | None]) -> list[tuple[float, float]]:
        return [(i * h, v) for i, v in zip(xs, vals, strict=True) if v is not None]

    t = res.targets
    staff = line_chart("Agents per interval", [
        ("Erlang (on line)", "#7f7f7f", pts([float(s.erlang_agents) for s in res.slots])),
        ("required on line (after simulation)", "#1f77b4",
         pts([float(s.total_agents) for s in res.slots])),
        ("scheduled (with shrinkage)", "#ff7f0e", pts([float(s.scheduled) for s in res.slots])),
        ("on line under the shifts", "#2ca02c", pts([s.covered for s in res.slots])),
    ], "hours from the start", "agents", xfmt=clock, step=True)
    demand = line_chart("Forecast contacts per interval", [
        ("chats", "#9467bd", pts([s.chats for s in res.slots]))],
        "hours from the start", "chats", xfmt=clock, step=True)
    sl_series = [("simulated (shifts as written)", "#1f77b4",
                  pts([s.final.service_level for s in res.slots])),
                 ("target", "#d62728", [(0.0, t.service_level),
                                        ((len(xs) - 1) * h, t.service_level)])]
    sl = line_chart(f"Service level per interval (answered within {t.within_s:g} s)",
                    sl_series, "hours from the start", "share", xfmt=clock, ymax=1.0)
    ab_series = [("simulated (shifts as written)", "#1f77b4",
                  pts([s.final.abandonment for s in res.slots]))]
    if t.max_abandonment is not None:
        ab_series.append(("target", "#d62728", [(0.0, t.max_abandonment),
                                                ((len(xs) - 1) * h, t.max_abandonment)]))
    ab = line_chart("Abandonment per interval", ab_series, "hours from the start", "share",
                    xfmt=clock)
    figs = "".join(f'<div class="fig">{p}</div>' for p in (staff, demand, sl, ab))
    head = "".join(f"<th>{_esc(c.replace('_', ' '))}</th>" for c in COLUMNS)
    body = []
    for r in rows(res):
        cls = ' class="miss"' if r["result"] == "misses" else ""
        cells = [r["interval"], f"{r['chats']:.1f}", f"{r['handle_s']:.0f}",
                 f"{r['patience_s']:.0f}", r["erlang_agents"], r["on_line"], r["scheduled"],
                 f"{r['shift_on_line']:.1f}", _pct(r["service_level"]), _pct(r["abandonment"]),
                 VERDICT[r["result"]], r["note"]]
        body.append(f"<tr{cls}>" + "".join(f"<td>{_esc(c)}</td>" for c in cells) + "</tr>")
    shifts = "".join(f"<li>{_esc(line.strip())}</li>"
                     for line in shifts_text(res).splitlines())
    plain = "".join(f"<li>{_esc(line.strip())}</li>" for line in summary_lines(res))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>routeq plan: {_esc(res.forecast.source)}</title>
<style>{CSS} tr.miss td {{ color: #b00; font-weight: bold; }}</style></head>
<body>
<h1>routeq plan: agents per {res.forecast.interval_min} minutes</h1>
<ul class="meta">{plain}</ul>
<h2>Plots</h2>
<div class="grid">{figs}</div>
<h2>Shifts</h2>
<ul>{shifts}</ul>
<h2>Per interval</h2>
<table><tr>{head}</tr>{''.join(body)}</table>
<p class="meta">Erlang: agents on line by Erlang A (Erlang C where nobody leaves), each taking
{res.profile.capacity} chat(s) at once. On line: after the closed-loop simulation raised the
intervals it found short. Scheduled: on line / (1 - shrinkage). Shifts: agents on line under
the shifts the integer program chose, breaks taken out. Service level and abandonment: the
simulation of the shifts as written, over the chats that entered the queue in the interval;
"meets (noise)" is worse than a target by less than 1.96 standard errors of the interval's
chats.</p>
</body></html>
"""


def _day(c: SlotCheck) -> dict[str, Any]:
    return {"service_level": c.service_level, "abandonment_rate": c.abandonment,
            "chats": c.human}


def summary(res: PlanResult) -> dict[str, Any]:
    """The plan's figures as data (``plan.json``): what the summary lines say."""
    return {
        "forecast": {"source": res.forecast.source, "intervals": res.forecast.slots,
                     "interval_min": res.forecast.interval_min,
                     "chats": res.forecast.total_chats()},
        "rounds": {"requirement": res.rounds, "shifts": res.shift_rounds},
        "agent_hours": {"paid": res.agent_hours, "scenario_own": res.own_agent_hours},
        "day_erlang_agents": _day(res.erlang_overall),
        "day_shifts": _day(res.final_overall),
        "verdicts": {v: sum(s.final_verdict == v for s in res.slots)
                     for v in ("meets", "noise", "misses")},
    }


def write_all(res: PlanResult, out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    write_csv(res, out / "plan.csv")
    (out / "plan.json").write_bytes(orjson.dumps(summary(res), option=orjson.OPT_INDENT_2))
    (out / "plan.html").write_text(render(res), encoding="utf-8")
    (out / "shifts.toml").write_text(groups_toml(res), encoding="utf-8")
    (out / "plan-scenario.toml").write_text(scenario_toml(res), encoding="utf-8")
    return ["plan.csv", "plan.json", "plan.html", "shifts.toml", "plan-scenario.toml"]
