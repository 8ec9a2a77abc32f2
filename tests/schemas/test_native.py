"""Which core runs (schemas/native.py): compiled, or the same source as pure Python.

Each case runs ``routeq --version`` in a subprocess on a copy of this
checkout (its sources, and its compiled extensions where ``make test`` built
them), because the choice is made once per process, before the core loads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import native
from tests.routeq import ROOT

BUILT = all(native._extension(s) is not None for s in native.SOURCES)
needs_build = pytest.mark.skipif(not BUILT, reason="the core is not compiled here "
                                 "(no C compiler when routeq was installed)")


def copy_tree(to: Path) -> Path:
    """The packages of this checkout, with their extensions and the build's manifest."""
    for pkg in ("engine", "schemas", "streams", "simulators", "benchmarks"):
        shutil.copytree(ROOT / pkg, to / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for lib in ROOT.glob("*__mypyc*"):  # the compiled modules' shared library
        shutil.copy2(lib, to / lib.name)
    return to


def version(tree: Path, **env: str) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k != "ROUTEQ_PURE"}
    e.update(env, PYTHONPATH=str(tree))
    return subprocess.run([sys.executable, "-m", "streams.cli", "--version"], cwd=tree,
                          env=e, capture_output=True, text=True, timeout=60, check=True)


@needs_build
def test_the_installed_core_is_compiled() -> None:
    """``make test`` compiled it: this process and a routeq command run it."""
    assert native.MODE == native.COMPILED, native.WHY
    import engine.core

    assert not engine.core.__file__.endswith(".py")
    assert "compiled core" in version(ROOT).stdout


def test_routeq_pure_runs_the_source(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    done = version(tree, ROUTEQ_PURE="1")
    assert "pure core (ROUTEQ_PURE is set)" in done.stdout
    assert done.stderr == ""


@needs_build
def test_a_source_changed_since_compiling_runs_pure_and_says_so(tmp_path: Path) -> None:
    """Never code older than its source: one changed file and the whole core
    runs as pure Python (never a mix), with a warning naming the file."""
    tree = copy_tree(tmp_path)
    assert "compiled core" in version(tree).stdout
    with (tree / "engine" / "timers.py").open("a") as f:
        f.write("\n# changed after the build\n")
    done = version(tree)
    assert "pure core" in done.stdout and "engine/timers.py changed" in done.stdout
    assert done.stderr.startswith("routeq: running the pure core: engine/timers.py changed")
    check = ("import engine.core, engine.timers, schemas.events;"
             "print(engine.core.__file__, engine.timers.__file__, schemas.events.__file__)")
    e = dict(os.environ, PYTHONPATH=str(tree))
    e.pop("ROUTEQ_PURE", None)
    files = subprocess.run([sys.executable, "-c", check], cwd=tree, env=e, text=True,
                           capture_output=True, check=True).stdout.split()
    assert all(f.endswith(".py") for f in files), files


def test_nothing_compiled_runs_pure_without_a_warning(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    for so in {*tree.rglob("*.so"), *tree.glob("*__mypyc*")}:
        so.unlink()
    done = version(tree)
    assert "pure core (not compiled" in done.stdout and done.stderr == ""
