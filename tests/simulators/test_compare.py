"""routeq compare: own rules reproduce the trace; a known answer; reproducible numbers."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from engine import parse_rules
from simulators.candidates import build, run_all, runs_of, trace_rules
from simulators.whatif import read_trace, run_candidate
from streams.cli import main
from tests.simulators.conftest import simulate


@pytest.mark.parametrize("scenario,hours,extra", [
    ("demo", 3.0, []),                                 # acceptance, declines, bot first
    ("double11", 0.5, ["--policy", "least_loaded"]),  # no acceptance, another policy
])
def test_own_rules_reproduce_the_trace(tmp_path: Path, scenario: str, hours: float,
                                       extra: list[str]) -> None:
    """Re-simulated under the rules it was recorded with, a trace gives back its own
    figures exactly, whatever the seed of the parts the trace does not show."""
    for trace_seed in (1, 2):
        d = simulate(tmp_path / f"t{trace_seed}", scenario, hours, trace_seed, *extra)
        rules, _ = trace_rules(str(d), None)
        trace = read_trace(str(d), rules, str(tmp_path))
        recorded = trace.recorded
        # the metrics of the read pass are those of the run itself
        summary = orjson.loads((d / "summary.json").read_bytes())
        assert recorded["overall"]["human"] == summary["overall"]["human"]
        assert recorded["overall"]["chat_revenue"] == summary["overall"]["chat_revenue"]
        for seed in (1, 2):
            again = run_candidate(trace, rules, seed)
            assert again == recorded


def test_priority_beats_fifo_where_checkout_chats_are_scarce_and_valuable(
        scarce_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["compare", str(scarce_trace), "--policy", "priority", "--policy",
               "fifo_round_robin", "--jobs", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.split()[:1] == ["trace"])
    assert re.split(r"\s{2,}", header.strip()) == ["trace", "recorded rules", "priority",
                                                    "fifo_round_robin"]
    rows = {parts[0]: parts[1:] for parts in
            (re.split(r"\s{2,}", line.strip()) for line in out.splitlines())}
    for row in ("checkout wait mean s", "cart+checkout abandonment", "revenue after chat"):
        trace_v, recorded, prio, fifo = rows[row]
        assert prio.endswith("*") and not fifo.endswith("*"), (row, rows[row])
    prio_wait = float(rows["checkout wait mean s"][2].rstrip("*"))
    fifo_wait = float(rows["checkout wait mean s"][3].rstrip("*"))
    assert prio_wait < 0.8 * fifo_wait
    prio_rev = float(rows["revenue after chat"][2].rstrip("*").replace(",", ""))
    fifo_rev = float(rows["revenue after chat"][3].rstrip("*").replace(",", ""))
    assert prio_rev > 1.2 * fifo_rev
    assert "null test passed" in out
    # the trace was recorded under fifo_round_robin: re-simulating it gives it back
    assert rows["revenue after chat"][0] == rows["revenue after chat"][1] \
        == rows["revenue after chat"][3].rstrip("*")


def test_same_trace_candidates_and_seed_give_the_same_numbers(demo_trace: Path,
                                                              tmp_path: Path) -> None:
    base, _ = trace_rules(str(demo_trace), None)
    cands = build(base, [], ["priority", "least_loaded"], baselines=False)
    trace = read_trace(str(demo_trace), base, str(tmp_path))
    rules = [c.rules for c in cands]
    one = run_all(trace, runs_of(rules, 3), jobs=1)
    two = run_all(trace, runs_of(rules, 3), jobs=2)
    assert orjson.dumps(one) == orjson.dumps(two)
    # another policy than the trace's: its sampled parts (patience of served
    # visitors, handle times of chats nobody served) depend on the seed
    other = run_all(trace, runs_of(rules[1:], 4), jobs=1)
    assert orjson.dumps(other[0]) != orjson.dumps(one[1])


def test_compare_writes_json_naming_trace_rules_and_seed(demo_trace: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    out = tmp_path / "cmp.json"
    assert main(["compare", str(demo_trace), "--baselines", "--json", str(out),
                 "--quiet", "--seed", "9"]) == 0
    doc = orjson.loads(out.read_bytes())
    assert doc["seed"] == 9
    # --baselines alone: the baselines beside routeq's own policy, after the
    # recorded rules (the null test)
    assert [c["name"] for c in doc["candidates"]] == [
        "recorded rules", "priority", "fifo_round_robin", "least_loaded", "longest_idle"]
    assert {c["policy"] for c in doc["candidates"]} == {
        "priority", "fifo_round_robin", "least_loaded", "longest_idle"}
    # given back exactly: no other seed can change that (no draw on the recorded path)
    assert doc["null_test"]["passed"] and doc["null_test"]["seeds"] == [9]
    assert all(len(c["rules"]) == 12 for c in doc["candidates"])
    assert doc["trace_rules_hash"] == trace_rules(str(demo_trace), None)[0].hash
    assert capsys.readouterr().out == ""


def test_a_plain_events_file_with_its_rules_is_the_same_trace(
        scarce_trace: Path, tmp_path: Path) -> None:
    """An export or a chat server's history: the events file, with --trace-rules."""
    as_dir, as_file = tmp_path / "dir.json", tmp_path / "file.json"
    assert main(["compare", str(scarce_trace), "--policy", "priority", "--jobs", "1",
                 "--json", str(as_dir), "--quiet"]) == 0
    assert main(["compare", str(scarce_trace / "events.jsonl"), "--trace-rules",
                 str(scarce_trace / "rules.toml"), "--policy", "priority", "--jobs", "1",
                 "--json", str(as_file), "--quiet"]) == 0
    a, b = orjson.loads(as_dir.read_bytes()), orjson.loads(as_file.read_bytes())
    assert a["candidates"][0]["summary"] == b["candidates"][0]["summary"]
    assert a["recorded"] == b["recorded"]
    # without its rules, the defaults (policy priority) are taken as the trace's rules
    assert main(["compare", str(scarce_trace / "events.jsonl"), "--policy", "priority",
                 "--jobs", "1", "--json", str(as_file), "--quiet"]) == 0
    c = orjson.loads(as_file.read_bytes())
    assert c["trace_rules"] == "default rules"


