"""``routeq run -`` behind a pipe, and the progress bar on a terminal (real subprocesses)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import orjson
import pytest

from tests.routeq import ROOT, ROUTEQ, env, lines, routeq

T0 = 1_794_355_200_000
AGENT = {"type": "agent.state", "id": "e1", "ts": T0, "tenant": "shop", "agent": "a1",
         "status": "online", "capacity": 2}


def request(n: int) -> bytes:
    return orjson.dumps({"type": "chat.requested", "id": f"r{n}", "ts": T0 + n * 1000,
                         "tenant": "shop", "visitor": f"v{n}", "chat": f"c{n}"}) + b"\n"


def read_line(fd: int, timeout: float = 10.0) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            raise AssertionError(f"no output within {timeout} s (got {buf!r})")
        chunk = os.read(fd, 1)
        if not chunk:
            raise AssertionError(f"output closed (got {buf!r})")
        buf += chunk
    return buf


@pytest.mark.parametrize("durable", [False, True])
def test_outputs_follow_inputs_through_a_pipe(tmp_path: Path, durable: bool) -> None:
    args = ["run", "-", "--quiet"] + (["--state", str(tmp_path / "s")] if durable else [])
    proc = subprocess.Popen([*ROUTEQ, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=env(), cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(orjson.dumps(AGENT) + b"\n" + request(1))
        proc.stdin.flush()
        first = orjson.loads(read_line(proc.stdout.fileno()))  # stdin still open
        assert (first["type"], first["chat"], first["agent"]) == ("chat.assigned", "c1", "a1")
        proc.stdin.write(b"garbage\n")
        proc.stdin.flush()
        bad = orjson.loads(read_line(proc.stdout.fileno()))
        assert bad["type"] == "event.rejected" and bad["line"] == 3
        proc.stdin.write(request(2))
        proc.stdin.close()
        assert orjson.loads(read_line(proc.stdout.fileno()))["chat"] == "c2"
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
    if durable:  # every piped line is in the log
        log = routeq("export", "--state", tmp_path / "s").stdout
        assert lines(log) == [orjson.dumps(AGENT), request(1)[:-1], b"garbage", request(2)[:-1]]


def test_a_progress_bar_on_a_terminal_and_none_otherwise(tmp_path: Path) -> None:
    events = tmp_path / "in.jsonl"
    events.write_bytes(orjson.dumps(AGENT) + b"\n" + b"".join(request(n) for n in range(1, 2000)))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    try:
        proc = subprocess.Popen([*ROUTEQ, "run", str(events), "--out", str(tmp_path / "o")],
                                stderr=slave, env=env(), cwd=ROOT)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(master)
    assert b"routeq run" in seen and b"%|" in seen  # tqdm's bar
    piped = routeq("run", events, "--out", tmp_path / "o2").stderr
    assert b"%|" not in piped and b"events applied" in piped
