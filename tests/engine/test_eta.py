"""The live ETA (engine/eta.py) and predictive routing steps."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from engine.eta import MIN_SAMPLES, QueuePace
from tests.helpers import Driver, EventBuilder, of, one, types

WINDOW = 300_000


@given(st.lists(st.tuples(st.integers(0, 600_000), st.integers(1, 30)), min_size=MIN_SAMPLES,
                max_size=200), st.integers(1, 60))
def test_a_steady_pace_is_measured_exactly(chats: list[tuple[int, int]], ms_per_place: int,
                                           ) -> None:
    """Chats that each waited the same time per place give that pace back,
    whatever their times and places."""
    pace = QueuePace()
    now = 0
    for gap, place in chats:
        now += gap
        pace.measured(now, place * ms_per_place * 1000, place, WINDOW)
    got = pace.ms_per_place()
    assert got is not None and math.isclose(got, ms_per_place * 1000, rel_tol=1e-9)


def test_the_pace_follows_recent_chats_and_needs_enough_of_them() -> None:
    pace = QueuePace()
    for i in range(MIN_SAMPLES - 1):
        pace.measured(i * 1000, 10_000, 1, WINDOW)
    assert pace.ms_per_place() is None
    pace.measured(9_000, 10_000, 1, WINDOW)
    assert math.isclose(pace.ms_per_place() or 0, 10_000)
    # three windows later the queue moves four times slower
    for i in range(MIN_SAMPLES):
        pace.measured(9_000 + 3 * WINDOW + i * 1000, 40_000, 1, WINDOW)
    got = pace.ms_per_place()
    assert got is not None and 38_000 < got < 40_000  # the old ones weigh e^-3 or less
    back = QueuePace.from_record(pace.to_record())
    assert back.ms_per_place() == got and back.to_record() == pace.to_record()


def test_chat_queued_eta_falls_back_to_eta_handle_s_then_follows_the_queues_pace() -> None:
    b = EventBuilder()
    d = Driver({"modes": {"default": "human_only"},
                "assignment": {"eta_handle_s": 600.0, "sticky_wait_s": 0,
                               "exclusive_wait_s": 0}})
    d.feed(b.agent("a1", capacity=1))
    queued = one(d.feed(b.request("v0", "c0"), b.request("v1", "c1")), "chat.queued")
    assert queued["eta_s"] == 600  # position 1 x 600 s / capacity 1: nothing measured yet
    # each chat waits 20 s at place 1: the agent ends a chat every 20 s
    for i in range(2, 3 + MIN_SAMPLES):
        b.wait(19)
        d.feed(b.end(f"c{i - 2}"), b.request(f"v{i}", f"c{i}"))
    last = one(d.feed(b.request("vx", "cx")), "chat.queued")
    assert last["position"] == 2 and last["eta_s"] == 40  # 2 places x 20 s, not 2 x 600 s


PREDICTIVE = {
    "modes": {"default": "human_only"},
    "assignment": {"eta_handle_s": 60.0},
    "routing": {"steps": [
        {"name": "own", "agents": "any", "timeout_s": 100, "predictive": True},
        {"name": "platform", "agents": "any", "tenant": "platform"}]},
}


def test_a_predictive_step_is_left_at_arrival_when_the_wait_would_be_too_long() -> None:
    b = EventBuilder()
    d = Driver(PREDICTIVE)
    d.feed(b.agent("a1", capacity=1), b.agent("a2", capacity=1))
    d.feed(*(b.request(f"v{i}", f"c{i}") for i in range(2)))  # both agents busy
    for i in range(2, 5):  # positions 1-3: 30, 60, 90 s predicted: they wait
        q = one(d.feed(b.request(f"v{i}", f"c{i}")), "chat.queued")
        assert q["eta_s"] == 30 * (i - 1)
    out = d.feed(b.request("v5", "c5"))  # position 4: 120 s > 100 s
    assert types(out)[0] == "chat.overflowed" and not of(out, "chat.queued", tenant="shop")


def test_a_predictive_step_is_left_at_the_event_that_makes_the_wait_too_long() -> None:
    b = EventBuilder()
    d = Driver({**PREDICTIVE, "assignment": {"eta_handle_s": 60.0, "away_requeues": "none"}})
    d.feed(b.agent("a1", capacity=1), b.agent("a2", capacity=1))
    d.feed(*(b.request(f"v{i}", f"c{i}") for i in range(5)))  # 3 wait: 30, 60, 90 s
    away = b.away("a2")  # capacity 1: 60, 120, 180 s predicted
    out = d.feed(away)
    moved = [o["chat"] for o in of(out, "chat.overflowed")]
    assert moved == ["c3", "c4"] and all(o["cause"] == away["id"] for o in out)
    assert d.engine.tenants["shop"].order() == ["c2"]


def test_the_pace_counts_the_wait_in_the_queue_not_the_time_with_the_bot() -> None:
    b = EventBuilder()
    d = Driver({"modes": {"default": "robot_first"}, "assignment": {"eta_handle_s": 600.0}})
    d.feed(b.agent("a1", capacity=1))
    d.feed(b.request("v0", "c0"), b.escalate("c0"))  # a1 takes it
    for i in range(1, 3 + MIN_SAMPLES):
        d.feed(b.request(f"v{i}", f"c{i}"))
        b.wait(299)  # 5 minutes with the bot
        d.feed(b.escalate(f"c{i}"))  # queued behind the one a1 holds
        b.wait(9)
        d.feed(b.end(f"c{i - 1}"))  # 10 s in the queue at place 1
    d.feed(b.request("vx", "cx"))
    b.wait(299)
    q = one(d.feed(b.escalate("cx")), "chat.queued")
    assert q["position"] == 1 and q["eta_s"] == 10  # 10 s a place, not 310
