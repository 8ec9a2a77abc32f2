"""Input validation and decoding (schemas.events) and rejected outputs."""

from __future__ import annotations

import orjson
import pytest

from engine import Engine
from schemas.events import MAX_LINE_BYTES, TYPES, EventError, decode, validate
from schemas.outputs import MAX_REJECTED_INPUT, encode
from tests.helpers import T0, EventBuilder


def error_of(obj: object) -> str:
    with pytest.raises(EventError) as info:
        validate(obj)
    return str(info.value)


def line_error(line: bytes | str) -> str:
    with pytest.raises(EventError) as info:
        decode(line)
    return str(info.value)


def base(etype: str, **fields: object) -> dict[str, object]:
    return {"type": etype, "id": "x1", "ts": T0, "tenant": "shop", **fields}


# ------------------------------------------------------------- bad fields


def test_bad_ts_message_names_type_field_and_value() -> None:
    ev = base("page.viewed", visitor="v1", page="cart", ts="yesterday")
    assert error_of(ev) == (
        'page.viewed: field \'ts\' must be an integer ms timestamp, got "yesterday"'
    )


@pytest.mark.parametrize("ts", [1.5e12, True, -1, 10**16, None])
def test_ts_must_be_a_plain_integer_in_range(ts: object) -> None:
    msg = error_of(base("clock", ts=ts))
    assert msg.startswith("clock: field 'ts' must be an integer ms timestamp, got ")


@pytest.mark.parametrize(
    ("etype", "fields", "expected"),
    [
        ("agent.state", {"agent": "a1", "status": "busy"},
         'agent.state: field \'status\' must be one of online, away, offline, got "busy"'),
        ("agent.state", {"agent": "a1", "status": "online", "capacity": 101},
         "agent.state: field 'capacity' must be an integer 0-100, got 101"),
        ("agent.state", {"agent": "a1", "status": "online", "skills": {"sales": 6}},
         "agent.state: field 'skills' must be an object of skill name -> level 1-5, "
         'got {"sales":6}'),
        ("agent.state", {"agent": "a1", "status": "online", "channels": "web"},
         "agent.state: field 'channels' must be a list of at most 64 non-empty strings, "
         'got "web"'),
        ("visitor.arrived", {"visitor": "v1", "channel": "web", "customer": {"tier": 9}},
         "visitor.arrived: field 'customer' must be an object whose 'tier' is an integer "
         '0-5, got {"tier":9}'),
        ("visitor.arrived", {"visitor": "v1", "channel": "web", "customer": {"ltv": -1}},
         "visitor.arrived: field 'customer' must be an object whose 'ltv' is a finite "
         'number >= 0, got {"ltv":-1}'),
        ("chat.requested", {"visitor": "v1", "chat": ""},
         "chat.requested: field 'chat' must be a string of 1-128 chars, got \"\""),
        ("chat.ended", {"chat": "c1", "resolved": "yes"},
         'chat.ended: field \'resolved\' must be true or false, got "yes"'),
        ("order.placed", {"visitor": "v1", "amount": -5},
         "order.placed: field 'amount' must be a finite number >= 0, got -5"),
    ],
)
def test_bad_field_messages(etype: str, fields: dict[str, object], expected: str) -> None:
    assert error_of(base(etype, **fields)) == expected


def test_bad_tenant_and_id() -> None:
    assert error_of(base("clock", tenant="my shop")) == (
        "clock: field 'tenant' must be a string of 1-64 chars of [A-Za-z0-9_.-], "
        'got "my shop"'
    )
    msg = error_of(base("clock", id="x" * 129))
    assert msg.startswith("clock: field 'id' must be a string of 1-128 chars, got \"xxx")
    assert msg.endswith("...")  # long values are cut in messages
    assert len(msg) < 120


def test_error_carries_tenant_and_ts_when_known() -> None:
    with pytest.raises(EventError) as info:
        validate(base("chat.requested", visitor="v1"))
    assert str(info.value) == "chat.requested: field 'chat' is required"
    assert (info.value.tenant, info.value.ts) == ("shop", T0)


# ----------------------------------------------------------- missing fields


@pytest.mark.parametrize(
    ("etype", "fields", "missing"),
    [
        ("agent.state", {"status": "online"}, "agent"),
        ("agent.state", {"agent": "a1"}, "status"),
        ("visitor.arrived", {"visitor": "v1"}, "channel"),
        ("page.viewed", {"visitor": "v1"}, "page"),
        ("chat.accepted", {"chat": "c1"}, "agent"),
        ("chat.declined", {"agent": "a1"}, "chat"),
        ("bot.escalated", {}, "chat"),
        ("visitor.left", {}, "visitor"),
        ("order.placed", {"visitor": "v1"}, "amount"),
    ],
)
def test_missing_required_field(etype: str, fields: dict[str, object], missing: str) -> None:
    assert error_of(base(etype, **fields)) == f"{etype}: field '{missing}' is required"


@pytest.mark.parametrize("common", ["id", "ts", "tenant"])
def test_missing_common_field(common: str) -> None:
    ev = base("page.viewed", visitor="v1", page="home")
    del ev[common]
    assert error_of(ev) == f"page.viewed: field '{common}' is required"


def test_clock_may_omit_tenant_but_nothing_else_may() -> None:
    assert validate({"type": "clock", "id": "k", "ts": T0}) == {
        "type": "clock", "id": "k", "ts": T0,
    }
    assert error_of({"type": "visitor.left", "id": "k", "ts": T0, "visitor": "v1"}) == (
        "visitor.left: field 'tenant' is required"
    )


