"""Properties of closed-loop simulations over random scenarios (Hypothesis).

- Every chat ends exactly one way: served (``chat.ended`` while an agent held
  it), abandoned (``chat.abandoned``) or with the bot (``chat.ended`` while the
  bot had it); none is left open once the simulation has drained, the engine
  holds no chat, and the metrics module counts the same outcomes.
- The log replays: decoding events.jsonl line by line and applying it to a
  fresh engine gives outputs.jsonl byte for byte.
- Little's law on the queue: the time integral of the number of chats waiting
  in the engine's queues (read from the engine after every event) equals the
  sum of the waits the outputs report, i.e. L = lambda W.
"""

from __future__ import annotations

import io
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import POLICIES, Engine, parse_rules
from schemas.events import decode
from schemas.outputs import encode_lines
from simulators.scenario import load_scenario
from simulators.simulation import Simulation

SKILLS = ("presales", "sales", "after_sales", "billing")
MODES = ("human_only", "human_first", "robot_first", "robot_only")
PAGES = ("home", "list", "search", "detail", "cart", "checkout", "order", "after_sales")


@st.composite
def agent_groups(draw: st.DrawFn, hours: float) -> list[dict[str, Any]]:
    groups = []
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.sampled_from([0.0, 0.0, hours / 3]))
        end = draw(st.sampled_from([hours, hours, 2 * hours / 3]))
        groups.append({
            "count": draw(st.integers(1, 4)),
            "capacity": draw(st.integers(1, 4)),
            "skills": draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5),
                                           max_size=3)),
            "shift": [start, end],
            "breaks": draw(st.integers(0, 2)),
            "break_min": draw(st.sampled_from([2.0, 10.0])),
            "exclusive": draw(st.booleans()),
        })
    return groups


@st.composite
def shop_scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    """A demo-like shop with random traffic, staffing, modes, policy and rules."""
    sc = load_scenario("demo")
    hours = draw(st.sampled_from([0.25, 0.5, 0.75]))
    sc["hours"] = hours
    sc["traffic"]["curve"] = [1.0] * 24
    sc["traffic"]["returning"] = draw(st.sampled_from([0.0, 0.3, 0.8]))
    sc["traffic"]["member"] = draw(st.sampled_from([0.0, 0.5, 1.0]))
    sc["traffic"]["exclusive"] = draw(st.sampled_from([0.0, 1.0]))
    help_ = draw(st.sampled_from([0.02, 0.1, 0.3]))
    sc["journey"]["help"] = {p: help_ * draw(st.sampled_from([0.2, 1.0])) for p in PAGES}
    chat = sc["chat"]
    chat["patience_s"] = draw(st.sampled_from([10.0, 60.0, 300.0]))
    chat["accept_s"] = draw(st.sampled_from([0.0, 3.0, 40.0]))
    chat["decline"] = draw(st.sampled_from([0.0, 0.2]))
    chat["handle_s"] = draw(st.sampled_from([30.0, 120.0, 600.0]))
    chat["bot_resolves"] = {"default": draw(st.sampled_from([0.0, 0.5, 1.0]))}
    rules: dict[str, Any] = {
        "policy": draw(st.sampled_from(sorted(POLICIES))),
        "assignment": {
            "acceptance_required": draw(st.booleans()),
            "offer_timeout_s": draw(st.sampled_from([5.0, 20.0])),
            "sticky_wait_s": draw(st.sampled_from([0.0, 30.0])),
            "exclusive_wait_s": draw(st.sampled_from([0.0, 60.0])),
            "skill_required": draw(st.booleans()),
            "away_requeues": draw(st.sampled_from(["unaccepted", "all", "none"])),
        },
        "modes": {"default": draw(st.sampled_from(MODES[:3])),
                  "pages": {"home": draw(st.sampled_from(MODES))}},
    }
    tenants = [{"name": "shop", "visitors_per_hour": draw(st.sampled_from([300, 1500])),
                "agents": draw(agent_groups(hours))}]
    if draw(st.booleans()):  # a marketplace: a second merchant and the platform
        tenants.append({"name": "m2", "visitors_per_hour": 400,
                        "agents": draw(agent_groups(hours))})
        tenants.append({"name": "platform", "visitors_per_hour": 0,
                        "agents": draw(agent_groups(hours))})
        rules["overflow"] = {"enabled": True, "after_s": draw(st.sampled_from([5.0, 30.0]))}
    sc["tenants"] = tenants
    sc["rules"] = rules
    return sc, draw(st.integers(0, 2**31))


