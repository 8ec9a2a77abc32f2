"""BENCHMARKS.md from the results JSON in ``benchmarks/results/``.

Run::

    .venv/bin/python -m benchmarks.report        # writes BENCHMARKS.md and the plot

Tables of the latest results of each benchmark (those not run yet are
listed as such), each with the command that reproduces it and the load
average it ran under, and an SVG plot (written here, no plotting library) of
engine events/s and placing p99 against tenant size.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import RESULTS, ROOT

OUT = ROOT / "BENCHMARKS.md"
PLOT = RESULTS / "engine_apply.svg"
PY = ".venv/bin/python -m"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


def n(x: Any, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, (int, float)):
        return f"{x:,.{digits}f}"
    return str(x)


def table(head: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(head) - 1)
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def meta(doc: dict[str, Any]) -> str:
    commit = (doc.get("git_commit") or "?")[:10]
    dirty = " (uncommitted changes)" if doc.get("git_dirty") else ""
    load = (doc.get("loadavg_1m") or doc.get("load_average_before")
            or doc.get("load_average_after"))
    cpus = doc.get("cpu_count") or doc.get("machine", {}).get("cpus")
    py = doc.get("python") or doc.get("machine", {}).get("python")
    quick = " — **quick run**" if doc.get("quick") else ""
    return (f"_commit {commit}{dirty}, Python {py}, {cpus} CPUs, load average {load}"
            f"{quick}_")


# ------------------------------------------------------------------ sections


def engine_section(doc: dict[str, Any]) -> str:
    rows = []
    for r in doc["results"]:
        e, lat = r["engine_eps"], r["latency"]
        rows.append([f"{r['agents']:,} × {r['waiting_target']:,}", n(e["median"]),
                     f"{n(e['min'])}–{n(e['max'])}", n(r["floor_eps"]["median"]),
                     n(r["engine_over_floor"], 2), f"{n(lat['p50_us'], 1)} µs",
                     f"{n(lat['p99_us'], 1)} µs",
                     f"{n(r['idle_pick']['p50_us'], 0)} / {n(r['idle_pick']['p99_us'], 0)} µs"])
    return "\n\n".join([
        "## Engine: `Engine.apply` by tenant size",
        f"```sh\n{PY} benchmarks.engine_apply\n```",
        meta(doc) + f"; {n(doc.get('events_per_size'))} measured events a size, "
        f"median of {doc.get('reps')} repetitions after a warm-up, floor interleaved.",
        table(["agents × waiting", "events/s", "min–max", "floor events/s", "engine/floor",
               "placing p50", "placing p99", "idle pick p50 / p99"], rows),
        f"![events/s and placing p99 against tenant size]({PLOT.relative_to(ROOT)})",
        "Targets: ≥ 400,000 events/s at 200 × 2,000 (within 4× of the floor); placing "
        "p99 < 100 µs at 2,000 × 10,000 and < 1 ms at 7,500 × 50,000.",
    ])


def policies_section(doc: dict[str, Any]) -> str:
    rows = [[f"`{p}`", n(r["events_per_s"]["median"]),
             n(r.get("events_per_cpu_s", {}).get("median")), n(r["over_priority"]["median"], 3),
             n(r["decisions"]), f"{n(r['placing_p50_us'], 1)} µs",
             f"{n(r['placing_p99_us'], 1)} µs"] for p, r in doc["policies"].items()]
    return "\n\n".join([
        "## Policies: the cost of being smarter",
        f"```sh\n{PY} benchmarks.policies\n```",
        meta(doc) + f"; {doc['agents']:,} agents × {doc['waiting_target']:,} waiting, "
        f"{n(doc['events'])} events, {doc['reps']} interleaved repetitions.",
        table(["policy", "events/s", "events/CPU s", "÷ priority (CPU, per rep, median)",
               "decisions",
               "placing p50", "placing p99"], rows),
    ])


TEN_MILLION = 10_000_000


def replay_section(doc: dict[str, Any]) -> str:
    names = {"run": "`routeq run` in memory", "run_state": "`routeq run --state`",
             "replay": "`routeq replay --state` (from the log)"}
    rows = [[names.get(k, k), n(r["events_per_s"]["median"]), f"{n(r['wall_s']['median'], 1)} s",
             f"{n(r['extrapolated_10m_s'], 0)} s"] for k, r in doc["results"].items()]
    scale = doc.get("scale", 1.0)
    flags = f" --scale {scale:g} --reps {doc['reps']}" if scale != 1.0 else ""
    whole = doc["events"] >= TEN_MILLION
    return "\n\n".join([
        "## Replay of a one-day 11.11 trace",
        f"```sh\n{PY} benchmarks.replay{flags}\n```",
        meta(doc) + f"; double11{f' × {scale:g} (visitors and agents)' if scale != 1 else ''}, "
        f"{doc['hours']:g} simulated hours, {n(doc['events'])} events "
        f"({doc['input_bytes'] / 1e6:,.0f} MB), median of {doc['reps']} (start-up included).",
        table(["", "events/s", "wall",
               "10,000,000 events (at this rate)" if whole
               else "10,000,000 events (extrapolated)"], rows),
        "Target: a 10,000,000-event day in under 60 s. "
        + ("The wall column is that day, measured whole." if whole else
           "The extrapolation assumes the rate of the measured day holds; more visitors "
           "held make each event slightly dearer (`--scale 2.25` measures a whole "
           "10,000,000-event day)."),
    ])


def memory_section(doc: dict[str, Any]) -> str:
    rows = []
    for name in ("rss", "tracemalloc"):
        m = doc.get(name)
        if m:
            rows.append([name, n(m["visitor_bytes"]), n(m["waiting_chat_bytes"]),
                         n(m["agent_bytes"])])
    return "\n\n".join([
        "## Memory of the engine's state",
        f"```sh\n{PY} benchmarks.memory\n```",
        meta(doc) + f"; {n(doc['visitors'])} active visitors, {n(doc['waiting_chats'])} "
        f"waiting chats, {n(doc['agents'])} agents.",
        table(["measure", "bytes / active visitor", "bytes / waiting chat",
               "bytes / agent"], rows),
        "Target: under 1 KiB (1,024 bytes) per active visitor.",
    ])


def run_embedded_section(doc: dict[str, Any]) -> str:
    t = doc["throughput"]
    rows = [["in memory", n(t["memory_eps"]["median"]), n(t["memory_cpu_s"]["median"], 1)],
            ["`--state`", n(t["state_eps"]["median"]), n(t["state_cpu_s"]["median"], 1)],
            ["ratio `--state` / in memory", n(t["state_over_memory"]["median"], 3), ""]]
    r, d = doc["resume"], doc["disk"]
    return "\n\n".join([
        "## `routeq run` end to end",
        f"```sh\n{PY} benchmarks.run_embedded\n```",
        meta(doc) + f"; {n(doc['events'])} mixed events of 20 tenants, median of "
        f"{doc['reps']}.",
        table(["", "events/s", "CPU s"], rows),
        f"Resume after a kill: {n(r['after_kill_s']['median'], 2)} s; reopen after a clean "
        f"stop: {n(r['reopen_clean_s']['median'], 2)} s. Disk: log "
        f"{n(d['log_bytes_per_event'], 1)} bytes an event, state dir "
        f"{n(d['state_dir_bytes_per_event'], 1)}. Target: ≥ 100,000 events/s with `--state`.",
    ])


def simulate_section(doc: dict[str, Any]) -> str:
    d, m = doc["double11"], doc["mmc"]
    parts = [
        "## Simulator",
        f"```sh\n{PY} benchmarks.simulate    # ciw: pip install ciw (benchmark only)\n```",
        meta(doc) + ".",
        table(["double11", "value"], [
            ["simulated hours", n(d["hours"], 0)], ["visitors", n(d["visitors"])],
            ["events", n(d["events"])], ["wall", f"{n(d['wall_s'], 1)} s"],
            ["events/s", n(d["events_per_s"])], ["visitors/s", n(d["visitors_per_s"])],
            ["s per 1,000,000 visitors (target 300)", n(d["wall_s_per_million_visitors"], 1)],
        ]),
    ]
    ec = m["erlang_c"]
    rows = [["Erlang C", "", n(ec["p_wait"], 4), n(ec["mean_wait_s"], 2),
             n(ec["service_level"], 4)]]
    for name in ("routeq", "ciw"):
        if name in m:
            r = m[name]
            rows.append([name, f"{n(r['wall_s'], 2)} s",
                         f"{n(r['p_wait']['mean'], 4)} ± {n(r['p_wait']['ci95_half'], 4)}",
                         f"{n(r['mean_wait_s']['mean'], 2)} ± "
                         f"{n(r['mean_wait_s']['ci95_half'], 2)}",
                         f"{n(r['service_level']['mean'], 4)} ± "
                         f"{n(r['service_level']['ci95_half'], 4)}"])
    parts.append(f"M/M/c, {m['agents']} agents, {m['offered_erlangs']:g} Erlangs, "
                 f"{m['hours']:g} h × {m['reps']}:")
    parts.append(table(["", "wall", "P(wait)", "mean wait s", "service level"], rows))
    if "wall_ratio_routeq_over_ciw" in m:
        parts.append(f"Wall time routeq / ciw: **{m['wall_ratio_routeq_over_ciw']:.3f}** "
                     "(target: routeq at least 20× faster, i.e. ≤ 0.05).")
    return "\n\n".join(parts)


def http_section(doc: dict[str, Any]) -> str:
    rows = [[k, n(v["offered_rate"]), n(v["achieved_rate"]), f"{n(v['latency_p50_ms'], 1)} ms",
             f"{n(v['latency_p99_ms'], 1)} ms", n(v["server_cpu"], 2)]
            for k, v in doc["medians"].items()]
    return "\n\n".join([
        "## HTTP ingest (`routeq serve`)",
        f"```sh\n{PY} benchmarks.http_ingest\n```",
        meta(doc) + f"; {doc['repetitions']} repetition(s) of {doc['duration_s']:g} s.",
        table(["case", "offered/s", "achieved/s", "p50", "p99", "server CPU"], rows),
    ])


def whatif_section(doc: dict[str, Any]) -> str:
    med = doc["double11"]["medians"]
    keys = list(next(iter(med.values())).keys())
    rows = [[f"`{p}`", *[n(v[k], 3) for k in keys]] for p, v in med.items()]
    parts = ["## What-if: priority against the baselines on 11.11",
             f"```sh\n{PY} benchmarks.whatif\n```", meta(doc) + ".",
             table(["policy", *keys], rows)]
    if doc.get("compare_demo"):
        parts.append(f"`routeq compare` on a one-day demo trace: "
                     f"{doc['compare_demo']['candidates_per_min']} candidates a minute.")
    return "\n\n".join(parts)


def faust_section(doc: dict[str, Any]) -> str:
    summ = doc["summary"]
    rows = [[k, n(v["events_per_s"]["median"]),
             f"{n(v['events_per_s']['min'])}–{n(v['events_per_s']['max'])}",
             "yes" if v.get("complete") else "no"]
            for k, v in summ.items() if isinstance(v, dict) and "events_per_s" in v]
    parts = ["## Distributed runtime (Faust on a Tansu broker)",
             f"```sh\n{PY} benchmarks.faust_pipeline\n```",
             meta(doc) + f"; {doc.get('broker', '')}; {n(doc['events'])} events, "
             f"{doc['partitions']} partitions, median of {doc['reps']}.",
             table(["case", "events/s", "min–max", "outputs complete"], rows)]
    lats = {k: v for k, v in summ.items() if k.startswith("latency")}
    for key, lat in lats.items():
        window = key.removeprefix("latency").strip("-").replace("-", ", ").replace(
            "batch", "--batch-ms ").replace("fetch", "--fetch-wait-ms ")
        parts.append(f"At {n(lat['rate'])} events/s"
                     + (f" ({window})" if window else "")
                     + f": request → assignment p50 {n(lat['p50_ms']['median'], 1)} ms, "
                     f"p99 {n(lat['p99_ms']['median'], 1)} ms.")
    return "\n\n".join(parts)


def failover_section(doc: dict[str, Any]) -> str:
    rows = []
    for arm, r in doc["arms"].items():
        for kind, name in (("sigkill", "kill -9"), ("sigterm", "SIGTERM")):
            if kind not in r:
                continue
            s = r[kind]
            a, p = s["all_orphans_routing_s"], s["per_partition_s"]
            rows.append([f"{arm} ({str(r.get('code', ''))[:10]}{', ' if r['flags'] else ''}"
                         f"{' '.join(r['flags'])})", name, str(s["kills"]),
                         n(a["p50"], 2), n(a["p99"], 2), n(p["p50"], 2), n(p["p99"], 2),
                         str(s["survivor_died"])])
    parts = ["## Failover of the distributed runtime (kill one of two workers)",
             f"```sh\n{PY} benchmarks.failover\n```",
             meta(doc) + f"; Tansu 0.6.0 in memory; {doc['partitions']} partitions, "
             f"{n(doc['rate_messages_s'])} live messages/s; seconds from the signal to the "
             "first decision of an orphaned partition by the survivor (per kill: the last "
             "of its orphaned partitions). Runs made side by side: "
             + ", ".join(f"load {p['load_average_before']}" for p in doc.get("parts", [])),
             table(["code, worker options", "signal", "kills", "all orphans p50 s",
                    "p99 s", "per partition p50 s", "p99 s", "survivor died"], rows)]
    srows = []
    for st in doc.get("states", []):
        srows.append([f"{st['tenants']} × {st['visitors']} × {st['chats']}",
                      n(st["entities_about"]), n(st["kill9_takeover"]["all_routing_s"], 2),
                      n(st["fresh_worker_all_routing_s"], 2),
                      n(st["fresh_worker_recovery_s"], 2)])
    if srows:
        parts.append("State size (tenants × visitors × waiting chats each), the after arm's "
                     "code and defaults:")
        parts.append(table(["state", "entities (about)", "kill -9 takeover s",
                            "fresh worker routing s", "its table recovery s"], srows))
    return "\n\n".join(parts)


def versus_section(doc: dict[str, Any]) -> str:
    """One ``benchmarks.versus`` run: the two sides' medians and their ratio."""
    def side(rev: str, env: dict[str, str]) -> str:
        return " ".join([rev, *(f"{k}={v}" for k, v in env.items())])

    before = side(doc["before"], doc.get("before_env", {}))
    now = side("this checkout", doc.get("now_env", {}))
    flags = ([f"--before {doc['before']}"] if doc["before"] != "this checkout" else [])
    if doc.get("before_build"):
        flags.append(f"--before-build '{doc['before_build']}'")
        before += " (built: " + doc["before_build"] + ")"
    flags += [f"--before-env {k}={v}" for k, v in doc.get("before_env", {}).items()]
    flags += [f"--now-env {k}={v}" for k, v in doc.get("now_env", {}).items()]
    # the numbers compared, by their last key (``--keys``; the default: median)
    keys = sorted({r["metric"].rsplit(".", 1)[-1] for r in doc["results"]} - {"_wall_s"},
                  key=lambda k: (k != "median", k))
    if keys != ["median"]:
        flags.append(f"--keys {','.join(keys)}")
    cmd = " ".join([f"{PY} benchmarks.versus", *flags, f"--pairs {doc['pairs']}",
                    doc["compared"], *doc["args"]])
    rows = [[r["metric"], n(r["before"], 3 if abs(r["before"]) < 100 else 0),
             n(r["now"], 3 if abs(r["now"]) < 100 else 0),
             "" if r["now_over_before"] is None else f"{r['now_over_before']:.3f}"]
            for r in doc["results"]]
    return "\n\n".join([
        f"## Side by side: {doc['compared']}, {now} against {before}",
        f"```sh\n{cmd}\n```",
        meta(doc) + f"; {doc['pairs']} runs of each side, interleaved; medians.",
        table(["metric", "before", "now", "now / before"], rows)])


