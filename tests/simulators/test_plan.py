"""routeq plan: Erlang sizing against published values, forecasts, shifts, the
plan checked by simulation, and the report in headless Chromium."""

from __future__ import annotations

import csv
import math
import re
import tomllib
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators import theory
from simulators.forecast import ForecastError, Interval, add_orders, from_csv
from simulators.plan import AgentProfile, _groups_for
from simulators.shifts import Shift, coverage, schedule
from simulators.staffing import PlanError, Targets, erlang, size
from streams.cli import main
from tests.routeq import ROOT
from tests.simulators.test_report import chromium

EXAMPLES = ROOT / "examples"
LAM, MU = 100 / 1800, 1 / 180  # 100 contacts per 30 minutes, 180 s handle time


# ------------------------------------------------------------ Erlang

def test_erlang_c_reproduces_the_published_example() -> None:
    iv = Interval(0, 100.0, 180.0, 0.0)
    sl, ab, occ, p_wait = erlang(14, iv, 20.0, 1800.0)
    assert (round(sl, 3), round(occ, 3), round(p_wait, 3)) == (0.888, 0.714, 0.174)
    assert ab == 0.0
    # 14 agents on line are 20 positions with 30 % shrinkage
    assert Targets(shrinkage=0.3).scheduled(14) == 20


def test_erlang_a_reproduces_the_published_example() -> None:
    iv = Interval(0, 100.0, 180.0, 300.0)
    _, ab, occ, p_wait = erlang(14, iv, 20.0, 1800.0)
    assert (round(p_wait, 4), round(ab, 4), round(occ, 4)) == (0.1453, 0.0140, 0.7043)


def _chain_service_level(c: int, lam: float, mu: float, theta: float, t: float) -> float:
    """Answered within t in M/M/c+M from the birth-death chain: an arrival that
    finds j waiting is served after j+1 queue departures, each at rate
    c mu + (number ahead) theta, unless its own patience (rate theta) ends
    first; uniformisation of that absorbing chain, independent of theory.py."""
    weights = [1.0]
    while len(weights) < c + 400:
        n = len(weights)
        weights.append(weights[-1] * lam / (min(n, c) * mu + max(n - c, 0) * theta))
    z = sum(weights)
    answered = sum(weights[:c]) / z
    top = len(weights) - c
    rate = c * mu + (top + 1) * theta
    # p[k]: probability mass with k customers ahead (k = 0..top-1) still waiting
    p = [weights[c + k] / z for k in range(top)]
    steps = int(rate * t + 12 * math.sqrt(rate * t) + 30)
    poisson = math.exp(-rate * t)
    served = 0.0
    cum = [0.0]  # served mass by step
    for _ in range(steps):
        nxt = [0.0] * top
        done = 0.0
        for k, m in enumerate(p):
            if m == 0.0:
                continue
            move = (c * mu + k * theta) / rate
            stay = 1.0 - move - theta / rate
            if k == 0:
                done += m * move
            else:
                nxt[k - 1] += m * move
            nxt[k] += m * stay
        p = nxt
        cum.append(cum[-1] + done)
    # P(served by t) = sum_n Poisson(n; rate t) * served within n jumps
    term = poisson
    for n in range(steps + 1):
        if n:
            term *= rate * t / n
        served += term * cum[n]
    return answered + served


@pytest.mark.parametrize("c,patience", [(14, 300.0), (10, 60.0), (16, 30.0)])
def test_erlang_a_service_level_agrees_with_the_chain(c: int, patience: float) -> None:
    closed = theory.erlang_a_service_level(c, LAM, MU, 1 / patience, 20.0)
    assert closed == pytest.approx(_chain_service_level(c, LAM, MU, 1 / patience, 20.0),
                                   abs=2e-4)


