"""The simulator's mobile agents, missed offers and business hours (issue 18),
checked on what it writes: its input log and the engine's outputs."""

from __future__ import annotations

import io
from typing import Any

import orjson

from engine import parse_rules
from simulators.scenario import load_scenario
from simulators.simulation import Simulation
from tests.routeq import ROOT

MOBILE = str(ROOT / "examples" / "mobile_agents.toml")


def simulate(params: list[str], rules: dict[str, Any] | None = None, hours: float = 1.0,
             seed: int = 3) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    sc = load_scenario(MOBILE, params)
    data = dict(sc["rules"])
    for table, keys in (rules or {}).items():
        data[table] = {**data.get(table, {}), **keys}
    sim = Simulation(sc, parse_rules(data), seed=seed, hours=hours)
    events, outputs = io.BytesIO(), io.BytesIO()
    sim.run(events_out=events, outputs_out=outputs)
    return ([orjson.loads(x) for x in events.getvalue().splitlines()],
            [orjson.loads(x) for x in outputs.getvalue().splitlines()],
            sim.collector.summary())


def presence(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(agent, status, ts) of the presence-only agent.state events (the drops)."""
    return [(e["agent"], e["status"], e["ts"]) for e in events
            if e["type"] == "agent.state" and "capacity" not in e]


def test_a_reported_drop_is_offline_then_online_again() -> None:
    events, _, _ = simulate(["tenants.0.agents.0.flap_reported=1.0",
                             "tenants.0.agents.0.flap_per_h=12.0", "chat.miss=0.0"])
    drops = presence(events)
    assert drops, "agents on shift for an hour at 12 drops an hour: some drops"
    last: dict[str, tuple[str, int]] = {}
    for agent, status, ts in drops:
        if status == "online":
            assert last[agent][0] == "offline" and ts >= last[agent][1]
        last[agent] = (status, ts)


def test_offers_missed_in_a_row_set_agents_away_and_they_come_back() -> None:
    _, outputs, _ = simulate(["chat.miss=1.0", "chat.back_after_away_s=30.0"],
                             rules={"assignment": {"max_missed_offers": 2}})
    away = [o for o in outputs if o["type"] == "agent.away"]
    assert away and all(o["why"] == "missed_offers" for o in away)
    # an agent set away comes back: they get offers again afterwards
    first = away[0]
    later = [o for o in outputs if o["type"] == "chat.assigned" and o["agent"] == first["agent"]
             and o["ts"] > first["ts"]]
    assert later


def test_without_presence_rules_the_same_traffic_requeues_more() -> None:
    """The grace keeps chats with agents whose app came back within it."""
    params = ["tenants.0.agents.0.flap_reported=1.0", "tenants.0.agents.1.flap_reported=1.0"]
    _, plain, _ = simulate(params, hours=2.0)
    _, grace, _ = simulate(params, rules={"assignment": {"offline_grace_s": 60.0}}, hours=2.0)

    def offline_requeues(outs: list[dict[str, Any]]) -> int:
        return sum(1 for o in outs if o["type"] == "chat.requeued"
                   and o["why"] == "agent_offline")
    assert offline_requeues(grace) < offline_requeues(plain)


def test_a_closed_tenant_closes_chats_and_counts_them_apart() -> None:
    closed = {"tenants": {"shop": {"after_hours": "closed", "week": {
        d: [] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}}}
    _, outputs, summary = simulate([], rules={"hours": closed})
    assert {o["type"] for o in outputs} >= {"chat.closed"}
    assert not any(o["type"] in ("chat.assigned", "chat.queued") for o in outputs)
    overall = summary["overall"]
    assert overall["outcomes"]["closed"] == overall["chats"] > 0
    assert overall["outcomes"]["abandoned"] == 0


def test_occupancy_counts_the_wrap_up_and_the_units() -> None:
    """One agent, capacity 2, online 40 s; a chat of 2 units held 10 s, then
    10 s of wrap-up: busy 2 units x 20 s of 2 x 40 s = 0.5."""
    from simulators.metrics import Collector
    t0 = 1_790_000_000_000
    col = Collector(wrap_up_ms=10_000)
    inputs = [
        {"type": "agent.state", "ts": t0, "tenant": "s", "agent": "a", "status": "online",
         "capacity": 2},
        {"type": "chat.requested", "ts": t0, "tenant": "s", "visitor": "v", "chat": "c"},
        {"type": "chat.ended", "ts": t0 + 10_000, "tenant": "s", "chat": "c"},
        {"type": "clock", "ts": t0 + 40_000, "tenant": "s"},
    ]
    assigned = {"type": "chat.assigned", "ts": t0, "tenant": "s", "chat": "c", "visitor": "v",
                "agent": "a", "wait_ms": 0, "units": 2}
    for ev in inputs:
        col.event(ev)
        if ev["type"] == "chat.requested":
            col.output(assigned)
    assert col.summary()["overall"]["occupancy"] == 0.5
    plain = Collector()
    for ev in inputs:
        plain.event(ev)
        if ev["type"] == "chat.requested":
            plain.output(assigned)
    assert plain.summary()["overall"]["occupancy"] == 0.25  # no wrap-up: 2 x 10 s of 80


def test_wrap_ups_and_graces_end_on_time_and_the_log_never_goes_back() -> None:
    """The simulator sends a clock when a wrap-up or a grace ends, so the
    engine's timer fires then, not at the tenant's next event (whose
    reactions would then be scheduled in the past)."""
    events, outputs, _ = simulate(["tenants.0.agents.0.flap_reported=1.0"],
                                  rules={"assignment": {"wrap_up_s": 30.0,
                                                        "offline_grace_s": 20.0}}, hours=2.0)
    ts = [e["ts"] for e in events]
    assert ts == sorted(ts)
    clocks = {e["ts"] for e in events if e["type"] == "clock"}
    timer_outputs = [o for o in outputs if o["cause"] == "timer"
                     and o["type"] in ("chat.assigned", "chat.requeued")]
    assert timer_outputs and any(o["ts"] in clocks for o in timer_outputs)