def presence_section(doc: dict[str, Any]) -> str:
    """Offline grace and auto-away on mobile agents (``benchmarks.presence``)."""
    rows = [[name, n(r["requeued_offline"], 0), n(r["requeued_offer_timeout"], 0),
             f"{r['abandonment_rate']:.1%}", f"{r['service_level']:.1%}",
             f"{r['wait_mean_s']:.1f} s", n(r["set_away"], 0)]
            for name, r in doc["results"].items()]
    return "\n\n".join([
        "## Presence rules on mobile agents",
        f"```sh\n{PY} benchmarks.presence\n```",
        meta(doc) + f"; `{doc['scenario']}`, {doc['hours']:g} simulated hours, seeds "
        f"{doc['seeds'][0]}-{doc['seeds'][-1]}, medians.",
        table(["rules", "requeued: agent offline", "requeued: offer timeout", "abandonment",
               "answered in 20 s", "mean wait", "agents set away"], rows),
    ])


def plan_section(doc: dict[str, Any]) -> str:
    """A staffing plan for double11 (``benchmarks.plan``)."""
    r = doc["results"]
    ah = r["agent_hours"]

    def day(d: dict[str, Any]) -> str:
        return f"{d['service_level']:.1%} in time, {d['abandonment_rate']:.1%} abandoned"

    rows = [["Erlang A, on line", n(ah["erlang_on_line"], 1), day(r["day_erlang_agents"]), ""],
            ["after the simulation's corrections, on line",
             n(ah["on_line_after_simulation"], 1), "", ""],
            ["the shifts, paid (breaks included)", n(ah["paid"], 1), day(r["day_shifts"]),
             ", ".join(f"{v} {k}" for k, v in r["verdicts"].items())]]
    rows += [[f"the shifts on seed {o['seed']} (out of sample)", "", day(o),
              ", ".join(f"{v} {k}" for k, v in o["verdicts"].items())]
             for o in r["out_of_sample"]]
    if ah.get("scenario_own") is not None:
        own = r.get("day_own_staffing")
        rows.append(["the scenario's own staffing, paid", n(ah["scenario_own"], 1),
                     day(own) if own else "",
                     ", ".join(f"{v} {k}" for k, v in own["verdicts"].items()) if own else ""])
    t = doc["targets"]
    return "\n\n".join([
        "## Staffing plan: double11 at its own targets",
        f"```sh\n{PY} benchmarks.plan\n```",
        meta(doc) + f"; `{doc['command']}` ({r['wall_s']:g} s), targets "
        f"{t['service_level']:.0%} within {t['within_s']:g} s, abandonment at most "
        f"{t['max_abandonment']:.0%}; {r['intervals']} half hours judged each against "
        "the targets (noise: worse by less than 1.96 standard errors of its chats).",
        table(["staffing", "agent-hours", "the day", "half hours"], rows),
    ])


