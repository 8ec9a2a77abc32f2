"""Input events of the contract (v1): decoding and validation in one place.

``decode_lines(lines)`` is the decoder of every runtime: it turns JSON Lines
lines into clean event dicts (only the contract's fields, a ``customer``'s
defaults filled in), or, in place of a bad line, an ``EventError`` whose
message names the event type, the field and what was expected, e.g.::

    page.viewed: field 'ts' must be an integer ms timestamp, got "yesterday"

``decode(line)`` is that of one line and ``validate(obj)`` the step after
JSON parsing. Events are plain dicts (fast to build, to compare and to
encode); their shape per type is the ``FIELDS`` table below, which is also
what the decoder walks: one check function per kind of value, plain typed
code (no generated code), so that it compiles with mypyc.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

Event = dict[str, Any]

MAX_LINE_BYTES = 64 * 1024
MAX_TS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_TEXT = 4096
MAX_LIST = 64

TENANT_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")

#: the chat id an overflowed chat has inside the tenant that took it over
OVERFLOW_SEP = "/"


class EventError(ValueError):
    """A malformed input event. ``str(err)`` names the type, field and expectation."""

    def __init__(self, message: str, tenant: str | None = None, ts: int | None = None) -> None:
        super().__init__(message)
        self.tenant = tenant
        self.ts = ts
        #: the line's ``id`` where it was a valid one (the ``cause`` of its
        #: ``event.rejected``), else None
        self.event_id: str | None = None


def _show(value: object) -> str:
    """A short, JSON-looking rendering of a bad value for error messages."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # nested deeper than orjson writes: repr would recurse as deep
        text = "[...]" if type(value) is list else "{...}" if type(value) is dict else repr(
            value)
    return text if len(text) <= 60 else text[:57] + "..."


Check = Callable[[object], object]  # returns the clean value or raises _Bad


class _Bad(Exception):
    def __init__(self, expected: str) -> None:
        self.expected = expected


def _ident(v: object) -> str:
    if type(v) is str and 1 <= len(v) <= 128:
        return v
    raise _Bad("a string of 1-128 chars")


def _text(v: object) -> str:
    if type(v) is str and len(v) <= MAX_TEXT:
        return v
    raise _Bad(f"a string of at most {MAX_TEXT} chars")


def _name(v: object) -> str:
    if type(v) is str and 1 <= len(v) <= 128:
        return v
    raise _Bad("a non-empty string of at most 128 chars")


#: tenant names seen to match ``TENANT_RE`` (there are few; every event names one)
_TENANTS_OK: set[str] = set()
_TENANTS_KEPT = 65_536


def _tenant_ok(v: str) -> bool:
    if v in _TENANTS_OK:
        return True
    if TENANT_RE.fullmatch(v) is None:
        return False
    if len(_TENANTS_OK) < _TENANTS_KEPT:
        _TENANTS_OK.add(v)
    return True


def _tenant(v: object) -> str:
    if type(v) is str and (v in _TENANTS_OK or _tenant_ok(v)):  # the set: no call
        return v
    raise _Bad("a string of 1-64 chars of [A-Za-z0-9_.-]")


def _ts(v: object) -> int:
    if type(v) is int and 0 <= v <= MAX_TS:
        return v
    raise _Bad("an integer ms timestamp")


def _status(v: object) -> str:
    if type(v) is str and v in ("online", "away", "offline"):
        return v
    raise _Bad("one of online, away, offline")


def _capacity(v: object) -> int:
    if type(v) is int and 0 <= v <= 100:
        return v
    raise _Bad("an integer 0-100")


def _skills(v: object) -> dict[str, int]:
    if type(v) is dict and len(v) <= MAX_LIST:
        out: dict[str, int] = {}
        for k, lvl in v.items():
            if not (type(k) is str and 1 <= len(k) <= 128 and type(lvl) is int and 1 <= lvl <= 5):
                raise _Bad("an object of skill name -> level 1-5")
            out[k] = lvl
        return out
    raise _Bad("an object of skill name -> level 1-5")


def _names(v: object) -> list[str]:
    if type(v) is list and len(v) <= MAX_LIST and all(
        type(x) is str and 1 <= len(x) <= 128 for x in v
    ):
        return list(v)
    raise _Bad(f"a list of at most {MAX_LIST} non-empty strings")


