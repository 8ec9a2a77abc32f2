"""Throughput and decision latency of ``Engine.apply`` on one busy tenant.

Run::

    .venv/bin/python -m benchmarks.engine_apply [--quick] [--out FILE.json]

For each size (agents x waiting chats) a seeded generator builds one tenant's
event stream in two parts:

- setup (not timed): agents come online (capacity 5, one to three skills),
  each followed by the chats that fill it, then enough ``chat.requested`` to
  leave about W chats waiting, and a pool of browsing visitors;
- measured: N events, about 90 % ``page.viewed`` (some for visitors whose chat
  waits, which re-keys the queue; most for browsing visitors) and 10 %
  ``visitor.arrived``, ``chat.requested``, ``chat.ended`` of assigned chats
  (frees capacity: a placing decision), ``order.placed`` and ``visitor.left``,
  steered so that the waiting count stays near W.

The generator applies every event to an oracle engine as it goes, so it knows
exactly which chats wait and which are assigned (the engine is deterministic:
every timed run sees the same states). All events are validated dicts built up
front; only ``Engine.apply`` is inside the timed loop.

Reported per size:

- events/s of ``Engine.apply`` over the measured part (median, min, max of
  several repetitions after a warm-up; each repetition on a fresh engine);
- the floor for the same input: ``orjson.loads`` of each encoded line plus one
  dict update, events/s, in repetitions interleaved with the engine's, and the
  ratio engine/floor;
- latency of placing decisions: in a separate pass, ``perf_counter_ns`` around
  each ``apply`` whose outputs contain a ``chat.assigned``; p50/p99/max in us.

``--profile`` runs cProfile over the measured part instead (200x2,000 and
2,000x10,000 unless ``--sizes`` says otherwise) and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import environment, pct, summary, write_json
from engine import Engine, Rules, parse_rules
from schemas.events import Event, encode_event, validate

TENANT = "shop-1"
TS0 = 1_700_000_000_000
CAPACITY = 5
SKILLS = ("presales", "sales", "after_sales", "billing")
CHANNELS = ("web", "app", "wechat", "mini_program")
REGIONS = ("north", "south", "east", "west")
PAGES = (
    ("home", 20), ("list", 20), ("search", 12), ("detail", 25), ("cart", 8),
    ("checkout", 4), ("order", 4), ("after_sales", 3), ("promo", 4),
)
PAGE_NAMES = tuple(p for p, _ in PAGES)
PAGE_WEIGHTS = tuple(w for _, w in PAGES)
CATEGORIES = ("shoes", "phones", "books", "toys", "kitchen")
KEYWORDS = ("red shoes", "iphone case", "kids toys", "coffee grinder", "novel")
MESSAGES = (
    "hi, is this in stock?", "I want a refund", "where is my order?",
    "do you have a coupon", "the item arrived broken", "need an invoice",
    "what size should I take?",
)

FULL_SIZES = ((10, 100), (200, 2_000), (2_000, 10_000), (7_500, 50_000))
QUICK_SIZES = FULL_SIZES[:3]
PROFILE_SIZES = ((200, 2_000), (2_000, 10_000))

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "engine_apply.json"


# ----------------------------------------------------------------- generator


class Pool:
    """A set with O(1) add, discard and seeded random choice."""

    __slots__ = ("items", "where")

    def __init__(self) -> None:
        self.items: list[str] = []
        self.where: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, x: str) -> bool:
        return x in self.where

    def add(self, x: str) -> None:
        if x not in self.where:
            self.where[x] = len(self.items)
            self.items.append(x)

    def discard(self, x: str) -> None:
        i = self.where.pop(x, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.where[last] = i

    def choice(self, rng: random.Random) -> str:
        return self.items[rng.randrange(len(self.items))]


@dataclass
class Stream:
    agents: int
    waiting: int
    seed: int
    setup: list[Event]
    measured: list[Event]
    lines: list[bytes]  # the measured events, encoded (input of the floor)
    decisions: int  # measured events whose outputs contain a chat.assigned
    outputs: int  # outputs of the measured events
    waiting_min: int
    waiting_max: int
    waiting_end: int
    mix: dict[str, int] = field(default_factory=dict)


class Builder:
    """Emits events and follows their effect on an oracle engine."""

    def __init__(self, rules: Rules, seed: int) -> None:
        self.rng = random.Random(seed)
        self.oracle = Engine(rules, track_changes=False)
        self.events: list[Event] = []
        self.ts = TS0
        self.n_visitors = 0
        self.n_chats = 0
        self.browsing = Pool()  # present visitors without an open chat
        self.waiting = Pool()  # chats waiting (shared or reserved queue)
        self.assigned = Pool()  # chats held by an agent
        self.chat_of: dict[str, str] = {}  # visitor -> open chat
        self.visitor_of: dict[str, str] = {}  # open chat -> visitor
        self.departed: list[str] = []  # visitors who left (may come back)
        self.departed_set: set[str] = set()
        self.decisions = 0
        self.outputs = 0
        self.to_bot = 0

    # -- plumbing

    def emit(self, etype: str, **fields: Any) -> None:
        raw = {"type": etype, "id": f"e{len(self.events)}", "ts": self.ts, "tenant": TENANT}
        raw.update(fields)
        ev = validate(raw)
        outs = self.oracle.apply(ev, len(self.events))
        self.events.append(ev)
        self.outputs += len(outs)
        placed = False
        for o in outs:
            kind = o["type"]
            if kind == "chat.queued":
                self.waiting.add(o["chat"])
            elif kind == "chat.assigned":
                placed = True
                self.waiting.discard(o["chat"])
                self.assigned.add(o["chat"])
            elif kind == "chat.abandoned":
                self.waiting.discard(o["chat"])
                self._forget(o["chat"])
            elif kind == "chat.requeued":
                self.assigned.discard(o["chat"])
                self.waiting.add(o["chat"])
            elif kind == "chat.to_bot":
                self.to_bot += 1
                self._forget(o["chat"])
        if placed:
            self.decisions += 1

    def _forget(self, chat: str) -> None:
        v = self.visitor_of.pop(chat, None)
        if v is not None:
            self.chat_of.pop(v, None)
            if v not in self.departed_set:
                self.browsing.add(v)

    def tick(self, lo: int = 0, hi: int = 3) -> None:
        self.ts += self.rng.randint(lo, hi)

    def new_visitor(self) -> str:
        self.n_visitors += 1
        return f"v{self.n_visitors}"

    # -- event kinds

    def agent_online(self, i: int) -> None:
        rng = self.rng
        skills = {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(1, 3))}
        self.emit("agent.state", agent=f"a{i}", status="online", capacity=CAPACITY,
                  skills=skills)

    def arrive(self, vid: str) -> None:
        rng = self.rng
        fields: dict[str, Any] = {"visitor": vid, "channel": rng.choice(CHANNELS)}
        if rng.random() < 0.5:
            fields["region"] = rng.choice(REGIONS)
        if rng.random() < 0.3:
            fields["customer"] = {
                "member": rng.random() < 0.5, "tier": rng.randint(0, 5),
                "orders": rng.randint(0, 30), "ltv": round(rng.uniform(0, 5000), 2),
            }
        self.emit("visitor.arrived", **fields)
        self.departed_set.discard(vid)
        if vid not in self.chat_of:
            self.browsing.add(vid)

    def view(self, vid: str) -> None:
        rng = self.rng
        fields: dict[str, Any] = {
            "visitor": vid, "page": rng.choices(PAGE_NAMES, PAGE_WEIGHTS)[0],
        }
        r = rng.random()
        if r < 0.15:
            fields["keyword"] = rng.choice(KEYWORDS)
        elif r < 0.4:
            fields["category"] = rng.choice(CATEGORIES)
            fields["sku"] = f"sku{rng.randrange(100_000)}"
        self.emit("page.viewed", **fields)

    def request(self, vid: str) -> None:
        rng = self.rng
        self.n_chats += 1
        chat = f"c{self.n_chats}"
        fields: dict[str, Any] = {"visitor": vid, "chat": chat}
        r = rng.random()
        if r < 0.4:
            fields["message"] = rng.choice(MESSAGES)
        elif r < 0.45:
            fields["skill"] = rng.choice(SKILLS)
        self.browsing.discard(vid)
        self.chat_of[vid] = chat
        self.visitor_of[chat] = vid
        self.emit("chat.requested", **fields)

    def end(self, chat: str) -> None:
        self.assigned.discard(chat)
        self._forget(chat)
        fields: dict[str, Any] = {"chat": chat}
        if self.rng.random() < 0.7:
            fields["resolved"] = self.rng.random() < 0.9
        self.emit("chat.ended", **fields)

    def leave(self, vid: str) -> None:
        chat = self.chat_of.get(vid)
        self.browsing.discard(vid)
        self.departed_set.add(vid)
        self.departed.append(vid)
        if chat is not None and chat in self.assigned:
            self.assigned.discard(chat)
            self._forget(chat)
        self.emit("visitor.left", visitor=vid)
        # a waiting chat's chat.abandoned output has forgotten it already

    def order(self, vid: str) -> None:
        self.emit("order.placed", visitor=vid, amount=round(self.rng.uniform(5, 500), 2))


def _any_chat_visitor(b: Builder, pool: Pool) -> str | None:
    if not pool:
        return None
    return b.visitor_of.get(pool.choice(b.rng))


def build_stream(rules: Rules, agents: int, waiting: int, events: int, seed: int) -> Stream:
    """The setup and measured events for one size (deterministic in ``seed``)."""
    b = Builder(rules, seed * 1_000_003 + agents * 7 + waiting)
    rng = b.rng
    # agents come online, each taking the chats that fill it (requested after
    # the agent is online, so every pick sees one agent with room: setup stays
    # linear in A; the state is the same saturated one either way)
    for i in range(agents):
        b.agent_online(i)
        b.tick()
        for _ in range(CAPACITY):
            vid = b.new_visitor()
            b.view(vid)
            b.request(vid)
            b.tick(0, 1)
    # the backlog
    for _ in range(waiting):
        vid = b.new_visitor()
        b.arrive(vid)
        b.view(vid)
        b.request(vid)
        b.tick(0, 1)
    # browsing visitors
    for _ in range(waiting + 2_000):
        b.arrive(b.new_visitor())
        b.tick(0, 1)
    # their page views, until the tenant's window of event ids is full (a live
    # tenant's has been for a while; lookups in a full window cost more)
    while len(b.events) < rules.dedup_window + 1_024:
        b.view(b.browsing.choice(rng))
        b.tick()
    setup_n = len(b.events)
    b.decisions = 0
    b.outputs = 0
    mix: dict[str, int] = {}
    wmin = wmax = len(b.waiting)
    for _ in range(events):
        b.tick()
        r = rng.random()
        if r < 0.90:
            # page views: 12 % by visitors whose chat waits (re-keys the queue),
            # 3 % by visitors in a chat, the rest by browsing visitors
            s = rng.random()
            vid = None
            if s < 0.12:
                vid = _any_chat_visitor(b, b.waiting)
            elif s < 0.15:
                vid = _any_chat_visitor(b, b.assigned)
            if vid is None:
                vid = b.browsing.choice(rng)
            b.view(vid)
            kind = "page.viewed"
        else:
            s = rng.random()
            if s < 0.50:
                # chat flow, steered to keep about W waiting: a request adds a
                # waiting chat, an ended chat lets its agent take one
                if len(b.waiting) < waiting or not b.assigned:
                    b.request(b.browsing.choice(rng))
                    kind = "chat.requested"
                else:
                    b.end(b.assigned.choice(rng))
                    kind = "chat.ended"
            elif s < 0.68:
                if b.departed and rng.random() < 0.3:
                    vid = b.departed.pop(rng.randrange(len(b.departed)))
                    if vid in b.departed_set:
                        b.arrive(vid)  # a returning customer
                    else:
                        b.arrive(b.new_visitor())
                else:
                    b.arrive(b.new_visitor())
                kind = "visitor.arrived"
            elif s < 0.84:
                t = rng.random()
                vid = None
                if t < 0.2:
                    vid = _any_chat_visitor(b, b.waiting)
                elif t < 0.3:
                    vid = _any_chat_visitor(b, b.assigned)
                if vid is None:
                    vid = b.browsing.choice(rng)
                b.order(vid)
                kind = "order.placed"
            else:
                t = rng.random()
                vid = None
                if t < 0.1:
                    vid = _any_chat_visitor(b, b.waiting)
                elif t < 0.2:
                    vid = _any_chat_visitor(b, b.assigned)
                if vid is None:
                    vid = b.browsing.choice(rng)
                b.leave(vid)
                kind = "visitor.left"
        mix[kind] = mix.get(kind, 0) + 1
        n = len(b.waiting)
        wmin = min(wmin, n)
        wmax = max(wmax, n)
    if b.to_bot:
        raise RuntimeError(f"{b.to_bot} chats went to the bot: the stream is not the intended one")
    measured = b.events[setup_n:]
    return Stream(
        agents=agents, waiting=waiting, seed=seed, setup=b.events[:setup_n], measured=measured,
        lines=[encode_event(ev) for ev in measured], decisions=b.decisions, outputs=b.outputs,
        waiting_min=wmin, waiting_max=wmax, waiting_end=len(b.waiting), mix=mix,
    )


# ------------------------------------------------------------------ measures


def fresh_engine(rules: Rules, s: Stream) -> Engine:
    eng = Engine(rules, track_changes=False)
    apply = eng.apply
    for off, ev in enumerate(s.setup):
        apply(ev, off)
    return eng


def run_engine(rules: Rules, s: Stream) -> float:
    """Events/s of apply over the measured events, on a fresh engine."""
    eng = fresh_engine(rules, s)
    apply = eng.apply
    events = s.measured
    base = len(s.setup)
    gc.collect()
    t0 = time.perf_counter()
    for off, ev in enumerate(events, base):
        apply(ev, off)
    dt = time.perf_counter() - t0
    return len(events) / dt


def run_floor(s: Stream) -> float:
    """Events/s of decoding each line and one dict update (the floor)."""
    loads = orjson.loads
    lines = s.lines
    d: dict[Any, Any] = {}
    gc.collect()
    t0 = time.perf_counter()
    for line in lines:
        ev = loads(line)
        d[ev.get("visitor")] = ev
    dt = time.perf_counter() - t0
    return len(lines) / dt


def run_latency(rules: Rules, s: Stream) -> dict[str, Any]:
    """Per-call latency (us) of decisions and of all calls, in one timed pass."""
    eng = fresh_engine(rules, s)
    apply = eng.apply
    clock = time.perf_counter_ns
    base = len(s.setup)
    all_ns: list[int] = []
    dec_ns: list[int] = []
    outputs = 0
    pauses: list[tuple[int, int]] = []  # (generation, ns) of each collection
    started = [0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = clock()
        else:
            pauses.append((info["generation"], clock() - started[0]))

    gc.collect()
    gc.callbacks.append(on_gc)
    try:
        for off, ev in enumerate(s.measured, base):
            t0 = clock()
            outs = apply(ev, off)
            dt = clock() - t0
            all_ns.append(dt)
            if outs:
                outputs += len(outs)
                for o in outs:
                    if o["type"] == "chat.assigned":
                        dec_ns.append(dt)
                        break
    finally:
        gc.callbacks.remove(on_gc)
    if len(dec_ns) != s.decisions or outputs != s.outputs:
        raise RuntimeError(
            f"engine diverged from the generator's oracle: {len(dec_ns)} decisions and "
            f"{outputs} outputs, expected {s.decisions} and {s.outputs}"
        )
    dec_ns.sort()
    all_ns.sort()

    def us(v: float) -> float:
        return round(v / 1000.0, 2)

    return {
        "decisions": len(dec_ns),
        "p50_us": us(pct(dec_ns, 50)),
        "p99_us": us(pct(dec_ns, 99)),
        "max_us": us(float(dec_ns[-1])) if dec_ns else None,
        "all_p50_us": us(pct(all_ns, 50)),
        "all_p99_us": us(pct(all_ns, 99)),
        "all_max_us": us(float(all_ns[-1])),
        "gc": {
            f"gen{g}": {
                "collections": sum(1 for gen, _ in pauses if gen == g),
                "total_ms": round(sum(ns for gen, ns in pauses if gen == g) / 1e6, 2),
                "max_us": us(max((ns for gen, ns in pauses if gen == g), default=0)),
            }
            for g in range(3)
        },
    }


def run_idle_pick(rules: Rules, agents: int, seed: int) -> dict[str, Any]:
    """Latency of ``chat.requested`` while every agent is online with room.

    Not the saturated stream: here each request is placed at once by the
    policy's pick among the agents with room (a quiet hour, a shift start).
    """
    rng = random.Random(seed * 7_919 + agents)
    eng = Engine(rules, track_changes=False)
    n = 0

    def ev(**fields: Any) -> Event:
        nonlocal n
        n += 1
        return validate({"id": f"e{n}", "ts": TS0 + n, "tenant": TENANT, **fields})

    for i in range(agents):
        skills = {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(1, 3))}
        eng.apply(ev(type="agent.state", agent=f"a{i}", status="online", capacity=CAPACITY,
                     skills=skills))
    requests = []
    for j in range(min(500, agents * CAPACITY // 2)):
        requests.append((
            ev(type="page.viewed", visitor=f"v{j}",
               page=rng.choices(PAGE_NAMES, PAGE_WEIGHTS)[0]),
            ev(type="chat.requested", visitor=f"v{j}", chat=f"c{j}"),
        ))
    clock = time.perf_counter_ns
    ns: list[int] = []
    gc.collect()
    for view, req in requests:
        eng.apply(view)
        t0 = clock()
        outs = eng.apply(req)
        dt = clock() - t0
        if not outs or outs[0]["type"] != "chat.assigned":
            raise RuntimeError("an idle agent did not get the chat")
        ns.append(dt)
    ns.sort()
    return {
        "requests": len(ns),
        "p50_us": round(pct(ns, 50) / 1000, 2),
        "p99_us": round(pct(ns, 99) / 1000, 2),
        "max_us": round(ns[-1] / 1000, 2),
    }


def bench_size(
    rules: Rules, agents: int, waiting: int, events: int, reps: int, seed: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    t0 = time.perf_counter()
    s = build_stream(rules, agents, waiting, events, seed)
    log(f"  {agents}x{waiting}: built {len(s.setup):,} setup + {len(s.measured):,} measured "
        f"events in {time.perf_counter() - t0:.1f}s")
    # the stream is the harness's data, not the engine's: keep it out of the
    # collector's way (the engines' own objects are collected as usual)
    gc.collect()
    gc.freeze()
    try:
        # warm-up (not recorded), then engine and floor repetitions interleaved
        run_engine(rules, s)
        run_floor(s)
        eng: list[float] = []
        flo: list[float] = []
        for i in range(reps):
            eng.append(run_engine(rules, s))
            flo.append(run_floor(s))
            log(f"    rep {i + 1}/{reps}: engine {eng[-1]:,.0f} ev/s, "
                f"floor {flo[-1]:,.0f} ev/s")
        lat = run_latency(rules, s)
    finally:
        gc.unfreeze()
    idle = run_idle_pick(rules, agents, seed)
    em, fm = statistics.median(eng), statistics.median(flo)
    return {
        "size": f"{agents}x{waiting}",
        "agents": agents,
        "waiting_target": waiting,
        "waiting_min": s.waiting_min,
        "waiting_max": s.waiting_max,
        "waiting_end": s.waiting_end,
        "setup_events": len(s.setup),
        "events": len(s.measured),
        "mix": dict(sorted(s.mix.items())),
        "outputs": s.outputs,
        "engine_eps": summary(eng),
        "floor_eps": summary(flo),
        "engine_over_floor": round(em / fm, 4),
        "latency": lat,
        "idle_pick": idle,
    }


def profile_size(rules: Rules, agents: int, waiting: int, events: int, seed: int,
                 top: int) -> str:
    s = build_stream(rules, agents, waiting, events, seed)
    eng = fresh_engine(rules, s)
    apply = eng.apply
    base = len(s.setup)
    prof = cProfile.Profile()
    gc.collect()
    prof.enable()
    for off, ev in enumerate(s.measured, base):
        apply(ev, off)
    prof.disable()
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


# ------------------------------------------------------------------ reporting


def table(results: Iterable[dict[str, Any]]) -> str:
    head = (f"{'size (A x W)':>14} {'events':>8} {'engine ev/s (min-max)':>28} "
            f"{'floor ev/s':>11} {'eng/floor':>9} {'decisions':>9} {'p50 us':>8} "
            f"{'p99 us':>8} {'max us':>8} {'idle pick p50/p99 us':>21}")
    rows = [head, "-" * len(head)]
    for r in results:
        e, lat = r["engine_eps"], r["latency"]
        spread = f"{e['median']:,} ({e['min']:,}-{e['max']:,})"
        rows.append(
            f"{r['agents']:>6,} x {r['waiting_target']:<6,} {r['events']:>8,} {spread:>28} "
            f"{r['floor_eps']['median']:>11,} {r['engine_over_floor']:>9.3f} "
            f"{lat['decisions']:>9,} {lat['p50_us']:>8.1f} {lat['p99_us']:>8.1f} "
            f"{lat['max_us']:>8.1f} "
            f"{r['idle_pick']['p50_us']:>10.1f}/{r['idle_pick']['p99_us']:<10.1f}"
        )
    return "\n".join(rows)


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    sizes = []
    for part in text.split(","):
        a, _, w = part.strip().lower().partition("x")
        sizes.append((int(a.replace("_", "")), int(w.replace("_", ""))))
    return tuple(sizes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.engine_apply", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="the three smaller sizes, fewer events and repetitions")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON file")
    ap.add_argument("--sizes", type=parse_sizes,
                    help="comma-separated AxW sizes, e.g. 200x2000,2000x10000")
    ap.add_argument("--events", type=int, help="measured events per size")
    ap.add_argument("--reps", type=int, help="timed repetitions per size (after a warm-up)")
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--profile", action="store_true",
                    help="cProfile the measured part instead of benchmarking")
    ap.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    args = ap.parse_args(argv)

    rules = parse_rules({})
    events = args.events or (30_000 if args.quick else 200_000)
    reps = args.reps or (3 if args.quick else 5)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.profile:
        for a, w in args.sizes or PROFILE_SIZES:
            print(f"=== cProfile {a}x{w}, {events:,} measured events ===")
            print(profile_size(rules, a, w, events, args.seed, args.top))
        return 0

    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    load_before = os.getloadavg()
    results = []
    for a, w in sizes:
        results.append(bench_size(rules, a, w, events, reps, args.seed, log))
    doc = {
        "benchmark": "engine_apply",
        **environment(),
        # other processes skew the numbers: 1-minute load before and after
        "loadavg_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "orjson": orjson.__version__,
        "quick": args.quick,
        "seed": args.seed,
        "events_per_size": events,
        "reps": reps,
        "rules_hash": rules.hash,
        "results": results,
    }
    write_json(args.out, doc)
    print(table(results))
    print(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