def value_section(doc: dict[str, Any]) -> str:
    """Policy value fitted on one seed, compared on others (``benchmarks.value``)."""
    rows = []
    for sc, r in doc["results"].items():
        for name, m in r["medians"].items():
            rows.append([sc, name, f"{m['checkout_wait_mean_s']:.2f} s",
                         f"{m['abandonment']:.2%}", n(m["chat_revenue"], 0)])
    goals = []
    for sc, r in doc["results"].items():
        for name in ("value", "priority"):
            a = r[name]
            goals.append([sc, name, f"{-a['checkout_wait_cut']:+.0%}",
                          f"{a['abandonment_points_up']:+.2f}",
                          f"{a['revenue_over_best_rival']:+.2%}",
                          f"{sum(a['goals'].values())} of 3"])
    seeds = next(iter(doc["results"].values()))["compared_on_seeds"]
    return "\n\n".join([
        "## Policy value against priority and the baselines",
        f"```sh\n{PY} benchmarks.value\n```",
        meta(doc) + f"; classes fitted (`routeq fit`) on seed 1 of each scenario, "
        f"compared (`routeq compare`, equal staffing) on seeds {seeds[0]}-{seeds[-1]}; "
        "medians.",
        table(["scenario", "policy", "checkout mean wait", "abandonment",
               "revenue after chat"], rows),
        "Goals, against the best baseline: checkout wait at least 30 % lower, abandonment "
        "at most 0.5 points higher; revenue at least that of every rival (for value: "
        "priority and the baselines).",
        table(["scenario", "policy", "checkout wait", "abandonment, points",
               "revenue vs best rival", "goals met"], goals),
    ])