def _bool(v: object) -> bool:
    if type(v) is bool:
        return v
    raise _Bad("true or false")


def _amount(v: object) -> float:
    if (type(v) is int or type(v) is float) and math.isfinite(v) and v >= 0:
        return v
    raise _Bad("a finite number >= 0")


def _customer(v: object) -> dict[str, Any]:
    if type(v) is not dict:
        raise _Bad("an object {member, tier, orders, ltv}")
    out: dict[str, Any] = {"member": False, "tier": 0, "orders": 0, "ltv": 0}
    for key, check, what in (
        ("member", _bool, "true or false"),
        ("tier", None, "an integer 0-5"),
        ("orders", None, "an integer >= 0"),
        ("ltv", _amount, "a finite number >= 0"),
    ):
        if key not in v:
            continue
        val = v[key]
        if key == "tier":
            if not (type(val) is int and 0 <= val <= 5):
                raise _Bad(f"an object whose 'tier' is {what}")
        elif key == "orders":
            if not (type(val) is int and 0 <= val <= 10**9):
                raise _Bad(f"an object whose 'orders' is {what}")
        else:
            assert check is not None
            try:
                val = check(val)
            except _Bad:
                raise _Bad(f"an object whose '{key}' is {what}") from None
        out[key] = val
    return out


