"""Policy value fitted on one day, compared on others: double11, marketplace, flash_sale.

Run::

    .venv/bin/python -m benchmarks.value [--quick] [--out FILE.json]

For each scenario: ``routeq simulate`` records seed 1 and seeds 2-4 (the
scenario's own rules and staffing); ``routeq fit`` fits policy value's
classes on seed 1's trace; ``routeq compare`` re-simulates each of seeds 2-4
under the fitted value rules, priority and the three baselines (equal
staffing). Reported per scenario: every candidate's checkout wait, overall
abandonment and revenue after chat (medians over the three seeds, and each
seed), and the goals checked on the medians: checkout wait at least 30 %
below the best baseline, abandonment at most 0.5 points above the best
baseline, revenue after chat at least priority's and every baseline's.
``--quick``: two hours of each scenario, one seed compared.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import Record, parser, progress
from simulators.whatif_metrics import value
from streams.cli import main as routeq

SCENARIOS = ("double11", "marketplace", "flash_sale")
BASELINES = ("fifo_round_robin", "least_loaded", "longest_idle")
FIGURES = {
    "checkout_wait_mean_s": "whatif.pages.checkout.wait_mean_s",
    "abandonment": "overall.abandonment_rate",
    "chat_revenue": "overall.chat_revenue",
    "high_value_abandonment": "whatif.high_value.abandonment_rate",
    "service_level": "overall.service_level",
}


def simulate(scenario: str, seed: int, hours: list[str], out: Path) -> Path:
    assert routeq(["simulate", "--scenario", scenario, "--seed", str(seed), *hours,
                   "--out", str(out), "--quiet"]) == 0
    return out


def one(scenario: str, seeds: list[int], hours: list[str], tmp: Path) -> dict[str, Any]:
    progress(f"{scenario}: seed 1 and fit")
    fitted = tmp / f"{scenario}-value.toml"
    assert routeq(["fit", str(simulate(scenario, 1, hours, tmp / f"{scenario}-1")),
                   "--out", str(fitted), "--quiet"]) == 0
    runs = []
    for seed in seeds:
        progress(f"{scenario}: seed {seed} compared")
        trace = simulate(scenario, seed, hours, tmp / f"{scenario}-{seed}")
        out = tmp / f"{scenario}-{seed}.json"
        assert routeq(["compare", str(trace), "--rules", str(fitted), "--policy", "priority",
                       "--baselines", "--json", str(out), "--quiet"]) == 0
        doc = orjson.loads(out.read_bytes())
        runs.append({"seed": seed, "candidates": {
            ("value" if c["name"] == fitted.stem else c["name"]):
            {k: value(c["summary"], p) for k, p in FIGURES.items()}
            for c in doc["candidates"]}})
    names = list(runs[0]["candidates"])
    med = {n: {k: statistics.median(float(r["candidates"][n][k]) for r in runs
                                    if r["candidates"][n][k] is not None)
               for k in FIGURES} for n in names}
    best_wait = min(med[b]["checkout_wait_mean_s"] for b in BASELINES)
    best_ab = min(med[b]["abandonment"] for b in BASELINES)

    def against(name: str) -> dict[str, Any]:
        m = med[name]
        cut = 1 - m["checkout_wait_mean_s"] / best_wait if best_wait else 0.0
        up = 100 * (m["abandonment"] - best_ab)
        rivals = ["priority", *BASELINES] if name == "value" else list(BASELINES)
        return {"checkout_wait_cut": round(cut, 4), "abandonment_points_up": round(up, 2),
                "revenue_over_best_rival": round(
                    m["chat_revenue"] / max(med[r]["chat_revenue"] for r in rivals) - 1, 4),
                "goals": {"checkout_wait_30pct_lower": cut >= 0.30,
                          "abandonment_up_at_most_half_a_point": up <= 0.5,
                          "revenue_at_least_every_rival": all(
                              m["chat_revenue"] >= med[r]["chat_revenue"] for r in rivals)}}

    return {"fitted_on_seed": 1, "compared_on_seeds": seeds, "medians": med,
            "value": against("value"), "priority": against("priority"), "runs": runs}


def main(argv: list[str] | None = None) -> int:
    ap = parser("value", __doc__, quick="two hours of each scenario, one seed compared",
                seed=2)
    args = ap.parse_args(argv)
    hours = ["--hours", "2"] if args.quick else []
    seeds = [args.seed] if args.quick else [args.seed, args.seed + 1, args.seed + 2]
    record = Record("value")
    results = {}
    with tempfile.TemporaryDirectory(prefix="routeq-bench-value-") as tmp:
        for sc in SCENARIOS:
            results[sc] = one(sc, seeds, hours, Path(tmp))
    doc = record.document(args.quick, scenarios=list(SCENARIOS), results=results)
    lines = []
    for sc, r in results.items():
        for name in ("value", "priority"):
            a = r[name]
            lines.append(f"{sc:12} {name:9} checkout wait {-a['checkout_wait_cut']:+.0%} vs best "
                         f"baseline, abandonment {a['abandonment_points_up']:+.2f} pts, "
                         f"revenue {a['revenue_over_best_rival']:+.2%} vs best rival; goals "
                         f"{sum(a['goals'].values())}/3")
    return record.finish(args.out, doc, lines)


if __name__ == "__main__":
    sys.exit(main())
