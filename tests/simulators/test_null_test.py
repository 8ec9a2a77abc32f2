"""The null test: a history re-simulated under the rules it was recorded with
gives back its recorded figures, also where it holds what chat servers do and
the closed-loop simulator never did (agents ending waiting chats, a visitor
leaving mid-chat or with two chats open, chats still open at the end)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Rules, parse_rules
from simulators.candidates import trace_rules
from simulators.scenario import bundled
from simulators.whatif import TraceError, read_trace, run_candidate
from simulators.whatif_metrics import value as get
from streams.cli import main
from streams.embedded.rules_file import load_rules
from tests.http.server import ADMIN, Server
from tests.simulators.conftest import simulate
from tests.simulators.history import History
from tests.strategies import rules as rules_strategy
from tests.strategies import streams

#: the figures the null test compares (dotted paths in a summary)
FIGURES = ("overall.human", "overall.assigned", "overall.abandoned", "overall.service_level",
           "overall.abandonment_rate", "overall.occupancy", "overall.wait_mean_s",
           "overall.open", "overall.chat_orders", "whatif.high_value.abandonment_rate")


def chat_server_history() -> History:
    h = History()
    h("agent.state", 0, agent="a1", status="online", capacity=1)
    h("agent.state", 0, agent="a2", status="online", capacity=1)
    for i, page in enumerate(["checkout", "cart", "home", "detail", "home", "cart"], 1):
        h("visitor.arrived", i, visitor=f"v{i}", channel="web",
          customer={"member": True, "tier": 4} if i == 5 else {})
        h("page.viewed", i + 0.5, visitor=f"v{i}", page=page)
    h("chat.requested", 10, visitor="v1", chat="c1")
    h("chat.requested", 11, visitor="v2", chat="c2")
    h("chat.requested", 12, visitor="v3", chat="c3")
    h("chat.ended", 40, chat="c3", resolved=False)      # an agent closes a waiting chat
    h("chat.requested", 50, visitor="v4", chat="c4")
    h("visitor.left", 100, visitor="v1")                  # leaves while served
    h("chat.requested", 110, visitor="v5", chat="c5")
    h("chat.requested", 111, visitor="v5", chat="c6")     # a second tab
    h("visitor.left", 130, visitor="v5")                  # both chats end
    h("chat.requested", 250, visitor="v6", chat="c7")     # still waiting at the end
    h("page.viewed", 300, visitor="v6", page="cart")      # (c2, c4 still held)
    return h


def offers_history() -> History:
    """Offers confirmed: a decline, a timeout, a visitor leaving during an offer."""
    h = History()
    h("agent.state", 0, agent="a1", status="online", capacity=2)
    for i in range(1, 5):
        h("visitor.arrived", i, visitor=f"v{i}", channel="app")
        h("page.viewed", i, visitor=f"v{i}", page="cart")
    h("chat.requested", 10, visitor="v1", chat="c1")      # offered to a1
    h("chat.requested", 12, visitor="v2", chat="c2")      # offered to a1
    h("chat.declined", 13, chat="c1", agent="a1")
    h("chat.accepted", 15, chat="c2", agent="a1")
    h("agent.state", 20, agent="a2", status="online", capacity=1)  # c1 offered, no answer
    h("clock", 31)                                        # the offer times out
    h("visitor.left", 50, visitor="v2")                   # leaves while served
    h("visitor.left", 60, visitor="v1")                   # answered once, then gave up
    h("chat.requested", 70, visitor="v3", chat="c3")      # offered to a1 ...
    h("visitor.left", 72, visitor="v3")                   # ... who never saw it
    h("chat.requested", 80, visitor="v4", chat="c4")
    h("chat.accepted", 82, chat="c4", agent="a1")
    h("page.viewed", 200, visitor="v4", page="order")     # c4 still held at the end
    return h


def server_clock_history() -> History:
    """Timers fired by a server's clock (routeq serve --clock-ms), after their
    deadline: an offer times out at the tick, not at the deadline."""
    h = History()
    h("agent.state", 0, agent="a1", status="online", capacity=1)
    for i in range(1, 4):
        h("visitor.arrived", i, visitor=f"v{i}", channel="web")
        h("page.viewed", i, visitor=f"v{i}", page="checkout")
    h("chat.requested", 10, visitor="v1", chat="c1")      # offered to a1, no answer
    h("agent.state", 20.3, agent="a2", status="online", capacity=1)  # c1 is still a1's
    h("clock", 20.7, id="serve-clock-20700")             # the offer timed out at 20
    h("chat.accepted", 27, chat="c1", agent="a2")         # offered to a2 at 20.7
    h("chat.requested", 30, visitor="v2", chat="c2")      # offered to a1
    h("chat.accepted", 31, chat="c2", agent="a1")
    h("chat.requested", 33, visitor="v3", chat="c3")      # waits (sticky bounds aside)
    h("visitor.left", 50, visitor="v2")
    h("clock", 50.9, id="serve-clock-50900")             # nothing due: a tick does nothing
    h("chat.ended", 60, chat="c1")
    h("page.viewed", 80, visitor="v3", page="order")
    return h


def cut_service_history() -> History:
    """A chat whose agent goes offline in the middle of it (the service is cut,
    not ended), then another agent finishes it; an offer its agent never saw
    because they went away."""
    h = History()
    h("agent.state", 0, agent="a1", status="online", capacity=1)
    for i in range(1, 3):
        h("visitor.arrived", i, visitor=f"v{i}", channel="app")
        h("page.viewed", i, visitor=f"v{i}", page="after_sales")
    h("chat.requested", 10, visitor="v1", chat="c1")      # offered to a1
    h("chat.accepted", 12, chat="c1", agent="a1")
    h("agent.state", 40, agent="a2", status="online", capacity=1)
    h("chat.requested", 41, visitor="v2", chat="c2")      # offered to a2 ...
    h("agent.state", 43, agent="a2", status="away")       # ... who goes away first
    h("agent.state", 50, agent="a1", status="offline")    # c1 cut after 38 s
    h("agent.state", 55, agent="a2", status="online")     # c1 and c2 offered again
    h("chat.accepted", 57, chat="c1", agent="a2")
    h("agent.state", 58, agent="a3", status="online", capacity=1)
    h("chat.declined", 59, chat="c2", agent="a3")
    h("chat.ended", 80, chat="c1")                         # 23 s with a2
    h("chat.accepted", 82, chat="c2", agent="a2")
    h("chat.ended", 200, chat="c2")
    h("page.viewed", 260, visitor="v1", page="home")
    return h


HISTORIES = {
    "cut_service": (cut_service_history, {"assignment": {"acceptance_required": True,
                                                          "offer_timeout_s": 60.0}}),
    "server_clock": (server_clock_history, {"assignment": {"acceptance_required": True,
                                                            "offer_timeout_s": 10.0}}),
    "chat_server": (chat_server_history, {}),
    "offers": (offers_history, {"assignment": {"acceptance_required": True,
                                                "offer_timeout_s": 10.0}}),
}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(HISTORIES))
def test_a_chat_server_history_reproduces_under_its_own_rules(tmp_path: Path, name: str,
                                                              seed: int) -> None:
    history, data = HISTORIES[name]
    rules = parse_rules(data)
    trace = read_trace(str(history().write(tmp_path / "h.jsonl")), rules)
    got = run_candidate(trace, rules, seed)
    for path in FIGURES:
        assert get(got, path) == get(trace.recorded, path), path


#: what chat servers do, as the simulator can do it (see the README's simulate)
CHAT_SERVER = ("--param", "chat.agent_closes_waiting=0.15", "--param", "chat.left_mid_chat=0.1",
               "--param", "drain=false")


@pytest.mark.parametrize("scenario,hours,extra", [
    *((name, 0.5 if name in ("double11", "marketplace") else 1.0, ()) for name in bundled()),
    ("demo", 1.0, CHAT_SERVER),
    ("marketplace", 0.5, CHAT_SERVER),
])
def test_every_bundled_scenario_reproduces_exactly(tmp_path: Path, scenario: str, hours: float,
                                                    extra: tuple[str, ...]) -> None:
    d = simulate(tmp_path / "t", scenario, hours, 3, *extra)
    rules, _ = trace_rules(str(d), None)
    trace = read_trace(str(d), rules, str(tmp_path))
    if extra:
        assert trace.recorded["overall"]["open"] > 0  # the export stopped mid-day
    for seed in (1, 2):
        assert run_candidate(trace, rules, seed) == trace.recorded


def _post_all(server: Server, events: Path, chunk: int = 400) -> int:
    lines = [orjson.loads(x) for x in events.read_bytes().splitlines() if x.strip()]
    for i in range(0, len(lines), chunk):
        status, ans = server.post(ADMIN, lines[i:i + chunk])
        assert status == 200 and ans["accepted"] == len(lines[i:i + chunk]), ans
    return len(lines)


def test_a_history_recorded_by_serve_passes_from_its_state_dir(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A chat server's history through ``routeq serve``, compared straight from
    the state dir: the null test passes, the recorded figures are those the
    simulation that sent it counted, and serve's own live figures agree with
    them (each chat once: CONTRACT.md section 8)."""
    d = simulate(tmp_path / "sent", "demo", 0.75, 5, *CHAT_SERVER)
    with Server(tmp_path, "--rules", str(d / "rules.toml")) as server:
        _post_all(server, d / "events.jsonl")
        status, overview = server.get("/v1/overview", ADMIN)
        assert status == 200
    live = next(t for t in overview["tenants"] if t["tenant"] == "shop")
    out = tmp_path / "cmp.json"
    rc = main(["compare", str(tmp_path / "state"), "--strict", "--policy", "least_loaded",
               "--json", str(out), "--jobs", "1"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "null test passed" in printed
    doc = orjson.loads(out.read_bytes())
    assert doc["null_test"]["passed"]
    assert doc["null_test"]["holds"]["chats open at the end"] > 0
    sent = orjson.loads((d / "summary.json").read_bytes())["overall"]
    rec = doc["recorded"]["overall"]
    for key in ("human", "assigned", "abandoned", "left_after_answer", "service_level",
                "abandonment_rate", "open", "chat_revenue"):
        assert rec[key] == sent[key], key
    # serve counts answered and abandoned chats as they end: the same chats
    answered_or_not = rec["assigned"] + rec["abandoned"]
    assert live["service_level"] == pytest.approx(
        rec["service_level"] * rec["human"] / answered_or_not)
    assert live["abandonment"] == pytest.approx(rec["abandoned"] / answered_or_not)


def test_each_part_of_a_history_re_simulates_under_the_rules_deployed_then(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``routeq serve`` restarted with other rules (a deployment in the middle):
    compare reads each part under the rules in force then, and the null test
    passes; one --trace-rules for the whole history does not explain the
    outputs serve recorded, and the null test says so. (The second part's chat
    ends were decided under the first rules; read under the second, some end
    chats that still wait, which the re-simulation reproduces as such.)"""
    d = simulate(tmp_path / "day", "flash_sale", 1.0, 7)  # queues; no offers to confirm
    lines = [orjson.loads(x) for x in (d / "events.jsonl").read_bytes().splitlines()]
    half = len(lines) // 2
    fifo = tmp_path / "fifo.toml"
    fifo.write_text((d / "rules.toml").read_text().replace(
        'policy = "priority"', 'policy = "fifo_round_robin"'))
    assert 'policy = "fifo_round_robin"' in fifo.read_text()
    for part, rules in ((lines[:half], d / "rules.toml"), (lines[half:], fifo)):
        (tmp_path / "part.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in part))
        with Server(tmp_path, "--rules", str(rules)) as server:
            _post_all(server, tmp_path / "part.jsonl")
    state = str(tmp_path / "state")
    out = tmp_path / "cmp.json"
    assert main(["compare", state, "--strict", "--json", str(out), "--quiet",
                 "--policy", "least_loaded", "--jobs", "1"]) == 0
    doc = orjson.loads(out.read_bytes())
    null = doc["null_test"]
    assert null["passed"] and len(doc["deployments"]) == 1
    assert null["holds"]["rules deployments"] == 1
    assert null["outputs_checked"] == len(lines) and null["outputs_differ"] == 0
    # the whole history under the first rules: not what serve decided
    rc = main(["compare", state, "--strict", "--trace-rules", str(d / "rules.toml"),
               "--policy", "least_loaded", "--jobs", "1", "--null-seeds", "2"])
    printed = capsys.readouterr().out
    assert rc == 1 and "null test FAILED" in printed, printed
    assert "ran under other rules than the ones given" in printed


HERE = Path(__file__).with_name("histories")
#: hand-written histories (tests/simulators/histories/), the rules each ran under
WRITTEN = {
    "tie": None,        # events at the same time as what chats do (whole seconds)
    "ooo": None,        # a late event: applied at its tenant's time
    "dup": None,        # a chat.ended reusing the request's id: ignored, as the engine does
    "dupord": None,     # an order delivered twice: counted once
    "req2a": None,      # a request sent again while the chat is open
    "stale": "acc",     # an accept from an agent whose offer timed out: changes nothing
    "accnr": None,      # accepts sent though acceptance is not required
    "combo": "combo",   # a bot chat, a held and a waiting one when the visitor leaves
    "late_tick": "acc",  # an offer timed out at the next event, a clock tick after it
    "reused_id": None,  # a chat id requested again after its chat ended: a new chat
    "transfer": None,   # to an agent, to a skill no agent has, to another agent's skill
    "transfer_acc": "acc",  # the same with offers accepted
    "giveback": None,   # chats declined by their agent after accepting them
    "reused_bot": "bot",  # a bot chat escalated, ended and requested again, all at once
    "late_tenants": None,  # one tenant's events late behind its clock, another's on time
    "robot_only": "robot_only",  # an escalation the engine ignores (robot_only)
    "tenant_ahead": None,  # a tenant's clock ahead of another's still sending at its time
    "left_two": None,   # a visitor leaving two chats, then asking again with one's id
    "behind_other": None,  # a chat's end before its id is reused; another tenant behind
    "wrap_behind": None,  # a wrap-up ending in a tenant's future, another tenant ahead
    "close_order": None,  # a chat ended, then its visitor left another, at one time
    "platform_ahead": "platform",  # an overflow into the platform, another tenant ahead
    "server_clock_behind": None,  # a clock for every tenant stamped behind their times
    "server_clock_skew": None,  # the same, by a skewed server clock
    "tie_held": None,   # a tie of one tenant while another's events are held back
    "tie_two_tenants": None,  # two tenants' ties at the same time, interleaved
    "overflow_tie": "ovf",  # an overflow at a tie with the platform's own request
    "overflow_end_tie": "ovf10",  # the platform's end at a merchant's event's time
    "overflow_merchant_tie": "ovf10",  # the same seen from the merchant's side
    "left_order_held": None,  # an order after a chat its visitor's leaving closed
    "grace_cut": "grace",  # a requeue after the offline grace, at the next event
    "own_ids": None,    # the history's ids are those the re-simulation gives its own events
    # a chat id ended and requested again twice, late behind its tenant's
    # clock, another tenant's event at another time between the two ties
    "tie_other_time": "ovf10",
    # an event of the platform tenant, behind another tenant's clock, where
    # chats never overflow: the platform is a tenant like any other
    "platform_no_overflow": None,
    # a tie of one tenant's time, another tenant's event ahead of it between
    # the escalation that goes first and the capacity cut that follows
    "tie_behind_again": "ovf10",
}


@pytest.mark.parametrize("name", sorted(WRITTEN))
def test_a_written_history_reproduces_under_its_own_rules(tmp_path: Path, name: str) -> None:
    rules_name = WRITTEN[name]
    rules = (load_rules(str(HERE / f"{rules_name}.toml")) if rules_name
             else parse_rules({}))
    trace = read_trace(str(HERE / f"{name}.jsonl"), rules, str(tmp_path))
    for seed in (1, 2):
        got = run_candidate(trace, rules, seed)
        for path in FIGURES:
            assert get(got, path) == get(trace.recorded, path), path
    if name == "dupord":
        assert get(trace.recorded, "overall.orders") == 1
        assert trace.seen["duplicate events (ignored, as the engine does)"] == 1
    if name == "accnr":
        assert "chats ended while offered" not in trace.seen


def test_the_events_logged_before_a_deployment_run_under_the_rules_before_it(
        tmp_path: Path) -> None:
    """A chat end logged just before other rules were deployed is re-simulated
    under the old rules, where the history had it."""
    state = tmp_path / "state"
    for part in ("deploy_1", "deploy_2"):
        assert main(["run", str(HERE / f"{part}.jsonl"), "--state", str(state), "--rules",
                     str(HERE / f"{part}.toml"), "--out", str(tmp_path / "o.jsonl")]) == 0
    out = tmp_path / "cmp.json"
    assert main(["compare", str(state), "--strict", "--json", str(out), "--quiet",
                 "--jobs", "1", "--policy", "priority"]) == 0
    assert orjson.loads(out.read_bytes())["null_test"]["passed"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(events=streams(max_size=40), rules=rules_strategy(), seed=st.integers(1, 3))
def test_any_history_reproduces_under_its_own_rules(tmp_path: Path, events: list[Any],
                                                     rules: Rules, seed: int) -> None:
    """Any stream a chat server may send (late, duplicate and stray events, answers
    to no offer, ends of ended chats, ids requested again, several tenants, any
    rules) re-simulates exactly under its own rules, where its timers fired on
    time or at the next event. (A server's clock for every tenant, coming late,
    is modelled by a lag: close, not exact; the benchmark's live history.)"""
    events = [e for e in events if not (e["type"] == "clock" and "tenant" not in e)]
    path = tmp_path / f"h{seed}-{len(events)}.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    try:
        trace = read_trace(str(path), rules, str(tmp_path), simulated=False)
    except TraceError:
        return  # no valid event, or no chat: nothing to re-simulate
    try:
        got = run_candidate(trace, rules, seed)
        for figure in FIGURES:
            assert get(got, figure) == get(trace.recorded, figure), figure
    finally:
        Path(trace.exo).unlink(missing_ok=True)