#: what each check accepts, as JSON Schema (draft 2020-12): ``schemas/jsonschema.py``
#: builds the published schemas (``schemas/json/``) from these and ``FIELDS``, and
#: tests/schemas/test_json_schema.py checks that the schemas and the checks agree
JSON_SCHEMA: Mapping[Check, Mapping[str, Any]] = {
    _ident: {"type": "string", "minLength": 1, "maxLength": 128},
    _text: {"type": "string", "maxLength": MAX_TEXT},
    _name: {"type": "string", "minLength": 1, "maxLength": 128},
    _tenant: {"type": "string", "pattern": "^" + TENANT_RE.pattern + "$"},
    _ts: {"type": "integer", "minimum": 0, "maximum": MAX_TS},
    _status: {"type": "string", "enum": ["online", "away", "offline"]},
    _capacity: {"type": "integer", "minimum": 0, "maximum": 100},
    _skills: {"type": "object", "maxProperties": MAX_LIST,
              "propertyNames": {"minLength": 1, "maxLength": 128},
              "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 5}},
    _names: {"type": "array", "maxItems": MAX_LIST,
             "items": {"type": "string", "minLength": 1, "maxLength": 128}},
    _bool: {"type": "boolean"},
    _amount: {"type": "number", "minimum": 0},
    _customer: {"type": "object", "properties": {
        "member": {"type": "boolean", "default": False},
        "tier": {"type": "integer", "minimum": 0, "maximum": 5, "default": 0},
        "orders": {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0},
        "ltv": {"type": "number", "minimum": 0, "default": 0}}},
}

#: input types and fields that routeq writes itself (a distributed runtime's
#: hand-over of an overflowed chat): not part of the public contract
INTERNAL_TYPES = frozenset({"chat.handed_over"})
INTERNAL_FIELDS = frozenset({"origin"})


#: a type's own fields: (name, check, required), in the order the decoded event
#: has them. The common fields (``id``, ``ts``, ``tenant``) come first.
Spec = tuple[tuple[str, Check, bool], ...]

FIELDS: Mapping[str, Spec] = {
    "agent.state": (
        ("agent", _ident, True),
        ("status", _status, True),
        # absent: the agent keeps its current value (a new agent: capacity 5,
        # no skills), so the decoder fills no default here: the engine does
        ("capacity", _capacity, False),
        ("skills", _skills, False),
        ("channels", _names, False),
        ("regions", _names, False),
        # the agent's own wrap-up after a chat ends, in seconds
        ("wrap_up_s", _amount, False),
    ),
    "visitor.arrived": (
        ("visitor", _ident, True),
        ("channel", _name, True),
        ("region", _name, False),
        ("customer", _customer, False),
        ("exclusive_agent", _ident, False),
    ),
    "page.viewed": (
        ("visitor", _ident, True),
        ("page", _name, True),
        ("keyword", _text, False),
        ("category", _name, False),
        ("sku", _name, False),
    ),
    "chat.requested": (
        ("visitor", _ident, True),
        ("chat", _ident, True),
        ("message", _text, False),
        ("skill", _name, False),
    ),
    "chat.accepted": (
        ("chat", _ident, True), ("agent", _ident, True),
        ("origin", _tenant, False),
    ),
    "chat.declined": (
        ("chat", _ident, True), ("agent", _ident, True),
        ("origin", _tenant, False),
    ),
    "bot.escalated": (("chat", _ident, True),),
    "chat.ended": (
        ("chat", _ident, True), ("resolved", _bool, False),
        ("origin", _tenant, False),
    ),
    "chat.transferred": (
        ("chat", _ident, True), ("agent", _ident, True),
        ("to_agent", _ident, False), ("to_skill", _name, False),
        ("origin", _tenant, False),
    ),
    "visitor.left": (("visitor", _ident, True),),
    "order.placed": (("visitor", _ident, True), ("amount", _amount, True)),
    "clock": (),
    # routeq's own: a merchant's overflowed chat arriving at the platform tenant
    # (re-published by a distributed runtime; the embedded one applies it inline)
    "chat.handed_over": (
        ("chat", _ident, True),
        ("visitor", _ident, True),
        ("from", _tenant, True),
        ("requested_ts", _ts, True),
        ("skill", _name, False),
        ("page", _name, False),
        ("keyword", _text, False),
        ("category", _name, False),
        ("channel", _name, False),
        ("region", _name, False),
        ("customer", _customer, False),
        ("returning", _bool, False),
    ),
}

TYPES = tuple(FIELDS)

#: types that need at least one of some optional fields
AT_LEAST_ONE: Mapping[str, tuple[str, ...]] = {"chat.transferred": ("to_agent", "to_skill")}


def _shape(etype: str, spec: Spec) -> tuple[tuple[tuple[str, Check], ...],
                                          tuple[tuple[str, Check], ...]]:
    """A type's required fields and its optional ones (``FIELDS`` names the
    required first, so checking them first keeps the order of the fields and
    of the errors)."""
    required = tuple((name, check) for name, check, req in spec if req)
    optional = tuple((name, check) for name, check, req in spec if not req)
    assert [n for n, *_ in spec] == [n for n, _ in required + optional], etype
    return required, optional


_SHAPES = {etype: _shape(etype, spec) for etype, spec in FIELDS.items()}
_TYPES_TEXT = ", ".join(TYPES)


#: the fields every event has, checked before its own: (name, check, required
#: of a clock too). Every other type requires them all (a clock without a
#: tenant is every tenant's).
COMMON_FIELDS: Spec = (("id", _ident, True), ("ts", _ts, True), ("tenant", _tenant, False))


def _error(message: str, obj: dict[str, Any], ts: int | None = None, *,
           typed: bool = True) -> EventError:
    """An ``EventError`` about ``obj``, naming its id where it is valid (the
    ``cause`` of its ``event.rejected``) and, once the type is known
    (``typed``), its tenant where it is valid (the output's tenant)."""
    raw_tenant = obj.get("tenant") if typed else None
    tenant = raw_tenant if type(raw_tenant) is str and _tenant_ok(raw_tenant) else None
    err = EventError(message, tenant, ts)
    eid = obj.get("id")
    if type(eid) is str and 1 <= len(eid) <= 128:
        err.event_id = eid
    return err


def _common_error(etype: str, obj: dict[str, Any]) -> EventError:
    """The error of the first common field that is missing or refused."""
    for name, check, required in COMMON_FIELDS:
        if name not in obj:
            if required or etype != "clock":
                return _error(f"{etype}: field '{name}' is required", obj)
            continue
        try:
            check(obj[name])
        except _Bad as bad:
            return _error(_bad_field(etype, name, bad.expected, obj[name]), obj)
    raise AssertionError(f"{etype}: no common field is wrong")


def _bad_field(etype: str, name: str, expected: str, value: object) -> str:
    return f"{etype}: field '{name}' must be {expected}, got {_show(value)}"


def validate(obj: object) -> Event:
    """Check a decoded JSON value against the contract; return a clean event:
    the common fields, then the type's own in ``FIELDS`` order (an optional
    field absent or null is left out)."""
    if type(obj) is not dict:
        raise EventError(f"event: must be a JSON object, got {_show(obj)}")
    etype = obj.get("type")
    shape = _SHAPES.get(etype) if type(etype) is str else None
    if shape is None:
        if "type" not in obj:
            raise _error("event: field 'type' is required (one of " + _TYPES_TEXT + ")", obj,
                         typed=False)
        raise _error(f"event: field 'type' must be one of {_TYPES_TEXT}, got {_show(etype)}",
                     obj, typed=False)
    assert type(etype) is str
    out: Event = {"type": etype}
    try:
        out["id"] = _ident(obj["id"])
        out["ts"] = ts = _ts(obj["ts"])
        if "tenant" in obj:
            out["tenant"] = _tenant(obj["tenant"])
        elif etype != "clock":  # a clock without a tenant is every tenant's
            raise KeyError("tenant")
    except (KeyError, _Bad):
        raise _common_error(etype, obj) from None
    required, optional = shape
    for name, check in required:
        value = obj.get(name)
        if value is None and name not in obj:
            raise _error(f"{etype}: field '{name}' is required", obj, ts)
        try:
            out[name] = check(value)
        except _Bad as bad:
            raise _error(_bad_field(etype, name, bad.expected, value), obj, ts) from None
    if len(obj) > len(out):  # keys not taken yet: optional fields, or ones routeq ignores
        for name, check in optional:
            value = obj.get(name)
            if value is None:  # absent, or null: an optional field's null counts as absent
                continue
            try:
                out[name] = check(value)
            except _Bad as bad:
                raise _error(_bad_field(etype, name, bad.expected, value), obj, ts) from None
    one_of = AT_LEAST_ONE.get(etype)
    if one_of is not None and not any(name in out for name in one_of):
        raise _error(f"{etype}: field " + " or ".join(f"'{n}'" for n in one_of)
                     + " is required", obj, ts)
    return out


def decode(line: bytes | str) -> Event:
    """Decode one JSON Lines line (bytes or str) into a validated event
    (what ``decode_lines`` gives for that one line); raises ``EventError``."""
    return _decoded(line, None)


def _not_json(exc: orjson.JSONDecodeError) -> EventError:
    return EventError(f"event: line must be a JSON object ({exc.args[0]})")


def parse_lines(lines: Sequence[bytes | str]) -> list[object]:
    """Each line's JSON value, or in its place the ``EventError`` that says it
    is not JSON: for a shell that looks at the values before it decodes them
    (``routeq serve`` checks a post's tenants), then hands them to
    ``decode_lines`` so that no line is parsed twice."""
    loads = orjson.loads
    values: list[object] = []
    for line in lines:
        try:
            values.append(loads(line))
        except orjson.JSONDecodeError as exc:
            values.append(_not_json(exc))
    return values


def decode_lines(lines: Sequence[bytes | str], values: Sequence[object] | None = None,
                 ) -> tuple[list[Event | EventError], list[int]]:
    """The decoder of every runtime: each JSON Lines line as a validated event,
    or the ``EventError`` that says what is wrong with it in its place; and the
    indexes of the bad lines. ``values``: the lines' values as ``parse_lines``
    gives them, where the caller has them already (else the lines are parsed
    here)."""
    decoded: list[Event | EventError] = []
    bad: list[int] = []
    for i, line in enumerate(lines):
        try:
            decoded.append(_decoded(line, None if values is None else values[i]))
        except EventError as exc:
            bad.append(len(decoded))
            decoded.append(exc)
    return decoded, bad


def _decoded(line: bytes | str, value: object) -> Event:
    """One line as a validated event (``value``: its JSON value, parsed
    already, or None); raises ``EventError``."""
    if len(line) > MAX_LINE_BYTES:
        raise EventError(f"event: line must be at most {MAX_LINE_BYTES} bytes, got {len(line)}")
    if value is None:
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise _not_json(exc) from None
    elif isinstance(value, EventError):
        raise value
    try:
        return validate(value)
    except EventError:
        raise
    except Exception as exc:  # a validator bug must not stop the run
        raise EventError(f"event: cannot be read ({type(exc).__name__}: {exc})") from None


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The canonical JSON encoding of an input event (no newline)."""
    return orjson.dumps(event)
