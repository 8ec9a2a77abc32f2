"""routeq fit (policy value's classes from a history) and routeq tune's
abandonment-increase floor and Pareto front."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import parse_rules
from simulators.candidates import trace_rules
from simulators.tuning import Objective, pareto
from simulators.value_fit import ValueClass, fit
from simulators.whatif import Trace, read_trace
from streams.cli import main
from tests.simulators.test_report import chromium


def fitted_classes(path: Path) -> tuple[Trace, dict[str, ValueClass]]:
    """The trace read under the rules it ran under, and its classes by page."""
    base, _ = trace_rules(str(path), None)
    trace = read_trace(str(path), base)
    try:
        return trace, {c.page: c for c in fit(trace)}
    finally:
        Path(trace.exo).unlink()


@pytest.fixture(scope="module")
def fitted(demo_trace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fit") / "value.toml"
    assert main(["fit", str(demo_trace), "--out", str(out), "--quiet"]) == 0
    return out


def test_fit_writes_rules_of_policy_value_with_a_class_per_page(fitted: Path,
                                                               demo_trace: Path) -> None:
    text = fitted.read_text()
    r = parse_rules(tomllib.loads(text))
    assert r.policy == "value"
    assert f"rules {r.hash}" in text  # the header names the hash it loads to
    assert {"checkout", "after_sales", "default"} <= set(r.value_classes)
    # a prompt answer is worth more at checkout than after the sale
    assert r.value_classes["checkout"][0] > r.value_classes["order"][0]
    assert r.page_weight("checkout") > r.page_weight("order")
    assert r.data["value"]["overflow_by_value"] is True  # unless --no-overflow-by-value
    # every class is commented with what it was fitted from
    assert len(re.findall(r"^# [\d,]+ chats for a person", text, re.M)) == len(r.value_classes)
    # the rest of the trace's rules is kept
    base, _ = trace_rules(str(demo_trace), None)
    assert r.data["assignment"] == base.data["assignment"]


def test_fit_reads_the_what_ifs_own_estimates(demo_trace: Path) -> None:
    trace, classes = fitted_classes(demo_trace)
    pool = trace.handle_pool["after_sales"]
    assert classes["after_sales"].handle_s == pytest.approx(sum(pool) / len(pool) / 1000, abs=0.06)
    assert classes["checkout"].order_rate == pytest.approx(trace.order_p["checkout"], abs=1e-4)
    assert classes["default"].patience_s == pytest.approx(trace.patience_mean_ms / 1000, abs=0.06)


def test_fit_of_an_empty_trace_is_refused(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "events.jsonl"
    empty.write_text("")
    assert main(["fit", str(empty), "--out", str(tmp_path / "v.toml")]) == 2
    assert "empty" in capsys.readouterr().err


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1e6)), min_size=1, max_size=30))
def test_the_pareto_front_is_every_candidate_none_beats(points: list[tuple[float, float]]) -> None:
    summaries = [{"overall": {"abandonment_rate": a, "chat_revenue": r}} for a, r in points]
    front = pareto(summaries)

    def beats(j: int, i: int) -> bool:
        (a2, r2), (a, r) = points[j], points[i]
        return a2 <= a and r2 >= r and (a2 < a or r2 > r)

    for i in range(len(points)):
        dominated = any(beats(j, i) for j in range(len(points)))
        assert (i in front) == (not dominated)
    assert [points[i][0] for i in front] == sorted(points[i][0] for i in front)


def test_the_abandonment_increase_floor_is_over_the_current_rules() -> None:
    o = Objective("revenue", None, None, max_abandonment_increase=0.5,
                  reference_abandonment=0.10)
    ok = {"overall": {"abandonment_rate": 0.104, "chat_revenue": 1.0}}
    over = {"overall": {"abandonment_rate": 0.106, "chat_revenue": 9.0}}
    assert o.violation(ok) == 0 and o.violation(over) == pytest.approx(0.001)
    assert o.key(ok) < o.key(over)  # feasible first, whatever the revenue
    assert "+ 0.5 points" in o.describe()


def test_tune_reports_the_front_and_draws_it(fitted: Path, demo_trace: Path,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.toml"
    space.write_text('method = "grid"\n[params]\npolicy = ["value", "priority", "least_loaded"]\n'
                     '"value.scale" = [0.5, 2.0]\n')
    report, doc_path = tmp_path / "tune.html", tmp_path / "tune.json"
    assert main(["tune", str(demo_trace), "--base", str(fitted), "--space", str(space),
                 "--objective", "revenue", "--max-abandonment-increase", "0.5",
                 "--report", str(report), "--json", str(doc_path),
                 "--out", str(tmp_path / "best.toml"), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "subject to abandonment <= the current rules' (" in out
    assert "Pareto front" in out
    doc = orjson.loads(doc_path.read_bytes())
    assert doc["pareto"] and all(set(p) == {"setting", "rules", "abandonment_rate",
                                            "chat_revenue"} for p in doc["pareto"])
    dom = chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout.decode()
    assert "Revenue after chat against abandonment" in html
    dots = html.count('class="front"') + html.count('class="tried"')
    assert dots == 6 and html.count('class="front"') == len(doc["pareto"])
    assert 'class="current"' in html


def test_fit_quotes_page_names_and_falls_back_on_few_chats(demo_trace: Path,
                                                           tmp_path: Path) -> None:
    """Chat servers send page names like /cart or pay.checkout; a page with few
    served chats takes the whole history's order rate."""
    text = (demo_trace / "events.jsonl").read_text()
    text = text.replace('"page":"checkout"', '"page":"pay.checkout"')
    text = text.replace('"page":"cart"', '"page":"/cart"')
    trace = tmp_path / "t"
    trace.mkdir()
    (trace / "events.jsonl").write_text(text)
    (trace / "rules.toml").write_text((demo_trace / "rules.toml").read_text())
    out = tmp_path / "v.toml"
    assert main(["fit", str(trace), "--out", str(out), "--quiet"]) == 0
    r = parse_rules(tomllib.loads(out.read_text()))
    assert {"pay.checkout", "/cart"} <= set(r.value_classes)
    _, classes = fitted_classes(trace)
    for c in classes.values():
        if c.page != "default" and c.served < 20:
            assert c.order_rate == classes["default"].order_rate


def test_a_non_finite_number_is_refused() -> None:
    from engine import RulesError
    with pytest.raises(RulesError, match="'value.scale'"):
        parse_rules({"policy": "value", "value": {"scale": float("inf")}})


def test_tune_compares_with_the_rules_the_trace_ran_under(fitted: Path, demo_trace: Path,
                                                         tmp_path: Path) -> None:
    space = tmp_path / "space.toml"
    space.write_text('method = "grid"\n[params]\n"value.scale" = [1.0]\n')
    doc_path = tmp_path / "tune.json"
    assert main(["tune", str(demo_trace), "--base", str(fitted), "--space", str(space),
                 "--json", str(doc_path), "--out", str(tmp_path / "b.toml"), "--quiet",
                 "--jobs", "1"]) == 0
    doc = orjson.loads(doc_path.read_bytes())
    recorded, _ = trace_rules(str(demo_trace), None)
    assert doc["current"]["rules"] == recorded.hash
    assert doc["candidates"][0]["policy"] == "value"
