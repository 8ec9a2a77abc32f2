"""Shifts covering a staffing requirement, by an integer program (HiGHS).

Variables: how many agents work each allowed shift (a start on the grid of
``start_every`` intervals, one of the allowed lengths, inside the horizon).
Each interval's scheduled agents must be covered; a shift covers each of its
intervals fully except where a break falls, which it covers for the rest of
the interval (the simulator places a shift's ``breaks`` evenly through it,
as here). The objective is the agent-hours paid; HiGHS solves it exactly
(branch and bound), in well under a second for a day of 30-minute intervals.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from simulators.staffing import PlanError


@dataclass(frozen=True)
class Shift:
    start: int  # first interval
    length: int  # intervals
    count: int  # agents on it

    def covers(self, breaks: int, break_min: float, interval_min: int) -> dict[int, float]:
        """Interval -> share of it this shift's agent is on line."""
        cover = {self.start + k: 1.0 for k in range(self.length)}
        for b in range(breaks):
            at_min = self.length * interval_min * (b + 1) / (breaks + 1)
            left = break_min
            k = int(at_min // interval_min)
            pos = at_min - k * interval_min
            while left > 0 and self.start + k in cover:
                here = min(left, interval_min - pos)
                cover[self.start + k] = max(0.0, cover[self.start + k] - here / interval_min)
                left -= here
                k += 1
                pos = 0.0
        return cover


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """HiGHS prints its banner to the C-level stdout when created."""
    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def schedule(required: list[int], *, interval_min: int, lengths_h: list[float],
             start_every: int = 1, breaks: int = 0, break_min: float = 15.0,
             time_limit_s: float = 30.0, labels: list[str] | None = None,
             starts: set[int] | None = None) -> list[Shift]:
    """The shifts of least agent-hours covering ``required`` agents per interval;
    ``starts``: the intervals a shift may start in (default: any on the grid)."""
    import highspy
    import numpy as np

    lengths = sorted({round(h * 60 / interval_min) for h in lengths_h})
    n = len(required)
    if not lengths or lengths[0] < 1:
        raise PlanError("--shifts: give shift lengths in hours, e.g. --shifts 4,8")
    usable = [L for L in lengths if n >= L]
    if not usable:
        raise PlanError(f"--shifts: every shift ({', '.join(f'{h:g} h' for h in lengths_h)}) "
                        f"is longer than the plan's {n * interval_min / 60:g} h")
    if max(required, default=0) == 0:
        return []
    candidates = [Shift(s, L, 0) for L in usable for s in range(0, n - L + 1, start_every)]
    # the last intervals must be coverable when the grid of starts skips them
    for L in usable:
        if (n - L) % start_every:
            candidates.append(Shift(n - L, L, 0))
    if starts is not None:
        candidates = [c for c in candidates if c.start in starts]
    covers = [c.covers(breaks, break_min, interval_min) for c in candidates]
    with _quiet_stdout():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit_s))
    m = len(candidates)
    inf = highspy.kHighsInf
    cols = np.arange(m, dtype=np.int32)
    h.addVars(m, np.zeros(m), np.full(m, inf))
    h.changeColsCost(m, cols, np.array([c.length * interval_min / 60 for c in candidates]))
    h.changeColsIntegrality(m, cols, np.array([highspy.HighsVarType.kInteger] * m))
    for i, need in enumerate(required):
        if need <= 0:
            continue
        idx = [j for j, cov in enumerate(covers) if cov.get(i, 0.0) > 0]
        if not idx:
            raise PlanError(f"the interval at {labels[i] if labels else i} can be covered "
                            "by no allowed shift")
        h.addRow(float(need), inf, len(idx), np.array(idx, dtype=np.int32),
                 np.array([covers[j][i] for j in idx]))
    h.run()
    status = h.getModelStatus()
    if status not in (highspy.HighsModelStatus.kOptimal,
                      highspy.HighsModelStatus.kTimeLimit):
        raise PlanError(f"the shift program found no schedule ({h.modelStatusToString(status)})")
    values = h.getSolution().col_value
    if len(values) != m:
        raise PlanError("the shift program stopped before it found any schedule")
    return [Shift(c.start, c.length, round(v)) for c, v in zip(candidates, values, strict=True)
            if round(v) > 0]


def coverage(shifts: list[Shift], n: int, *, interval_min: int, breaks: int,
             break_min: float) -> list[float]:
    """Agents on line per interval under the shifts (breaks taken out)."""
    out = [0.0] * n
    for s in shifts:
        for i, share in s.covers(breaks, break_min, interval_min).items():
            if 0 <= i < n:
                out[i] += s.count * share
    return [round(x, 3) for x in out]


def agent_hours(shifts: list[Shift], interval_min: int) -> float:
    return sum(s.count * s.length for s in shifts) * interval_min / 60

