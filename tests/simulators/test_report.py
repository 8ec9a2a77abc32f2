"""The HTML report: self-contained, and its plots render in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from streams.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-dev-shm-usage"]


def chromium(*args: str) -> subprocess.CompletedProcess[bytes]:
    if CHROMIUM is None:
        pytest.fail("chromium is not on PATH: `make test` installs it (apt-get install chromium)")
    return subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def report(demo_trace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["compare", str(demo_trace), "--policy", "priority", "--baselines",
                 "--report", str(out), "--quiet"]) == 0
    return out


def test_report_is_self_contained(report: Path, demo_trace: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert "<script" not in text
    # nothing fetched: no links or sources outside the file
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', text)
    assert "@import" not in text and "url(" not in text
    # it names the trace, the rules hashes and the seed
    assert str(demo_trace) in text and "seed <code>1</code>" in text
    assert len(set(re.findall(r"rules <code>([0-9a-f]{12})</code>", text))) >= 4


def test_plots_render_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    dom = chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout.decode()
    plots = re.findall(r'<svg class="plot"[^>]*aria-label="([^"]+)"', html)
    assert len(plots) == 5, plots
    for title in ("Wait for an agent", "waiting for an agent over the day",
                  "Service level over the day", "Mean wait by page type", "Agent load"):
        assert any(title in p for p in plots), title
    names = ("trace", "priority", "fifo_round_robin", "least_loaded", "longest_idle")
    for name in names:
        # every candidate has a line in the line plots and bars in the bar plot
        assert html.count(f'class="series" data-name="{name}"') == 4, name
        assert f'class="bar" data-name="{name}"' in html
    assert html.count("<tr>") >= 17  # the comparison table
    shot = tmp_path / "report.png"
    done = chromium("--window-size=1360,2600", f"--screenshot={shot}", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
