"""Input events of the contract (v1): decoding and validation in one place.

``decode(line)`` turns one JSON Lines line into a clean event dict (only the
contract's fields, defaults filled in) or raises ``EventError`` whose message
names the event type, the field and what was expected, e.g.::

    page.viewed: field 'ts' must be an integer ms timestamp, got "yesterday"

Events are plain dicts (fast to build, to compare and to encode); their shape
per type is documented by the ``FIELDS`` table below, which is also the
validator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
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


def _tenant(v: object) -> str:
    if type(v) is str and TENANT_RE.fullmatch(v):
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


# field -> (check, required, default). The common fields are checked first.
Spec = tuple[tuple[str, Check, bool, object], ...]

FIELDS: Mapping[str, Spec] = {
    "agent.state": (
        ("agent", _ident, True, None),
        ("status", _status, True, None),
        # absent: the agent keeps its current value (a new agent: capacity 5,
        # no skills), so the decoder fills no default here: the engine does
        ("capacity", _capacity, False, None),
        ("skills", _skills, False, None),
        ("channels", _names, False, None),
        ("regions", _names, False, None),
    ),
    "visitor.arrived": (
        ("visitor", _ident, True, None),
        ("channel", _name, True, None),
        ("region", _name, False, None),
        ("customer", _customer, False, None),
        ("exclusive_agent", _ident, False, None),
    ),
    "page.viewed": (
        ("visitor", _ident, True, None),
        ("page", _name, True, None),
        ("keyword", _text, False, None),
        ("category", _name, False, None),
        ("sku", _name, False, None),
    ),
    "chat.requested": (
        ("visitor", _ident, True, None),
        ("chat", _ident, True, None),
        ("message", _text, False, None),
        ("skill", _name, False, None),
    ),
    "chat.accepted": (
        ("chat", _ident, True, None), ("agent", _ident, True, None),
        ("origin", _tenant, False, None),
    ),
    "chat.declined": (
        ("chat", _ident, True, None), ("agent", _ident, True, None),
        ("origin", _tenant, False, None),
    ),
    "bot.escalated": (("chat", _ident, True, None),),
    "chat.ended": (
        ("chat", _ident, True, None), ("resolved", _bool, False, None),
        ("origin", _tenant, False, None),
    ),
    "visitor.left": (("visitor", _ident, True, None),),
    "order.placed": (("visitor", _ident, True, None), ("amount", _amount, True, None)),
    "clock": (),
    # routeq's own: a merchant's overflowed chat arriving at the platform tenant
    # (re-published by a distributed runtime; the embedded one applies it inline)
    "chat.handed_over": (
        ("chat", _ident, True, None),
        ("visitor", _ident, True, None),
        ("from", _tenant, True, None),
        ("requested_ts", _ts, True, None),
        ("skill", _name, False, None),
        ("page", _name, False, None),
        ("keyword", _text, False, None),
        ("category", _name, False, None),
        ("channel", _name, False, None),
        ("region", _name, False, None),
        ("customer", _customer, False, None),
        ("returning", _bool, False, None),
    ),
}

TYPES = tuple(FIELDS)
_TYPES_TEXT = ", ".join(TYPES)


def validate(obj: object) -> Event:
    """Check a decoded JSON value against the contract; return a clean event."""
    if type(obj) is dict:
        etype = obj.get("type")
        fast = _FAST.get(etype) if type(etype) is str else None
        if fast is not None:
            event = fast(obj)
            if event is not None:
                return event
    try:
        return _validate(obj)
    except EventError as exc:
        if type(obj) is dict:
            eid = obj.get("id")
            if type(eid) is str and 1 <= len(eid) <= 128:
                exc.event_id = eid
        raise


def _validate(obj: object) -> Event:
    """``validate`` step by step: the reference, and the error messages."""
    if type(obj) is not dict:
        raise EventError(f"event: must be a JSON object, got {_show(obj)}")
    etype = obj.get("type")
    if type(etype) is not str or etype not in FIELDS:
        if "type" not in obj:
            raise EventError("event: field 'type' is required (one of " + _TYPES_TEXT + ")")
        raise EventError(f"event: field 'type' must be one of {_TYPES_TEXT}, got {_show(etype)}")
    assert isinstance(etype, str)
    out: Event = {"type": etype}
    tenant: str | None = None
    ts: int | None = None
    raw_tenant = obj.get("tenant")
    if type(raw_tenant) is str and TENANT_RE.fullmatch(raw_tenant):
        tenant = raw_tenant
    common: tuple[tuple[str, Check, bool], ...] = (
        ("id", _ident, True),
        ("ts", _ts, True),
        ("tenant", _tenant, etype != "clock"),
    )
    for name, check, required in common:
        if name not in obj:
            if required:
                raise EventError(f"{etype}: field '{name}' is required", tenant)
            continue
        try:
            out[name] = check(obj[name])
        except _Bad as bad:
            raise EventError(
                f"{etype}: field '{name}' must be {bad.expected}, got {_show(obj[name])}", tenant
            ) from None
    ts = out["ts"]
    for name, check, required, default in FIELDS[etype]:
        if name not in obj or (obj[name] is None and not required):
            if required:
                raise EventError(f"{etype}: field '{name}' is required", tenant, ts)
            if default is not None:
                out[name] = dict(default) if isinstance(default, dict) else default
            continue
        try:
            out[name] = check(obj[name])
        except _Bad as bad:
            raise EventError(
                f"{etype}: field '{name}' must be {bad.expected}, got {_show(obj[name])}",
                tenant,
                ts,
            ) from None
    return out


# ------------------------------------------------------------ the fast path
#
# ``validate`` first tries a function generated from ``FIELDS`` per type, with
# the simple checks inlined: it returns the same event as ``_validate`` for a
# valid input, and None for anything it does not accept, which then goes the
# step-by-step way (and gets its precise error). tests/schemas/test_fast_validate.py
# checks that both agree.

_MISSING = object()

#: tenant names the fast path has seen match ``TENANT_RE`` (there are few)
_TENANTS_OK: set[str] = set()
_TENANTS_KEPT = 65_536


def _tenant_new(v: str) -> bool:
    if TENANT_RE.fullmatch(v) is None:
        return False
    if len(_TENANTS_OK) < _TENANTS_KEPT:
        _TENANTS_OK.add(v)
    return True

#: inline tests (on ``v``) of the checks that keep the value as is
_INLINE: dict[Check, str] = {
    _ident: "type(v) is str and 0 < len(v) <= 128",
    _name: "type(v) is str and 0 < len(v) <= 128",
    _text: f"type(v) is str and len(v) <= {MAX_TEXT}",
    _tenant: "type(v) is str and (v in _TENANTS_OK or _tenant_new(v))",
    _ts: f"type(v) is int and 0 <= v <= {MAX_TS}",
    _status: "type(v) is str and v in ('online', 'away', 'offline')",
    _capacity: "type(v) is int and 0 <= v <= 100",
    _bool: "type(v) is bool",
}


def _fast_source(etype: str, spec: Spec, checks: dict[str, Check]) -> str:
    code = [f"def fast(obj):\n    ev = {{'type': {etype!r}}}"]

    def field(name: str, check: Check, required: bool, default: object, common: bool) -> None:
        if check in _INLINE:
            test, take = f"not ({_INLINE[check]})", "v"
        else:
            checks[name] = check
            test, take = "False", f"_check_{name.replace('.', '_')}(v)"
        if required:
            code.append(f"    v = obj.get({name!r}, _MISSING)\n"
                        f"    if {test}: return None\n"
                        f"    ev[{name!r}] = {take}")
        elif common:  # an optional common field may be absent, not null
            code.append(f"    v = obj.get({name!r}, _MISSING)\n"
                        f"    if v is not _MISSING:\n"
                        f"        if {test}: return None\n"
                        f"        ev[{name!r}] = {take}")
        else:
            absent = (f"ev[{name!r}] = {default!r}" if default is not None else "pass")
            code.append(f"    v = obj.get({name!r})\n"
                        f"    if v is None:\n        {absent}\n"
                        f"    else:\n"
                        f"        if {test}: return None\n"
                        f"        ev[{name!r}] = {take}")

    field("id", _ident, True, None, True)
    field("ts", _ts, True, None, True)
    field("tenant", _tenant, etype != "clock", None, True)
    for name, check, required, default in spec:
        field(name, check, required, default, False)
    code.append("    return ev")
    return "\n".join(code)


def _checked(check: Check) -> Callable[[object], object]:
    """``check``, raising a private signal the fast path turns into None."""
    def run(v: object) -> object:
        try:
            return check(v)
        except _Bad:
            raise _NotFast from None
    return run


class _NotFast(Exception):
    pass


def _compile_fast(etype: str, spec: Spec) -> Callable[[dict[str, Any]], Event | None]:
    checks: dict[str, Check] = {}
    source = _fast_source(etype, spec, checks)
    scope: dict[str, Any] = {"_MISSING": _MISSING, "_TENANTS_OK": _TENANTS_OK,
                             "_tenant_new": _tenant_new}
    for name, check in checks.items():
        scope[f"_check_{name.replace('.', '_')}"] = _checked(check)
    exec(compile(source, f"<fast validate {etype}>", "exec"), scope)
    inner: Callable[[dict[str, Any]], Event | None] = scope["fast"]
    if not checks:
        return inner

    def fast(obj: dict[str, Any]) -> Event | None:
        try:
            return inner(obj)
        except _NotFast:
            return None
    return fast


_FAST: dict[str, Callable[[dict[str, Any]], Event | None]] = {
    etype: _compile_fast(etype, spec) for etype, spec in FIELDS.items()
}


def decode(line: bytes | str) -> Event:
    """Decode one JSON Lines line (bytes or str) into a validated event."""
    if len(line) > MAX_LINE_BYTES:
        raise EventError(f"event: line must be at most {MAX_LINE_BYTES} bytes, got {len(line)}")
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise EventError(f"event: line must be a JSON object ({exc.args[0]})") from None
    return validate(obj)


def decode_lines(lines: list[bytes]) -> tuple[list[Event | EventError], list[int]]:
    """``decode`` of each line: the events (an ``EventError`` in place of a bad
    line) and the indexes of the bad lines. The same results as calling
    ``decode`` line by line, with the common case inlined."""
    loads = orjson.loads
    fast_for = _FAST.get
    decoded: list[Event | EventError] = []
    bad: list[int] = []
    add = decoded.append
    for line in lines:
        try:
            if len(line) <= MAX_LINE_BYTES:
                try:
                    obj = loads(line)
                except orjson.JSONDecodeError:
                    obj = None
                if type(obj) is dict:
                    etype = obj.get("type")
                    fast = fast_for(etype) if type(etype) is str else None
                    if fast is not None:
                        event = fast(obj)
                        if event is not None:
                            add(event)
                            continue
            add(decode(line))  # the careful way, with the precise error
        except EventError as exc:
            bad.append(len(decoded))
            add(exc)
        except Exception as exc:  # a validator bug must not stop the run
            bad.append(len(decoded))
            add(EventError(f"event: cannot be read ({type(exc).__name__}: {exc})"))
    return decoded, bad


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The canonical JSON encoding of an input event (no newline)."""
    return orjson.dumps(event)
