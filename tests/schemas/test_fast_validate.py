"""The generated fast path of ``validate`` agrees with the step-by-step validator."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import FIELDS, EventError, _validate, validate
from tests.strategies import streams

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 2**53) | st.floats(allow_nan=False)
    | st.text(max_size=5) | st.sampled_from(["", "x" * 129, "online", "a b", "t1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                  max_size=3),
    max_leaves=6,
)
KEYS = sorted({"type", "id", "ts", "tenant"} | {f[0] for spec in FIELDS.values() for f in spec}
              | {"member", "tier", "orders", "ltv"})


def outcome(check: Any, obj: object) -> tuple[str, object]:
    try:
        ev = check(obj)
    except EventError as exc:
        return "error", (str(exc), exc.tenant, exc.ts)
    return "event", (list(ev.items()), orjson.dumps(ev))  # key order too


@settings(max_examples=400)
@given(events=streams(max_size=3), edits=st.lists(
    st.tuples(st.sampled_from(KEYS), st.one_of(st.just("drop"), JSON)), max_size=3),
    which=st.integers(0, 2))
def test_fast_path_gives_what_the_reference_gives(
        events: list[dict[str, Any]], edits: list[tuple[str, Any]], which: int) -> None:
    obj = dict(events[which % len(events)])
    for key, value in edits:
        if value == "drop":
            obj.pop(key, None)
        else:
            obj[key] = value
    assert outcome(validate, obj) == outcome(_validate, obj)


@given(events=streams(max_size=20))
def test_valid_events_take_the_fast_path_unchanged(events: list[dict[str, Any]]) -> None:
    for ev in events:
        assert outcome(validate, ev) == outcome(_validate, ev)
        assert validate(ev) == _validate(ev)


def test_non_objects_and_unknown_types_fall_back() -> None:
    for obj in ([1], "x", None, {"type": "teleported"}, {"id": "x"}):
        assert outcome(validate, obj) == outcome(_validate, obj)
        assert outcome(validate, obj)[0] == "error"