def null_test_section(doc: dict[str, Any]) -> str:
    """Histories re-simulated under their recorded rules (``benchmarks.null_test``)."""
    def pair(fig: dict[str, Any], pct: bool) -> str:
        rec, got = fig["recorded"], fig["resimulated"]
        if rec is None or got is None:
            return "–"
        return f"{rec:.2%} / {got:.2%}" if pct else f"{rec:.2f} / {got:.2f}"

    rows = []
    for name, r in doc["results"].items():
        f = r["figures"]
        size = (f"{r['hours']:g} h" if "hours" in r else f"{r['seconds']:g} s live"
                if "seconds" in r else "")
        rows.append([name, size, n(r["chats"]), n(r["open_at_end"]),
                     pair(f["service level"], True), pair(f["abandonment"], True),
                     pair(f["occupancy"], True), pair(f["mean wait s"], False),
                     "passed" if r["passed"] else "**failed**"])
    return "\n\n".join([
        "## What-if null test: histories under the rules they ran under",
        f"```sh\n{PY} benchmarks.null_test\n```",
        meta(doc) + "; `routeq compare HISTORY --null-seeds 3`: the recorded figures and "
        "the recorded rules re-simulated (the mean over the seeds run: one where it gives "
        "the figures back exactly, 3 otherwise).",
        table(["history", "length", "chats", "open at the end", "service level",
               "abandonment", "occupancy", "mean wait s", "null test"], rows),
    ])


