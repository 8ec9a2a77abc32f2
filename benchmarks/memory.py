"""Memory of the engine's state: bytes per active visitor, per waiting chat, per agent.

Run::

    .venv/bin/python -m benchmarks.memory [--quick] [--visitors N] [--out FILE.json]

One tenant, one engine (``track_changes=False``: the runtime clears the dirty
set at every checkpoint, so it does not grow). In order, each step measured
as a delta after a full collection:

- ``visitor``: N visitors arrive (channel, half with a region, 30 % with a
  customer profile) and view one page each (default N = 1,000,000);
- ``waiting_chat``: C of them request a chat while the one agent online is
  busy (all wait in the queue);
- ``agent``: A agents come online (capacity 5, one to three skills; they then
  take chats, so their step is measured before any chat is waiting: agents
  are added to a second engine with visitors and no chats).

Two measures per step: the process's resident set (``/proc/self/statm``,
what the machine pays, allocator slack included) and, unless
``--no-tracemalloc``, the bytes Python's allocator reports live
(``tracemalloc``, in a separate pass, slower). Events are built one at a time
and dropped after ``apply``, so only the engine's state remains. Target:
under 1 KiB per active visitor.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.common import Record, parser
from benchmarks.engine_apply import (
    CAPACITY,
    CATEGORIES,
    CHANNELS,
    PAGE_NAMES,
    PAGE_WEIGHTS,
    REGIONS,
    SKILLS,
    TENANT,
    TS0,
)
from engine import Engine, parse_rules
from schemas.events import validate

TARGET_VISITOR_BYTES = 1024
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def visitor_events(n: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for i in range(n):
        v = f"v{i}"
        arrived: dict[str, Any] = {"type": "visitor.arrived", "visitor": v,
                                   "channel": rng.choice(CHANNELS)}
        if rng.random() < 0.5:
            arrived["region"] = rng.choice(REGIONS)
        if rng.random() < 0.3:
            arrived["customer"] = {"member": rng.random() < 0.5, "tier": rng.randint(0, 5),
                                   "orders": rng.randint(0, 30),
                                   "ltv": round(rng.uniform(0, 5000), 2)}
        yield arrived
        view: dict[str, Any] = {"type": "page.viewed", "visitor": v,
                                "page": rng.choices(PAGE_NAMES, PAGE_WEIGHTS)[0]}
        if rng.random() < 0.4:
            view["category"] = rng.choice(CATEGORIES)
            view["sku"] = f"sku{rng.randrange(100_000)}"
        yield view


def chat_events(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"type": "chat.requested", "visitor": f"v{i}", "chat": f"c{i}"}


def agent_events(n: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed + 1)
    for i in range(n):
        skills = {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(1, 3))}
        yield {"type": "agent.state", "agent": f"a{i}", "status": "online",
               "capacity": CAPACITY, "skills": skills}


class Feeder:
    def __init__(self) -> None:
        self.engine = Engine(parse_rules({}), track_changes=False)
        self.n = 0
        self.outputs: dict[str, int] = {}

    def feed(self, events: Iterator[dict[str, Any]]) -> int:
        apply = self.engine.apply
        count = 0
        for raw in events:
            self.n += 1
            raw["id"] = f"e{self.n}"
            raw["ts"] = TS0 + self.n
            raw["tenant"] = TENANT
            for o in apply(validate(raw), self.n):
                self.outputs[o["type"]] = self.outputs.get(o["type"], 0) + 1
            count += 1
        return count


def measure(visitors: int, chats: int, agents: int, seed: int,
            probe: Callable[[], int]) -> dict[str, Any]:
    """Bytes per visitor, waiting chat and agent, by ``probe`` (a reading of bytes in use)."""
    def settled() -> int:
        gc.collect()
        return probe()

    f = Feeder()
    b0 = settled()
    f.feed(visitor_events(visitors, seed))
    b1 = settled()
    # one agent with room for one chat: the first request is assigned, the rest
    # wait (with nobody online they would go to the bot)
    f.feed(iter([{"type": "agent.state", "agent": "busy", "status": "online", "capacity": 1,
                  "skills": dict.fromkeys(SKILLS, 3)}]))
    b1 = settled()
    f.feed(chat_events(chats + 1))
    b2 = settled()
    queued = f.outputs.get("chat.queued", 0)
    g = Feeder()  # agents, beside visitors but no waiting chats (they would take them)
    g.feed(visitor_events(min(visitors, 10_000), seed))
    b3 = settled()
    g.feed(agent_events(agents, seed))
    b4 = settled()
    if queued != chats:
        raise RuntimeError(f"{queued} of {chats} chats queued: {f.outputs}")
    out = {
        "visitor_bytes": round((b1 - b0) / visitors, 1),
        "waiting_chat_bytes": round((b2 - b1) / chats, 1),
        "agent_bytes": round((b4 - b3) / agents, 1),
        "total_bytes": b2 - b0,
    }
    del f, g
    gc.collect()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = parser("memory", __doc__, quick="100,000 visitors, 2,000 agents", seed=1)
    ap.add_argument("--visitors", type=int, help="active visitors (default 1,000,000)")
    ap.add_argument("--chats", type=int,
                    help="waiting chats (default 50,000, at most half the visitors)")
    ap.add_argument("--agents", type=int, help="agents (default 7,500; quick 2,000)")
    ap.add_argument("--no-tracemalloc", action="store_true", help="RSS deltas only")
    args = ap.parse_args(argv)
    visitors = args.visitors or (100_000 if args.quick else 1_000_000)
    chats = args.chats or min(50_000, visitors // 2)
    agents = args.agents or (2_000 if args.quick else 7_500)
    record = Record("memory")
    gc.disable()  # collections only where measured (as routeq run, which turns cyclic GC off)
    try:
        t0 = time.perf_counter()
        by_rss = measure(visitors, chats, agents, args.seed, rss)
        rss_s = time.perf_counter() - t0
        by_tm = None
        if not args.no_tracemalloc:
            tracemalloc.start()
            by_tm = measure(visitors, chats, agents, args.seed,
                            lambda: tracemalloc.get_traced_memory()[0])
            tracemalloc.stop()
    finally:
        gc.enable()
    doc = record.document(
        args.quick, visitors=visitors, waiting_chats=chats, agents=agents,
        seed=args.seed, rss=by_rss, tracemalloc=by_tm,
        rss_pass_s=round(rss_s, 1),
        target={"visitor_bytes": TARGET_VISITOR_BYTES},
        visitor_target_met=by_rss["visitor_bytes"] < TARGET_VISITOR_BYTES,
    )
    head = f"{visitors:,} visitors, {chats:,} waiting chats, {agents:,} agents (bytes each)"
    return record.finish(args.out, doc, [head, *(
        f"  {name:12} visitor {m['visitor_bytes']:>7,}  waiting chat "
        f"{m['waiting_chat_bytes']:>7,}  agent {m['agent_bytes']:>8,}"
        for name, m in (("RSS", by_rss), ("tracemalloc", by_tm)) if m is not None)])


if __name__ == "__main__":
    sys.exit(main())
