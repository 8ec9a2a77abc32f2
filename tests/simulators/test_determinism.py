"""Same seed, same bytes; and the event log replays to the same outputs.

``routeq simulate`` writes events.jsonl, outputs.jsonl, rules.toml and
summary.json. Run twice with one seed, every file is byte-identical; another
seed gives other traffic. Replaying events.jsonl with the written rules gives
outputs.jsonl byte for byte, both through the engine directly (decoding each
line as ``routeq run`` does) and through the ``routeq run`` command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine import Engine
from schemas.events import decode
from schemas.outputs import encode_lines
from streams.cli import main
from streams.embedded.rules_file import load_rules

FILES = ("events.jsonl", "outputs.jsonl", "rules.toml", "summary.json")

CASES = [
    # scenario, hours, extra arguments
    ("demo", 1.0, []),
    ("marketplace", 0.5, []),  # overflow to the platform
    ("double11", 0.25, ["--policy", "least_loaded"]),
    ("erlang_a", 1.0, ["--agents", "5", "--erlangs", "5.5", "--handle-s", "30"]),
]


def simulate(out: Path, scenario: str, hours: float, seed: int, extra: list[str]) -> None:
    rc = main(["simulate", "--scenario", scenario, "--hours", str(hours), "--seed", str(seed),
               "--out", str(out), "--quiet", *extra])
    assert rc == 0


def replay_in_process(out: Path) -> bytes:
    engine = Engine(load_rules(str(out / "rules.toml")), track_changes=False)
    chunks = []
    with open(out / "events.jsonl", "rb") as f:
        for offset, line in enumerate(f):
            chunks.append(encode_lines(engine.apply(decode(line.rstrip(b"\n")), offset)))
    return b"".join(chunks)


@pytest.mark.parametrize(("scenario", "hours", "extra"), CASES, ids=[c[0] for c in CASES])
def test_same_seed_same_bytes_and_replay(tmp_path: Path, scenario: str, hours: float,
                                         extra: list[str]) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    simulate(a, scenario, hours, 7, extra)
    simulate(b, scenario, hours, 7, extra)
    simulate(c, scenario, hours, 8, extra)
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "events.jsonl").read_bytes() != (c / "events.jsonl").read_bytes()
    outputs = (a / "outputs.jsonl").read_bytes()
    assert outputs.count(b"chat.assigned") > 0
    assert replay_in_process(a) == outputs


def test_routeq_run_replays_the_log_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    simulate(out, "marketplace", 0.5, 3, [])
    replayed = tmp_path / "replayed.jsonl"
    subprocess.run(
        [sys.executable, "-m", "streams.cli", "run", str(out / "events.jsonl"),
         "--rules", str(out / "rules.toml"), "--out", str(replayed), "--quiet"],
        check=True, cwd=Path(__file__).resolve().parents[2],
    )
    assert replayed.read_bytes() == (out / "outputs.jsonl").read_bytes()