def routing_steps_section(doc: dict[str, Any]) -> str:
    """Routing steps against today's rules (``benchmarks.routing_steps``)."""
    rows = []
    for sc, r in doc["results"].items():
        for name, f in r["candidates"].items():
            wait = f["checkout_wait_mean_s"]
            rows.append([sc, name, "–" if wait is None else f"{wait:.1f} s",
                         f"{f['wait_mean_s']:.1f} s", f"{f['abandonment']:.2%}",
                         f"{f['overflowed_share']:.2%}", n(f["chat_revenue"])])
    seed = next(iter(doc["results"].values()))["seed"]
    return "\n\n".join([
        "## Routing steps and predictive overflow",
        f"```sh\n{PY} benchmarks.routing_steps\n```",
        meta(doc) + f"; a day of each scenario (seed {seed}) re-simulated by `routeq "
        "compare` under its own rules (`recorded rules`) and under routing steps written "
        "from them (see the benchmark's doc).",
        table(["scenario", "candidate", "checkout mean wait", "mean wait", "abandonment",
               "overflowed", "revenue after chat"], rows),
    ])


def eta_section(doc: dict[str, Any]) -> str:
    """How well eta_s foretells the wait (``benchmarks.eta``)."""
    rows = []
    for sc, e in doc["results"].items():
        if not e["chats"]:
            continue
        peak = e.get("peak", {}).get("mae_share")
        rows.append([sc, n(e["chats"]), f"{e['mean_wait_s']:.1f} s", f"{e['mae_s']:.1f} s",
                     f"{e['bias_s']:+.1f} s", f"{e['mae_share']:.2f}",
                     "–" if peak is None else f"{peak:.2f}",
                     n(e["hindsight_bound_share"], 2)])
    return "\n\n".join([
        "## ETA accuracy",
        f"```sh\n{PY} benchmarks.eta\n```",
        meta(doc) + f"; a day of each scenario (seed {doc['seed']}); chats queued and then "
        "assigned: the first chat.queued's eta_s against the wait. Bound: the MAE share of "
        "each (tenant, position, priority band) group's median wait, in hindsight.",
        table(["scenario", "chats", "mean wait", "MAE", "bias", "MAE / mean wait",
               "peak hour", "bound"], rows),
    ])


SECTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "engine_apply": engine_section, "policies": policies_section, "replay": replay_section,
    "memory": memory_section, "run_embedded": run_embedded_section,
    "simulate": simulate_section, "whatif": whatif_section, "http_ingest": http_section,
    "faust_pipeline": faust_section, "failover": failover_section,
    "presence": presence_section, "plan": plan_section, "value": value_section,
    "null_test": null_test_section, "routing_steps": routing_steps_section,
    "eta": eta_section,
}


# ------------------------------------------------------------------ plot


def short(v: int) -> str:
    return f"{v / 1000:g}k" if v >= 1000 else str(v)


def nice(v: float) -> float:
    """The smallest round number (x a power of ten, quartered evenly) that is >= v."""
    if v <= 0:
        return 1.0
    p = 10 ** math.floor(math.log10(v))
    return next(m * p for m in (1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10) if m * p >= v)


def plot(doc: dict[str, Any]) -> str:
    """Two panels: events/s (engine, floor) and placing p99 against tenant size (log x)."""
    rs = doc["results"]
    labels = [f"{short(r['agents'])}×{short(r['waiting_target'])}" for r in rs]
    xs = [math.log10(r["agents"] * r["waiting_target"]) for r in rs]
    W, H, L, R, T, B = 360, 240, 64, 16, 30, 48
    x0, x1 = min(xs) - 0.3, max(xs) + 0.3

    def px(x: float) -> float:
        return L + (x - x0) / (x1 - x0) * (W - L - R)

    def panel(ox: int, title: str, series: list[tuple[str, str, list[float]]],
              unit: str, limit: float | None = None) -> list[str]:
        top = max(max(v) for _, _, v in series + ([("", "", [limit])] if limit else []))
        top = nice(top * 1.1)

        def py(y: float) -> float:
            return T + (1 - y / top) * (H - T - B)

        g = [f'<g transform="translate({ox},0)">',
             f'<text x="{W / 2}" y="16" text-anchor="middle" font-weight="bold">{title}</text>',
             f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#333"/>',
             f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="#333"/>']
        for i in range(5):
            y = top * i / 4
            g.append(f'<text x="{L - 4}" y="{py(y) + 4:.1f}" text-anchor="end">'
                     f'{y:,.{0 if top >= 20 else 1}f}</text>')
            g.append(f'<line x1="{L}" y1="{py(y):.1f}" x2="{W - R}" y2="{py(y):.1f}" '
                     f'stroke="#ddd"/>')
        for x, lab in zip(xs, labels, strict=True):
            g.append(f'<text x="{px(x):.1f}" y="{H - B + 16}" text-anchor="middle">{lab}</text>')
        g.append(f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">'
                 f'agents × waiting chats (log scale)</text>')
        g.append(f'<text x="12" y="{(T + H - B) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {(T + H - B) / 2})">{unit}</text>')
        if limit is not None:
            g.append(f'<line x1="{L}" y1="{py(limit):.1f}" x2="{W - R}" y2="{py(limit):.1f}" '
                     f'stroke="#c00" stroke-dasharray="4 3"/>')
            g.append(f'<text x="{L + 4}" y="{py(limit) - 4:.1f}" fill="#c00">target '
                     f'{limit:,.0f}</text>')
        for k, (name, color, vals) in enumerate(series):
            pts = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in zip(xs, vals, strict=True))
            g.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
            for x, v in zip(xs, vals, strict=True):
                g.append(f'<circle cx="{px(x):.1f}" cy="{py(v):.1f}" r="3" fill="{color}"/>')
            g.append(f'<text x="{W - R - 4}" y="{T + 14 + 14 * k}" text-anchor="end" '
                     f'fill="{color}">{name}</text>')
        g.append("</g>")
        return g

    eps = [float(r["engine_eps"]["median"]) for r in rs]
    floor = [float(r["floor_eps"]["median"]) for r in rs]
    p99 = [float(r["latency"]["p99_us"]) for r in rs]
    body = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" '
            f'font-family="sans-serif" font-size="10">',
            f'<rect width="{2 * W}" height="{H}" fill="white"/>']
    body += panel(0, "events/s (median)", [("engine", "#1f6fb4", eps),
                                           ("floor (orjson)", "#999", floor)], "events/s")
    body += panel(W, "placing decision p99 (µs)", [("p99", "#d0661b", p99)], "µs",
                  limit=100.0 if max(p99) < 300 else None)
    body.append("</svg>")
    return "\n".join(body) + "\n"


