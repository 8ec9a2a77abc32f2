"""BENCHMARKS.md renders from the kept results, and the plot is well-formed SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from benchmarks import report
from benchmarks.common import RESULTS


def test_report_renders_every_kept_result() -> None:
    md, svg = report.render()
    assert md.startswith("# routeq benchmarks")
    assert "(results in an older format" not in md
    if (RESULTS / "engine_apply.json").exists():
        assert svg is not None
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
        assert root.findall(".//{http://www.w3.org/2000/svg}polyline")


def test_nice_axis_tops() -> None:
    assert report.nice(1_160_000) == 1_200_000
    assert report.nice(57) == 60
    assert report.nice(0) == 1.0


def test_replay_scale_makes_every_tenant_larger() -> None:
    from benchmarks.replay import scaled
    from simulators.scenario import load_scenario

    base = load_scenario("double11")
    params = scaled("double11", 2.25)
    assert scaled("double11", 1.0) == []
    big = load_scenario("double11", params[1::2])  # the values of the --param options
    for t0, t1 in zip(base["tenants"], big["tenants"], strict=True):
        assert t1["visitors_per_hour"] == t0["visitors_per_hour"] * 2.25
        assert [g["count"] for g in t1["agents"]] == [
            round(g["count"] * 2.25) for g in t0["agents"]]
