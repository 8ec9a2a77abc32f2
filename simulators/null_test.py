"""The null test: the recorded rules re-simulated against the history as recorded.

Re-simulated under the rules it ran under, a history must give back its own
figures: if it does not, the differences between candidates mean little.
``routeq compare`` therefore always re-simulates the recorded rules (with
their deployments, as they came) and checks each figure below against the
recorded one.

**Noise.** The re-simulation draws what the history does not show: the
patience of visitors who were answered (only known to be longer than their
wait), the handle time of chats nobody handled, what chats still open at the
end would have done next. On the recorded path none of these draws comes
into play (each is longer than what was observed), so a re-simulation that
gives every figure back exactly (:func:`exact`) would do so under any seed.
Otherwise it is re-run under more seeds; a figure differs when the mean
re-simulated value is further from the recorded one than three standard
deviations over those seeds, and than the figure's resolution: one chat of
its denominator for a share, 0.5 s for a wait, half a point of occupancy,
1 % of revenue. On a history the model covers, the
re-simulation is exact (every bundled scenario, and histories with agents
ending waiting chats, declines, offer timeouts, visitors leaving mid-chat,
chats open at the end: see tests/simulators/test_null_test.py).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from simulators.whatif import Trace
from simulators.whatif_metrics import value

#: (label, path in a summary, kind): how a difference is told from noise
CHECKED: tuple[tuple[str, str, str], ...] = (
    ("chats for a human", "overall.human", "count"),
    ("service level (<= 20 s)", "overall.service_level", "share"),
    ("abandonment", "overall.abandonment_rate", "share"),
    ("mean wait (s)", "overall.wait_mean_s", "seconds"),
    ("occupancy", "overall.occupancy", "occupancy"),
    ("high-value abandonment", "whatif.high_value.abandonment_rate", "high_value"),
    ("revenue after chat", "overall.chat_revenue", "money"),
)
SIGMAS = 3.0


def resolution(kind: str, value: float, denominator: float | None = None) -> float:
    """The smallest difference a figure can show: one chat of its denominator
    for a share (half a point where that is not known), 0.5 s for a wait, half
    a point of occupancy (or of its spread), 1 % of revenue; 0 for a count."""
    if kind == "share":
        return 1.0 / denominator if denominator else 0.005
    if kind == "seconds":
        return 0.5
    if kind in ("occupancy", "spread"):
        return 0.005
    if kind == "money":
        return 0.01 * abs(value)
    return 0.0


def _floor(kind: str, recorded: dict[str, Any], rec: float) -> float:
    if kind in ("share", "high_value"):
        of = "whatif.high_value.human" if kind == "high_value" else "overall.human"
        return resolution("share", rec, value(recorded, of) or None)
    return resolution(kind, rec)


def exact(trace: Trace, run: dict[str, Any]) -> bool:
    """Every checked figure of ``run`` is the recorded one."""
    return all(value(run, path) == value(trace.recorded, path) for _, path, _ in CHECKED)


def check(trace: Trace, runs: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """The null test of ``trace`` from its recorded rules re-simulated under ``seeds``
    (``runs``, in that order): per figure, recorded against re-simulated, and a verdict."""
    recorded = trace.recorded
    rows = []
    for label, path, kind in CHECKED:
        rec = value(recorded, path)
        got = [value(r, path) for r in runs]
        vals = [float(v) for v in got if v is not None]
        if rec is None or not vals:
            rows.append({"figure": label, "path": path, "recorded": rec,
                         "resimulated": vals[0] if vals else None, "sd": None,
                         "tolerance": None, "differs": rec is None and bool(vals)
                         and kind == "count"})
            continue
        mean = statistics.fmean(vals)
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        tol = max(SIGMAS * sd, _floor(kind, recorded, float(rec)))
        rows.append({"figure": label, "path": path, "recorded": rec,
                     "resimulated": round(mean, 6), "sd": round(sd, 6),
                     "tolerance": round(tol, 6),
                     "differs": abs(mean - float(rec)) > tol + 1e-9})
    differs = [r["figure"] for r in rows if r["differs"]]
    unexplained = trace.unexplained
    if unexplained is not None and unexplained[0]:
        differs.append("recorded outputs")
    return {"passed": not differs, "differs": differs, "seeds": seeds, "rows": rows,
            "holds": dict(trace.seen), "causes": likely_causes(trace) if differs else [],
            "outputs_checked": unexplained[1] if unexplained is not None else None,
            "outputs_differ": unexplained[0] if unexplained is not None else None}


def likely_causes(trace: Trace) -> list[str]:
    """What in the history may keep the re-simulation from giving it back, most
    likely first."""
    seen = trace.seen
    out = []
    if trace.unexplained is not None and trace.unexplained[0]:
        differ, checked, first = trace.unexplained
        out.append(f"the history's own outputs are not what these rules decide ({differ:,} "
                   f"of {checked:,} events; first {first}): it ran under other rules than "
                   "the ones given (--trace-rules, or the rules recorded with it)")
    late = seen.get("timer ticks from the server's clock", 0)
    if late:
        out.append(f"{late:,} clock events from the server's clock fired timers up to "
                   f"{trace.timer_lag_ms / 1000:.1f} s after their deadline: they are kept, "
                   "and the re-simulation's own timers fire that much late, which is the "
                   "worst case of the server's ticks")
    open_end = seen.get("chats open at the end", 0)
    if open_end:
        out.append(f"{open_end:,} chats were still open when the history ends: what they "
                   "would have done next is drawn, not recorded")
    bad = seen.get("malformed lines (left out)", 0)
    if bad:
        out.append(f"{bad:,} malformed lines were left out; the chat server may have acted "
                   "on them")
    if seen.get("rules deployments replaced by --trace-rules"):
        out.append("rules were deployed during the history, and --trace-rules replaced them "
                   "all: leave it out to read each part under the rules in force then")
    out.append("behaviour the re-simulation does not model (README, what-if: Limits), e.g. "
               "handle times that depend on the agent, or clicks that depend on the wait")
    return out


def describe(result: dict[str, Any]) -> str:
    """One paragraph for the terminal."""
    n = len(result["seeds"])
    if result["passed"]:
        return (f"null test passed: the recorded rules, re-simulated ({n} seed"
                f"{'s' if n != 1 else ''}), give back the recorded figures within noise.")
    lines = [f"null test FAILED: re-simulated under the recorded rules ({n} seeds), the "
             "history does not give back its figures:"]
    for r in result["rows"]:
        if r["differs"]:
            lines.append(f"  {r['figure']}: recorded {_fmt(r['recorded'])}, re-simulated "
                         f"{_fmt(r['resimulated'])} (noise +/- {_fmt(r['tolerance'])})")
    if result.get("outputs_differ"):
        lines.append(f"  the recorded outputs of {result['outputs_differ']:,} of "
                     f"{result['outputs_checked']:,} events")
    lines.append("likely causes:")
    lines += [f"  - {c}" for c in result["causes"]]
    lines.append("Differences between candidates smaller than these gaps mean little.")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isinf(v) and abs(v) < 1:
        return f"{v:.4f}"
    return f"{v:,.2f}" if isinstance(v, float) else f"{v:,}"
