"""The what-if's null test: histories re-simulated under the rules they ran under.

Run::

    .venv/bin/python -m benchmarks.null_test [--quick] [--out FILE.json]

For every bundled scenario (a simulated history) and for two histories
recorded by ``routeq serve`` with what chat servers do, it runs
``routeq compare HISTORY --null-seeds 3 --json`` and reports, under the
recorded rules, the recorded and the re-simulated service level,
abandonment, occupancy and mean wait, and the null test's verdict:

- **serve, replayed**: a simulated demo day with agents closing waiting
  chats, visitors leaving mid-chat and the export cut mid-day, posted to
  ``routeq serve --clock-ms 0`` and compared from its state dir;
- **serve, live**: a chat server driven in real time against ``routeq serve``
  with its own clock (``--clock-ms 1000``): offers confirmed, declined or left
  to time out, waiting chats closed by agents, visitors giving up and leaving
  mid-chat, an agent away for a while, chats open when it stops.

``--quick``: shorter histories (a live session of 25 s instead of 90 s).
"""

from __future__ import annotations

import heapq
import itertools
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import ROOT, Record, parser, progress
from benchmarks.tokens_file import tokens_toml
from simulators.scenario import bundled
from streams.cli import main as routeq
from streams.http.client import Client

ADMIN = "null-test-admin-0123456789abcdef"
TENANT = "live"
#: the scenarios' hours of arrivals (full, quick)
HOURS = {"demo": (12.0, 2.0), "double11": (4.0, 1.0), "marketplace": (3.0, 1.0),
         "flash_sale": (6.0, 1.0), "erlang_a": (4.0, 1.0), "erlang_c": (4.0, 1.0)}
CHAT_SERVER = ["--param", "chat.agent_closes_waiting=0.15", "--param",
               "chat.left_mid_chat=0.1", "--param", "drain=false"]
FIGURES = (("service level", "overall.service_level"),
           ("abandonment", "overall.abandonment_rate"),
           ("occupancy", "overall.occupancy"), ("mean wait s", "overall.wait_mean_s"))
LIVE_RULES = """policy = "priority"
[assignment]
acceptance_required = true
offer_timeout_s = 5.0
"""


def compared(history: Path, out: Path) -> dict[str, Any]:
    """``routeq compare`` with the null test; its figures under the recorded rules."""
    started = time.perf_counter()
    rc = routeq(["compare", str(history), "--policy", "least_loaded", "--null-seeds", "3",
                 "--json", str(out), "--quiet"])
    if rc != 0:
        raise SystemExit(f"routeq compare {history} exited {rc}")
    doc = orjson.loads(out.read_bytes())
    null = doc["null_test"]
    rows = {r["path"]: r for r in null["rows"]}
    return {
        "passed": null["passed"], "differs": null["differs"], "holds": null["holds"],
        "chats": doc["model"]["chats"], "events": doc["events"],
        "open_at_end": doc["recorded"]["overall"]["open"],
        "figures": {label: {"recorded": rows[path]["recorded"],
                            "resimulated": rows[path]["resimulated"],
                            "noise": rows[path]["tolerance"]} for label, path in FIGURES},
        "outputs_checked": null.get("outputs_checked"),
        "outputs_differ": null.get("outputs_differ"),
        "seeds": null["seeds"], "compare_s": round(time.perf_counter() - started, 1),
    }


class Serve:
    """``routeq serve`` in a subprocess with a state dir."""

    def __init__(self, tmp: Path, state: Path, rules: Path, clock_ms: int) -> None:
        (tmp / "tokens.toml").write_text(tokens_toml(ADMIN, {}))
        ready = tmp / "ready"
        ready.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.log = tmp / "serve.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "serve", "--port", "0", "--clock-ms",
             str(clock_ms), "--tokens", str(tmp / "tokens.toml"), "--state", str(state),
             "--rules", str(rules), "--ready-file", str(ready)],
            cwd=ROOT, env=env, stderr=open(self.log, "ab"))  # noqa: SIM115
        deadline = time.monotonic() + 60
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve did not start: {self.log.read_text()}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{int(ready.read_text())}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def replayed(tmp: Path, hours: float, seed: int) -> Path:
    """A simulated chat-server day posted to serve; its state dir."""
    d = tmp / "sent"
    routeq(["simulate", "--scenario", "demo", "--hours", str(hours), "--seed", str(seed),
            "--out", str(d), "--quiet", *CHAT_SERVER])
    state = tmp / "replayed-state"
    serve = Serve(tmp, state, d / "rules.toml", 0)
    try:
        client = Client(serve.url, token=ADMIN)
        with open(d / "events.jsonl", "rb") as f:
            client.post(orjson.loads(line) for line in f if line.strip())
    finally:
        serve.stop()
    return state


