"""Hypothesis strategies for malformed input lines, mixed into valid streams.

``bad_lines()`` draws a :class:`Bad`: the raw line (bytes, as a chat server
might send it), its ``kind`` and what the rejection must name: ``field`` is the
field the error has to name (``field 'X'``), or None for a line that is not
a JSON object at all (then the error starts with ``event: ``).

Each bad line starts from a contract-valid event (``tests.strategies``)
and breaks exactly one thing, so exactly one field is wrong:

- ``missing``: a required field left out;
- ``wrong_type``: a field with a value of another JSON type (or null where it
  is required, or a bad member inside an object or list);
- ``huge_string``: an id/name/text over its length limit (up to past the
  64 KiB line limit, which is then the error);
- ``deep_nesting``: nested arrays/objects where a field is expected (past
  1,024 levels the JSON reader refuses the line);
- ``invalid_utf8``: bytes that are not UTF-8 inside a string, a lone UTF-16
  surrogate escape, or a byte-order mark;
- ``nan_inf``: ``NaN``, ``Infinity``, ``-Infinity`` or ``1e400`` literals
  where a number is expected;
- ``bad_ts``: negative, past year 9999, beyond 64 bits, fractional, quoted;
- ``unknown_type``: a ``type`` that is not in the contract;
- ``bad_id`` / ``bad_tenant``: ids and tenants of the wrong shape (empty, too
  long, characters outside the tenant alphabet, not strings);
- ``not_object``: arrays, scalars, truncated JSON, trailing garbage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import strategies as st

from schemas.events import FIELDS, MAX_LINE_BYTES, MAX_TEXT, MAX_TS, TYPES
from tests.strategies import streams

KINDS = ("missing", "wrong_type", "huge_string", "deep_nesting", "invalid_utf8", "nan_inf",
         "bad_ts", "unknown_type", "bad_id", "bad_tenant", "not_object")


@dataclass(frozen=True)
class Bad:
    line: bytes
    kind: str
    field: str | None  # None: the line is not a JSON object (error "event: ...")

    def explains(self, error: str) -> bool:
        """Does ``error`` say what is wrong with this line?"""
        if self.field is None:
            return error.startswith("event: ")
        return f"field '{self.field}'" in error


def _required(ev: dict[str, Any]) -> list[str]:
    etype = ev["type"]
    names = ["type", "id", "ts"] + ([] if etype == "clock" else ["tenant"])
    return names + [name for name, _, req in FIELDS[etype] if req]


def _present(ev: dict[str, Any]) -> list[str]:
    return [k for k in ev if k == "type" or k in ("id", "ts", "tenant")
            or any(k == name for name, *_ in FIELDS[ev["type"]])]


_TEXT_FIELDS = {"message", "keyword"}
_INT_FIELDS = {"ts", "capacity"}
_NUM_FIELDS = {"amount"}
_BOOL_FIELDS = {"resolved"}
_LIST_FIELDS = {"channels", "regions"}
_DICT_FIELDS = {"skills", "customer"}

_not_string = st.one_of(st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
                        st.booleans(), st.just([]), st.just(["x"]), st.just({}),
                        st.just({"k": "v"}))


def _wrong_value(name: str) -> st.SearchStrategy[Any]:
    if name in _INT_FIELDS:
        return st.one_of(st.text(max_size=5), st.just(1.5), st.booleans(), st.just([1]),
                         st.just({}), st.just(-1), st.just(101 if name == "capacity" else -7))
    if name in _NUM_FIELDS:
        return st.one_of(st.text(max_size=5), st.booleans(), st.just(-0.5), st.just([]),
                         st.just({}))
    if name in _BOOL_FIELDS:
        return st.one_of(st.sampled_from([0, 1, "true", "yes"]), st.just([]))
    if name in _LIST_FIELDS:
        return st.one_of(st.text(max_size=4), st.integers(-2**63, 2**63 - 1),
                         st.just([1, 2]), st.just([""]), st.just(["x"] * 65),
                         st.just({"a": 1}))
    if name == "skills":
        return st.one_of(st.just(["sales"]), st.text(max_size=4), st.just({"sales": 0}),
                         st.just({"sales": 6}), st.just({"sales": "5"}), st.just({"": 3}))
    if name == "customer":
        return st.one_of(st.just([]), st.just("gold"), st.just({"tier": 9}),
                         st.just({"member": "yes"}), st.just({"orders": -1}),
                         st.just({"ltv": -3}))
    if name == "status":
        return st.one_of(_not_string, st.sampled_from(["ONLINE", "busy", ""]))
    if name == "type":
        return _not_string
    if name == "tenant":
        return st.one_of(_not_string, st.sampled_from(["", "t 1", "shop/a", "é"]))
    if name in _TEXT_FIELDS:
        return _not_string
    return st.one_of(_not_string, st.just(""))  # ids and names: non-empty strings


def _dump(ev: dict[str, Any]) -> bytes:
    return orjson.dumps(ev)


def _field_or_line(line: bytes, kind: str, field: str) -> Bad:
    """``field`` is to blame unless the line as a whole is already unreadable."""
    if len(line) > MAX_LINE_BYTES:
        return Bad(line, kind, None)
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return Bad(line, kind, None)
    return Bad(line, kind, field)


def _placeholder(ev: dict[str, Any], name: str, raw: bytes) -> bytes:
    """The event with field ``name`` holding the raw JSON text ``raw``."""
    marker = "@@RAW@@"
    ev = {**ev, name: marker}
    return _dump(ev).replace(b'"' + marker.encode() + b'"', raw)


@st.composite
def valid_event(draw: st.DrawFn) -> dict[str, Any]:
    ev: dict[str, Any] = draw(streams(max_size=3))[0]
    return ev


@st.composite
def bad_lines(draw: st.DrawFn) -> Bad:
    kind = draw(st.sampled_from(KINDS))
    ev = dict(draw(valid_event()))
    if kind == "missing":
        name = draw(st.sampled_from(_required(ev)))
        del ev[name]
        return Bad(_dump(ev), kind, name)
    if kind == "wrong_type":
        name = draw(st.sampled_from(_present(ev)))
        value = None if name in _required(ev) and draw(st.integers(0, 4)) == 0 else draw(
            _wrong_value(name))
        ev[name] = value
        return Bad(_dump(ev), kind, name)
    if kind == "huge_string":
        strings = [k for k in _present(ev) if type(ev[k]) is str and k not in ("type", "status")]
        name = draw(st.sampled_from(strings))
        limit = MAX_TEXT if name in _TEXT_FIELDS else (64 if name == "tenant" else 128)
        n = draw(st.one_of(st.integers(limit + 1, limit + 50),
                           st.integers(limit + 1, MAX_LINE_BYTES + 5000)))
        ev[name] = draw(st.sampled_from(["x", "é", "字"])) * n
        return _field_or_line(_dump(ev), kind, name)
    if kind == "deep_nesting":  # (an object inside 'customer' is a key it ignores)
        name = draw(st.sampled_from([k for k in _present(ev) if k != "customer"]))
        depth = draw(st.one_of(st.integers(2, 60), st.integers(1000, 1100)))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        return _field_or_line(_placeholder(ev, name, opener * depth + b"1" + closer * depth),
                              kind, name)
    if kind == "invalid_utf8":
        strings = [k for k in _present(ev) if type(ev[k]) is str]
        name = draw(st.sampled_from(strings))
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80",
                                     b"\x80abc", b"\\ud800", b"\\udfff x"]))
        line = _placeholder(ev, name, b'"' + junk + b'"')
        if draw(st.integers(0, 5)) == 0:
            line = b"\xef\xbb\xbf" + _dump(ev)  # a byte-order mark before a good event
        return _field_or_line(line, kind, name)
    if kind == "nan_inf":
        numeric = [k for k in _present(ev) if k in _INT_FIELDS | _NUM_FIELDS]
        name = draw(st.sampled_from(numeric))
        raw = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400",
                                    b"nan", b"inf"]))
        return _field_or_line(_placeholder(ev, name, raw), kind, name)
    if kind == "bad_ts":
        raw = draw(st.sampled_from([
            b"-1", str(-draw(st.integers(1, 10**15))).encode(), str(MAX_TS + 1).encode(),
            str(draw(st.integers(MAX_TS + 1, 2**63))).encode(), b"18446744073709551616",
            b"99999999999999999999999999", b"1.79e12", b"1790000000000.0", b'"1790000000000"',
            b"1e12"]))
        return _field_or_line(_placeholder(ev, "ts", raw), kind, "ts")
    if kind == "unknown_type":
        etype = draw(st.one_of(st.text(max_size=20), st.sampled_from(
            ["Chat.Requested", "chat.requested ", "chat", "", "clock\x00", "agent_state"])))
        if etype in TYPES:
            etype += "!"
        ev["type"] = etype
        return Bad(_dump(ev), kind, "type")
    if kind == "bad_id":
        ev["id"] = draw(st.one_of(st.just(""), st.just("i" * 129), st.integers(-2**63, 2**63 - 1),
                                  st.just(["e1"]), st.just({"id": "e1"}), st.booleans()))
        return Bad(_dump(ev), kind, "id")
    if kind == "bad_tenant":
        ev["tenant"] = draw(st.one_of(
            st.sampled_from(["", "t 1", "t1\n", "shop/a", "商店", "t" * 65, "t1;drop", "a\\b"]),
            st.integers(-2**63, 2**63 - 1), st.just(["t1"]), st.booleans()))
        return Bad(_dump(ev), kind, "tenant")
    assert kind == "not_object"
    whole = _dump(ev)
    line = draw(st.sampled_from([
        b"[" + whole + b"]", b"42", b'"chat.requested"', b"null", b"true",
        whole[: draw(st.integers(1, len(whole) - 1))], whole + b"}", whole + b" x",
        b"{" + whole[1:].replace(b'"', b"'"), b"{}"]))
    if line == b"{}":
        return Bad(line, kind, "type")
    return Bad(line, kind, None)


@st.composite
def mixed_streams(draw: st.DrawFn, max_size: int = 50, max_bad: int = 8,
                  ) -> tuple[list[dict[str, Any]], list[tuple[bytes, Bad | None]]]:
    """(the valid events, the lines of the mixed input: (line, None) for a
    valid event, (line, Bad) for a malformed one), in input order."""
    events = draw(streams(max_size=max_size))
    mixed: list[tuple[bytes, Bad | None]] = [(orjson.dumps(e), None) for e in events]
    for _ in range(draw(st.integers(1, max_bad))):
        bad = draw(bad_lines())
        mixed.insert(draw(st.integers(0, len(mixed))), (bad.line, bad))
    return events, mixed
