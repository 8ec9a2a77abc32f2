"""Kill harness: ``routeq run --state`` SIGKILLed at many random points of a long
input, restarted each time, checked against one uninterrupted run.

The input (``benchmarks/mixed_events.py``: 20 tenants, re-sent duplicates and
malformed lines) is split into files given as one command line. The runtime
reads up to about 4,000 lines a chunk and the named points count chunks, so
one run gets a chunk or two further before it dies: 100 kills take about
400,000 events to spread over. Each attempt dies either at a named point inside the runtime
(``ROUTEQ_CRASH_POINT``: ``checkpoint`` = a batch holding a checkpoint is
about to be written, ``before-write``/``after-write`` of a chunk's log batch,
``after-apply``, ``before-final``) or from a SIGKILL sent from outside at a
random moment: once the run has written its first output line (so that
start-up time, which varies from machine to machine, is not part of the
draw), within about two files' worth of the uninterrupted run's time. After
the last kill the command runs to the end.

Checked: the outputs of all runs, deduplicated by the README's consumer rule,
equal the uninterrupted run's; the log (``routeq export``) holds every input
line exactly once, in order; ``routeq replay`` of the crashed state equals the
uninterrupted run. Run::

    .venv/bin/python -m benchmarks.kill_harness            # 100 kills, 400,000 events
    .venv/bin/python -m benchmarks.kill_harness --kills 10 --events 20000

Writes ``benchmarks/results/kill_harness.json``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from benchmarks.mixed_events import write
from streams.embedded.outfile import complete_lines, consume, output_offset

ROOT = Path(__file__).resolve().parents[1]
ROUTEQ = [sys.executable, "-m", "streams.cli"]
TUNING = ("--checkpoint-every", "2000", "--checkpoint-ms", "50")
POINTS = ("checkpoint", "before-write", "after-write", "after-apply")


def _env(crash: str | None) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("ROUTEQ_CRASH_POINT", None)
    if crash:
        e["ROUTEQ_CRASH_POINT"] = crash
    return e


def split_input(events: Path, d: Path, per_file: int) -> list[Path]:
    data = events.read_bytes().splitlines(keepends=True)
    files = []
    for i in range(0, len(data), per_file):
        f = d / f"in{i // per_file:05d}.jsonl"
        f.write_bytes(b"".join(data[i:i + per_file]))
        files.append(f)
    return files


def wait_for_output(proc: subprocess.Popen[bytes], out: Path, timeout: float) -> None:
    """Return once ``proc`` has written to ``out`` (or ended, or ``timeout`` passed)."""
    end = time.monotonic() + timeout
    while proc.poll() is None and out.stat().st_size == 0 and time.monotonic() < end:
        time.sleep(0.002)


def harness(d: Path, *, kills: int, events: int, seed: int, per_file: int | None = None,
            outside_share: float = 0.15, timeout: float = 120) -> dict[str, Any]:
    """Run the harness in ``d``; raise AssertionError on any loss or duplicate.

    ``per_file`` (default: about six files per kill) sets how far one run gets
    before its kill, so that the kills spread over the whole input."""
    per_file = per_file or max(100, events // (6 * kills))
    rng = random.Random(seed)
    src = d / "events.jsonl"
    write(str(src), events, seed=seed, dup_rate=0.01, bad_rate=0.002)
    files = split_input(src, d, per_file)
    t0 = time.monotonic()
    ref = subprocess.run([*ROUTEQ, "run", *map(str, files), "--state", str(d / "ref"),
                          "--quiet", *TUNING], capture_output=True, env=_env(None), cwd=ROOT,
                         timeout=timeout, check=True).stdout
    ref_s = time.monotonic() - t0
    args = [*ROUTEQ, "run", *map(str, files), "--state", str(d / "state"), *TUNING]
    runs: list[bytes] = []
    how: Counter[str] = Counter()
    reached: list[int] = []  # highest offset output by each killed run
    attempts = 0
    t0 = time.monotonic()
    while sum(how.values()) < kills:
        attempts += 1
        if rng.random() < outside_share:
            point, delay = None, rng.uniform(0, 2 * ref_s * per_file / events)
        else:
            point, delay = f"{rng.choice(POINTS)}:{rng.randint(1, 2)}", timeout
        out = d / "run.out"
        with open(out, "wb") as f, open(d / "run.err", "wb") as err:
            proc = subprocess.Popen(args, stdout=f, stderr=err, env=_env(point), cwd=ROOT)
            if point is None:
                wait_for_output(proc, out, timeout)
            try:
                code = proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                code = proc.wait()
        errtext = (d / "run.err").read_bytes()
        assert b"Traceback" not in errtext, errtext.decode(errors="replace")
        data = out.read_bytes()
        runs.append(data)
        if code == -signal.SIGKILL:
            how[point.split(":")[0] if point else "outside"] += 1
            got = complete_lines(data)
            reached.append(output_offset(got[-1]) if got else -1)
        else:
            assert code == 0, f"exit {code}: {errtext.decode(errors='replace')}"
            break  # it finished before it could be killed again
    killed_s = time.monotonic() - t0
    last = subprocess.run(args, capture_output=True, env=_env(None), cwd=ROOT,
                          timeout=timeout, check=True)
    runs.append(last.stdout)
    got = consume(runs)
    want = complete_lines(ref)
    assert got == want, f"seed {seed}: outputs differ from the uninterrupted run " \
                        f"({len(got)} vs {len(want)} lines)"
    exported = subprocess.run([*ROUTEQ, "export", "--state", str(d / "state")],
                              capture_output=True, env=_env(None), cwd=ROOT, timeout=timeout,
                              check=True).stdout
    assert exported == src.read_bytes(), f"seed {seed}: the log is not the input, once each"
    replayed = subprocess.run([*ROUTEQ, "replay", "--state", str(d / "state"), "--quiet"],
                              capture_output=True, env=_env(None), cwd=ROOT, timeout=timeout,
                              check=True).stdout
    assert replayed == ref, f"seed {seed}: replay differs from the uninterrupted run"
    n_lines = len(src.read_bytes().splitlines())
    return {
        "seed": seed, "events": n_lines, "files": len(files), "kills": sum(how.values()),
        "kills_by_point": dict(sorted(how.items())), "attempts": attempts,
        "distinct_offsets_reached_at_kill": len(set(reached)),
        "offset_reached_at_kill": {"min": min(reached, default=-1),
                                   "max": max(reached, default=-1)},
        "lost": 0, "applied_twice": 0, "outputs": len(want),
        "outputs_written_in_all_runs": sum(len(complete_lines(r)) for r in runs),
        "uninterrupted_s": round(ref_s, 2), "killed_runs_s": round(killed_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=100)
    p.add_argument("--events", type=int, default=400_000)
    p.add_argument("--file-lines", type=int, default=None,
                   help="lines per input file (default: about six files per kill)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "kill_harness.json"))
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        report = harness(Path(d), kills=a.kills, events=a.events, seed=a.seed,
                         per_file=a.file_lines)
    Path(a.json).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
