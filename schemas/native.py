"""Which build of the core runs: compiled (mypyc) or pure Python, from one source.

Installing routeq (``make run``, ``make test``: ``pip install -e .``) compiles
the core's modules (:data:`SOURCES`) with mypyc into C extensions beside their
``.py`` files (``setup.py``), and records a digest of each source it compiled
in :data:`MANIFEST`. Python would load an extension in preference to the
``.py`` of the same name; :func:`install` decides, once per process and before
any core module loads (``schemas/__init__.py`` calls it; ``engine`` and
``simulators`` import ``schemas`` first), whether it may:

- ``ROUTEQ_PURE=1`` in the environment: pure;
- nothing compiled (no C compiler at install time, or installed with
  ``ROUTEQ_PURE=1``): pure;
- a source changed since it was compiled: pure, with one warning on stderr
  (never run code older than its source; ``make test`` or ``make run``
  compiles again);
- otherwise: compiled.

Pure while extensions exist means a finder placed first on ``sys.meta_path``
loads the core's modules from their ``.py`` files. Never a mix: all compiled
or none. :data:`MODE` and :data:`WHY` say which and why (``routeq --version``).

This module is never compiled itself.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
#: the compiled modules, as paths from the project root (``setup.py`` reads it):
#: the engine, the decoder and output contract, the simulator's loop and tally
SOURCES: tuple[str, ...] = (
    "engine/core.py", "engine/dedup.py", "engine/handover.py", "engine/hours.py",
    "engine/lifecycle.py",
    "engine/policies.py", "engine/queue.py", "engine/records.py", "engine/roster.py",
    "engine/rules.py", "engine/scoring.py", "engine/state.py", "engine/tenant.py",
    "engine/eta.py", "engine/steps.py", "engine/timers.py", "engine/views.py",
    "schemas/events.py", "schemas/outputs.py",
    "simulators/simulation.py", "simulators/metrics.py", "simulators/whatif_metrics.py",
    "simulators/traffic.py", "simulators/whatif.py",
)
#: written by the build: ``path sha256`` per compiled source, one a line
MANIFEST = ROOT / "schemas" / "native-sources.txt"

COMPILED, PURE = "compiled", "pure"
MODE = PURE
WHY = "not decided yet"
_decided = False
REBUILD = "`make test` or `make run` compiles it again"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pure_requested(environ: Mapping[str, str]) -> bool:
    """``ROUTEQ_PURE`` set to anything but empty or 0 (at install or run time)."""
    return environ.get("ROUTEQ_PURE", "") not in ("", "0")


def module_name(source: str) -> str:
    return source.removesuffix(".py").replace("/", ".")


def _extension(source: str) -> Path | None:
    """The compiled extension beside ``source``, if there is one."""
    stem = ROOT / source.removesuffix(".py")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        found = stem.with_name(stem.name + suffix)
        if found.exists():
            return found
    return None


def decide(environ: Mapping[str, str] = os.environ) -> tuple[str, str, bool]:
    """(mode, why, whether to warn) for this checkout and environment."""
    if pure_requested(environ):
        return PURE, "ROUTEQ_PURE is set", False
    built = [s for s in SOURCES if _extension(s) is not None]
    if not built:
        return PURE, "not compiled (no C compiler at install time, or ROUTEQ_PURE=1 then)", False
    if len(built) < len(SOURCES) or not MANIFEST.exists():
        return PURE, f"compiled only in part; {REBUILD}", True
    recorded = dict(line.split() for line in MANIFEST.read_text().splitlines() if line)
    for source in SOURCES:
        if recorded.get(source) != digest(ROOT / source):
            return PURE, f"{source} changed since it was compiled; {REBUILD}", True
    return COMPILED, "compiled with mypyc", False


class PureFinder(MetaPathFinder):
    """Loads the core's modules from their ``.py`` files, extensions beside them or not."""

    def __init__(self, names: dict[str, Path]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        source = self.names.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def install() -> None:
    """Decide the mode (once) and, for pure, make the core load from source."""
    global MODE, WHY, _decided
    if _decided:
        return
    _decided = True
    MODE, WHY, warn = decide()
    if warn:
        print(f"routeq: running the pure core: {WHY}", file=sys.stderr)
    if MODE == PURE:  # extensions beside the sources or not
        sys.meta_path.insert(0, PureFinder({module_name(s): ROOT / s for s in SOURCES}))


def describe() -> str:
    """One line for ``routeq --version``."""
    return f"{MODE} core ({WHY})"
