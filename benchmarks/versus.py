"""One benchmark, two builds side by side, interleaved in one run.

Run::

    # this checkout against an earlier commit, both as pure Python
    .venv/bin/python -m benchmarks.versus --before ac482c7 --now-env ROUTEQ_PURE=1 \\
        engine_apply --sizes 200x2000 --reps 3
    # the compiled core against the pure one (the same source)
    .venv/bin/python -m benchmarks.versus --before-env ROUTEQ_PURE=1 run_embedded --quick

``--before REV`` is unpacked (``git archive``) into a temporary directory (it
is not compiled: it runs as pure Python, unless ``--before-build CMD`` builds
it: a shell command run once in that tree, with ``$VERSUS_NOW`` naming this
checkout, e.g. to compile an earlier engine with mypyc)::

    .venv/bin/python -m benchmarks.versus --before ac482c7 \
        --before-build 'patch -p1 < $VERSUS_NOW/benchmarks/patches/ac482c7-mypyc.patch \
                        && mypyc engine/*.py' \
        engine_apply --sizes 200x2000 --reps 3

Without ``--before`` both sides are this
checkout, told apart by ``--before-env`` and ``--now-env`` (``NAME=VALUE``,
repeatable). Then, ``--pairs`` times, the benchmark runs once on each side, in a subprocess
with the same Python, the tree as its working directory and import path, and
the order of the two alternating from pair to pair (a machine that slows down
during the run slows both alike). Every number the benchmark writes to its
JSON whose key path ends in one of ``--keys`` (default: ``median``) is
collected; reported per path are the median over the pairs for each tree and
the ratio now/before (above 1: this checkout gives a larger number; for a time
that is slower, for a rate faster). The benchmark must take ``--out FILE``
in both trees.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import RESULTS, ROOT, environment, git, loadavg, write_json


def unpack(rev: str, into: Path) -> Path:
    """The tree of commit ``rev`` under ``into``."""
    sha = git(["rev-parse", "--verify", f"{rev}^{{commit}}"])
    if not sha:
        raise SystemExit(f"versus: {rev!r} is not a commit of this repository")
    tar = into / "tree.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(tar), sha], cwd=ROOT,
                   check=True)
    tree = into / sha[:10]
    with tarfile.open(tar) as t:
        t.extractall(tree, filter="data")
    return tree


def build(tree: Path, command: str) -> None:
    """Run ``command`` in ``tree`` (stop the comparison if it fails)."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "VERSUS_NOW": str(ROOT)}
    proc = subprocess.run(["bash", "-c", command], cwd=tree, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"versus: --before-build failed ({proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def numbers(doc: Any, keys: tuple[str, ...], path: str = "") -> dict[str, float]:
    """Numeric leaves of ``doc`` whose last key is in ``keys``, by key path."""
    found: dict[str, float] = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(v, int | float) and not isinstance(v, bool) and k in keys:
                found[sub] = float(v)
            else:
                found.update(numbers(v, keys, sub))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            # a list of results named by a "size" or "name" reads better than by position
            label = v.get("size", v.get("name", i)) if isinstance(v, dict) else i
            found.update(numbers(v, keys, f"{path}[{label}]"))
    return found


def run_once(tree: Path, extra: dict[str, str], bench: str, args: list[str],
             out: Path) -> dict[str, Any]:
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", **extra}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{bench}", *args, "--out", str(out)],
                          cwd=tree, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"versus: benchmarks.{bench} failed in {tree} "
                         f"(exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    doc: dict[str, Any] = orjson.loads(out.read_bytes())
    doc["_wall_s"] = round(time.perf_counter() - t0, 3)
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.versus",
        description="Run one benchmark in this checkout and in an earlier commit, "
                    "interleaved, and report the medians side by side as ratios.")
    ap.add_argument("--before", metavar="REV",
                    help="the commit to compare with (any git revision; default: this "
                         "checkout, with --before-env)")
    ap.add_argument("--before-build", metavar="CMD",
                    help="a shell command run once in the --before tree before the runs "
                         "($VERSUS_NOW: this checkout's path)")
    ap.add_argument("--before-env", action="append", default=[], metavar="NAME=VALUE",
                    help="environment of the 'before' side's runs (e.g. ROUTEQ_PURE=1)")
    ap.add_argument("--now-env", action="append", default=[], metavar="NAME=VALUE",
                    help="environment of this checkout's runs")
    ap.add_argument("--pairs", type=int, default=5, help="runs of each tree (default 5)")
    ap.add_argument("--keys", default="median",
                    help="comma-separated last keys of the JSON numbers to compare "
                         "(default: median)")
    ap.add_argument("--out", type=Path, help="where to write the JSON "
                    "(default benchmarks/results/versus_BENCH.json)")
    ap.add_argument("bench", help="a module of benchmarks/, e.g. engine_apply")
    ap.add_argument("args", nargs=argparse.REMAINDER,
                    help="the benchmark's own options (both trees get the same)")
    a = ap.parse_args(argv)
    if a.pairs < 1:
        ap.error("--pairs must be at least 1")
    envs = {}
    for side in ("before", "now"):
        pairs = getattr(a, f"{side}_env")
        if any("=" not in p for p in pairs):
            ap.error(f"--{side}-env takes NAME=VALUE")
        envs[side] = dict(p.split("=", 1) for p in pairs)
    if a.before_build and a.before is None:
        ap.error("--before-build needs --before REV")
    if a.before is None and envs["before"] == envs["now"]:
        ap.error("give --before REV, or --before-env / --now-env that differ")
    keys = tuple(k for k in a.keys.split(",") if k) + ("_wall_s",)
    out_path = a.out or RESULTS / f"versus_{a.bench}.json"
    runs: dict[str, list[dict[str, float]]] = {"before": [], "now": []}
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="routeq-versus-") as tmp:
        work = Path(tmp)
        trees = {"before": unpack(a.before, work) if a.before else ROOT, "now": ROOT}
        if a.before_build:
            build(trees["before"], a.before_build)
        for i in range(a.pairs):
            order = ("before", "now") if i % 2 == 0 else ("now", "before")
            for side in order:
                doc = run_once(trees[side], envs[side], a.bench, a.args,
                               work / f"{side}-{i}.json")
                runs[side].append(numbers(doc, keys))
            print(f"pair {i + 1}/{a.pairs} done", file=sys.stderr)
    rows = []
    for path in runs["now"][0]:
        before = [r[path] for r in runs["before"] if path in r]
        now = [r[path] for r in runs["now"] if path in r]
        if not before or not now:
            continue
        b, n = statistics.median(before), statistics.median(now)
        rows.append({"metric": path, "before": b, "now": n,
                     "now_over_before": round(n / b, 4) if b else None})
    doc = {**environment(), "benchmark": "versus", "compared": a.bench, "args": a.args,
           "before": a.before or "this checkout", "before_build": a.before_build,
           "before_commit": git(["rev-parse", a.before or "HEAD"]),
           "before_env": envs["before"], "now_env": envs["now"],
           "pairs": a.pairs, "load_average_before": load_before,
           "load_average_after": loadavg(), "results": rows}
    write_json(out_path, doc)
    width = max(len(r["metric"]) for r in rows) if rows else 10
    print(f"{'metric':<{width}}  {'before':>12}  {'now':>12}  now/before")
    for r in rows:
        ratio = "" if r["now_over_before"] is None else f"{r['now_over_before']:.3f}"
        print(f"{r['metric']:<{width}}  {r['before']:>12.6g}  {r['now']:>12.6g}  {ratio:>10}")
    print(f"written to {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
