"""The clock-skew guard of the live runtimes (``routeq serve`` and ``routeq worker``).

The engine is pure: a tenant's time is the largest ``ts`` it has seen, so one
event stamped in the future (a chat server with a wrong clock, a ``ts`` in
seconds) would move the tenant's time forward and keep it there. The live
runtimes, which take events as they happen, compare each event's ``ts`` with
their wall clock before the engine sees it and reject, line by line:

- a ``ts`` more than ``max_skew_ms`` ahead of the wall clock;
- a ``ts`` that looks like Unix time in seconds: from 10^9 to 10^11 (read as
  seconds, the years 2001 to 5138; read as milliseconds, 12 January 1970 to
  3 March 1973, when no chat server was sending events).

``routeq run`` / ``replay`` and the engine do not: replaying a log gives the
same outputs whatever the time of day.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from schemas.events import MAX_TS, TYPES

DEFAULT_MAX_SKEW_S = 300
#: a ts in [SECONDS_FROM, SECONDS_TO) looks like seconds, not milliseconds
SECONDS_FROM = 1_000_000_000
SECONDS_TO = 100_000_000_000


def _utc(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):  # past the year 9999
        return "beyond the year 9999"


def skew_error(typ: str, ts: int, now_ms: int, max_skew_ms: int,
               who: str = "server") -> str | None:
    """Why ``ts`` is refused (naming the field), or None. ``max_skew_ms`` 0: no check."""
    if max_skew_ms <= 0:
        return None
    if SECONDS_FROM <= ts < SECONDS_TO:
        return (f"{typ}: field 'ts' {ts} looks like Unix time in seconds ({_utc(ts * 1000)}), "
                f"not milliseconds (as ms it is {_utc(ts)}): send ts in milliseconds")
    ahead = ts - now_ms
    if ahead > max_skew_ms:
        return (f"{typ}: field 'ts' {ts} ({_utc(ts)}) is {ahead / 1000:.0f} s ahead of this "
                f"{who}'s clock ({_utc(now_ms)}), more than --max-skew-s "
                f"{max_skew_ms // 1000}: check the sender's clock (NTP); the event was not "
                f"applied, send it again with a correct ts")
    return None


def skewed_lines(values: Sequence[object], max_skew_ms: int, now_ms: int | None = None,
                 who: str = "server") -> dict[int, tuple[str, str]]:
    """``{index: (error, tenant)}`` for the lines whose ``ts`` is refused, given
    their values (``schemas.events.parse_lines``). Lines that are not an event
    object with a valid ``ts`` (an integer the contract accepts) and a known
    ``type`` are left to the decoder (which names what is wrong, and whose
    rejection is logged like any other)."""
    if max_skew_ms <= 0:
        return {}
    now = int(time.time() * 1000) if now_ms is None else now_ms
    found: dict[int, tuple[str, str]] = {}
    for i, obj in enumerate(values):
        if not isinstance(obj, dict):
            continue
        ts, typ = obj.get("ts"), obj.get("type")
        if (type(ts) is not int or not 0 <= ts <= MAX_TS or not isinstance(typ, str)
                or typ not in TYPES):
            continue
        err = skew_error(typ, ts, now, max_skew_ms, who)
        if err is not None:
            tenant = obj.get("tenant")
            found[i] = (err, tenant if isinstance(tenant, str) else "")
    return found
