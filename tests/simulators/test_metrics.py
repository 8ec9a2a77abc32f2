"""The metrics module on a small, hand-checked shop morning run through the engine."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from engine import Engine, parse_rules
from schemas.events import validate
from schemas.outputs import encode_lines
from simulators.metrics import Collector, collect, percentile, summarize_files, table
from simulators.rules_toml import rules_to_toml
from simulators.scenario import bundled, load_scenario
from tests.helpers import T0, EventBuilder


def s(x: float) -> int:
    return T0 + int(x * 1000)


def morning() -> list[dict]:
    b = EventBuilder()
    return [validate(e) for e in [
        b.agent("a1", capacity=1, skills={"sales": 3}, ts=s(0)),
        b.agent("a2", capacity=1, skills={"after_sales": 2}, ts=s(0)),
        b.arrive("v1", ts=s(5)), b.page("v1", "cart", ts=s(6)),
        b.request("v1", "c1", ts=s(10)),  # sales: a1 at once
        b.arrive("v2", ts=s(15)), b.page("v2", "checkout", ts=s(16)),
        b.request("v2", "c2", ts=s(20)),  # sales, a1 busy: a2 (no sales skill)
        b.arrive("v3", ts=s(25)), b.page("v3", "detail", ts=s(26)),
        b.request("v3", "c3", ts=s(30)),  # both busy: waits
        b.end("c1", ts=s(60)),  # a1 takes c3 after 30 s (presales: a skill miss)
        b.arrive("v4", ts=s(65)), b.page("v4", "home", ts=s(66)),
        b.request("v4", "c4", ts=s(70)),  # waits ...
        b.leave("v4", ts=s(100)),  # ... and leaves after 30 s
        b.order("v1", 100.0, ts=s(200)),  # after a chat: attributed
        b.arrive("v5", ts=s(205)),
        b.order("v5", 50.0, ts=s(210)),  # no chat: not attributed
        b.end("c2", ts=s(300)),
        b.end("c3", ts=s(400)),
        b.arrive("v1", ts=s(500)), b.page("v1", "cart", ts=s(505)),
        b.request("v1", "c5", ts=s(510)),  # returning: back to a1 (sticky)
        b.end("c5", ts=s(600)),
    ]]


def run_engine(events: list[dict]) -> list[dict]:
    engine = Engine(parse_rules({}), track_changes=False)
    out: list[dict] = []
    for offset, ev in enumerate(events):
        out.extend(engine.apply(ev, offset))
    return out


def test_counts_waits_rates_and_attribution() -> None:
    events = morning()
    outputs = run_engine(events)
    o = collect(events, outputs).summary()["overall"]
    assert (o["chats"], o["human"], o["assigned"], o["abandoned"], o["waited"]) == (5, 5, 4, 1, 2)
    assert o["outcomes"] == {"served": 4, "abandoned": 1, "bot": 0}
    assert o["open"] == 0
    assert o["p_wait"] == pytest.approx(0.4)
    assert o["wait_mean_s"] == pytest.approx(7.5)
    assert o["wait_p50_s"] == 0.0
    assert o["wait_p99_s"] == pytest.approx(percentile([0, 0, 0, 30000], 0.99) / 1000)
    assert o["wait_all_mean_s"] == pytest.approx((30 + 30) / 5)
    assert o["service_level"] == pytest.approx(3 / 5)  # c1, c2, c5 within 20 s
    assert o["abandonment_rate"] == pytest.approx(1 / 5)
    assert o["sticky_hit_rate"] == 1.0  # c5 went back to a1
    assert o["skill_match_rate"] == pytest.approx(2 / 4)  # c1, c5 yes; c2, c3 no
    assert (o["orders"], o["revenue"], o["chat_orders"], o["chat_revenue"]) == (2, 150.0, 1, 100.0)
    # a1 held chats 50 + 340 + 90 s, a2 280 s, of 2 x 600 s online
    assert o["occupancy"] == pytest.approx((50 + 340 + 90 + 280) / 1200, abs=1e-6)
    pages = o["by_page"]
    assert pages["cart"] == {"chats": 2, "human": 2, "assigned": 2, "abandoned": 0,
                             "wait_mean_s": 0.0, "service_level": 1.0}
    assert pages["detail"]["wait_mean_s"] == pytest.approx(30.0)
    assert pages["detail"]["service_level"] == 0.0
    # c4 was abandoned: offered to a human and not answered, so it counts
    assert pages["home"] == {"chats": 1, "human": 1, "assigned": 0, "abandoned": 1,
                             "wait_mean_s": None, "service_level": 0.0}


def test_service_level_has_one_denominator_overall_and_by_page() -> None:
    """Service level = answered within 20 s / every chat offered to a human:
    a chat abandoned after 5 s and one still waiting at the end count against
    it, overall and by page alike."""
    b = EventBuilder()
    events = [validate(e) for e in [
        b.agent("a1", capacity=1, ts=s(0)),
        b.page("v1", "cart", ts=s(1)), b.request("v1", "c1", ts=s(2)),  # answered at once
        b.page("v2", "cart", ts=s(3)), b.request("v2", "c2", ts=s(4)),  # waits ...
        b.leave("v2", ts=s(9)),  # ... and gives up after 5 s
        b.page("v3", "cart", ts=s(10)), b.request("v3", "c3", ts=s(11)),  # waits ...
        b.end("c1", ts=s(51)),  # ... and is answered after 40 s
        b.page("v4", "checkout", ts=s(60)), b.request("v4", "c4", ts=s(61)),  # still waiting
    ]]
    o = collect(events, run_engine(events)).summary()["overall"]
    assert (o["human"], o["assigned"], o["abandoned"], o["open"]) == (4, 2, 1, 2)  # c3, c4
    assert o["service_level"] == pytest.approx(1 / 4)
    cart, checkout = o["by_page"]["cart"], o["by_page"]["checkout"]
    assert (cart["human"], cart["assigned"], cart["abandoned"]) == (3, 2, 1)
    assert cart["service_level"] == pytest.approx(1 / 3)  # not 1/2 (c1 of c1, c3)
    assert cart["wait_mean_s"] == pytest.approx(20.0)  # over the assigned: (0 + 40) / 2
    assert (checkout["human"], checkout["service_level"]) == (1, 0.0)
    text = table({"overall": o})
    assert "answered <= 20 s" in text and "25.0%" in text and "33.3%" in text


def test_window_leaves_out_chats_before_it() -> None:
    events = morning()
    outputs = run_engine(events)
    o = collect(events, outputs, Collector(since_ms=s(25))).summary()["overall"]
    assert o["chats"] == 3  # c3, c4, c5
    assert o["assigned"] == 2 and o["abandoned"] == 1


def test_files_give_the_same_summary_and_a_table(tmp_path: Path) -> None:
    events = morning()
    outputs = run_engine(events)
    (tmp_path / "e.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    (tmp_path / "o.jsonl").write_bytes(encode_lines(outputs))
    from_files = summarize_files(tmp_path / "e.jsonl", tmp_path / "o.jsonl")
    assert from_files == collect(events, outputs).summary()
    text = table(from_files)
    assert "answered <= 20 s" in text and "60.0%" in text


def test_percentile_interpolates() -> None:
    assert percentile([], 0.5) == 0.0
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([1, 2, 3, 4], 1.0) == 4


@pytest.mark.parametrize("name", bundled())
def test_scenario_rules_written_as_toml_load_back_the_same(name: str) -> None:
    rules = parse_rules(load_scenario(name).get("rules", {}))
    import tomllib

    assert parse_rules(tomllib.loads(rules_to_toml(rules, "a\nheader"))).hash == rules.hash


def test_rules_with_odd_keys_round_trip() -> None:
    import tomllib

    rules = parse_rules({"skills": {"keywords": {"退款 now": "after_sales", 'say "hi"': "x"}},
                         "modes": {"tenants": {"m.1": {"default": "robot_only"}}},
                         "overflow": {"tenants": ["m.1"]}})
    assert parse_rules(tomllib.loads(rules_to_toml(rules))).hash == rules.hash
