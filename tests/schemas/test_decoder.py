"""The one decoder (``schemas.events.decode_lines``): what it gives for valid
lines, the exact messages it gives for bad ones (they are in the outputs, so
they may not change), and that ``decode`` and ``validate`` are the same code."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from schemas.events import (
    COMMON_FIELDS,
    FIELDS,
    MAX_LINE_BYTES,
    EventError,
    decode,
    decode_lines,
    validate,
)
from tests.malformed import Bad, bad_lines
from tests.routeq import ROOT
from tests.strategies import streams

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def outcome(line: bytes) -> tuple[Any, ...]:
    try:
        ev = decode(line)
    except EventError as exc:
        return ("error", str(exc), exc.tenant, exc.ts, exc.event_id)
    return ("event", list(ev.items()))


def batch_outcome(decoded: Any) -> tuple[Any, ...]:
    if isinstance(decoded, EventError):
        return ("error", str(decoded), decoded.tenant, decoded.ts, decoded.event_id)
    return ("event", list(decoded.items()))


@SETTINGS
@given(events=streams(max_size=30, duplicates=True))
def test_valid_events_decode_to_themselves_in_field_order(events: list[dict[str, Any]]) -> None:
    lines = [orjson.dumps(ev) for ev in events]
    decoded, bad = decode_lines(lines)
    assert bad == []
    for ev, got in zip(events, decoded, strict=True):
        assert got == ev
        assert isinstance(got, dict)
        order = ["type", *(n for n, *_ in COMMON_FIELDS), *(n for n, *_ in FIELDS[ev["type"]])]
        assert list(got) == sorted(got, key=order.index)
        assert validate(ev) == got


@SETTINGS
@given(bad=bad_lines())
def test_decode_lines_is_decode_of_each_line(bad: Bad) -> None:
    good = b'{"type":"clock","id":"c","ts":5}'
    decoded, idx = decode_lines([good, bad.line, good])
    assert idx == [1]
    assert [batch_outcome(d) for d in decoded] == [outcome(x) for x in (good, bad.line, good)]
    assert bad.explains(str(decoded[1]))


@pytest.mark.parametrize(("line", "message", "tenant", "ts", "cause"), [
    (b"not json", "event: line must be a JSON object (invalid literal, expected 'null': line 1 "
     "column 1 (char 0))", None, None, None),
    (b"[1]", "event: must be a JSON object, got [1]", None, None, None),
    (b'{"id":"a","tenant":"s"}', "event: field 'type' is required (one of agent.state, "
     "visitor.arrived, page.viewed, chat.requested, chat.accepted, chat.declined, "
     "bot.escalated, chat.ended, chat.transferred, visitor.left, order.placed, clock, "
     "chat.handed_over)",
     None, None, "a"),
    (b'{"type":"page.viewed","id":"p","ts":"yesterday","tenant":"s"}',
     "page.viewed: field 'ts' must be an integer ms timestamp, got \"yesterday\"", "s", None,
     "p"),
    (b'{"type":"page.viewed","id":"p","ts":1,"tenant":"s","page":"home"}',
     "page.viewed: field 'visitor' is required", "s", 1, "p"),
    (b'{"type":"page.viewed","id":"p","ts":1,"tenant":"s","visitor":null,"page":"home"}',
     "page.viewed: field 'visitor' must be a string of 1-128 chars, got null", "s", 1, "p"),
    (b'{"type":"chat.requested","id":"r","ts":1,"tenant":"s"}',
     "chat.requested: field 'visitor' is required", "s", 1, "r"),
    (b'{"type":"clock","ts":1}', "clock: field 'id' is required", None, None, None),
    (b'{"type":"clock","id":"c","ts":1,"tenant":null}',
     "clock: field 'tenant' must be a string of 1-64 chars of [A-Za-z0-9_.-], got null",
     None, None, "c"),
    (b'{"type":"visitor.arrived","id":"v","ts":1,"tenant":"s","visitor":"x","channel":"w",'
     b'"customer":{"tier":9}}',
     "visitor.arrived: field 'customer' must be an object whose 'tier' is an integer 0-5, "
     "got {\"tier\":9}", "s", 1, "v"),
    (b" " * (MAX_LINE_BYTES + 1), f"event: line must be at most {MAX_LINE_BYTES} bytes, got "
     f"{MAX_LINE_BYTES + 1}", None, None, None),
])
def test_error_messages_are_exact(line: bytes, message: str, tenant: str | None,
                                  ts: int | None, cause: str | None) -> None:
    assert outcome(line) == ("error", message, tenant, ts, cause)


def test_optional_nulls_are_absent_and_customer_defaults_filled() -> None:
    ev = decode(b'{"type":"visitor.arrived","id":"v","ts":1,"tenant":"s","visitor":"x",'
                b'"channel":"w","region":null,"customer":{"member":true},"extra":1}')
    assert ev == {"type": "visitor.arrived", "id": "v", "ts": 1, "tenant": "s", "visitor": "x",
                  "channel": "w", "customer": {"member": True, "tier": 0, "orders": 0,
                                               "ltv": 0}}


def test_no_generated_code() -> None:
    source = (ROOT / "schemas" / "events.py").read_text()  # compiled: no source to inspect
    assert "exec(" not in source and " compile(" not in source
