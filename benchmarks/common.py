"""What every benchmark shares: the environment it ran in, and its statistics.

- :func:`environment` — git commit (and whether the tree was dirty), Python
  version and implementation, platform, CPU count: the metadata every results
  JSON carries;
- :func:`loadavg` — the 1/5/15-minute load average (the machine is shared:
  quote it with every figure);
- :func:`summary` — median, min, max and the relative spread of repetitions;
- :func:`pct` — nearest-rank percentile;
- :func:`write_json` — results written as indented JSON;
- :func:`parser` — the command line every ``python -m benchmarks.NAME`` starts
  with (its doc as help, ``--quick``, ``--seed``, ``--out``);
- :class:`Record` — a run's results document: environment and load average
  taken when it starts, the load after, written and summed up at the end;
- :func:`progress` — a progress line on stderr;
- :func:`rss_mib` — a process's resident memory (or its peak), MiB.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def git(args: list[str]) -> str | None:
    """Output of a git command in the repository, or None where git fails."""
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def git_commit() -> str | None:
    return git(["rev-parse", "HEAD"])


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (None: not a git checkout)."""
    out = git(["status", "--porcelain", "--untracked-files=no"])
    return None if out is None else bool(out)


def loadavg() -> list[float]:
    """The 1, 5 and 15-minute load averages, rounded."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not available on this platform
        return []


def environment() -> dict[str, Any]:
    """Metadata for a results document."""
    return {
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def summary(values: Sequence[float], digits: int = 0) -> dict[str, Any]:
    """Median, min and max of repetitions, and spread = (max - min) / median."""
    def r(x: float) -> float:
        return round(x, digits) if digits else round(x)

    med = statistics.median(values)
    return {"median": r(med), "min": r(min(values)), "max": r(max(values)),
            "spread": round((max(values) - min(values)) / med, 4) if med else None,
            "reps": [r(v) for v in values]}


def pct(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (``p`` in 0-100)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, -(-len(sorted_values) * p // 100) - 1))
    return float(sorted_values[int(k)])


def write_json(path: Path | str, doc: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """A live process's resident set (``field="VmHWM"``: its peak), MiB, from
    /proc/PID/status; NaN where the line is missing."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def progress(msg: str) -> None:
    """A progress line on stderr (stdout is for the summary)."""
    print(msg, file=sys.stderr, flush=True)


def parser(name: str, doc: str | None, *, quick: str, seed: int) -> argparse.ArgumentParser:
    """The arguments of ``python -m benchmarks.NAME``: the module's ``doc`` as its
    help, ``--quick`` (``quick`` says what it changes), ``--seed`` (default
    ``seed``) and ``--out`` (default ``benchmarks/results/NAME.json``, the file
    BENCHMARKS.md is made from). The benchmark adds its own."""
    ap = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument("--seed", type=int, default=seed,
                    help=f"seed of the generated workload (default {seed})")
    out = RESULTS / f"{name}.json"
    ap.add_argument("--out", type=Path, default=out, metavar="FILE.json",
                    help=f"where the results go (default {out.relative_to(ROOT)})")
    return ap


class Record:
    """The results document of one benchmark run.

    Made when the run starts, so that it names the commit measured (not the one
    at the end) and the load average before; :meth:`document` adds the load
    after and the benchmark's own fields; :meth:`finish` writes it and prints
    the summary lines and the load average.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.load_before = loadavg()
        self.env = environment()

    def document(self, quick: bool, **fields: Any) -> dict[str, Any]:
        return {"benchmark": self.name, **self.env, "load_average_before": self.load_before,
                "load_average_after": loadavg(), "quick": quick, **fields}

    def finish(self, path: Path, doc: dict[str, Any], lines: Iterable[str]) -> int:
        """Write ``doc`` to ``path``, print ``lines`` and the load average; exit code 0."""
        write_json(path, doc)
        for line in lines:
            print(line)
        print(f"load average {self.load_before} -> {doc['load_average_after']}; "
              f"results: {path}")
        return 0
