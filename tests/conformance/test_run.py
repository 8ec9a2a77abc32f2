"""The contract on ``routeq run``, as a subprocess: plain, and durable with
``--state`` killed (SIGKILL at a point inside the runtime) and run again."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conformance.model import Step
from tests.conformance.streams import Obj, encode, streams
from tests.conformance.suite import ConformanceSuite, group_by_offset, outputs_of
from tests.routeq import routeq

#: first runs (not killed, killed): the kill must happen in most examples
KILLED = [0, 0]
CRASH_POINTS = ("before-write", "after-write", "after-apply", "checkpoint", "before-final")


def write_parts(d: Path, lines: list[bytes], parts: int) -> list[Path]:
    """``lines`` over ``parts`` files (each file is a chunk of the runtime's log)."""
    size = max(1, -(-len(lines) // parts))
    files = []
    for k in range(0, len(lines), size):
        f = d / f"part{len(files)}.jsonl"
        f.write_bytes(b"".join(line + b"\n" for line in lines[k:k + size]))
        files.append(f)
    return files


def run_once(lines: list[bytes], rules: str, **env: str) -> bytes:
    """What ``routeq run`` writes for ``lines`` under ``rules`` (``env`` added)."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "rules.toml").write_text(rules)
        files = write_parts(d, lines, 1)
        return routeq("run", *files, "--rules", d / "rules.toml", "--quiet", **env).stdout


class TestRun(ConformanceSuite):
    runtime = "routeq run"
    examples = 25

    def execute(self, lines: list[bytes], rules: str) -> list[Step]:
        return group_by_offset(lines, outputs_of(run_once(lines, rules)))


class TestRunCompiledAndPure(ConformanceSuite):
    """The suite's streams through ``routeq run`` with the core as installed
    (compiled by ``make test``) and with the pure core (``ROUTEQ_PURE=1``):
    byte for byte the same outputs, and those meet the contract."""

    runtime = "routeq run (compiled and pure core)"
    examples = 10

    def execute(self, lines: list[bytes], rules: str) -> list[Step]:
        out = run_once(lines, rules)
        assert run_once(lines, rules, ROUTEQ_PURE="1") == out
        return group_by_offset(lines, outputs_of(out))


class TestRunStateKilled(ConformanceSuite):
    """Killed once at a named point (which chunk, drawn), then the same command
    again: ``--out`` must hold every decision once, as the contract says."""

    runtime = "routeq run --state (killed, resumed)"
    examples = 20
    crash = ("after-apply", 1)
    parts = 3

    def execute(self, lines: list[bytes], rules: str) -> list[Step]:
        point, n = self.crash
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            (d / "rules.toml").write_text(rules)
            files = write_parts(d, lines, self.parts)
            args = ("run", *files, "--rules", d / "rules.toml", "--state", d / "state",
                    "--out", d / "out.jsonl", "--checkpoint-every", "5", "--quiet")
            first = routeq(*args, check=False, ROUTEQ_CRASH_POINT=f"{point}:{n}")
            assert first.returncode in (0, -9), first.stderr.decode(errors="replace")
            KILLED[first.returncode == -9] += 1
            routeq(*args)
            out = (d / "out.jsonl").read_bytes()
        return group_by_offset(lines, outputs_of(out))

    def test_contract_holds_on_random_streams(self) -> None:
        @settings(max_examples=self.examples, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(streams(max_size=self.max_size), st.sampled_from(self.rules),
               st.sampled_from(CRASH_POINTS), st.integers(1, 4), st.integers(1, 4))
        def run(events: list[Obj | str], rules: str, point: str, n: int, parts: int) -> None:
            # the n-th chunk exists (one a file), and the final point comes once
            n = 1 if point == "before-final" else min(n, parts)
            self.crash, self.parts = (point, n), parts
            self.check(events, rules)
        run()


def test_parts_keep_every_line(tmp_path: Path) -> None:
    lines = encode([{"type": "clock", "id": str(i), "ts": i, "tenant": "t"} for i in range(7)])
    files = write_parts(tmp_path, lines, 3)
    assert b"".join(f.read_bytes() for f in files) == b"".join(x + b"\n" for x in lines)


def test_most_examples_were_killed() -> None:
    """Runs after the suite above (pytest keeps file order): the crash points
    drawn must really kill most first runs, or the resume was not tested."""
    if sum(KILLED):
        assert KILLED[1] >= KILLED[0], KILLED
