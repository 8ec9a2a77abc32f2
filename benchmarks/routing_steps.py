"""Routing steps against today's rules, on double11 and marketplace (routeq compare).

Run::

    .venv/bin/python -m benchmarks.routing_steps [--quick] [--seed N] [--out FILE.json]

For each scenario ``routeq simulate`` records a day under the scenario's own
rules; ``routeq compare`` re-simulates it under those rules (the history's
``recorded rules`` column) and under routing steps written from them:

- **double11** (one shop): ``steps, experts``: the exclusive agent (120 s),
  the last agent (60 s), then agents with the chat's skill at level 3 or
  more for 30 s, then anyone; ``steps, experts predictive``: the same with the
  experts' step left at once when the estimated wait there is over 30 s.
- **marketplace** (50 merchants, overflow to the platform after 60 s):
  ``steps, timed``: the merchant's own agents for 60 s, then the platform
  (the overflow as a step; ``[overflow]`` off); ``steps, predictive``: the
  same with the merchant's step left at once when the estimated wait there
  is over 60 s: the chat overflows on the predicted wait instead of after
  the visitor has waited it out.

Reported side by side per candidate: checkout and overall mean wait, the
share of chats abandoned, the share overflowed, and revenue after chat. One
seed (``--seed``, default 3); ``--quick``: two hours of each scenario.
"""

from __future__ import annotations

import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import Record, parser, progress
from engine import parse_rules
from simulators.rules_toml import rules_to_toml
from simulators.whatif_metrics import value
from streams.cli import main as routeq

FIGURES = {
    "checkout_wait_mean_s": "whatif.pages.checkout.wait_mean_s",
    "wait_mean_s": "overall.wait_mean_s",
    "abandonment": "overall.abandonment_rate",
    "overflowed": "overall.overflowed",
    "human": "overall.human",
    "chat_revenue": "overall.chat_revenue",
}
RESERVED = [{"name": "exclusive", "agents": "exclusive", "timeout_s": 120.0},
            {"name": "last", "agents": "last", "timeout_s": 60.0}]


def candidates(scenario: str, rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The steps candidates written from a scenario's rules."""
    if scenario == "double11":
        def experts(predictive: bool) -> dict[str, Any]:
            return {**rules, "routing": {"steps": [
                *RESERVED,
                {"name": "experts", "agents": "skilled", "min_level": 3, "timeout_s": 30.0,
                 "predictive": predictive},
                {"name": "anyone", "agents": "any"}]}}
        return {"steps, experts": experts(False), "steps, experts predictive": experts(True)}
    after = float(rules["overflow"]["after_s"])

    def overflow(predictive: bool) -> dict[str, Any]:
        return {**rules, "overflow": {**rules["overflow"], "enabled": False},
                "routing": {"steps": [
                    *RESERVED,
                    {"name": "own", "agents": "any", "timeout_s": after,
                     "predictive": predictive},
                    {"name": "platform", "agents": "any", "tenant": rules["platform"]}]}}
    return {"steps, timed": overflow(False), "steps, predictive": overflow(True)}


def one(scenario: str, seed: int, hours: list[str], tmp: Path) -> dict[str, Any]:
    progress(f"{scenario}: simulate seed {seed}")
    trace = tmp / scenario
    assert routeq(["simulate", "--scenario", scenario, "--seed", str(seed), *hours,
                   "--out", str(trace), "--quiet"]) == 0
    rules = tomllib.loads((trace / "rules.toml").read_text())
    files = {}
    for name, data in candidates(scenario, rules).items():
        path = tmp / f"{scenario}-{name.replace(', ', '-').replace(' ', '_')}.toml"
        path.write_text(rules_to_toml(parse_rules(data), f"routing steps: {name}"))
        files[path.stem] = name
    out = tmp / f"{scenario}.json"
    progress(f"{scenario}: compare")
    args = ["compare", str(trace), "--json", str(out), "--quiet", "--jobs", "2"]
    for path in files:
        args += ["--rules", str(tmp / f"{path}.toml")]
    assert routeq(args) == 0
    doc = orjson.loads(out.read_bytes())
    rows: dict[str, dict[str, Any]] = {}
    for c in doc["candidates"]:
        name = files.get(c["name"], c["name"])
        figs = {k: value(c["summary"], p) for k, p in FIGURES.items()}
        figs["overflowed_share"] = (round(figs["overflowed"] / figs["human"], 4)
                                    if figs["human"] else None)
        rows[name] = figs
    return {"seed": seed, "null_test_passed": doc["null_test"]["passed"], "candidates": rows}


def main(argv: list[str] | None = None) -> int:
    ap = parser("routing_steps", __doc__, quick="two hours of each scenario", seed=3)
    args = ap.parse_args(argv)
    hours = ["--hours", "2"] if args.quick else []
    record = Record("routing_steps")
    results = {}
    with tempfile.TemporaryDirectory(prefix="routeq-bench-steps-") as tmp:
        for sc in ("double11", "marketplace"):
            results[sc] = one(sc, args.seed, hours, Path(tmp))
    doc = record.document(args.quick, results=results)
    lines = []
    for sc, r in results.items():
        lines.append(f"{sc} (seed {r['seed']}; null test passed: {r['null_test_passed']})")
        lines.append(f"  {'candidate':28} {'checkout wait':>13} {'wait':>7} {'abandoned':>9} "
                     f"{'overflowed':>10} {'revenue':>12}")
        for name, f in r["candidates"].items():
            def s(x: Any, fmt: str) -> str:
                return "-" if x is None else format(x, fmt)
            lines.append(f"  {name:28} {s(f['checkout_wait_mean_s'], '12.1f')}s "
                         f"{s(f['wait_mean_s'], '6.1f')}s {s(f['abandonment'], '9.2%')} "
                         f"{s(f['overflowed_share'], '10.2%')} {s(f['chat_revenue'], '12,.0f')}")
    return record.finish(args.out, doc, lines)


if __name__ == "__main__":
    sys.exit(main())