def test_null_optional_field_counts_as_absent_but_null_required_is_bad() -> None:
    ev = validate(base("chat.requested", visitor="v1", chat="c1", message=None, skill=None))
    assert "message" not in ev and "skill" not in ev
    assert error_of(base("chat.requested", visitor="v1", chat=None)) == (
        "chat.requested: field 'chat' must be a string of 1-128 chars, got null"
    )


# -------------------------------------------------------------- types


def test_unknown_type_is_an_error_naming_the_type() -> None:
    msg = error_of(base("chat.exploded", chat="c1"))
    assert msg == (
        "event: field 'type' must be one of " + ", ".join(TYPES) + ', got "chat.exploded"'
    )


def test_missing_type_and_non_object() -> None:
    assert error_of({"id": "x", "ts": T0}).startswith("event: field 'type' is required")
    assert error_of([1, 2]) == "event: must be a JSON object, got [1,2]"
    assert line_error(b"[1, 2]") == "event: must be a JSON object, got [1,2]"
    assert line_error(b'{"type": ').startswith("event: line must be a JSON object (")


def test_every_contract_type_is_known() -> None:
    assert set(TYPES) >= {
        "agent.state", "visitor.arrived", "page.viewed", "chat.requested", "chat.accepted",
        "chat.declined", "bot.escalated", "chat.ended", "visitor.left", "order.placed", "clock",
    }


# ------------------------------------------------------ clean events


def test_unknown_extra_fields_are_ignored() -> None:
    ev = validate(base("page.viewed", visitor="v1", page="cart", referrer="ad", x={"y": 1}))
    assert ev == {"type": "page.viewed", "id": "x1", "ts": T0, "tenant": "shop",
                  "visitor": "v1", "page": "cart"}


def test_defaults_are_filled_in() -> None:
    ev = validate(base("agent.state", agent="a1", status="online"))
    # agent.state is a partial update: the engine, not the decoder, knows the
    # agent's current values (and a new agent's defaults)
    assert "capacity" not in ev and "skills" not in ev
    assert "channels" not in ev and "regions" not in ev
    cust = validate(base("visitor.arrived", visitor="v1", channel="app",
                         customer={"member": True}))["customer"]
    assert cust == {"member": True, "tier": 0, "orders": 0, "ltv": 0}


def test_any_page_name_is_accepted() -> None:
    assert validate(base("page.viewed", visitor="v1", page="live_stream"))["page"] == (
        "live_stream"
    )


def test_builder_events_validate_unchanged() -> None:
    b = EventBuilder()
    events = [
        b.agent("a1", capacity=2, skills={"sales": 3}, channels=["web"], regions=["sh"]),
        b.arrive("v1", "app", region="sh", customer={"member": True, "tier": 2, "orders": 1,
                                                     "ltv": 10}, exclusive_agent="a1"),
        b.page("v1", "search", keyword="earbuds", category="audio", sku="s1"),
        b.request("v1", "c1", message="hello", skill="sales"),
        b.accept("c1", "a1"), b.decline("c1", "a1"), b.escalate("c1"),
        b.end("c1", resolved=True), b.leave("v1"), b.order("v1", 9.5), b.clock(),
    ]
    for ev in events:
        assert validate(ev) == ev


def test_decode_accepts_str_and_bytes() -> None:
    ev = base("chat.ended", chat="c1")
    assert decode(orjson.dumps(ev)) == ev
    assert decode(orjson.dumps(ev).decode()) == ev


# ------------------------------------------------------------- line size


def test_oversize_line_is_rejected_before_parsing() -> None:
    assert line_error(b" " * (MAX_LINE_BYTES + 1)) == (
        f"event: line must be at most {MAX_LINE_BYTES} bytes, got {MAX_LINE_BYTES + 1}"
    )


def test_line_at_the_size_limit_is_accepted() -> None:
    ev = base("chat.requested", visitor="v1", chat="c1", pad="")
    short = len(orjson.dumps(ev))
    ev["pad"] = "p" * (MAX_LINE_BYTES - short)
    line = orjson.dumps(ev)
    assert len(line) == MAX_LINE_BYTES
    assert decode(line)["chat"] == "c1"
    ev["pad"] += "p"
    assert line_error(orjson.dumps(ev)).startswith("event: line must be at most")


# ------------------------------------------------------------ rejected


def test_rejected_output_names_error_and_cuts_input() -> None:
    eng = Engine()
    eng.apply(validate(base("clock", ts=T0 + 5000)))
    raw = orjson.dumps(base("page.viewed", visitor="v1", page="p" * 2000, ts="yesterday"))
    with pytest.raises(EventError) as info:
        decode(raw)
    out = eng.reject(info.value, raw, line=7)
    assert out["type"] == "event.rejected"
    assert out["tenant"] == "shop"
    assert out["ts"] == T0 + 5000  # the tenant's clock, not the bad ts
    assert out["error"].startswith("page.viewed: field 'ts' must be an integer ms timestamp")
    assert out["input"] == raw.decode()[:MAX_REJECTED_INPUT]
    assert len(out["input"]) == MAX_REJECTED_INPUT
    assert out["line"] == 7
    assert list(out)[:4] == ["type", "ts", "tenant", "cause"]
    assert orjson.loads(encode(out)) == out


def test_rejected_without_a_tenant() -> None:
    eng = Engine()
    with pytest.raises(EventError) as info:
        decode(b"not json")
    out = eng.reject(info.value, b"not json", offset=3)
    assert out["tenant"] == "" and out["offset"] == 3 and out["input"] == "not json"
