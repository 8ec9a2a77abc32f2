"""Bad inputs to compare and tune: a clear message, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import main

SPACE = '[params]\n"priority.pages.checkout" = [40.0, 80.0]\n'


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def test_empty_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n\n")
    rc, err = run(["compare", str(empty), "--policy", "priority"], capsys)
    assert rc == 2
    assert "routeq compare:" in err and "is empty" in err


def test_trace_with_no_chats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = tmp_path / "nochats.jsonl"
    t.write_text(
        '{"type":"agent.state","id":"1","ts":1000,"tenant":"s","agent":"a","status":"online"}\n'
        '{"type":"visitor.arrived","id":"2","ts":2000,"tenant":"s","visitor":"v","channel":"web"}\n'
        '{"type":"page.viewed","id":"3","ts":3000,"tenant":"s","visitor":"v","page":"cart"}\n'
        'not json\n', encoding="utf-8")
    for cmd in (["compare", str(t)], ["tune", str(t), "--space", str(_space(tmp_path))]):
        rc, err = run(cmd, capsys)
        assert rc == 2
        assert "has no chats" in err


def test_missing_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = run(["compare", str(tmp_path / "nope.jsonl")], capsys)
    assert rc == 2 and "trace not found" in err


def test_rules_file_with_a_bad_key(demo_trace: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[assignment]\noffer_timeout_s = "soon"\n', encoding="utf-8")
    rc, err = run(["compare", str(demo_trace), "--rules", str(bad)], capsys)
    assert rc == 2
    assert "assignment.offer_timeout_s" in err and str(bad) in err
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[priority]\ncheckout_boost = 3\n", encoding="utf-8")
    rc, err = run(["compare", str(demo_trace), "--rules", str(unknown)], capsys)
    assert rc == 2 and "checkout_boost" in err


def _space(d: Path, text: str = SPACE) -> Path:
    p = d / "space.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("text,says", [
    ('[params]\n"priority.checkout_weight" = [1, 2]\n',
     "unknown parameter 'priority.checkout_weight'"),
    ('method = "anneal"\n[params]\npolicy = ["priority"]\n', "'method'"),
    ('[params]\n"priority.aging_per_s" = { min = 1, max = 0 }\n', "priority.aging_per_s"),
    ("samples = 3\n", "[params]"),
    ('[params]\n"assignment.offer_timeout_s" = ["soon"]\n', "assignment.offer_timeout_s"),
    ("[params\n", "not valid TOML"),
])
def test_search_space_errors(demo_trace: Path, tmp_path: Path, text: str, says: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = run(["tune", str(demo_trace), "--space", str(_space(tmp_path, text)),
                   "--out", str(tmp_path / "best.toml")], capsys)
    assert rc == 2
    assert says in err, err
    assert not (tmp_path / "best.toml").exists()


def test_no_traceback_from_the_command(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    p = subprocess.run([sys.executable, "-m", "streams.cli", "compare", str(empty)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.startswith("routeq compare: ") and "Traceback" not in p.stderr