def test_erlang_a_service_level_tends_to_erlang_c_without_abandonment() -> None:
    assert theory.erlang_a_service_level(14, LAM, MU, 1e-9, 20.0) == pytest.approx(
        theory.erlang_c_service_level(14, LAM, MU, 20.0), abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(chats=st.floats(1, 3000), handle=st.floats(20, 600), patience=st.sampled_from(
    [0.0, 30.0, 120.0, 600.0]), capacity=st.integers(1, 5),
    sl=st.floats(0.5, 0.95), ab=st.floats(0.01, 0.2))
def test_size_is_the_fewest_agents_meeting_every_target(chats: float, handle: float,
                                                        patience: float, capacity: int,
                                                        sl: float, ab: float) -> None:
    iv = Interval(0, chats, handle, patience)
    t = Targets(service_level=sl, max_abandonment=ab, max_occupancy=0.85)
    need = size(iv, t, capacity=capacity)

    def meets(n: int) -> bool:
        s, a, o, _ = erlang(n * capacity, iv, t.within_s, 1800.0)
        return s >= sl and a <= ab and o <= 0.85

    assert meets(need.agents)
    assert need.agents == 1 or not meets(need.agents - 1)


def test_targets_out_of_range_and_unreachable_ones_are_named() -> None:
    for bad, word in ((Targets(service_level=1.0), "--service-level"),
                      (Targets(max_abandonment=0.0), "--max-abandonment"),
                      (Targets(shrinkage=1.0), "--shrinkage"),
                      (Targets(within_s=-1), "--within-s")):
        with pytest.raises(PlanError, match=word):
            bad.check()
    # a tiny occupancy target is met, with many agents
    assert size(Interval(0, 100.0, 180.0, 0.0), Targets(max_occupancy=0.01)).occupancy <= 0.01


# ------------------------------------------------------------ forecasts

def test_csv_forecast_reads_skills_and_intervals() -> None:
    fc = from_csv(str(EXAMPLES / "forecast.csv"))
    assert fc.interval_min == 30 and fc.slots == 12
    assert fc.skills() == ["after_sales", "presales"]
    assert fc.intervals[0].patience_s > 0


@pytest.mark.parametrize("text,message", [
    ("", "is empty"),
    ("start,chats,handle_s\n", "is empty"),
    ("when,chats\n2024-01-01T00:00:00,3\n", "no 'start' column"),
    ("start,chats,handle_s\n2024-01-01T00:00:00,three,180\n", "'chats' is 'three'"),
    ("start,chats,handle_s\nnoon,3,180\n", "expected an ISO date-time"),
    ("start,chats,handle_s\n2024-01-01T00:00:00,3,180\n2024-01-01T00:20:00,3,180\n",
     "intervals of 20 min"),
    ("start,chats,handle_s\n2024-01-01T00:00:00,3,0\n", "'handle_s' must be > 0"),
])
def test_a_bad_csv_forecast_gets_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "f.csv"
    f.write_text(text)
    with pytest.raises(ForecastError, match=re.escape(message)):
        from_csv(str(f))


def test_a_history_forecast_counts_the_chats_that_asked_for_a_person(tmp_path: Path) -> None:
    """The forecast of a simulated history has its chats per interval (scaled
    by --growth), its handle time and patience near the scenario's."""
    from engine import parse_rules
    from simulators.forecast import from_history

    assert main(["simulate", "--scenario", "erlang_a", "--hours", "3", "--param",
                 "queue.warmup_h=0", "--out", str(tmp_path), "--quiet"]) == 0
    rules = parse_rules(tomllib.loads((tmp_path / "rules.toml").read_text()))
    fc = from_history(str(tmp_path / "events.jsonl"), rules, 30)
    twice = from_history(str(tmp_path), rules, 30, growth=2.0)
    requested = (tmp_path / "events.jsonl").read_bytes().count(b'"chat.requested"')
    assert fc.total_chats() == requested and twice.total_chats() == 2 * requested
    assert fc.interval_min == 30 and fc.slots == 6
    # the scenario: 14 Erlangs of 180 s chats (280 an hour), patience 120 s
    assert sum(iv.chats for iv in fc.intervals[:6]) == pytest.approx(3 * 280, rel=0.1)
    handle = sum(iv.chats * iv.handle_s for iv in fc.intervals) / fc.total_chats()
    assert handle == pytest.approx(180, rel=0.1)
    assert fc.intervals[2].patience_s == pytest.approx(120, rel=0.35)


def test_a_csv_without_patience_is_sized_with_erlang_c(tmp_path: Path) -> None:
    f = tmp_path / "f.csv"
    f.write_text("start,chats,handle_s,patience_s\n2024-11-10T20:00:00+08:00,100,180,\n")
    fc = from_csv(str(f))
    need = size(fc.intervals[0], Targets())
    assert need.model == "erlang_c" and need.agents == 14


def test_order_backlog_contacts_a_hand_made_case(tmp_path: Path) -> None:
    """1,000 placed orders at 2 % and 400 unshipped at 5 % in an hour: 40
    contacts, 20 in each half hour, on top of the forecast's own chats."""
    f = tmp_path / "f.csv"
    f.write_text("start,chats,handle_s,patience_s\n" + "".join(
        f"2024-11-10T{h}:00+08:00,{n},180,300\n"
        for h, n in (("20:00", 10), ("20:30", 5), ("21:00", 0), ("21:30", 0))))
    o = tmp_path / "o.csv"
    o.write_text("start,placed,unshipped\n2024-11-10T20:00:00+08:00,1000,400\n"
                 "2024-11-10T21:00:00+08:00,0,0\n")
    fc = add_orders(from_csv(str(f)), str(o), {"placed": 0.02, "unshipped": 0.05})
    assert [iv.chats for iv in fc.intervals] == [pytest.approx(x) for x in (30, 25, 0, 0)]
    o.write_text("start,placed,unshipped\n2024-11-10T20:00:00+08:00,1000,400\n")
    alone = add_orders(None, str(o), {"placed": 0.02, "unshipped": 0.05}, handle_s=200.0)
    assert [iv.chats for iv in alone.intervals] == [pytest.approx(40.0)]
    with pytest.raises(ForecastError, match="no contact probability for unshipped"):
        add_orders(None, str(o), {"placed": 0.02}, handle_s=200.0)
    with pytest.raises(ForecastError, match="needs --handle-s"):
        add_orders(None, str(o), {"placed": 0.02, "unshipped": 0.05})


# ------------------------------------------------------------ shifts

@settings(max_examples=40, deadline=None)
@given(req=st.lists(st.integers(0, 12), min_size=4, max_size=20),
       lengths=st.sampled_from([[1.0], [2.0], [1.0, 2.0], [2.0, 4.0]]),
       breaks=st.integers(0, 2))
def test_shifts_cover_every_interval(req: list[int], lengths: list[float], breaks: int) -> None:
    if max(lengths) * 2 > len(req):
        lengths = [0.5]
    shifts = schedule(req, interval_min=30, lengths_h=lengths, breaks=breaks, break_min=15)
    cover = coverage(shifts, len(req), interval_min=30, breaks=breaks, break_min=15)
    assert all(c >= r - 1e-6 for c, r in zip(cover, req, strict=True))


def test_shifts_are_the_fewest_agent_hours() -> None:
    # 8 h of 30-min intervals needing 2, and 4 in the middle 4 h: 24
    # agent-hours (the area under the requirement), not 32 (four 8-hour shifts)
    req = [2] * 4 + [4] * 8 + [2] * 4
    shifts = schedule(req, interval_min=30, lengths_h=[4, 8])
    assert sum(s.count * s.length for s in shifts) / 2 == 24
    assert coverage(shifts, 16, interval_min=30, breaks=0, break_min=15) == req


def test_a_break_leaves_its_share_of_the_interval() -> None:
    cover = Shift(0, 8, 1).covers(breaks=1, break_min=15, interval_min=30)
    assert cover[4] == 0.5 and sum(cover.values()) == 7.5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=24))