def targets() -> str:
    """Where each target of the benchmarks issue stands, from the kept results."""
    rows: list[list[str]] = []

    def row(what: str, target: str, value: str | None, met: bool | None) -> None:
        rows.append([what, target, value or "not measured",
                     "–" if met is None else ("met" if met else "**missed**")])

    e = load("engine_apply")
    if e:
        by = {r["size"]: r for r in e["results"]}
        r = by.get("200x2000")
        if r:
            v = r["engine_eps"]["median"]
            row("engine events/s at 200 × 2,000", "≥ 400,000", n(v), v >= 400_000)
            ratio = r["floor_eps"]["median"] / v
            row("within 4× of the decode floor", "≤ 4×", f"{ratio:.2f}×", ratio <= 4)
        for size, lim in (("2000x10000", 100.0), ("7500x50000", 1000.0)):
            r = by.get(size)
            if r:
                p99 = r["latency"]["p99_us"]
                row(f"placing p99 at {size.replace('x', ' × ')}", f"< {lim:,.0f} µs",
                    f"{p99:,.1f} µs", p99 < lim)
    rp = load("replay")
    if rp:
        if rp["events"] >= TEN_MILLION:
            x = rp["results"]["run"]["wall_s"]["median"]
            row(f"{n(rp['events'])}-event day (routeq run, measured)", "< 60 s",
                f"{x:,.0f} s", x < 60)
        else:
            x = rp["results"]["run"]["extrapolated_10m_s"]
            row("10,000,000-event day (routeq run, extrapolated)", "< 60 s", f"{x:,.0f} s",
                x < 60)
    sim = load("simulate")
    if sim:
        x = sim["double11"]["wall_s_per_million_visitors"]
        row("simulate 1,000,000 visitors", "< 300 s", f"{x:,.0f} s", x < 300)
        ratio = sim["mmc"].get("wall_ratio_routeq_over_ciw")
        if ratio is not None:
            row("simulator vs ciw (wall, routeq / ciw)", "≤ 0.05 (20× faster)",
                f"{ratio:.2f}", ratio <= 0.05)
    m = load("memory")
    if m:
        x = m["rss"]["visitor_bytes"]
        row("bytes per active visitor (RSS)", "< 1,024", n(x), x < 1024)
    re_ = load("run_embedded")
    if re_:
        x = re_["throughput"]["state_eps"]["median"]
        row("routeq run --state, mixed events", "≥ 100,000 events/s", n(x), x >= 100_000)
    fo = load("failover")
    after = fo and fo["arms"].get("after")
    if after:
        for kind, name, lim in (("sigkill", "kill -9", 15.0), ("sigterm", "SIGTERM", 3.0)):
            if kind in after:
                x = after[kind]["all_orphans_routing_s"]["p99"]
                row(f"failover after {name} of 1 in 2 workers, p99", f"< {lim:g} s",
                    f"{x:.1f} s", x < lim)
    return "## Targets\n\n" + table(["what", "target", "latest", ""], rows)


