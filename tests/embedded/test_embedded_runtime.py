"""``routeq run`` / ``replay`` / ``export`` on real state dirs (rocksdict), in process.

The commands are called through ``streams.cli.main`` exactly as the console
script does; outputs go to files, the summary to stderr.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import MAX_LINE_BYTES
from streams.cli import main
from streams.embedded.state import FORMAT, M_FORMAT
from streams.embedded.store import RocksStore
from tests.routeq import consume, lines
from tests.strategies import streams

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "shop_morning.jsonl"
EXAMPLE_RULES = ROOT / "examples" / "rules.toml"

RULES_TEXTS = (
    "",
    'policy = "least_loaded"\n[assignment]\nacceptance_required = true\noffer_timeout_s = 20\n',
    '[priority]\naging_per_s = 2.0\n[priority.pages]\nhome = 40.0\n[overflow]\nenabled = true\n'
    'after_s = 30\n',
)


def routeq(*args: str | Path) -> int:
    return main([str(a) for a in args])


def run_to(out: Path, *args: str | Path) -> bytes:
    assert routeq("run", *args, "--out", out, "--quiet") == 0
    return out.read_bytes()


def jsonl(events: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def outputs(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in lines(data)]


# ------------------------------------------------------------ replay equality


def test_bundled_example_replays_byte_identical(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ran = run_to(tmp_path / "run.jsonl", EXAMPLE, "--rules", EXAMPLE_RULES, "--state", state)
    assert b'"chat.assigned"' in ran
    assert routeq("replay", "--state", state, "--out", tmp_path / "replay.jsonl",
                  "--quiet") == 0
    assert (tmp_path / "replay.jsonl").read_bytes() == ran
    # in memory, offsets are input positions: the same bytes
    assert run_to(tmp_path / "mem.jsonl", EXAMPLE, "--rules", EXAMPLE_RULES) == ran
    assert all("offset" in o for o in outputs(ran))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(max_size=80, duplicates=True), rules=st.sampled_from(RULES_TEXTS),
       cut=st.floats(0, 1), every=st.sampled_from(["1", "7", "1000"]))
def test_resumed_runs_and_replay_equal_one_uninterrupted_run(
        events: list[dict[str, Any]], rules: str, cut: float, every: str) -> None:
    """Input split over two runs of one state dir (a stop and a restart), with
    checkpoints every ``every`` events: the outputs (deduplicated by offset) and
    the replay equal one run of the whole input in memory."""
    k = round(len(events) * cut)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)
        (p / "rules.toml").write_text(rules)
        (p / "a.jsonl").write_bytes(jsonl(events[:k]))
        (p / "b.jsonl").write_bytes(jsonl(events[k:]))
        (p / "all.jsonl").write_bytes(jsonl(events))
        r = ("--rules", p / "rules.toml")
        whole = run_to(p / "whole.jsonl", p / "all.jsonl", *r)
        first = run_to(p / "1.jsonl", p / "a.jsonl", *r, "--state", p / "s",
                       "--checkpoint-every", every)
        second = run_to(p / "2.jsonl", p / "b.jsonl", *r, "--state", p / "s",
                        "--checkpoint-every", every)
        assert consume([first, second]) == lines(whole)
        assert routeq("replay", "--state", p / "s", "--out", p / "r.jsonl", "--quiet") == 0
        assert (p / "r.jsonl").read_bytes() == whole


# ------------------------------------------------------------------ bad input


def bad_lines() -> st.SearchStrategy[bytes]:
    return st.sampled_from([
        b"not json",
        b"[1, 2, 3]",
        b'{"type": "page.viewed", "id": "x1", "ts": "yesterday", "tenant": "t1", '
        b'"visitor": "v1", "page": "home"}',
        b'{"type": "teleported", "id": "x2", "ts": 1, "tenant": "t1"}',
        b'{"type": "chat.requested", "id": "x3", "ts": 1, "tenant": "t1", "visitor": 5, '
        b'"chat": "c1"}',
        b'{"type": "agent.state", "id": "x4", "ts": 1, "tenant": "t1", "agent": "a1", '
        b'"status": "online", "capacity": "lots"}',
        b'{"type": "clock", "ts": 1}',
        b'{"type": "page.viewed", "id": "x5", "ts": 1, "tenant": "t1", "visitor": "v1", '
        b'"page": "' + b"p" * MAX_LINE_BYTES + b'"}',
        b"\xff\xfe not utf-8",
        b'{"type": [], "id": "x6"}',
        b"[" * 2000 + b"]" * 2000,
        b'{"type": "order.placed", "id": "x7", "ts": 1, "tenant": "t 1", "visitor": "v1", '
        b'"amount": 5}',
    ])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(max_size=60), data=st.data())
def test_bad_lines_are_rejected_and_change_nothing_else(
        events: list[dict[str, Any]], data: st.DataObject) -> None:
    good = [orjson.dumps(e) for e in events]
    mixed: list[tuple[bytes, bool]] = [(g, True) for g in good]
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(mixed)))
        mixed.insert(at, (data.draw(bad_lines()), False))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)
        (p / "good.jsonl").write_bytes(b"".join(g + b"\n" for g in good))
        (p / "mixed.jsonl").write_bytes(b"".join(line + b"\n" for line, _ in mixed))
        clean = outputs(run_to(p / "clean.out", p / "good.jsonl"))
        got = outputs(run_to(p / "mixed.out", p / "mixed.jsonl", "--state", p / "s"))
    # offset in the mixed input -> offset among the good lines
    to_good = {}
    for i, (_, ok) in enumerate(mixed):
        if ok:
            to_good[i] = len(to_good)
    rejected = [o for o in got if o["type"] == "event.rejected"]
    assert [o["line"] for o in rejected] == [i + 1 for i, (_, ok) in enumerate(mixed) if not ok]
    for o in rejected:
        assert "field '" in o["error"] or o["error"].startswith("event: ")
        assert len(o["input"]) <= 512
    kept = []
    for o in got:
        if o["type"] != "event.rejected":
            o["offset"] = to_good[o["offset"]]
            kept.append(o)
    assert kept == clean


def test_strict_stops_at_the_first_bad_line_with_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = EXAMPLE.read_bytes().splitlines()
    (tmp_path / "in.jsonl").write_bytes(b"\n".join([*src[:10], b"{oops", *src[10:]]) + b"\n")
    code = routeq("run", tmp_path / "in.jsonl", "--strict", "--state", tmp_path / "s",
                  "--out", tmp_path / "out.jsonl")
    assert code == 2
    err = capsys.readouterr().err
    assert "--strict" in err and "line 11" in err and "JSON" in err
    assert routeq("export", "--state", tmp_path / "s", "--out", tmp_path / "log.jsonl") == 0
    assert (tmp_path / "log.jsonl").read_bytes() == b"\n".join(src[:10]) + b"\n"


# ------------------------------------------------------------- inputs, outputs


def test_several_files_in_order_equal_their_concatenation(tmp_path: Path) -> None:
    src = EXAMPLE.read_bytes().splitlines(keepends=True)
    (tmp_path / "a").write_bytes(b"".join(src[:20]))
    (tmp_path / "b").write_bytes(b"\n".join(s.rstrip(b"\n") for s in src[20:]))  # no last \n
    one = run_to(tmp_path / "1", EXAMPLE)
    assert run_to(tmp_path / "2", tmp_path / "a", tmp_path / "b") == one
    assert run_to(tmp_path / "3", tmp_path / "a", tmp_path / "b", "--state", tmp_path / "s") == one


def test_a_rerun_reads_only_what_was_appended_to_its_input(tmp_path: Path) -> None:
    src = EXAMPLE.read_bytes().splitlines(keepends=True)
    inp, state = tmp_path / "in.jsonl", tmp_path / "s"
    inp.write_bytes(b"".join(src[:25]))
    first = run_to(tmp_path / "1", inp, "--state", state)
    again = run_to(tmp_path / "2", inp, "--state", state)
    assert again == b""  # all applied and checkpointed; nothing re-read
    with open(inp, "ab") as f:
        f.write(b"".join(src[25:]))
    rest = run_to(tmp_path / "3", inp, "--state", state)
    assert first + rest == run_to(tmp_path / "whole", EXAMPLE)
    assert routeq("export", "--state", state, "--out", tmp_path / "log") == 0
    assert (tmp_path / "log").read_bytes() == EXAMPLE.read_bytes()


def test_summary_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines_ = EXAMPLE.read_bytes().splitlines()
    (tmp_path / "in").write_bytes(b"\n".join([*lines_, lines_[3], b"nope"]) + b"\n")
    assert routeq("run", tmp_path / "in", "--out", tmp_path / "out") == 0
    err = capsys.readouterr().err
    n = len(lines_) + 1
    assert f"{n} events applied, 1 rejected, 1 duplicates ignored" in err
    assert "events/s" in err and " s, " in err
    assert "chat.assigned" in err and "event.rejected" in err


def test_export_runs_into_a_new_state_with_the_same_outputs(tmp_path: Path) -> None:
    ran = run_to(tmp_path / "a", EXAMPLE, "--state", tmp_path / "s1")
    assert routeq("export", "--state", tmp_path / "s1", "--out", tmp_path / "log") == 0
    assert run_to(tmp_path / "b", tmp_path / "log", "--state", tmp_path / "s2") == ran


# ---------------------------------------------------------------- new rules


def test_restart_with_other_rules_deploys_them_from_there_on(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = EXAMPLE.read_bytes().splitlines(keepends=True)
    (tmp_path / "a").write_bytes(b"".join(src[:30]))
    (tmp_path / "b").write_bytes(b"".join(src[30:]))
    new_rules = tmp_path / "new.toml"
    new_rules.write_text('policy = "least_loaded"\n')
    state = tmp_path / "s"
    first = outputs(run_to(tmp_path / "1", tmp_path / "a", "--rules", EXAMPLE_RULES,
                           "--state", state))
    capsys.readouterr()
    assert routeq("run", tmp_path / "b", "--rules", new_rules, "--state", state,
                  "--out", tmp_path / "2") == 0
    assert "deployed rules" in capsys.readouterr().err
    second = outputs((tmp_path / "2").read_bytes())
    old_hash = {o["rules"] for o in first if o["type"] == "chat.assigned"}
    new_hash = {o["rules"] for o in second if o["type"] == "chat.assigned"}
    assert len(old_hash) == 1 and len(new_hash) == 1 and old_hash != new_hash
    assert {o["reason"] for o in second if o["type"] == "chat.assigned"} == {"least_loaded"}
    # replay follows the deployments, so it equals what run wrote
    assert routeq("replay", "--state", state, "--out", tmp_path / "r", "--quiet") == 0
    assert outputs((tmp_path / "r").read_bytes()) == first + second
    # without --rules a restart keeps the rules in force (nothing redeployed)
    with open(tmp_path / "b", "ab") as f:
        f.write(src[5].replace(b'"id": "', b'"id": "again-'))
    capsys.readouterr()
    assert routeq("run", tmp_path / "b", "--state", state, "--out", tmp_path / "3") == 0
    assert "deployed" not in capsys.readouterr().err


# ------------------------------------------------------------------- errors


def snapshot(d: Path) -> dict[str, tuple[int, int]]:
    return {f.name: (f.stat().st_size, f.stat().st_mtime_ns) for f in d.iterdir()}


def test_a_rules_error_names_the_key_and_leaves_the_state_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "s"
    run_to(tmp_path / "1", EXAMPLE, "--state", state)
    before = snapshot(state)
    bad = tmp_path / "bad.toml"
    bad.write_text('[assignment]\noffer_timeout_s = "soon"\n')
    assert routeq("run", EXAMPLE, "--rules", bad, "--state", state,
                  "--out", tmp_path / "2") == 2
    err = capsys.readouterr().err
    assert "assignment.offer_timeout_s" in err and str(bad) in err
    assert snapshot(state) == before


def test_a_missing_input_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.jsonl"
    assert routeq("run", EXAMPLE, missing, "--state", tmp_path / "s") == 2
    assert f"input file not found: {missing}" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # nothing was started


def test_a_state_dir_of_another_format_is_refused_with_what_to_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "s"
    store = RocksStore(state)
    b = store.batch()
    b.put(M_FORMAT, b"routeq-state/0")
    store.write(b)
    store.close()
    assert routeq("run", EXAMPLE, "--state", state, "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "routeq-state/0" in err and FORMAT.decode() in err and "routeq export" in err
    assert routeq("replay", "--state", state) == 2


def test_replay_of_a_missing_state_dir_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert routeq("replay", "--state", tmp_path / "none") == 2
    assert "state dir not found" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_replay_beside_a_live_run_is_allowed(tmp_path: Path) -> None:
    state = tmp_path / "s"
    ran = run_to(tmp_path / "1", EXAMPLE, "--state", state)
    holder = RocksStore(state)  # a run holding the state dir
    try:
        assert routeq("replay", "--state", state, "--out", tmp_path / "r", "--quiet") == 0
        assert routeq("run", EXAMPLE, "--state", state, "--out", tmp_path / "x") == 2
    finally:
        holder.close()
    assert (tmp_path / "r").read_bytes() == ran
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_replay_with_other_rules_is_a_what_if(tmp_path: Path) -> None:
    state = tmp_path / "s"
    ran = outputs(run_to(tmp_path / "1", EXAMPLE, "--rules", EXAMPLE_RULES, "--state", state))
    other = tmp_path / "fifo.toml"
    other.write_text('policy = "fifo_round_robin"\n')
    assert routeq("replay", "--state", state, "--rules", other, "--out", tmp_path / "r",
                  "--quiet") == 0
    what_if = outputs((tmp_path / "r").read_bytes())
    assigned = [o for o in what_if if o["type"] == "chat.assigned"]
    assert assigned and {o["reason"] for o in assigned} == {"fifo_round_robin"}
    assert {o["rules"] for o in assigned}.isdisjoint(
        {o["rules"] for o in ran if o["type"] == "chat.assigned"})
    # the state is only read: a replay with the recorded rules still gives the run
    assert routeq("replay", "--state", state, "--out", tmp_path / "r2", "--quiet") == 0
    assert outputs((tmp_path / "r2").read_bytes()) == ran
