"""A tenant's business hours, in its own fixed UTC offset.

No time-zone database: an offset and a week of opening spans are enough to
say, for any event time, whether the tenant is open, and the answer depends
on nothing but the rules and that time (the engine stays a pure function).
Rules (``[hours.tenants.NAME]``)::

    utc_offset = "+08:00"
    week = { mon = ["09:00-12:00", "13:00-22:00"], sat = [] }  # days not named: open all day
    closed = ["2024-02-10"]                                      # whole days closed
    after_hours = "robot_only"                                    # or "closed"

A span ``"09:00-12:00"`` is open from 09:00:00.000 up to, not including,
12:00 (``"24:00"`` ends a span at midnight), so opening and closing are exact
to the millisecond of event time.
"""

from __future__ import annotations

from datetime import date

DAY_MS = 86_400_000
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
AFTER_HOURS = ("robot_only", "closed")
_EPOCH = date(1970, 1, 1).toordinal()  # a Thursday


class HoursError(ValueError):
    """A malformed hours table (the message names the key)."""


class Hours:
    """When one tenant is open."""

    __slots__ = ("offset_ms", "week", "closed", "after_hours")

    def __init__(self, offset_ms: int, week: tuple[tuple[tuple[int, int], ...] | None, ...],
                 closed: frozenset[int], after_hours: str) -> None:
        self.offset_ms = offset_ms
        self.week = week  # Monday first; None: open all day
        self.closed = closed  # local days (since 1970-01-01) closed all day
        self.after_hours = after_hours

    def is_open(self, ts: int) -> bool:
        local = ts + self.offset_ms
        day = local // DAY_MS
        if day in self.closed:
            return False
        spans = self.week[(day + 3) % 7]  # day 0, 1970-01-01, was a Thursday
        if spans is None:
            return True
        ms = local - day * DAY_MS
        return any(start <= ms < end for start, end in spans)


def _clock(key: str, text: str, *, end: bool) -> int:
    """Milliseconds into the day of ``HH:MM`` (``24:00`` only as an end)."""
    hh, sep, mm = text.partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and len(hh) == 2 and len(mm) == 2):
        raise HoursError(f"rules: key '{key}' must be spans like \"09:00-12:00\", got {text!r}")
    h, m = int(hh), int(mm)
    if m > 59 or h > 24 or (h == 24 and (m or not end)):
        raise HoursError(f"rules: key '{key}' has no such time of day: {text!r}")
    return (h * 60 + m) * 60_000


def _offset(key: str, v: object) -> int:
    if not (type(v) is str and len(v) == 6 and v[0] in "+-" and v[3] == ":"
            and v[1:3].isdigit() and v[4:].isdigit() and int(v[1:3]) <= 14
            and int(v[4:]) <= 59):
        raise HoursError(f"rules: key '{key}' must be an offset like \"+08:00\", got {v!r}")
    ms = (int(v[1:3]) * 60 + int(v[4:])) * 60_000
    return ms if v[0] == "+" else -ms


def _day(key: str, v: object) -> int:
    if type(v) is str:
        try:
            return date.fromisoformat(v).toordinal() - _EPOCH
        except ValueError:
            pass
    raise HoursError(f"rules: key '{key}' must list dates like \"2024-02-10\", got {v!r}")


def check_hours(key: str, v: object) -> dict[str, object]:
    """Validate one tenant's hours table; return it normalised (as rules data)."""
    if type(v) is not dict:
        raise HoursError(f"rules: key '{key}' must be a table (utc_offset, week, closed, "
                         "after_hours)")
    unknown = sorted(set(v) - {"utc_offset", "week", "closed", "after_hours"})
    if unknown:
        raise HoursError(f"rules: unknown key '{key}.{unknown[0]}' (expected utc_offset, "
                         "week, closed, after_hours)")
    out: dict[str, object] = {"utc_offset": v.get("utc_offset", "+00:00")}
    _offset(f"{key}.utc_offset", out["utc_offset"])
    week = v.get("week", {})
    if type(week) is not dict or not set(week) <= set(DAYS):
        raise HoursError(f"rules: key '{key}.week' must be a table of {', '.join(DAYS)} "
                         f"-> spans, got {week!r}")
    out["week"] = {}
    for d in DAYS:  # in week order, whatever order they were written in
        if d in week:
            spans = week[d]
            if type(spans) is not list or not all(type(s) is str for s in spans):
                raise HoursError(f"rules: key '{key}.week.{d}' must be a list of spans like "
                                 f"\"09:00-12:00\", got {spans!r}")
            for s in spans:
                _span(f"{key}.week.{d}", s)
            out["week"][d] = list(spans)  # type: ignore[index]
    closed = v.get("closed", [])
    if type(closed) is not list:
        raise HoursError(f"rules: key '{key}.closed' must be a list of dates, got {closed!r}")
    for x in closed:
        _day(f"{key}.closed", x)
    out["closed"] = list(closed)
    after = v.get("after_hours", "robot_only")
    if after not in AFTER_HOURS:
        raise HoursError(f"rules: key '{key}.after_hours' must be one of "
                         f"{', '.join(AFTER_HOURS)}, got {after!r}")
    out["after_hours"] = after
    return out


def _span(key: str, text: str) -> tuple[int, int]:
    start, sep, end = text.partition("-")
    if not sep:
        raise HoursError(f"rules: key '{key}' must be spans like \"09:00-12:00\", got {text!r}")
    lo, hi = _clock(key, start, end=False), _clock(key, end, end=True)
    if lo >= hi:
        raise HoursError(f"rules: key '{key}' has a span that ends before it starts: {text!r}")
    return lo, hi


def hours_of(data: dict[str, object]) -> Hours:
    """``Hours`` from a table ``check_hours`` normalised."""
    week = data["week"]
    assert isinstance(week, dict)
    closed = data["closed"]
    assert isinstance(closed, list)
    return Hours(
        _offset("utc_offset", data["utc_offset"]),
        tuple(tuple(_span(d, s) for s in week[d]) if d in week else None for d in DAYS),
        frozenset(_day("closed", x) for x in closed),
        str(data["after_hours"]))