def render() -> tuple[str, str | None]:
    parts = ["# routeq benchmarks",
             "Generated by `.venv/bin/python -m benchmarks.report` from the JSON in "
             "[`benchmarks/results/`](benchmarks/results/); do not edit by hand. Run them all "
             "with `.venv/bin/routeq bench` (full sizes, writes the JSON; `--quick` for the "
             "quick set, `--only NAME…` for some). The machine is a shared 2-core VM: every "
             "figure is a median of repetitions, comparisons are interleaved in the same run, "
             "and the load average it ran under is quoted with it."]
    parts.append(targets())
    missing = []
    svg = None
    for name, section in SECTIONS.items():
        doc = load(name)
        if doc is None:
            missing.append(name)
            continue
        try:
            parts.append(section(doc))
        except (KeyError, TypeError, ValueError) as e:
            parts.append(f"## {name}\n\n(results in an older format, not shown: {e!r})")
        if name == "engine_apply":
            svg = plot(doc)
    for path in sorted(RESULTS.glob("versus_*.json")):
        parts.append(versus_section(orjson.loads(path.read_bytes())))
    if missing:
        parts.append("## Not run yet\n\n" + ", ".join(f"`{m}`" for m in missing)
                     + f" (`.venv/bin/routeq bench --only {' '.join(missing)}`).")
    return "\n\n".join(parts) + "\n", svg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    md, svg = render()
    args.out.write_text(md)
    if svg is not None:
        PLOT.write_text(svg)
    print(f"wrote {args.out}" + (f" and {PLOT}" if svg else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
