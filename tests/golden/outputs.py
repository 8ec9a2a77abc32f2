"""Byte-for-byte outputs of the user-facing commands, recorded once and
compared after every change that is meant to change no output (a refactor),
for the compiled core and the pure one alike (``ROUTEQ_PURE=1``): ``routeq
simulate`` of every bundled scenario, ``routeq run`` (plain and ``--state``)
and ``routeq replay`` of its trace, and ``routeq run`` of a messy
multi-tenant input (duplicates, malformed lines).

Record (only when an output is meant to change, and say so in the commit)::

    .venv/bin/python -m tests.golden.outputs --write

Each entry is the SHA-256 of the file the command wrote; the HTTP and Kafka
runtimes are held to the same outputs by the conformance suite."""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import orjson

from benchmarks.mixed_events import write
from tests.routeq import routeq

RECORD = Path(__file__).with_name("outputs.json")
SCENARIOS = {"demo": "3", "double11": "1", "marketplace": "2", "erlang_c": "2", "erlang_a": "2"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def scenario(name: str, d: Path, env: dict[str, str]) -> dict[str, str]:
    """Hashes of one scenario's simulate, run, run --state and replay outputs."""
    out = d / name
    routeq("simulate", "--scenario", name, "--seed", "7", "--hours", SCENARIOS[name],
           "--out", out, "--quiet", **env)
    events, rules = out / "events.jsonl", out / "rules.toml"
    ran = routeq("run", events, "--rules", rules, "--quiet", **env).stdout
    state = d / f"{name}.state"
    stated = routeq("run", events, "--rules", rules, "--state", state, "--quiet", **env).stdout
    replayed = routeq("replay", "--state", state, "--quiet", **env).stdout
    return {"simulate outputs": _sha((out / "outputs.jsonl").read_bytes()),
            "simulate summary": _sha((out / "summary.json").read_bytes()),
            "run": _sha(ran), "run --state": _sha(stated), "replay": _sha(replayed)}


def messy(d: Path, env: dict[str, str]) -> dict[str, str]:
    """Hashes of ``routeq run`` over 20 tenants with duplicates and bad lines."""
    src = d / "mixed.jsonl"
    write(str(src), 40_000, seed=5, dup_rate=0.01, bad_rate=0.002)
    return {"run": _sha(routeq("run", src, "--quiet", **env).stdout)}


def record(d: Path, env: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Every hash, the commands run with ``env`` added to the environment
    (``ROUTEQ_PURE=1``: the pure core; without: the core as installed)."""
    env = env or {}
    got = {f"simulate {name}": scenario(name, d, env) for name in SCENARIOS}
    got["mixed tenants"] = messy(d, env)
    return got


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"write {RECORD.name}")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        got = record(Path(d))
    text = orjson.dumps(got, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if a.write:
        RECORD.write_bytes(text)
    sys.stdout.write(text.decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
