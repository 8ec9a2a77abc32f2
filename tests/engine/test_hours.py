"""Business hours (issue 18): outside a tenant's hours a new chat goes to
the bot or is closed, exact to the millisecond of event time, in the
tenant's own UTC offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine import RulesError, parse_rules
from tests.helpers import Driver, EventBuilder, assigned, one, types

CST = timezone(timedelta(hours=8))


def at(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0, ms: int = 0) -> int:
    """Event time (ms) of a local time at +08:00."""
    return int(datetime(y, mo, d, h, mi, s, tzinfo=CST).timestamp()) * 1000 + ms


HOURS = {"hours": {"tenants": {"shop": {
    "utc_offset": "+08:00",
    "week": {"mon": ["09:00-12:00", "13:00-22:00"], "tue": ["09:00-22:00"],
             "sat": [], "sun": []},
    "closed": ["2024-02-14"],
    "after_hours": "closed"}}}}
MONDAY = (2024, 2, 12)  # 2024-02-12 was a Monday


def shop(rules: dict | None = None) -> tuple[Driver, EventBuilder]:
    b = EventBuilder()
    d = Driver(rules or HOURS)
    d.feed(b.agent("ann", ts=at(*MONDAY, 0)))
    return d, b


def test_opening_and_closing_are_exact_to_the_millisecond() -> None:
    d, b = shop()
    out = d.feed(b.request("v1", "c1", ts=at(*MONDAY, 8, 59, 59, 999)))
    assert types(out) == ["chat.closed"]
    assert one(out, "chat.closed") == {**one(out, "chat.closed"), "chat": "c1",
                                       "visitor": "v1", "why": "after_hours"}
    out = d.feed(b.request("v2", "c2", ts=at(*MONDAY, 9)))
    assert assigned(out) == {"c2": "ann"}
    out = d.feed(b.request("v3", "c3", ts=at(*MONDAY, 11, 59, 59, 999)))
    assert assigned(out) == {"c3": "ann"}
    out = d.feed(b.request("v4", "c4", ts=at(*MONDAY, 12)))  # lunch: closed from 12:00.000
    assert types(out) == ["chat.closed"]
    out = d.feed(b.request("v5", "c5", ts=at(*MONDAY, 13)))
    assert assigned(out) == {"c5": "ann"}


def test_a_day_boundary_in_the_tenants_offset() -> None:
    """Monday 00:30 at +08:00 is Sunday 16:30 UTC: Sunday is closed, but the
    tenant's own day is Monday, and Monday has no span before 09:00."""
    d, b = shop({"hours": {"tenants": {"shop": {
        "utc_offset": "+08:00", "week": {"sun": [], "mon": ["00:00-24:00"]}}}}})
    sunday_utc = int(datetime(2024, 2, 11, 16, 30, tzinfo=UTC).timestamp()) * 1000
    out = d.feed(b.request("v1", "c1", ts=sunday_utc))
    assert assigned(out) == {"c1": "ann"}  # Monday 00:30 local: open all day
    out = d.feed(b.request("v2", "c2", ts=at(2024, 2, 11, 23, 59, 59, 999)))  # late
    assert assigned(out) == {"c2": "ann"}  # applied at the tenant's clock, Monday


def test_a_closed_day_and_days_not_named() -> None:
    d, b = shop()
    wednesday_closed = at(2024, 2, 14, 10)
    assert types(d.feed(b.request("v1", "c1", ts=wednesday_closed))) == ["chat.closed"]
    thursday = at(2024, 2, 15, 3)  # thu not named: open all day
    assert assigned(d.feed(b.request("v2", "c2", ts=thursday))) == {"c2": "ann"}
    saturday = at(2024, 2, 17, 10)  # sat = []: closed all day
    assert types(d.feed(b.request("v3", "c3", ts=saturday))) == ["chat.closed"]


def test_after_hours_robot_only_sends_new_chats_to_the_bot_for_good() -> None:
    rules = {"hours": {"tenants": {"shop": {**HOURS["hours"]["tenants"]["shop"],
                                            "after_hours": "robot_only"}}}}
    d, b = shop(rules)
    out = d.feed(b.request("v1", "c1", ts=at(*MONDAY, 8)))
    assert types(out) == ["chat.to_bot"]
    assert not d.feed(b.escalate("c1", ts=at(*MONDAY, 9, 30)))  # robot_only: no escalation


def test_chats_waiting_at_closing_time_stay_queued() -> None:
    d, b = shop()
    d.feed(b.agent("ann", capacity=1, ts=at(*MONDAY, 11)))
    d.feed(b.request("v1", "c1", ts=at(*MONDAY, 11, 30)))
    out = d.feed(b.request("v2", "c2", ts=at(*MONDAY, 11, 45)))
    assert types(out) == ["chat.queued"]
    out = d.feed(b.end("c1", ts=at(*MONDAY, 12, 30)))  # closed now, still served
    assert assigned(out) == {"c2": "ann"}


@pytest.mark.parametrize(("table", "message"), [
    ({"utc_offset": "8h"}, "key 'hours.tenants.shop.utc_offset' must be an offset like"),
    ({"week": {"mon": ["9-12"]}}, "key 'hours.tenants.shop.week.mon' must be spans like"),
    ({"week": {"mon": ["12:00-09:00"]}}, "ends before it starts"),
    ({"week": {"monday": []}}, "key 'hours.tenants.shop.week' must be a table of mon"),
    ({"closed": ["tomorrow"]}, "key 'hours.tenants.shop.closed' must list dates"),
    ({"after_hours": "nap"}, "key 'hours.tenants.shop.after_hours' must be one of"),
    ({"open": True}, "unknown key 'hours.tenants.shop.open'"),
])
def test_bad_hours_name_the_key(table: dict, message: str) -> None:
    with pytest.raises(RulesError, match=message.replace("(", r"\(")):
        parse_rules({"hours": {"tenants": {"shop": table}}})


def test_rules_without_hours_keep_their_hash() -> None:
    assert parse_rules({}).hash == parse_rules({"hours": {"tenants": {}},
                                                "capacity": {"weights": {}}}).hash