def run(sc: dict[str, Any], seed: int, replay: bool = False,
        **kw: Any) -> tuple[Simulation, Any, list[Any], list[Any]]:
    ev, out = io.BytesIO(), io.BytesIO()
    rules = parse_rules(sc["rules"])
    sim = Simulation(sc, rules, seed=seed, **kw)
    stats = sim.run(ev, out)
    if replay:  # the log, decoded line by line as routeq run does, gives the same bytes
        engine = Engine(rules, track_changes=False)
        again = b"".join(encode_lines(engine.apply(decode(line), n))
                         for n, line in enumerate(ev.getvalue().splitlines()))
        assert again == out.getvalue()
    events = [orjson.loads(x) for x in ev.getvalue().splitlines()]
    outputs = [orjson.loads(x) for x in out.getvalue().splitlines()]
    return sim, stats, events, outputs


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shop_scenarios())
def test_every_chat_ends_exactly_one_way(case: tuple[dict[str, Any], int]) -> None:
    sc, seed = case
    sim, stats, events, outputs = run(sc, seed, replay=True)
    requested: dict[tuple[str, str], int] = {}
    endings: dict[tuple[str, str], list[str]] = {}
    holder: dict[tuple[str, str], str | None] = {}
    with_bot: set[tuple[str, str]] = set()
    answered: set[tuple[str, str]] = set()
    outs_by_offset: dict[int, list[Any]] = {}
    for o in outputs:
        outs_by_offset.setdefault(o["offset"], []).append(o)
    for offset, e in enumerate(events):
        if e["type"] == "chat.requested":
            key = (e["tenant"], e["chat"])
            assert key not in requested, "a chat id requested twice"
            requested[key] = offset
        elif e["type"] == "chat.ended":
            key = (e["tenant"], e["chat"])
            if holder.get(key) is not None:
                endings.setdefault(key, []).append("served")
            elif key in with_bot:
                endings.setdefault(key, []).append("bot")
            else:
                endings.setdefault(key, []).append("ended while waiting?")
            holder[key] = None
            with_bot.discard(key)
        for o in outs_by_offset.get(offset, ()):
            key = (o.get("origin") or o["tenant"], o["chat"])
            if o["type"] == "chat.assigned":
                assert holder.get(key) is None, "assigned while held"
                holder[key] = o["agent"]
                with_bot.discard(key)
            elif o["type"] == "chat.requeued":
                holder[key] = None
            elif o["type"] == "chat.to_bot":
                with_bot.add(key)
            elif o["type"] in ("chat.queued", "chat.overflowed"):
                with_bot.discard(key)
            elif o["type"] == "chat.abandoned":
                # a chat answered once and given up after a requeue counts once,
                # as answered (CONTRACT.md, section 8)
                endings.setdefault(key, []).append("served" if key in answered
                                                   else "abandoned")
            if o["type"] == "chat.assigned":
                answered.add(key)
    assert len(requested) == stats.chats
    for key in requested:
        assert len(endings.get(key, [])) == 1, (key, endings.get(key))
        assert endings[key][0] in ("served", "abandoned", "bot")
    assert set(endings) <= set(requested)
    assert all(not t.chats for t in sim.engine.tenants.values()), "the engine holds chats"
    summary = sim.collector.summary()["overall"]
    assert summary["open"] == 0
    counted = [x[0] for x in endings.values()]
    assert summary["outcomes"] == {k: counted.count(k) for k in ("served", "abandoned", "bot")}
    assert summary["chats"] == len(requested)


@st.composite
def queue_scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    c = draw(st.integers(1, 8))
    load = c * draw(st.sampled_from([0.3, 0.7, 0.95, 1.3]))
    patience = 0.0 if load < 0.9 * c and draw(st.booleans()) else draw(
        st.sampled_from([5.0, 30.0, 120.0]))
    sc = load_scenario("erlang_a", [
        f"queue.agents={c}", f"queue.offered_erlangs={load}",
        f"queue.handle_s={draw(st.sampled_from([5.0, 20.0, 60.0]))}",
        f"queue.patience_s={patience}", "queue.warmup_h=0.0",
        f"hours={draw(st.sampled_from([0.5, 1.0]))}",
        f'rules.policy="{draw(st.sampled_from(sorted(POLICIES)))}"',
    ])
    return sc, draw(st.integers(0, 2**31))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queue_scenarios())
def test_littles_law_on_the_queue(case: tuple[dict[str, Any], int]) -> None:
    sc, seed = case
    sim, stats, _, _ = run(sc, seed, track_queue=True)
    o = sim.collector.summary()["overall"]
    n = o["assigned"] + o["abandoned"]
    assert n == o["chats"] == stats.chats
    if n == 0:
        return
    span_s = (stats.drained_ms - stats.sim_start_ms) / 1000.0
    queue_len = sim.queue_area_ms / 1000.0 / span_s  # L, read from the engine
    arrival_rate = n / span_s  # lambda
    wait = o["wait_all_mean_s"]  # W, from the outputs (rounded to the ms)
    assert abs(queue_len - arrival_rate * wait) <= 0.01 * queue_len + arrival_rate * 0.0006
