"""How well chat.queued's eta_s foretells the wait, on every bundled scenario.

Run::

    .venv/bin/python -m benchmarks.eta [--quick] [--seed N] [--out FILE.json]

For each bundled scenario, ``routeq simulate`` runs a day (``--quick``: two
hours) and its summary's ``eta`` block is reported: for the chats that were
queued and then assigned, the mean absolute error and the bias (estimate −
wait) of the first ``chat.queued``'s ``eta_s``, and the error as a share of
the mean wait, overall and in the peak hour.

Beside it, a bound no estimate from the same facts can beat on that day:
the chats grouped by tenant, position when queued and priority (in bands of
10 points), each group's median wait given to every chat of the group *in
hindsight* (the median is what minimises the absolute error). Waits that are
mostly the time until one of the busy agents frees up vary that much from
chat to chat whatever the estimate.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import Record, parser, progress
from simulators.scenario import bundled
from streams.cli import main as routeq


def hindsight_bound(outputs: Path) -> float | None:
    """The MAE share of each (tenant, position, priority band) group's median wait."""
    first: dict[tuple[str, str], dict[str, Any] | None] = {}
    rows: list[tuple[tuple[str, int, int], float]] = []
    for line in outputs.read_bytes().splitlines():
        o = orjson.loads(line)
        key = (o.get("origin") or o["tenant"], o.get("chat", ""))
        if o["type"] == "chat.queued" and key not in first:
            first[key] = o
        elif o["type"] == "chat.assigned" and first.get(key) is not None:
            q = first[key]
            assert q is not None
            first[key] = None
            rows.append(((q["tenant"], q["position"], int(q["priority"] // 10)),
                         o["wait_ms"] / 1000.0))
    if not rows:
        return None
    groups: dict[tuple[str, int, int], list[float]] = {}
    for k, w in rows:
        groups.setdefault(k, []).append(w)
    med = {k: statistics.median(v) for k, v in groups.items()}
    mean = sum(w for _, w in rows) / len(rows)
    return round(sum(abs(w - med[k]) for k, w in rows) / len(rows) / mean, 4) if mean else None


def main(argv: list[str] | None = None) -> int:
    ap = parser("eta", __doc__, quick="two hours of each scenario", seed=7)
    args = ap.parse_args(argv)
    hours = ["--hours", "2"] if args.quick else []
    record = Record("eta")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="routeq-bench-eta-") as tmp:
        for sc in bundled():
            progress(f"{sc}: simulate seed {args.seed}")
            out = Path(tmp) / sc
            assert routeq(["simulate", "--scenario", sc, "--seed", str(args.seed), *hours,
                           "--out", str(out), "--quiet"]) == 0
            eta = orjson.loads((out / "summary.json").read_bytes())["overall"]["eta"]
            eta["hindsight_bound_share"] = hindsight_bound(out / "outputs.jsonl")
            results[sc] = eta
    doc = record.document(args.quick, seed=args.seed, results=results)
    lines = [f"{'scenario':12} {'chats':>6} {'mean wait':>9} {'MAE':>7} {'bias':>7} "
             f"{'MAE/wait':>8} {'peak':>6} {'bound':>6}"]
    for sc, e in results.items():
        if not e["chats"]:
            lines.append(f"{sc:12} {0:6d}   (no chat waited)")
            continue
        peak = e.get("peak", {}).get("mae_share")
        bound = e["hindsight_bound_share"]
        lines.append(f"{sc:12} {e['chats']:6d} {e['mean_wait_s']:8.1f}s {e['mae_s']:6.1f}s "
                     f"{e['bias_s']:+6.1f}s {e['mae_share']:8.2f} "
                     f"{'-' if peak is None else format(peak, '6.2f')} "
                     f"{'-' if bound is None else format(bound, '6.2f')}")
    return record.finish(args.out, doc, lines)


if __name__ == "__main__":
    sys.exit(main())
