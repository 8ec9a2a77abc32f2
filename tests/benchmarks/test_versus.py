"""``benchmarks.versus --before-build``: the earlier tree is built before it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from benchmarks.common import ROOT

VERSUS = [sys.executable, "-m", "benchmarks.versus"]
TINY = ["engine_apply", "--sizes", "10x100", "--events", "500", "--reps", "1"]


def versus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VERSUS, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_the_build_runs_in_the_earlier_tree_and_is_recorded(tmp_path: Path) -> None:
    out = tmp_path / "v.json"
    # the build leaves a mark in the earlier tree; the benchmark then runs there
    marker = tmp_path / "built-in"
    proc = versus("--before", "HEAD", "--before-build", f"pwd > {marker}", "--pairs", "1",
                  "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr
    doc = orjson.loads(out.read_bytes())
    assert doc["before_build"] == f"pwd > {marker}"
    built_in = Path(marker.read_text().strip())
    assert built_in != ROOT and built_in.name == doc["before_commit"][:10]
    assert any(r["metric"] == "results[10x100].engine_eps.median" for r in doc["results"])


def test_a_failing_build_stops_the_comparison_and_says_why(tmp_path: Path) -> None:
    out = tmp_path / "v.json"
    proc = versus("--before", "HEAD", "--before-build", "echo no compiler; exit 3",
                  "--out", str(out), *TINY)
    assert proc.returncode != 0
    assert "--before-build failed (3)" in proc.stderr and "no compiler" in proc.stderr
    assert not out.exists()


def test_a_build_needs_an_earlier_tree() -> None:
    proc = versus("--before-build", "true", "--before-env", "ROUTEQ_PURE=1", *TINY)
    assert proc.returncode == 2 and "--before-build needs --before REV" in proc.stderr