def test_staffing_groups_put_the_planned_agents_on_line(staff: list[int]) -> None:
    groups = _groups_for(staff, "", AgentProfile(), 0.5, "p-")
    on = [0] * len(staff)
    for g in groups:
        a, b = g["shift"]
        for i in range(round(a * 2), round(b * 2)):
            on[i] += g["count"]
    assert on == staff


# ------------------------------------------------------------ the command

@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan")
    assert main(["plan", "--csv", str(EXAMPLES / "forecast.csv"), "--orders",
                 str(EXAMPLES / "orders.csv"), "--contact", "placed=0.002", "--contact",
                 "unshipped=0.01", "--shifts", "3,6", "--breaks", "1", "--shrinkage", "0.2",
                 "--out", str(out), "--quiet"]) == 0
    return out


def test_plan_writes_a_csv_whose_shifts_meet_the_targets(planned: Path) -> None:
    with open(planned / "plan.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    for r in rows:
        assert int(r["on_line"]) >= int(r["erlang_agents"])
        # each skill's agents are rounded up on their own
        assert int(r["scheduled"]) >= math.ceil(int(r["on_line"]) / 0.8 - 1e-9)
        assert float(r["shift_on_line"]) >= int(r["scheduled"]) - 1e-6
        assert r["result"] in ("meets", "noise"), r


def test_the_plan_scenario_load_tests_as_written(planned: Path, tmp_path: Path) -> None:
    """routeq simulate on plan-scenario.toml gives the plan's own last check."""
    assert main(["simulate", "--scenario", str(planned / "plan-scenario.toml"), "--seed", "1",
                 "--out", str(tmp_path), "--quiet"]) == 0
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())["overall"]
    with open(planned / "plan.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    html = (planned / "plan.html").read_text()
    m = re.search(r"the shifts as written: service level ([\d.]+)%, abandonment ([\d.]+)% "
                  r"over ([\d,]+) chats", html)
    assert m is not None
    assert summary["human"] == int(m.group(3).replace(",", ""))
    assert round(summary["service_level"] * 100, 1) == float(m.group(1))
    assert summary["service_level"] >= 0.8 and summary["abandonment_rate"] <= 0.05
    assert len(rows) == 12
    groups = (planned / "shifts.toml").read_text()
    assert "[[queue.groups]]" in groups and "breaks = 1" in groups


@pytest.mark.parametrize("argv,message", [
    (["--csv", "missing.csv"], "no such file"),
    (["--csv", "EX/forecast.csv", "--service-level", "1.5"], "--service-level 1.5"),
    (["--csv", "EX/forecast.csv", "--max-abandonment", "0"], "--max-abandonment 0"),
    (["--csv", "EX/forecast.csv", "--shifts", "0"], "--shifts"),
    (["--csv", "EX/forecast.csv", "--orders", "EX/orders.csv"], "no contact probability"),
    (["--csv", "EX/forecast.csv", "--scenario", "demo"], "give one forecast"),
    ([], "no forecast"),
])
def test_bad_input_gets_a_clear_error(argv: list[str], message: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.replace("EX", str(EXAMPLES)) for a in argv]
    assert main(["plan", *argv, "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("routeq plan: ") and message in err, err


def test_plan_for_a_scenario_replaces_its_staffing(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "--scenario", "demo", "--param", "hours=2.0", "--shifts", "1,2",
                 "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert code in (0, 1)
    assert "the scenario's own staffing" in text
    sc = (tmp_path / "plan-scenario.toml").read_text()
    assert "[[tenants.agents]]" in sc and 'prefix = "s' in sc


def test_report_renders_in_headless_chromium(planned: Path) -> None:
    page = planned / "plan.html"
    text = page.read_text()
    assert "<script" not in text and not re.search(r'(src|href)\s*=\s*"(https?:)?//', text)
    dom = chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout.decode()
    plots = re.findall(r'<svg class="plot"[^>]*aria-label="([^"]+)"', html)
    assert len(plots) == 4, plots
    for title in ("Agents per interval", "Forecast contacts", "Service level per interval",
                  "Abandonment per interval"):
        assert any(title in p for p in plots), title
    assert html.count('class="series" data-name="scheduled (with shrinkage)"') == 1
    assert html.count("<tr") >= 13


# ------------------------------------------------------------ review findings

QUIET_MORNING = ("traffic.curve=[0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.6, 0.0, 0.0, 1.1, 1.2,"
                 " 1.2, 1.1, 1.0, 1.0, 1.0, 1.1, 1.2, 1.3, 1.2, 1.0, 0.7, 0.4]")


def test_a_scenario_forecast_runs_from_the_scenario_start_to_its_end() -> None:
    """No chats in the first hour (08:00 local) still puts slot 0 at 08:00,
    and chats escalated after the end add no interval."""
    from engine import parse_rules
    from simulators.forecast import from_scenario
    from simulators.scenario import load_scenario, resolve_rules_data, start_ms

    sc = load_scenario("demo", ["hours=2.0", QUIET_MORNING])
    fc = from_scenario(sc, parse_rules(resolve_rules_data(sc, None, None)), tenant="shop")
    assert fc.start_ms == start_ms(sc)[0] and fc.slots == 4
    assert [iv.chats for iv in fc.intervals[:2]] == [0, 0] and fc.intervals[2].chats > 0
    assert fc.label(0) == "06-03 08:00"


def test_a_scenario_plan_puts_agents_where_the_chats_are(tmp_path: Path) -> None:
    assert main(["plan", "--scenario", "demo", "--param", "hours=2.0", "--param", QUIET_MORNING,
                 "--shifts", "1", "--out", str(tmp_path), "--quiet"]) in (0, 1)
    with open(tmp_path / "plan.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["interval"] for r in rows] == ["06-03 08:00", "06-03 08:30", "06-03 09:00",
                                             "06-03 09:30"]
    assert [int(r["on_line"]) for r in rows[:2]] == [0, 0] and int(rows[2]["on_line"]) > 0
    assert float(rows[2]["shift_on_line"]) > 0 and rows[2]["service_level"] != ""


def test_within_s_is_the_answer_time_the_simulation_counts() -> None:
    from engine import parse_rules
    from simulators.scenario import load_scenario, resolve_rules_data
    from simulators.simulation import Simulation

    sc = load_scenario("erlang_a", ["hours=2.0", "queue.agents=12"])
    rules = parse_rules(resolve_rules_data(sc, None, None))
    figures = []
    for sl_s in (20.0, 180.0):
        sim = Simulation(sc, rules, seed=1, sl_s=sl_s)
        summary = sim.summary(sim.run())
        figures.append((summary["overall"]["sl_s"], summary["overall"]["service_level"]))
    assert figures[0][0] == 20.0 and figures[1][0] == 180.0
    assert figures[1][1] > figures[0][1]


def test_growth_scales_the_scenario_in_the_forecast_and_in_the_check(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--scenario", "demo", "--param", "hours=1.0", "--growth", "3",
                 "--shifts", "1", "--out", str(tmp_path), "--rounds", "1"]) in (0, 1)
    out = capsys.readouterr().out
    forecast = int(re.search(r"([\d,]+) chats\n", out).group(1).replace(",", ""))  # type: ignore[union-attr]
    checked = int(re.search(r"Erlang agents simulated: .* over ([\d,]+) chats",  # type: ignore[union-attr]
                            out).group(1).replace(",", ""))
    assert "visitors x 3" in out
    assert abs(checked - forecast) <= 0.1 * forecast


def test_a_gap_in_the_csv_is_an_interval_without_chats(tmp_path: Path) -> None:
    f = tmp_path / "gap.csv"
    f.write_text("start,chats,handle_s,patience_s\n" + "".join(
        f"2024-11-10T{h}:00+08:00,80,180,120\n" for h in ("20:00", "20:30", "21:30", "22:00")))
    fc = from_csv(str(f))
    assert [iv.chats for iv in fc.intervals] == [80, 80, 0, 80, 80]
    assert main(["plan", "--csv", str(f), "--shifts", "1", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 0
    with open(tmp_path / "o" / "plan.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[2]["on_line"] == "0" and rows[2]["result"] == "meets"


def test_a_low_occupancy_target_is_met_with_enough_agents() -> None:
    need = size(Interval(0, 2000.0, 300.0, 0.0), Targets(max_occupancy=0.5))
    assert need.occupancy <= 0.5


@pytest.mark.parametrize("argv,message", [
    (["--csv", "EX/forecast.csv", "--min-agents", "-5"], "--min-agents -5"),
    (["--orders", "EX/orders.csv", "--contact", "placed=0.1", "--contact", "unshipped=0.1",
      "--handle-s", "0"], "--handle-s 0"),
    (["--csv", "EX/forecast.csv", "--growth", "nan"], "--growth nan"),
    (["--csv", "EX/forecast.csv", "--breaks", "-1"], "--breaks -1"),
    (["--csv", "EX/forecast.csv", "--start-every-min", "45"], "--start-every-min 45"),
    (["--scenario", "marketplace", "--tenant", "m01"], "generated merchants"),
    (["--scenario", "marketplace", "--param", "hours=0.5"], "no chat of tenant platform"),
])
def test_more_bad_input_gets_a_clear_error(argv: list[str], message: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.replace("EX", str(EXAMPLES)) for a in argv]
    assert main(["plan", *argv, "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("routeq plan: ") and message in err, err


def test_own_staffing_counts_only_hours_inside_the_horizon() -> None:
    from simulators.plan import scenario_agent_hours
    from simulators.scenario import load_scenario

    three = scenario_agent_hours(load_scenario("double11", ["hours=3.0"]), "bigshop")
    assert three == 15 * 3 + 0  # the day agents alone are on in the first three hours


def test_shifts_start_only_inside_the_start_window(tmp_path: Path) -> None:
    assert main(["plan", "--csv", str(EXAMPLES / "forecast.csv"), "--shifts", "3,6",
                 "--start-window", "20:00-21:00", "--out", str(tmp_path), "--quiet"]) == 0
    groups = tomllib.loads((tmp_path / "shifts.toml").read_text())["queue"]["groups"]
    assert groups and all(g["shift"][0] in (0.0, 0.5, 1.0) for g in groups)
    # a window whose shifts cannot reach the end of the evening is named
    assert main(["plan", "--csv", str(EXAMPLES / "forecast.csv"), "--shifts", "3",
                 "--start-window", "20:00-20:30", "--out", str(tmp_path), "--quiet"]) == 2