class LiveChatServer:
    """A chat server and its agents and visitors, in real time against serve."""

    def __init__(self, url: str, seed: int) -> None:
        self.client = Client(url, token=ADMIN, batch=1)
        self.rng = random.Random(seed)
        self.outs: queue.Queue[dict[str, Any]] = queue.Queue()
        self.heap: list[tuple[float, int, str, dict[str, Any]]] = []
        self.seq = itertools.count()
        self.state: dict[str, str] = {}  # chat -> waiting | offered | held | closed
        self.gen: dict[str, int] = {}
        self.visitor: dict[str, str] = {}
        self.queued_once: set[str] = set()
        self.stream = Client(url, token=ADMIN)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for out in self.stream.outputs(query=f"?tenant={TENANT}"):
            self.outs.put(out.data)

    def send(self, typ: str, **fields: Any) -> None:
        self.client.post([{"type": typ, "tenant": TENANT, "ts": int(time.time() * 1000),
                           **fields}])

    def later(self, after_s: float, what: str, **arg: Any) -> None:
        heapq.heappush(self.heap, (time.monotonic() + after_s, next(self.seq), what, arg))

    def run(self, seconds: float, tail_s: float) -> None:
        rnd, rng = self.rng.random, self.rng
        for i, cap in enumerate((3, 3, 2), 1):
            self.send("agent.state", agent=f"a{i}", status="online", capacity=cap)
        self.later(seconds * 0.4, "agent", agent="a3", status="away")
        self.later(seconds * 0.4 + 10, "agent", agent="a3", status="online")
        t, n = 0.0, 0
        while t < seconds:
            t += rng.expovariate(1 / 1.5)
            n += 1
            self.later(t, "arrive", n=n)
        end = time.monotonic() + seconds + tail_s
        while time.monotonic() < end:
            while not self.outs.empty():
                self._react(self.outs.get())
            while self.heap and self.heap[0][0] <= time.monotonic():
                _, _, what, arg = heapq.heappop(self.heap)
                self._act(what, arg, rnd)
            time.sleep(0.02)

    def _react(self, o: dict[str, Any]) -> None:
        chat, rnd = o.get("chat"), self.rng.random
        if chat is None or self.state.get(chat) == "closed":
            return
        self.gen[chat] = g = self.gen.get(chat, 0) + 1
        if o["type"] == "chat.assigned":
            self.state[chat] = "offered"
            r = rnd()
            if r < 0.1:
                self.later(1 + 2 * rnd(), "decline", chat=chat, agent=o["agent"], gen=g)
            elif r >= 0.2:  # 10 %: the agent never answers (the offer times out)
                self.later(0.5 + 2 * rnd(), "accept", chat=chat, agent=o["agent"], gen=g)
        elif o["type"] == "chat.queued":
            self.state[chat] = "waiting"
            if chat not in self.queued_once:
                self.queued_once.add(chat)
                self.later(self.rng.expovariate(1 / 20), "give_up", chat=chat)
                if rnd() < 0.15:  # spam or a duplicate: an agent closes it
                    self.later(3 + 9 * rnd(), "close", chat=chat)
        elif o["type"] == "chat.abandoned":
            self.state[chat] = "closed"

    def _act(self, what: str, arg: dict[str, Any], rnd: Any) -> None:
        if what == "agent":
            self.send("agent.state", agent=arg["agent"], status=arg["status"])
            return
        if what == "arrive":
            v, c = f"v{arg['n']}", f"c{arg['n']}"
            self.visitor[c] = v
            self.send("visitor.arrived", visitor=v, channel="web",
                      customer={"member": rnd() < 0.3, "tier": int(rnd() * 5)})
            page = ("checkout", "cart", "detail", "home", "after_sales")[int(rnd() * 5)]
            self.send("page.viewed", visitor=v, page=page)
            self.state[c] = "new"
            self.send("chat.requested", visitor=v, chat=c)
            return
        chat = arg["chat"]
        state = self.state.get(chat)
        stale = "gen" in arg and arg["gen"] != self.gen.get(chat)
        if state == "closed" or stale:
            return
        if what == "accept" and state == "offered":
            self.send("chat.accepted", chat=chat, agent=arg["agent"])
            self.state[chat] = "held"
            self.later(6 + 19 * rnd(), "end", chat=chat, gen=self.gen[chat])
        elif what == "decline" and state == "offered":
            self.send("chat.declined", chat=chat, agent=arg["agent"])
        elif what == "end" and state == "held":
            self.state[chat] = "closed"
            if rnd() < 0.15:  # the visitor closes the window mid-chat
                self.send("visitor.left", visitor=self.visitor[chat])
            else:
                self.send("chat.ended", chat=chat, resolved=True)
                if rnd() < 0.3:
                    self.send("order.placed", visitor=self.visitor[chat],
                              amount=round(50 + 400 * rnd(), 2))
        elif what == "give_up" and state == "waiting":
            self.state[chat] = "closed"
            self.send("visitor.left", visitor=self.visitor[chat])
        elif what == "close" and state == "waiting":
            self.state[chat] = "closed"
            self.send("chat.ended", chat=chat, resolved=False)