def test_tenant_restricts_the_figures_and_gives_a_table_per_tenant(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = simulate(tmp_path / "mp", "marketplace", 0.5, 4)
    whole = tmp_path / "whole.json"
    assert main(["compare", str(d), "--policy", "least_loaded", "--json", str(whole),
                 "--quiet", "--jobs", "1"]) == 0
    some = tmp_path / "some.json"
    assert main(["compare", str(d), "--policy", "least_loaded", "--json", str(some),
                 "--tenant", "m01", "--tenant", "platform", "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "tenant m01:" in printed and "tenant platform:" in printed
    w, s = orjson.loads(whole.read_bytes()), orjson.loads(some.read_bytes())
    assert s["tenants"] == ["m01", "platform"] and s["null_test"]["passed"]
    for cand_w, cand_s in zip(w["candidates"], s["candidates"], strict=True):
        assert set(cand_s["summary"]["tenants"]) == {"m01", "platform"}
        for name in ("m01", "platform"):
            # the tenant on its own: the same figures as in the whole comparison
            alone = cand_s["summary"]["by_tenant"][name]["overall"]
            within = cand_w["summary"]["tenants"][name]
            for key in ("chats", "human", "assigned", "abandoned", "service_level",
                        "occupancy", "chat_revenue"):
                assert alone[key] == within[key], (cand_s["name"], name, key)
        together = cand_s["summary"]["overall"]
        assert together["human"] == sum(cand_w["summary"]["tenants"][n]["human"]
                                        for n in ("m01", "platform"))
    assert main(["compare", str(d), "--tenant", "nobody", "--quiet"]) == 2
    assert "--tenant nobody" in capsys.readouterr().err


def test_bad_input_around_a_history_leaves_nothing_behind(
        scarce_trace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A state dir with a --trace-rules that cannot be read, a directory that is
    neither a simulate directory nor a state dir, a tenant named twice, a report
    nowhere: exit 2 (or the tables once), no temporary file left, nothing
    written into the directory given."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    state = tmp_path / "state"
    assert main(["run", str(scarce_trace / "events.jsonl"), "--state", str(state),
                 "--out", str(tmp_path / "o.jsonl")]) == 0
    assert main(["compare", str(state), "--trace-rules", str(tmp_path / "none.toml")]) == 2
    other = tmp_path / "other"
    other.mkdir()
    assert main(["compare", str(other)]) == 2
    assert list(other.iterdir()) == []
    assert main(["compare", str(state), "--report", str(tmp_path / "no" / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "none.toml" in err and "neither" in err and "no such directory" in err
    assert main(["compare", str(state), "--tenant", "shop", "--tenant", "shop", "--jobs", "1",
                 "--policy", "least_loaded"]) == 0
    assert "tenant shop:" not in capsys.readouterr().out  # one tenant: one table
    assert list(tmp.iterdir()) == []


def test_quiet_strict_still_says_why_the_null_test_failed(
        scarce_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "wrong.toml"
    wrong.write_text((scarce_trace / "rules.toml").read_text().replace(
        'policy = "fifo_round_robin"', 'policy = "priority"'))
    assert 'policy = "priority"' in wrong.read_text()
    assert main(["compare", str(scarce_trace), "--trace-rules", str(wrong), "--quiet",
                 "--strict", "--jobs", "1", "--null-seeds", "2"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "null test FAILED" in captured.err
    assert "ran under other rules than the ones given" in captured.err


def test_a_candidate_takes_the_events_the_history_applied(tmp_path: Path) -> None:
    """A request sent again with its id after the recorded rules' dedup window
    forgot it was a new chat in the history; a candidate whose window is longer
    re-simulates it too (the window is the transport's, not routing's), so its
    figures and its engine count the same chats."""
    t = 1_800_000_000_000
    shop = {"tenant": "shop"}
    events = [
        {"type": "agent.state", "id": "a", "ts": t, "agent": "a1", "status": "online",
         "capacity": 1},
        {"type": "visitor.arrived", "id": "b", "ts": t + 1_000, "visitor": "v1", "channel": "web"},
        {"type": "chat.requested", "id": "r1", "ts": t + 2_000, "visitor": "v1", "chat": "c1"},
        {"type": "chat.ended", "id": "e1", "ts": t + 60_000, "chat": "c1", "resolved": True},
        *({"type": "page.viewed", "id": f"p{i}", "ts": t + 61_000 + i, "visitor": "v1",
           "page": "home"} for i in range(3)),
        {"type": "chat.requested", "id": "r1", "ts": t + 70_000, "visitor": "v1", "chat": "c1"},
        {"type": "page.viewed", "id": "p9", "ts": t + 200_000, "visitor": "v1", "page": "home"},
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps({**e, **shop}) + b"\n" for e in events))
    recorded = parse_rules({"dedup": {"window": 1}})
    trace = read_trace(str(path), recorded, str(tmp_path))
    assert trace.recorded["overall"]["chats"] == 2
    for rules in (recorded, parse_rules({})):
        got = run_candidate(trace, rules)["overall"]
        assert (got["chats"], got["assigned"]) == (2, 2)
