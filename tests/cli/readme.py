"""The command lines the README shows, and a scratch directory to run them in.

:func:`commands` parses README.md's ```sh blocks (a line ending in ``\\``
goes on on the next one), so a new example is picked up by the tests that run
them (tests/cli/test_readme_commands.py) without being copied there.
:func:`scratch` makes an empty directory look like a checkout to a command
line: ``examples/`` and ``.venv`` are there, and ``routeq`` on ``PATH`` is the
virtual environment's.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.routeq import ROOT, env

README = ROOT / "README.md"
VENV = ROOT / ".venv"


@dataclass(frozen=True)
class Command:
    """One command line of the README."""

    line: int  # README line number of its first line
    text: str  # as written, continuation lines joined, the comment kept
    block: int  # index of its ```sh block (0 = the first)
    section: str  # the heading it is under

    @property
    def words(self) -> list[str]:
        """Its words before any comment (the shell's split, no expansion)."""
        return shlex.split(self.text.replace("\\\n", " "), comments=True)

    @property
    def program(self) -> str:
        """``routeq run``, ``make run``, ``.venv/bin/python -m benchmarks.simulate``…"""
        w = [x for x in self.words if x != "|"]
        if "|" in self.words:  # `cat events.jsonl | routeq run -`: the last program
            w = self.words[self.words.index("|") + 1:]
        if w[:2] == [".venv/bin/python", "-m"]:
            return w[2]
        return " ".join(w[:2])

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.program.replace(' ', '-')}"


def commands(text: str | None = None) -> list[Command]:
    """Every command line in the README's ```sh blocks, in README order."""
    if text is None:
        text = README.read_text()
    out: list[Command] = []
    section = ""
    block = -1
    fence = in_sh = False
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            fence = not fence
            in_sh = fence and line.strip() == "```sh"
            block += in_sh
            continue
        if not in_sh:
            if not fence and line.startswith("#"):
                section = line.lstrip("#").strip()
            continue
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = number
        pending.append(line)
        if not line.rstrip().endswith("\\"):
            out.append(Command(start, "\n".join(pending), block, section))
            pending = []
    return out


def bin_dir() -> Path:
    """Where the virtual environment's ``routeq`` script is."""
    for d in (VENV / "bin", Path(sys.executable).parent):
        if (d / "routeq").exists():
            return d
    raise AssertionError("no routeq script next to the interpreter: pip install -e .")


def shell_env(**extra: str) -> dict[str, str]:
    """The tests' environment with the venv's bin first on PATH."""
    e = env(**extra)
    e["PATH"] = str(bin_dir()) + os.pathsep + e.get("PATH", "")
    e.pop("VIRTUAL_ENV", None)
    return e


def scratch(d: Path) -> Path:
    """Make ``d`` a place where the README's command lines run as in a checkout.

    ``examples/`` is copied (commands write next to nothing in it, but a copy
    keeps the checkout's files safe whatever they do). ``.venv`` is a
    directory of links to the real one's entries plus a fresh ``.installed``
    stamp, and ``pyproject.toml`` is an old-dated copy, so ``make run`` finds
    the environment set up and does not reinstall it. ``benchmarks/`` is a
    copy: ``python -m benchmarks.X`` run here imports it (the current
    directory comes first) and writes its results into the copy, not into the
    checkout's ``benchmarks/results``.
    """
    d.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "examples", d / "examples")
    shutil.copytree(ROOT / "benchmarks", d / "benchmarks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    venv = d / ".venv"
    venv.mkdir()
    real = VENV if VENV.exists() else bin_dir().parent
    for entry in real.iterdir():
        if entry.name != ".installed":
            (venv / entry.name).symlink_to(entry)
    (venv / ".installed").touch()
    shutil.copy(ROOT / "Makefile", d / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", d / "pyproject.toml")
    os.utime(d / "pyproject.toml", (946684800, 946684800))  # 2000-01-01
    return d


def popen(text: str, cwd: Path, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    """Start a command line with bash (``exec``: signals reach the command itself)."""
    with open(log, "ab") as f:
        return subprocess.Popen(["bash", "-c", "exec " + text], cwd=cwd, env=shell_env(**extra),
                                stdout=f, stderr=subprocess.STDOUT)


def run(text: str, cwd: Path, timeout: float, **extra: str) -> subprocess.CompletedProcess[bytes]:
    """Run a command line with bash to its end; stdout and stderr are captured."""
    return subprocess.run(["bash", "-c", text], cwd=cwd, env=shell_env(**extra),
                          capture_output=True, timeout=timeout)
