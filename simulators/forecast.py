"""A forecast of contacts per interval, as a staffing plan needs it.

A forecast is a list of equal intervals (15 or 30 minutes), each with the
chats expected to ask for a person, their mean handle time and the visitors'
mean patience (0: nobody leaves, sized with Erlang C). It comes from:

- a CSV (:func:`from_csv`): ``start, chats, handle_s, patience_s`` and an
  optional ``skill``, one row per interval (and skill); ``start`` is an ISO
  date-time, the interval is the step between starts;
- a recorded history (:func:`from_history`): the what-if's trace reader
  (``simulators.whatif.read_trace``) replays it and gives each chat's entry
  into the human queue, handle time and patience; per interval, the handle
  time is the mean over served chats and the patience the censored estimate
  (time exposed to waiting / visitors who gave up), each falling back to the
  whole history's where an interval has too few; ``growth`` scales the chats;
- a scenario (:func:`from_scenario`): one simulated run of it with its own
  staffing, read as a history;
- an order backlog (:func:`add_orders`): orders per state (``placed``,
  ``unshipped``, …) per interval, each state with a probability that one of
  its orders contacts the shop in that interval.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import math
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine import Rules

MINUTE_MS = 60_000
INTERVALS_MIN = (15, 30)
MIN_OBSERVED = 5  # chats (served, or who gave up) an interval needs for its own estimate


class ForecastError(ValueError):
    """A forecast that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Interval:
    start_ms: int
    chats: float  # expected chats asking for a person
    handle_s: float
    patience_s: float  # mean; 0: nobody leaves (Erlang C)
    skill: str | None = None


@dataclass
class Forecast:
    start_ms: int  # the first interval's start
    interval_min: int
    utc_offset_ms: int  # of the local time the report shows
    intervals: list[Interval]
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def interval_ms(self) -> int:
        return self.interval_min * MINUTE_MS

    @property
    def slots(self) -> int:
        """Intervals from the first start to the last one (skills share a slot)."""
        last = max(i.start_ms for i in self.intervals)
        return (last - self.start_ms) // self.interval_ms + 1

    def slot(self, iv: Interval) -> int:
        return (iv.start_ms - self.start_ms) // self.interval_ms

    def skills(self) -> list[str]:
        """The forecast's skills, sorted; "" for chats without one."""
        return sorted({i.skill or "" for i in self.intervals})

    def label(self, slot: int) -> str:
        t = self.start_ms + slot * self.interval_ms + self.utc_offset_ms
        return dt.datetime.fromtimestamp(t / 1000, dt.UTC).strftime("%m-%d %H:%M")

    def total_chats(self) -> float:
        return sum(i.chats for i in self.intervals)


def _number(row: dict[str, str], key: str, where: str, *, required: bool = True,
            minimum: float = 0.0) -> float:
    text = (row.get(key) or "").strip()
    if not text:
        if required:
            raise ForecastError(f"{where}: column '{key}' is empty: expected a number")
        return 0.0
    try:
        v = float(text)
    except ValueError:
        raise ForecastError(f"{where}: column '{key}' is {text!r}: expected a number") from None
    if not math.isfinite(v) or v < minimum:
        raise ForecastError(f"{where}: column '{key}' is {text!r}: expected a number >= "
                            f"{minimum:g}")
    return v


def _when(text: str, where: str) -> tuple[int, int]:
    """(epoch ms, UTC offset ms) of an ISO date-time (UTC when it has no offset)."""
    try:
        t = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ForecastError(f"{where}: column 'start' is {text!r}: expected an ISO date-time "
                            "like 2024-11-10T20:00:00+08:00") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    offset = t.utcoffset() or dt.timedelta(0)
    return int(t.timestamp() * 1000), int(offset.total_seconds() * 1000)


