"""Running the real ``routeq`` command in a subprocess, and reading its outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
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


def lines(data: bytes) -> list[bytes]:
    """The complete lines of an output stream (an incomplete last line is dropped)."""
    parts = data.split(b"\n")
    parts.pop()  # "" after the last newline, or an incomplete line
    return parts


def offset(line: bytes) -> int:
    off: Any = orjson.loads(line)["offset"]
    assert type(off) is int
    return off


def consume(runs: list[bytes]) -> list[bytes]:
    """What a consumer keeps of the stdout of several runs of one ``--state``, by
    the README's rule: remember H, the highest offset taken in; from a restarted
    run skip outputs with an offset below H; its first output at H (if any)
    replaces what was kept for H (a kill may have cut that group short); take
    everything after."""
    kept: list[tuple[int, bytes]] = []
    for data in runs:
        high = kept[-1][0] if kept else -1
        replaced = False
        for line in lines(data):
            off = offset(line)
            if off < high:
                continue
            if off == high and not replaced:
                kept = [k for k in kept if k[0] != high]
                replaced = True
            kept.append((off, line))
    return [line for _, line in kept]
