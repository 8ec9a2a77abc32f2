"""The HTML report: self-contained, its plots render in headless Chromium, and
it reads for a customer-service manager: a plain summary first (who wins on
what, at what cost, how sure), the null test next, the method last."""

from __future__ import annotations

import html as htmllib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from simulators.report import LABELS, fmt_value, render, winner
from simulators.whatif_metrics import ROWS, value
from streams.cli import main
from tests.simulators.conftest import simulate
from tests.simulators.history import History

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-dev-shm-usage"]


def chromium(*args: str) -> subprocess.CompletedProcess[bytes]:
    if CHROMIUM is None:
        pytest.fail("chromium is not on PATH: `make test` installs it (apt-get install chromium)")
    return subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, timeout=120)


def dom(report: Path) -> str:
    """The page as the browser built it."""
    done = chromium("--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.decode()


def text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags out, entities decoded,
    white space collapsed."""
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def first_paragraph(page: str) -> str:
    body = page[page.index("<body"):]
    return text(re.search(r"<p\b[^>]*>(.*?)</p>", body, re.S).group(1))  # type: ignore[union-attr]


def section(page: str, anchor: str) -> str:
    """From the heading with id ``anchor`` to the next h2 (or the end)."""
    start = page.index(f'id="{anchor}"')
    end = page.find("<h2", start)
    return page[start:end if end > 0 else len(page)]


def note(page: str, anchor: str) -> str:
    """The text of the paragraph with id ``anchor``."""
    start = page.index(">", page.index(f'<p class="note" id="{anchor}"')) + 1
    return text(page[start:page.index("</p>", start)])


def table_rows(fragment: str) -> dict[str, list[str]]:
    """Rows of the first table in ``fragment``: first cell -> the other cells."""
    table = fragment[fragment.index("<table"):fragment.index("</table>")]
    rows = {}
    for tr in re.findall(r"<tr\b[^>]*>(.*?)</tr>", table, re.S):
        cells = [text(c) for c in re.findall(r"<t[hd]\b[^>]*>(.*?)</t[hd]>", tr, re.S)]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


def compare(trace: Path, out: Path, *args: str) -> tuple[Path, dict[str, Any]]:
    report, doc = out / "report.html", out / "report.json"
    assert main(["compare", str(trace), *args, "--report", str(report), "--json", str(doc),
                 "--quiet", "--jobs", "2"]) == 0
    return report, orjson.loads(doc.read_bytes())


@pytest.fixture(scope="module")
def scarce(scarce_trace: Path,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Scarce, valuable checkout chats recorded under fifo: priority wins."""
    return compare(scarce_trace, tmp_path_factory.mktemp("report"), "--policy", "priority",
                   "--baselines")


@pytest.fixture(scope="module")
def report(scarce: tuple[Path, dict[str, Any]]) -> Path:
    return scarce[0]


@pytest.fixture(scope="module")
def page(report: Path) -> str:
    return dom(report)


# ---------------------------------------------------------------- kept from before

def test_report_is_self_contained(report: Path, scarce_trace: Path) -> None:
    text_ = report.read_text(encoding="utf-8")
    assert "<script" not in text_
    # nothing fetched: no links or sources outside the file
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', text_)
    assert "@import" not in text_ and "url(" not in text_
    # it names the trace, the rules hashes and the seed
    assert str(scarce_trace) in text_ and "seed <code>1</code>" in text_
    assert len(set(re.findall(r"rules <code>([0-9a-f]{12})</code>", text_))) >= 4


def test_plots_render_in_headless_chromium(report: Path, page: str, tmp_path: Path) -> None:
    plots = re.findall(r'<svg class="plot"[^>]*aria-label="([^"]+)"', page)
    assert len(plots) == 5, plots
    for title in ("Wait for an agent", "waiting for an agent over the day",
                  "Answered within 20 s, over the day", "Average wait by page", "Agent load"):
        assert any(title in p for p in plots), title
    names = ("trace", "recorded rules", "priority", "fifo_round_robin", "least_loaded",
             "longest_idle")
    for name in names:
        # every candidate has a line in the line plots and bars in the bar plot
        assert page.count(f'class="series" data-name="{name}"') == 4, name
        assert f'class="bar" data-name="{name}"' in page
    assert len(table_rows(section(page, "side-by-side"))) == len(ROWS) + 1
    shot = tmp_path / "report.png"
    done = chromium("--window-size=1360,2600", f"--screenshot={shot}", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000


# ---------------------------------------------------------------- for a manager

def test_the_first_paragraph_names_the_winner_and_the_null_test_verdict(
        scarce: tuple[Path, dict[str, Any]], page: str) -> None:
    _, doc = scarce
    names = [c["name"] for c in doc["candidates"]]
    assert names[winner(doc)] == "priority"
    first = first_paragraph(page)
    assert '<p class="summary" id="summary">' in page
    ref = doc["candidates"][0]["summary"]
    best = doc["candidates"][names.index("priority")]["summary"]
    # what was compared: the history, its chats and period
    assert f"{ref['overall']['chats']:,} chats" in first and "UTC" in first
    # who wins on what, with the numbers, in a manager's units
    assert "priority does best" in first
    def fig(s: dict[str, Any], path: str, kind: str) -> str:
        return fmt_value(value(s, path), kind)

    sl = "overall.service_level"
    assert (f"answers {fig(best, sl, 'share')} of chats within 20 s instead of "
            f"{fig(ref, sl, 'share')}") in first
    checkout = "whatif.pages.checkout.wait_mean_s"
    assert (f"cuts checkout waits from {fig(ref, checkout, 'seconds')} to "
            f"{fig(best, checkout, 'seconds')}") in first
    assert f"{best['overall']['chat_revenue']:,.0f} in revenue" in first
    # at what cost, and how sure
    assert "The cost:" in first
    assert "null test passed" in first and "noise" in first
    # no jargon from the terminal's table
    for word in ("service level", "sd)", "p90", "tau", "acceptance"):
        assert word not in first


def test_the_null_test_follows_the_summary_recorded_against_re_simulated(
        scarce: tuple[Path, dict[str, Any]], page: str) -> None:
    _, doc = scarce
    headings = re.findall(r'<h2 id="([^"]+)"', page)
    assert headings[0] == "null-test", headings
    null = section(page, "null-test")
    head = table_rows(null)["Figure"]
    assert head == ["Recorded", "Re-simulated under the recorded rules", "Noise", "Verdict"]
    rows = table_rows(null)
    for r in doc["null_test"]["rows"]:
        label = LABELS[r["path"]][0].format(sl="20")
        kind = LABELS[r["path"]][1]
        recorded, resim, noise, verdict = rows[label]
        assert recorded == fmt_value(r["recorded"], kind), label
        assert resim == fmt_value(r["resimulated"], kind), label
        assert verdict == ("differs" if r["differs"] else "OK"), label
        assert noise.startswith("±") or r["tolerance"] is None
    assert "null test passed" in text(null)
    assert "Likely causes" not in null


@pytest.fixture(scope="module")
def failed(demo_trace: Path,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The demo shop (priority) read as if it had run under least_loaded."""
    out = tmp_path_factory.mktemp("failed")
    rules = out / "least_loaded.toml"
    rules.write_text((demo_trace / "rules.toml").read_text().replace(
        'policy = "priority"', 'policy = "least_loaded"'))
    assert 'policy = "least_loaded"' in rules.read_text()
    return compare(demo_trace, out, "--trace-rules", str(rules), "--policy", "priority")


def test_a_failing_null_test_says_so_first_and_names_the_causes(
        failed: tuple[Path, dict[str, Any]]) -> None:
    report, doc = failed
    null = doc["null_test"]
    assert not null["passed"] and null["causes"]
    page = dom(report)
    first = first_paragraph(page)
    assert "the null test failed" in first
    assert "Most likely cause:" in first
    part = section(page, "null-test")
    assert "null test failed" in text(part)
    rows = table_rows(part)
    for r in null["rows"]:
        label = LABELS[r["path"]][0].format(sl="20")
        assert rows[label][-1] == ("differs" if r["differs"] else "OK")
        if r["differs"]:  # the figure is named in the summary too
            assert label.lower() in first
    causes = [text(li) for li in re.findall(r"<li>(.*?)</li>",
                                            part[part.index('class="causes"'):], re.S)]
    assert causes[:len(null["causes"])] == [" ".join(c.split()) for c in null["causes"]]


def no_page_history() -> History:
    """Two agents; every fourth visitor asks for help without having viewed a
    page; the one visitor on the search page gives up before any answer."""
    h = History()
    h("agent.state", 0, agent="a1", status="online", capacity=1)
    h("agent.state", 0, agent="a2", status="online", capacity=1)
    pages = ("cart", "checkout", "detail", None)
    for i in range(40):
        t = 5 + 30 * i
        h("visitor.arrived", t, visitor=f"v{i}", channel="web")
        if pages[i % 4] is not None:
            h("page.viewed", t + 1, visitor=f"v{i}", page=pages[i % 4])
        h("chat.requested", t + 2, visitor=f"v{i}", chat=f"c{i}")
        h("chat.ended", t + 17, chat=f"c{i}", resolved=True)
    h("agent.state", 1222, agent="a2", status="offline")       # one agent away ...
    h("visitor.arrived", 1224, visitor="b1", channel="web")
    h("page.viewed", 1225, visitor="b1", page="cart")
    h("chat.requested", 1226, visitor="b1", chat="b1")          # ... the other busy
    h("visitor.arrived", 1231, visitor="s1", channel="web")
    h("page.viewed", 1232, visitor="s1", page="search")
    h("chat.requested", 1233, visitor="s1", chat="s1")
    h("visitor.left", 1240, visitor="s1")                       # gives up waiting
    h("chat.ended", 1300, chat="b1", resolved=True)
    return h


def test_chats_with_no_page_and_pages_with_no_answer_stay_out_of_the_page_chart(
        tmp_path: Path) -> None:
    report, doc = compare(no_page_history().write(tmp_path / "h.jsonl"), tmp_path,
                          "--baselines")
    pages = doc["recorded"]["whatif"]["pages"]
    assert pages["(none)"]["human"] == 10 and pages["search"]["wait_mean_s"] is None
    page = dom(report)
    chart = re.search(r'<svg class="plot"[^>]*aria-label="Average wait by page".*?</svg>',
                      page, re.S).group(0)  # type: ignore[union-attr]
    groups = re.findall(r'<text [^>]*font-size="11">([a-z_()]+)</text>', chart)
    assert groups == ["detail", "cart", "checkout"], groups
    assert "(none)" not in chart and "search" not in chart
    names = doc["candidates"]
    assert chart.count('class="bar"') == 3 * (len(names) + 1)
    assert note(page, "no-page").startswith(
        "10 chats for an agent came from visitors whose page is unknown")
    assert note(page, "unanswered-pages").endswith("left out of this chart: search.")


def test_each_tenant_gets_a_table_where_the_figures_cover_several(
        tmp_path: Path) -> None:
    trace = simulate(tmp_path / "t", "marketplace", 0.5, 3)
    report, doc = compare(trace, tmp_path, "--tenant", "m01", "--tenant", "m02")
    assert doc["tenants"] == ["m01", "m02"]
    page = dom(report)
    first = first_paragraph(page)
    assert "tenants m01 and m02" in first
    part = section(page, "tenants")
    assert re.findall(r'<h3 class="tenant">([^<]+)</h3>', part) == ["m01", "m02"]
    tables = part.split('<h3 class="tenant">')[1:]
    assert len(tables) == 2
    for name, chunk in zip(("m01", "m02"), tables, strict=True):
        rows = table_rows(chunk)
        want = [doc["recorded"]["by_tenant"][name]["overall"]["human"],
                *(c["summary"]["by_tenant"][name]["overall"]["human"]
                  for c in doc["candidates"])]
        assert rows["Chats for an agent"] == [f"{n:,}" for n in want], name
        sl = [fmt_value(doc["recorded"]["by_tenant"][name]["overall"]["service_level"],
                        "share")]
        assert rows["Answered within 20 s"][:1] == sl
    # one table for all, one per tenant, and the null test's
    assert page.count('<table class="cmp') == 4


def test_the_method_is_last_and_says_how_long_in_seconds(
        scarce: tuple[Path, dict[str, Any]], page: str) -> None:
    _, doc = scarce
    headings = re.findall(r'<h2 id="([^"]+)"', page)
    assert headings[-1] == "method", headings
    method = page[page.index('id="method"'):]
    assert re.fullmatch(r'id="method">.*?</ul>\s*</body></html>\s*', method, re.S)
    words = text(method)
    model = doc["model"]
    assert f"{model['chats']:,} chats, {model['served']:,} served" in words
    assert f"{model['gave_up']:,} gave up waiting" in words
    assert f"{model['patience_mean_s']:g} s on average before giving up" in words
    assert f"{model['handle_mean_s']:g} s on average" in words
    assert f"checkout {100 * model['order_p']['checkout']:.0f}%" in words  # order chance
    assert "three standard deviations" in words  # the noise, as the null test defines it
    assert re.search(r"the \d+ re-simulations took \d+\.\d+ s", words)
    assert "Offers" in words
    for jargon in ("candidates/min", "/min", "order tau", "acceptance False",
                   "acceptance True"):
        assert jargon not in page


def test_a_tune_report_sets_the_best_setting_against_the_current_rules(
        demo_trace: Path, tmp_path: Path) -> None:
    space = tmp_path / "space.toml"
    space.write_text('method = "grid"\n[params]\npolicy = ["priority", "least_loaded"]\n')
    report = tmp_path / "tune.html"
    assert main(["tune", str(demo_trace), "--space", str(space), "--report", str(report),
                 "--out", str(tmp_path / "best.toml"), "--quiet", "--jobs", "2"]) == 0
    page = dom(report)
    first = first_paragraph(page)
    assert "The best setting found, #1" in first and "the current rules" in first
    assert "tune does not run the null test" in first
    headings = re.findall(r'<h2 id="([^"]+)"', page)
    assert "null-test" not in headings and headings[-1] == "method"
    assert "Revenue after chat against abandonment" in page
    assert "candidates/min" not in page


# ---------------------------------------------------------------- pieces

def test_every_row_of_the_terminal_table_has_a_label_for_a_manager() -> None:
    for _, path, _, _ in ROWS:
        assert path in LABELS, path
    assert fmt_value(0.705529, "share") == "70.6%"
    assert fmt_value(10.581, "seconds") == "10.6 s"
    assert fmt_value(68045.46, "money") == "68,045"
    assert fmt_value(1234, "count") == "1,234"
    assert fmt_value(0.04, "spread") == "4.0 pts"
    assert fmt_value(None, "share") == "\u2013"


def test_names_are_escaped(scarce: tuple[Path, dict[str, Any]]) -> None:
    _, doc = scarce
    doc = orjson.loads(orjson.dumps(doc))
    evil = '<script>alert("x")</script>'
    doc["candidates"][1]["name"] = evil
    doc["trace"] = evil
    names = ["trace", "recorded rules", evil, *(c["name"] for c in doc["candidates"][2:])]
    out = render(doc, names)
    assert "<script" not in out and "&lt;script&gt;" in out
