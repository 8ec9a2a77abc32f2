"""Policy ``value``: the queue ordered by each chat's class value index
(stake x patience / handle, Atar, Giat & Shimkin's c mu / theta), explained
in every ``chat.assigned``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from engine import Rules, RulesError, parse_rules
from tests.engine.test_invariants import run
from tests.helpers import Driver, EventBuilder, of
from tests.strategies import rules, streams

CLASSES = {
    "checkout": {"stake": 200.0, "handle_s": 180.0, "patience_s": 60.0},
    "after_sales": {"stake": 30.0, "handle_s": 300.0, "patience_s": 120.0},
    "default": {"stake": 20.0, "handle_s": 200.0, "patience_s": 90.0},
}
VALUE = {"policy": "value", "value": {"pages": CLASSES}}


def index(cls: dict[str, float], scale: float = 1.0) -> float:
    """As the rules compute it: to 3 decimals, like the other score parts."""
    return round(scale * cls["stake"] * cls["patience_s"] / cls["handle_s"], 3)


def test_the_page_part_is_the_class_index_and_the_class_comes_with_it() -> None:
    b = EventBuilder()
    d = Driver(VALUE)
    d.feed(b.agent("a1", capacity=1), b.request("x", "busy"))
    # after-sales asked first, checkout later: checkout is worth more per second
    d.feed(b.arrive("v1"), b.page("v1", "after_sales"), b.request("v1", "c1"))
    d.feed(b.arrive("v2"), b.page("v2", "checkout"), b.request("v2", "c2"))
    out = of(d.feed(b.end("busy")), "chat.assigned")
    assert [o["chat"] for o in out] == ["c2"]
    assert out[0]["score"]["page"] == pytest.approx(index(CLASSES["checkout"]))
    assert out[0]["value"] == CLASSES["checkout"]
    out = of(d.feed(b.end("c2")), "chat.assigned")
    assert out[0]["chat"] == "c1" and out[0]["value"] == CLASSES["after_sales"]


def test_a_page_without_a_class_takes_the_default_and_loyalty_can_be_left_out() -> None:
    r = parse_rules({**VALUE, "value": {"pages": CLASSES, "loyalty": False, "scale": 2.0}})
    assert r.page_weight("search") == pytest.approx(index(CLASSES["default"], 2.0))
    assert (r.member, r.per_order, r.per_1000_ltv) == (0.0, 0.0, 0.0)
    assert parse_rules(VALUE).member == parse_rules({}).member  # loyalty kept by default


def test_other_policies_ignore_the_classes_and_default_rules_keep_their_hash() -> None:
    r = parse_rules({"value": {"pages": CLASSES}})
    assert r.value_classes == {} and r.page_weight("checkout") == 50.0
    assert parse_rules({}).hash == parse_rules({"value": {"loyalty": True}}).hash


@pytest.mark.parametrize("bad,key", [
    ({"checkout": {"stake": 1.0, "handle_s": 60.0}}, "value.pages.checkout"),
    ({"checkout": {"stake": 1.0, "handle_s": 0.0, "patience_s": 9.0}},
     "value.pages.checkout.handle_s"),
    ({"checkout": {"stake": -1.0, "handle_s": 5.0, "patience_s": 9.0}},
     "value.pages.checkout.stake"),
])
def test_a_bad_class_is_named(bad: dict[str, Any], key: str) -> None:
    with pytest.raises(RulesError, match=f"'{key}'"):
        parse_rules({"policy": "value", "value": {"pages": bad}})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules(), streams())
def test_every_assignment_explains_its_page_part(r: Rules, events: list[dict[str, Any]]) -> None:
    for o in run(r, events):
        if o["type"] != "chat.assigned":
            continue
        if r.policy != "value":
            assert "value" not in o
            continue
        cls = o["value"]
        assert o["score"]["page"] == pytest.approx(index(cls))
        # every reason but a baseline policy's name (CONTRACT.md, chat.assigned)
        assert o["reason"] in ("exclusive", "sticky", "skill", "best", "overflow", "transfer")


# ------------------------------------------------------------ overflow by value

BY_VALUE = {"policy": "value", "modes": {"default": "human_only"},
            "overflow": {"enabled": True, "after_s": 60.0},
            "value": {"pages": CLASSES, "overflow_by_value": True}}


def test_each_class_overflows_once_its_value_at_risk_is_a_default_chats() -> None:
    r = parse_rules(BY_VALUE)
    ref = CLASSES["default"]["stake"] / CLASSES["default"]["patience_s"]
    checkout = CLASSES["checkout"]["stake"] / CLASSES["checkout"]["patience_s"]
    assert r.overflow_ms("checkout") == round(60_000 * ref / checkout)  # 4 s
    assert r.overflow_ms("after_sales") == round(60_000 * ref / (30.0 / 120.0))
    assert r.overflow_ms("search") == r.overflow_ms(None) == 60_000  # the default's
    # never later than after_s, and off unless asked for
    assert max(r.overflow_ms_by_page.values()) <= 60_000
    assert parse_rules({**BY_VALUE, "value": {"pages": CLASSES}}).overflow_ms("checkout") == 60_000


def _shop(b: EventBuilder) -> list[dict[str, Any]]:
    """m1's only agent busy; the platform has room."""
    return [b.agent("p1", capacity=5, tenant="platform"), b.agent("a1", capacity=1),
            b.request("x", "busy")]


def test_a_checkout_chat_overflows_sooner_and_a_page_change_can_make_it_due() -> None:
    b = EventBuilder("m1", step_ms=0)
    d = Driver(BY_VALUE)
    d.feed(*_shop(b))
    t0 = b.now
    d.feed(b.arrive("v1"), b.page("v1", "checkout"), b.request("v1", "c1"))
    d.feed(b.arrive("v2"), b.request("v2", "c2"))  # no page: the default class
    out = d.feed(b.clock(ts=t0 + 4_000))
    assert [o["chat"] for o in of(out, "chat.overflowed")] == ["c1"]
    # v2 reaches checkout after 10 s: its overflow wait (4 s) is past, so now
    out = d.feed(b.page("v2", "checkout", ts=t0 + 10_000))
    assert [o["chat"] for o in of(out, "chat.overflowed")] == ["c2"]


def test_a_page_change_to_a_lower_class_waits_for_the_later_deadline() -> None:
    b = EventBuilder("m1", step_ms=0)
    d = Driver(BY_VALUE)
    d.feed(*_shop(b))
    t0 = b.now
    d.feed(b.arrive("v1"), b.page("v1", "checkout"), b.request("v1", "c1"))
    d.feed(b.page("v1", "search", ts=t0 + 1_000))
    assert of(d.feed(b.clock(ts=t0 + 4_000)), "chat.overflowed") == []
    assert [o["chat"] for o in of(d.feed(b.clock(ts=t0 + 60_000)), "chat.overflowed")] == ["c1"]
