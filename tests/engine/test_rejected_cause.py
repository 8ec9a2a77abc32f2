"""``event.rejected`` names the bad line's ``id`` as its ``cause`` when the
line had a valid string id (issue 21, item 10); ``""`` otherwise."""

from __future__ import annotations

import orjson
import pytest

from engine import Engine
from schemas.events import EventError, decode, decode_lines


def rejected(line: bytes) -> dict[str, object]:
    e = Engine()
    with pytest.raises(EventError) as info:
        decode(line)
    return e.reject(info.value, line, line=1, offset=0)


def test_a_bad_line_with_an_id_names_it_as_cause() -> None:
    line = orjson.dumps({"type": "chat.requested", "id": "r-17", "ts": 5, "tenant": "s",
                         "visitor": "v"})  # no chat
    out = rejected(line)
    assert out["cause"] == "r-17" and "chat" in str(out["error"])


@pytest.mark.parametrize("line", [
    b"not json", b"[1]", orjson.dumps({"type": "clock", "ts": 1}),  # no id
    orjson.dumps({"type": "clock", "id": 7, "ts": 1}),  # not a string
    orjson.dumps({"type": "clock", "id": "", "ts": 1}),  # not a valid id
    orjson.dumps({"type": "clock", "id": "x" * 129, "ts": 1}),
])
def test_without_a_valid_string_id_the_cause_stays_empty(line: bytes) -> None:
    assert rejected(line)["cause"] == ""


def test_decode_lines_keeps_the_id_too() -> None:
    line = orjson.dumps({"type": "page.viewed", "id": "p1", "ts": "late", "tenant": "s"})
    decoded, bad = decode_lines([line])
    assert bad == [0]
    err = decoded[0]
    assert isinstance(err, EventError) and Engine().reject(err, line)["cause"] == "p1"
