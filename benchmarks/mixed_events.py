"""A deterministic generator of a large, mixed, multi-tenant event stream.

Used by ``benchmarks/run_embedded.py`` and the crash-safety tests. Every draw
comes from one seeded ``random.Random``, so the same ``(n, seed)`` always gives
the same bytes. Run::

    .venv/bin/python -m benchmarks.mixed_events 1000000 > events.jsonl

The mix (per event, roughly): 52 % page views, 10 % visitor arrivals, 8 % chat
requests, 7 % chat ends, 6 % accepts, 3 % orders, 3 % visitors leaving, 2 %
agent state changes, 1 % declines, 1 % bot escalations, 1 % clocks for every
tenant, plus ``dup_rate`` re-sent copies of recent events (at-least-once
delivery) and ``bad_rate`` malformed lines. Chats are ended, accepted and
declined by id, so most such events refer to real chats; some refer to chats
that already ended (which the contract says change nothing).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from typing import Any

import orjson

TS0 = 1_794_355_200_000
PAGES = ("home", "list", "search", "detail", "detail", "cart", "checkout", "order",
         "after_sales", "promo")
SKILLS = ("presales", "sales", "after_sales", "billing")
CHANNELS = ("web", "app", "wechat", "mini_program")
MESSAGES = ("is this in stock?", "I want a refund", "where is my order?",
            "do you have a coupon", "need an invoice")
BAD = (
    b"not json at all",
    b'{"type": "page.viewed", "id": "x", "ts": "yesterday", "tenant": "m0", "visitor": "v"}',
    b'{"type": "teleported", "id": "y", "ts": 1, "tenant": "m0"}',
    b'{"type": "chat.requested", "id": "z", "ts": 1, "tenant": "m0", "visitor": 5, "chat": "c"}',
)


def events(n: int, seed: int = 1, tenants: int = 20, dup_rate: float = 0.005,
           bad_rate: float = 0.0) -> Iterator[bytes]:
    """``n`` encoded lines (without newline): contract events, some re-sent, some bad."""
    rng = random.Random(seed)
    names = [f"m{i}" for i in range(tenants)]
    agents = {t: [f"a{j}" for j in range(rng.randint(5, 25))] for t in names}
    visitors: dict[str, list[str]] = {t: [] for t in names}
    open_chats: dict[str, list[tuple[str, str]]] = {t: [] for t in names}  # (chat, agent guess)
    recent: list[bytes] = []
    ts = TS0
    seq = 0
    # every agent comes online first
    for t in names:
        for a in agents[t]:
            seq += 1
            ts += 7
            skills = dict.fromkeys(rng.sample(SKILLS, rng.randint(1, 3)), rng.randint(1, 5))
            yield orjson.dumps({"type": "agent.state", "id": f"e{seq}", "ts": ts, "tenant": t,
                                "agent": a, "status": "online", "capacity": 5,
                                "skills": skills})
            n -= 1
            if n <= 0:
                return
    while n > 0:
        n -= 1
        r = rng.random()
        if recent and r < dup_rate:
            yield recent[rng.randrange(len(recent))]
            continue
        if r < dup_rate + bad_rate:
            yield BAD[rng.randrange(len(BAD))]
            continue
        seq += 1
        ts += rng.randint(0, 10)
        t = names[min(int(rng.expovariate(1 / 4)), tenants - 1)]  # a few busy tenants
        vs = visitors[t]
        ev: dict[str, Any] = {"type": "", "id": f"e{seq}", "ts": ts, "tenant": t}
        k = rng.random()
        if k < 0.10 or not vs:
            v = f"v{rng.randrange(200_000)}"
            vs.append(v)
            if len(vs) > 5000:
                vs.pop(rng.randrange(len(vs)))
            ev.update(type="visitor.arrived", visitor=v, channel=rng.choice(CHANNELS))
            if rng.random() < 0.3:
                ev["customer"] = {"member": rng.random() < 0.5, "tier": rng.randint(0, 5),
                                  "orders": rng.randint(0, 40), "ltv": rng.randint(0, 20000)}
        elif k < 0.62:
            ev.update(type="page.viewed", visitor=rng.choice(vs), page=rng.choice(PAGES))
            if rng.random() < 0.2:
                ev["keyword"] = "refund" if rng.random() < 0.3 else "red shoes"
        elif k < 0.70:
            c = f"c{seq}"
            ev.update(type="chat.requested", visitor=rng.choice(vs), chat=c)
            if rng.random() < 0.3:
                ev["message"] = rng.choice(MESSAGES)
            open_chats[t].append((c, rng.choice(agents[t])))
        elif k < 0.77:
            oc = open_chats[t]
            if not oc:
                n += 1
                continue
            c, _ = oc.pop(rng.randrange(min(len(oc), 40)))
            ev.update(type="chat.ended", chat=c, resolved=rng.random() < 0.8)
        elif k < 0.83:
            oc = open_chats[t]
            if not oc:
                n += 1
                continue
            c, a = oc[rng.randrange(len(oc))]
            ev.update(type="chat.accepted", chat=c, agent=a)
        elif k < 0.86:
            ev.update(type="order.placed", visitor=rng.choice(vs),
                      amount=round(rng.uniform(5, 500), 2))
        elif k < 0.89:
            ev.update(type="visitor.left", visitor=rng.choice(vs))
        elif k < 0.91:
            status = rng.choices(("online", "away", "offline"), (6, 2, 1))[0]
            ev.update(type="agent.state", agent=rng.choice(agents[t]), status=status,
                      capacity=rng.choice((3, 5, 8)),
                      skills=dict.fromkeys(rng.sample(SKILLS, 2), rng.randint(1, 5)))
        elif k < 0.92:
            oc = open_chats[t]
            if not oc:
                n += 1
                continue
            c, a = oc[rng.randrange(len(oc))]
            ev.update(type="chat.declined", chat=c, agent=a)
        elif k < 0.93:
            oc = open_chats[t]
            if not oc:
                n += 1
                continue
            ev.update(type="bot.escalated", chat=oc[rng.randrange(len(oc))][0])
        elif k < 0.94:
            ev = {"type": "clock", "id": f"e{seq}", "ts": ts}
        else:
            ev.update(type="page.viewed", visitor=rng.choice(vs), page=rng.choice(PAGES))
        line = orjson.dumps(ev)
        recent.append(line)
        if len(recent) > 64:
            recent.pop(0)
        yield line


def write(path: str, n: int, seed: int = 1, **kw: Any) -> None:
    """Write ``n`` lines to ``path`` (JSON Lines)."""
    with open(path, "wb") as f:
        buf: list[bytes] = []
        for line in events(n, seed, **kw):
            buf.append(line)
            if len(buf) >= 10_000:
                f.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            f.write(b"\n".join(buf) + b"\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("n", type=int)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bad-rate", type=float, default=0.0)
    a = p.parse_args()
    out = sys.stdout.buffer
    for line in events(a.n, a.seed, bad_rate=a.bad_rate):
        out.write(line + b"\n")


if __name__ == "__main__":
    main()