def live(tmp: Path, seconds: float, seed: int) -> Path:
    rules = tmp / "live.toml"
    rules.write_text(LIVE_RULES)
    state = tmp / "live-state"
    serve = Serve(tmp, state, rules, 1000)
    try:
        LiveChatServer(serve.url, seed).run(seconds, tail_s=8)
    finally:
        serve.stop()
    return state


def main(argv: list[str] | None = None) -> int:
    ap = parser("null_test", __doc__, quick="shorter histories, a 25 s live session", seed=1)
    args = ap.parse_args(argv)
    rec = Record("null_test")
    pick = 1 if args.quick else 0
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="routeq-null-") as tmp_s:
        tmp = Path(tmp_s)
        for name in bundled():
            hours = HOURS.get(name, (2.0, 1.0))[pick]
            progress(f"{name}: {hours:g} h simulated, then compared")
            d = tmp / name
            routeq(["simulate", "--scenario", name, "--hours", str(hours), "--seed",
                    str(args.seed), "--out", str(d), "--quiet"])
            results[name] = {"hours": hours, **compared(d, tmp / f"{name}.json")}
        progress("serve, replayed: a chat-server demo day posted to routeq serve")
        hours = 1.0 if args.quick else 4.0
        state = replayed(tmp, hours, args.seed)
        results["serve, replayed"] = {"hours": hours, **compared(state, tmp / "replayed.json")}
        seconds = 25.0 if args.quick else 90.0
        progress(f"serve, live: {seconds:g} s of a chat server in real time")
        state = live(tmp, seconds, args.seed)
        results["serve, live"] = {"seconds": seconds, **compared(state, tmp / "live.json")}
    lines = ["history                 passed  service level      abandonment        "
             "occupancy          mean wait s"]
    for name, r in results.items():
        cells = []
        for label, _ in FIGURES:
            f = r["figures"][label]
            cells.append(f"{_cell(f['recorded'])} / {_cell(f['resimulated'])}".ljust(18))
        lines.append(f"{name:<24}{'yes' if r['passed'] else 'NO':<8}{' '.join(cells)}")
    lines.append("(recorded / re-simulated under the recorded rules: the mean over the seeds "
                 "run, one where it gives the figures back exactly)")
    return rec.finish(args.out, rec.document(args.quick, results=results), lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if isinstance(v, float) and v < 1 else f"{v:.1f}"


if __name__ == "__main__":
    sys.exit(main())
