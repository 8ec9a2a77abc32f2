"""routeq tune: search spaces, the objective, the best rules file."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import parse_rules
from simulators.tuning import Objective, apply, parse_space
from simulators.tuning import settings as space_settings
from streams.cli import main
from streams.embedded.rules_file import load_rules

SPACE = """
method = "grid"
[params]
policy = ["priority", "fifo_round_robin"]
"priority.pages.checkout" = { min = 0.0, max = 100.0, steps = 2 }
"""


def test_tune_finds_priority_on_the_scarce_checkout_trace(
        scarce_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    best = tmp_path / "best.toml"
    out_json = tmp_path / "tune.json"
    rc = main(["tune", str(scarce_trace), "--space", str(space), "--objective", "revenue",
               "--out", str(best), "--json", str(out_json), "--jobs", "2"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "4 candidates" in out
    doc = orjson.loads(out_json.read_bytes())
    top = doc["candidates"][0]
    assert top["setting"] == {"policy": "priority", "priority.pages.checkout": 100.0}
    rules = load_rules(str(best))
    assert rules.hash == top["rules"]
    assert rules.policy == "priority" and rules.page_weights["checkout"] == 100.0
    assert f"best rules ({rules.hash}) written to {best}" in out
    # scores are printed best first
    scores = [float(m) for m in re.findall(r"^  #\d+: ([\d.]+)", out, re.M)]
    assert scores == sorted(scores, reverse=True)


def test_random_search_is_seeded() -> None:
    text = ('method = "random"\nsamples = 6\nseed = 4\n[params]\n'
            '"priority.aging_per_s" = { min = 0.01, max = 1.0 }\n'
            '"assignment.weights.load" = { min = 0, max = 40 }\n')
    a, b = space_settings(parse_space(text)), space_settings(parse_space(text))
    assert a == b and len(a) == 6
    assert all(isinstance(s["assignment.weights.load"], int) for s in a)
    assert all(0.01 <= s["priority.aging_per_s"] <= 1.0 for s in a)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["priority.pages.cart", "priority.pages.checkout",
                                 "priority.aging_per_s", "assignment.weights.load",
                                 "assignment.sticky_wait_s"]), min_size=1, max_size=3,
                unique=True),
       st.integers(1, 3))
def test_grid_is_every_combination_and_each_applies(keys: list[str], steps: int) -> None:
    text = "[params]\n" + "".join(f'"{k}" = {{ min = 1.0, max = 9.0, steps = {steps} }}\n'
                                  for k in keys)
    found = space_settings(parse_space(text))
    assert len(found) == steps ** len(keys)
    assert len({tuple(sorted(s.items())) for s in found}) == len(found)
    base = parse_rules({})
    for s in found:
        r = apply(base, s)
        for k, v in s.items():
            node = r.data
            for part in k.split("."):
                node = node[part]
            assert node == v


def test_objective_ranks_feasible_first() -> None:
    def summ(sl: float, rev: float) -> dict[str, object]:
        return {"overall": {"service_level": sl, "chat_revenue": rev, "abandonment_rate": 0.1}}
    obj = Objective("revenue", 0.8, None)
    cands = [summ(0.7, 900.0), summ(0.85, 500.0), summ(0.9, 400.0)]
    ranked = sorted(cands, key=obj.key)
    assert [c["overall"]["chat_revenue"] for c in ranked] == [500.0, 400.0, 900.0]  # type: ignore[index]
    assert "subject to service level >= 80%" in obj.describe()


def test_tune_and_fit_read_a_state_dir_and_a_tenant(scarce_trace: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A ``routeq run --state`` dir, as it is: tune's current rules are those
    the history ran under (the dir's), and --tenant restricts the figures."""
    state = tmp_path / "state"
    assert main(["run", str(scarce_trace / "events.jsonl"), "--state", str(state),
                 "--rules", str(scarce_trace / "rules.toml"),
                 "--out", str(tmp_path / "o.jsonl")]) == 0
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    from_dir, from_state = tmp_path / "dir.json", tmp_path / "state.json"
    for trace, out in ((scarce_trace, from_dir), (state, from_state)):
        assert main(["tune", str(trace), "--space", str(space), "--out",
                     str(tmp_path / "best.toml"), "--json", str(out), "--quiet",
                     "--jobs", "1"]) == 0
    a, b = orjson.loads(from_dir.read_bytes()), orjson.loads(from_state.read_bytes())
    assert a["current"] == b["current"] and a["tried"] == b["tried"]
    tenant = next(iter(a["recorded"]["tenants"]))
    assert main(["tune", str(state), "--space", str(space), "--tenant", tenant, "--out",
                 str(tmp_path / "best.toml"), "--quiet", "--jobs", "1"]) == 0
    assert main(["fit", str(state), "--out", str(tmp_path / "value.toml")]) == 0
    capsys.readouterr()
    assert main(["tune", str(state), "--space", str(space), "--tenant", "nobody"]) == 2
