"""Crash safety, for real: ``routeq run --state`` killed with SIGKILL, then rerun.

A subprocess runs a large mixed input into a state dir and is killed at
several points: at random wall-clock moments and at named points inside the
runtime (``ROUTEQ_CRASH_POINT``, see ``streams/embedded/runtime.py``), among them just
before a checkpoint is written. It is then started again with the same
command until it finishes. The outputs of all the runs, deduplicated by
offset with the README's consumer rule, must equal the outputs of one
uninterrupted run; ``--out FILE`` must end up byte-identical to it; and the
log must hold every input line exactly once.
"""

from __future__ import annotations

import random
import signal
import subprocess
from pathlib import Path

import pytest

from benchmarks.kill_harness import wait_for_output
from benchmarks.mixed_events import write
from tests.routeq import ROOT, ROUTEQ, consume, env, lines, routeq

N_EVENTS = 120_000
#: small checkpoints and chunks, so that kills land between and during many of them
TUNING = ("--checkpoint-every", "3000", "--checkpoint-ms", "50")


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A large input (with re-sent and bad lines) and its uninterrupted outputs."""
    d = tmp_path_factory.mktemp("crash")
    events = d / "events.jsonl"
    write(str(events), N_EVENTS, seed=7, bad_rate=0.002)
    ref = routeq("run", events, "--state", d / "ref", "--quiet", *TUNING).stdout
    assert len(lines(ref)) > 5_000
    return events, ref


def start(args: list[str | Path], out: Path, crash: str | None = None) -> subprocess.Popen[bytes]:
    extra = {"ROUTEQ_CRASH_POINT": crash} if crash else {}
    with open(out, "wb") as f:
        return subprocess.Popen([*ROUTEQ, *map(str, args)], stdout=f,
                                stderr=subprocess.DEVNULL, env=env(**extra), cwd=ROOT)


def kill_later(proc: subprocess.Popen[bytes], delay: float, out: Path | None = None) -> int:
    """SIGKILL ``proc`` after ``delay`` seconds (counted from its first output
    line when ``out`` is given: start-up time varies from machine to machine)."""
    if out is not None:
        wait_for_output(proc, out, 60)
    try:
        return proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        return proc.wait()


def crash_plan(rng: random.Random) -> list[tuple[str | None, float]]:
    """(crash point or None, seconds from the first output to a SIGKILL from outside)
    per attempt.

    Named points count chunks of about 4,000 lines, so each attempt gets a
    little further; the last one dies just before the final checkpoint."""
    named = [f"checkpoint:{rng.randint(1, 2)}", f"after-write:{rng.randint(1, 3)}",
             f"before-write:{rng.randint(1, 3)}", f"after-apply:{rng.randint(1, 3)}"]
    plan: list[tuple[str | None, float]] = [(p, 60.0) for p in named]
    plan += [(None, rng.uniform(0.0, 0.25)) for _ in range(3)]  # after the first output
    rng.shuffle(plan)
    return [*plan, ("before-final:1", 60.0)]


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
        workload: tuple[Path, bytes], tmp_path: Path) -> None:
    events, ref = workload
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    state = tmp_path / "state"
    args: list[str | Path] = ["run", events, "--state", state, *TUNING]
    runs: list[bytes] = []
    killed = 0
    for i, (point, delay) in enumerate(crash_plan(rng)):
        out = tmp_path / f"run{i}.jsonl"
        code = kill_later(start(args, out, point), delay, out if point is None else None)
        killed += code == -signal.SIGKILL
        runs.append(out.read_bytes())
    assert killed >= 6, f"seed {seed}: too few runs were killed ({killed})"
    last = routeq(*args)  # to the end, undisturbed
    assert b"resumed from the checkpoint" in last.stderr
    runs.append(last.stdout)
    got = consume(runs)
    assert got == lines(ref), f"seed {seed}: outputs differ from the uninterrupted run"
    # the log holds every input line exactly once, in order
    exported = routeq("export", "--state", state).stdout
    assert exported == events.read_bytes(), f"seed {seed}: log differs from the input"
    # replay of the crashed state = the uninterrupted run
    assert routeq("replay", "--state", state, "--quiet").stdout == ref


def test_out_file_of_a_killed_run_ends_byte_identical(
        workload: tuple[Path, bytes], tmp_path: Path) -> None:
    """With ``--out FILE`` the rerun cuts what the kill left half-written and
    appends without duplicates: the file equals the uninterrupted outputs."""
    events, ref = workload
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    out = tmp_path / "decisions.jsonl"
    args: list[str | Path] = ["run", events, "--state", tmp_path / "state", "--out", out,
                              *TUNING]
    points = [f"after-apply:{rng.randint(1, 15)}", f"checkpoint:{rng.randint(1, 5)}", None]
    for point in points:
        code = kill_later(start(args, tmp_path / "stdout", point),
                          60.0 if point else rng.uniform(0.3, 1.0))
        assert code in (0, -signal.SIGKILL)
    routeq(*args)
    assert out.read_bytes() == ref, f"seed {seed}"


def test_a_half_written_last_line_is_cut_on_resume(
        workload: tuple[Path, bytes], tmp_path: Path) -> None:
    """A kill in the middle of a write leaves part of a line: the rerun cuts it."""
    events, ref = workload
    state, out = tmp_path / "state", tmp_path / "decisions.jsonl"
    args: list[str | Path] = ["run", events, "--state", state, "--out", out, *TUNING]
    code = kill_later(start(args, tmp_path / "stdout", "after-apply:4"), 60.0)
    assert code == -signal.SIGKILL
    data = out.read_bytes()
    out.write_bytes(data[: len(data) - 37])  # as if the write had been cut short
    routeq(*args)
    assert out.read_bytes() == ref
