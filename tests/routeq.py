"""Running the real ``routeq`` command in a subprocess, and reading its outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streams.embedded.outfile import complete_lines, consume, output_offset

ROOT = Path(__file__).resolve().parents[1]
ROUTEQ = [sys.executable, "-m", "streams.cli"]


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("ROUTEQ_CRASH_POINT", None)
    e.update(extra)
    return e


def routeq(*args: str | Path, stdin: bytes | None = None, check: bool = True,
           timeout: float = 120, **env_extra: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``routeq ARGS…`` to completion; stdout and stderr are captured."""
    proc = subprocess.run([*ROUTEQ, *map(str, args)], input=stdin, capture_output=True,
                          env=env(**env_extra), cwd=ROOT, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"routeq {args} exited {proc.returncode}: "
                             f"{proc.stderr.decode(errors='replace')}")
    return proc


# The README's consumer rule (``consume``) and the line splitting it uses live in
# streams/embedded/outfile.py; re-exported for the tests that import them from here.
lines = complete_lines
offset = output_offset
__all__ = ["ROOT", "ROUTEQ", "consume", "env", "lines", "offset", "routeq"]