def _read_csv(path: str, what: str) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise ForecastError(f"{what} {path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ForecastError(f"{what} {path}: not a readable CSV ({exc})") from None
    if not rows:
        raise ForecastError(f"{what} {path} is empty: expected a header line and one row "
                            "per interval")
    if "start" not in rows[0]:
        raise ForecastError(f"{what} {path}: no 'start' column (header: "
                            f"{', '.join(k for k in rows[0] if k)})")
    return rows


def _step_min(starts: list[int], where: str) -> int:
    """The interval length implied by a sorted list of distinct starts."""
    if len(starts) < 2:
        return 30
    steps = {b - a for a, b in zip(starts, starts[1:], strict=False)}
    step = min(steps)
    if step % MINUTE_MS or any(s % step for s in steps):
        raise ForecastError(f"{where}: starts must be on a regular grid of minutes")
    return step // MINUTE_MS


def _fill_gaps(intervals: list[Interval], step_ms: int) -> list[Interval]:
    """Intervals with an empty one (no chats) in every slot the rows skip, so
    the slots run without holes from the first to the last."""
    starts = {i.start_ms for i in intervals}
    if not starts:
        return intervals
    skill = min((i.skill or "" for i in intervals), default="") or None
    first, last = min(starts), max(starts)
    gaps = [Interval(t, 0.0, 1.0, 0.0, skill) for t in range(first, last, step_ms)
            if t not in starts]
    return sorted([*intervals, *gaps], key=lambda i: (i.start_ms, i.skill or ""))


def from_csv(path: str) -> Forecast:
    rows = _read_csv(path, "forecast")
    for key in ("chats", "handle_s"):
        if key not in rows[0]:
            raise ForecastError(f"forecast {path}: no '{key}' column (expected start, chats, "
                                "handle_s, patience_s and optionally skill)")
    intervals = []
    offset = 0
    for n, row in enumerate(rows, start=2):
        where = f"forecast {path}, line {n}"
        start, offset = _when(row["start"] or "", where)
        handle = _number(row, "handle_s", where)
        if handle <= 0:
            raise ForecastError(f"{where}: column 'handle_s' must be > 0")
        intervals.append(Interval(start, _number(row, "chats", where), handle,
                                  _number(row, "patience_s", where, required=False),
                                  (row.get("skill") or "").strip() or None))
    starts = sorted({i.start_ms for i in intervals})
    step = _step_min(starts, f"forecast {path}")
    if step not in INTERVALS_MIN:
        raise ForecastError(f"forecast {path}: intervals of {step} min; expected 15 or 30")
    seen = set()
    for iv in intervals:
        if (iv.start_ms, iv.skill) in seen:
            raise ForecastError(f"forecast {path}: two rows for the interval at "
                                f"{iv.start_ms} and skill {iv.skill or '(none)'}")
        seen.add((iv.start_ms, iv.skill))
    return Forecast(starts[0], step, offset, _fill_gaps(intervals, step * MINUTE_MS),
                    f"CSV {path}")


def from_history(path: str, rules: Rules, interval_min: int = 30, growth: float = 1.0,
                 origin_ms: int | None = None, utc_offset_ms: int = 0,
                 end_ms: int | None = None, tenant: str | None = None) -> Forecast:
    """Per interval of the history: the chats that entered the human queue
    (times ``growth``), their handle time and patience (see the module doc);
    only ``tenant``'s chats where one is named; from ``origin_ms`` (else the
    first chat's interval) to before ``end_ms``."""
    from simulators.whatif import TraceError, read_trace

    if interval_min not in INTERVALS_MIN:
        raise ForecastError(f"--interval-min must be 15 or 30, got {interval_min}")
    try:
        trace = read_trace(path, rules)
    except TraceError as exc:
        raise ForecastError(str(exc)) from None
    with contextlib.suppress(OSError):
        Path(trace.exo).unlink()
    step = interval_min * MINUTE_MS
    t0 = origin_ms if origin_ms is not None else trace.t0 - trace.t0 % step
    # slot -> [chats, handle ms sum, served, exposure ms, gave up]
    acc: dict[int, list[float]] = {}
    for o in trace.chats.values():
        if not o.human or (tenant is not None and o.tenant != tenant):
            continue
        if end_ms is not None and o.entered >= end_ms:
            continue
        row = acc.setdefault((o.entered - t0) // step, [0, 0, 0, 0, 0])
        row[0] += 1
        if o.handle_ms >= 0:
            row[1] += o.handle_ms
            row[2] += 1
        if o.patience_ms >= 0:
            row[3] += o.patience_ms
            row[4] += 1
        elif o.wait_ms >= 0:
            row[3] += o.wait_ms
    if not acc:
        raise ForecastError(f"history {path}: no chat"
                            + (f" of tenant {tenant}" if tenant is not None else "")
                            + " asked for a person: nothing to staff")
    served = sum(r[2] for r in acc.values())
    if served == 0:
        raise ForecastError(f"history {path}: no chat was served, so there is no handle time "
                            "to size with; give a CSV forecast instead")
    handle_all = sum(r[1] for r in acc.values()) / served / 1000
    gave_up = sum(r[4] for r in acc.values())
    patience_all = sum(r[3] for r in acc.values()) / gave_up / 1000 if gave_up else 0.0
    intervals = []
    first = 0 if origin_ms is not None else min(acc)
    last = max(acc) if end_ms is None else max(max(acc), (end_ms - 1 - t0) // step)
    for slot in range(first, last + 1):
        chats, hsum, n_served, exposure, n_gave = acc.get(slot, [0, 0, 0, 0, 0])
        handle = hsum / n_served / 1000 if n_served >= MIN_OBSERVED else handle_all
        patience = exposure / n_gave / 1000 if n_gave >= MIN_OBSERVED else patience_all
        intervals.append(Interval(t0 + slot * step, chats * growth, round(handle, 3),
                                  round(patience, 3)))
    notes = [f"{sum(r[0] for r in acc.values()):,} chats asked for a person; handle time "
             f"{handle_all:.0f} s, patience "
             + (f"{patience_all:.0f} s" if gave_up else "not seen (nobody gave up: Erlang C)")
             + (f"; chats x {growth:g}" if growth != 1.0 else "")]
    return Forecast(intervals[0].start_ms, interval_min, utc_offset_ms, intervals,
                    f"history {path}", notes)


def from_scenario(scenario: dict[str, Any], rules: Rules, *, seed: int = 1,
                  interval_min: int = 30, tenant: str | None = None) -> Forecast:
    """Simulate the scenario once with its own staffing and read the run as a
    history: ``tenant``'s chats, per interval from the scenario's start to its end."""
    from simulators.scenario import start_ms
    from simulators.simulation import Simulation, relaxed_gc

    t0, offset = start_ms(scenario)
    with tempfile.TemporaryDirectory(prefix="routeq-plan-") as tmp:
        events = Path(tmp) / "events.jsonl"
        with open(events, "wb") as ev, relaxed_gc():
            sim = Simulation(scenario, rules, seed=seed)
            sim.run(ev, None)
        fc = from_history(str(events), rules, interval_min, origin_ms=t0,
                          utc_offset_ms=offset, end_ms=sim.end, tenant=tenant)
    fc.source = f"scenario {scenario.get('name', '?')} (seed {seed})"
    return fc


def add_orders(fc: Forecast | None, path: str, contact: dict[str, float], *,
               handle_s: float | None = None, patience_s: float | None = None) -> Forecast:
    """Add the contacts an order backlog makes: each row's orders per state times
    that state's contact probability, spread evenly over the forecast's
    intervals inside the row's period (the step to the next row)."""
    rows = _read_csv(path, "orders")
    states = [k for k in rows[0] if k and k != "start"]
    if not states:
        raise ForecastError(f"orders {path}: no order-state column besides 'start' "
                            "(e.g. start,placed,unshipped)")
    missing = [s for s in states if s not in contact]
    if missing:
        raise ForecastError(f"orders {path}: no contact probability for "
                            f"{', '.join(missing)}: give --contact STATE=P for each")
    unknown = [s for s in contact if s not in states]
    if unknown:
        raise ForecastError(f"--contact {', '.join(unknown)}: not a column of {path} "
                            f"(columns: {', '.join(states)})")
    contacts: list[tuple[int, float]] = []
    offset = 0
    for n, row in enumerate(rows, start=2):
        where = f"orders {path}, line {n}"
        start, offset = _when(row["start"] or "", where)
        contacts.append((start, sum(_number(row, s, where) * contact[s] for s in states)))
    contacts.sort()
    starts = [s for s, _ in contacts]
    if len(set(starts)) != len(starts):
        raise ForecastError(f"orders {path}: two rows with the same start")
    if fc is None:
        if handle_s is None:
            raise ForecastError("--orders without a forecast needs --handle-s (and "
                                "--patience-s, else nobody leaves)")
        step = _step_min(starts, f"orders {path}")
        if step not in INTERVALS_MIN:
            raise ForecastError(f"orders {path}: rows {step} min apart; without a forecast "
                                "they must be 15 or 30 min apart")
        intervals = _fill_gaps([Interval(s, c, handle_s, patience_s or 0.0)
                                for s, c in contacts], step * MINUTE_MS)
        return Forecast(starts[0], step, offset, intervals, f"orders {path}",
                        [f"{sum(c for _, c in contacts):,.1f} contacts from the order backlog"])
    step = fc.interval_ms
    period = _step_min(starts, f"orders {path}") * MINUTE_MS if len(starts) > 1 else step
    if period % step:
        raise ForecastError(f"orders {path}: rows {period // MINUTE_MS} min apart do not "
                            f"divide into the forecast's {fc.interval_min}-min intervals")
    base: dict[int, Interval] = {}
    for iv in fc.intervals:
        if iv.skill is None or iv.start_ms not in base:
            base[iv.start_ms] = iv
    added: dict[int, float] = {}
    for start, c in contacts:
        if (start - fc.start_ms) % step:
            raise ForecastError(f"orders {path}: a row starts between the forecast's "
                                f"{fc.interval_min}-min intervals")
        parts = period // step
        for k in range(parts):
            at = start + k * step
            if at not in base:
                raise ForecastError(f"orders {path}: contacts at "
                                    f"{fc.label((at - fc.start_ms) // step)} fall outside "
                                    "the forecast's horizon")
            added[at] = added.get(at, 0.0) + c / parts
    out = [replace(iv, chats=iv.chats + added.pop(iv.start_ms, 0.0)) if iv is base.get(iv.start_ms)
           else iv for iv in fc.intervals]
    total = sum(c for _, c in contacts)
    return replace(fc, intervals=out, notes=[*fc.notes,
                   f"{total:,.1f} contacts from the order backlog {path}"])
