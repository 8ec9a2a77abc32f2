"""Hypothesis streams for the conformance suite: what a busy chat server sends.

Several tenants; agents flapping between online, away and offline with small
capacities; visitors with several chats; accepts, declines, transfers and ends that race
the routing; visitors leaving while chats wait and while they are served;
events re-sent (duplicates) and arriving late (disorder); malformed lines in
between. Each stream ends with a *drain*: time moves on a day, then an agent
with every skill and room for everyone comes online in every tenant, after
which nothing may still wait.

Malformed lines that are JSON carry ``"_bad": true`` so that the model knows
them without a validator of its own (the decoder ignores unknown fields: the
mark alone never makes a line bad).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from tests.strategies import Holders, _event

T0 = 1_790_000_000_000
MERCHANTS = ("m1", "m2")
PLATFORM = "platform"
#: every skill the rules can give a chat (explicit, by message, page, keyword)
SKILLS = ("sales", "after_sales", "presales", "billing")
DRAIN_AGENT = "zz-drain"
DAY_MS = 86_400_000

Obj = dict[str, Any]

TYPES = (
    ["agent.state"] * 4 + ["visitor.arrived"] * 2 + ["page.viewed"] * 2
    + ["chat.requested"] * 6 + ["chat.accepted"] * 2 + ["chat.declined"] * 2
    + ["bot.escalated"] + ["chat.ended"] * 3 + ["visitor.left"] * 2 + ["order.placed"]
    + ["clock"] * 2 + ["chat.transferred"] * 2
)

#: how a good event is broken into a malformed one (each names one field)
BREAKS = ("garbage", "no_type", "unknown_type", "no_id", "ts_text", "bad_tenant",
          "missing_field", "capacity_range")


def _broken(draw: st.DrawFn, ev: Obj) -> Obj | str:
    how = draw(st.sampled_from(BREAKS))
    if how == "garbage":
        return draw(st.sampled_from(["not json", "{\"type\": ", "[1, 2]", "42", "null"]))
    bad = {**ev, "_bad": True}
    if how == "no_type":
        del bad["type"]
    elif how == "unknown_type":
        bad["type"] = "chat.teleported"
    elif how == "no_id":
        del bad["id"]
    elif how == "ts_text":
        bad["ts"] = "yesterday"
    elif how == "bad_tenant":
        bad["tenant"] = "no spaces allowed"
    elif how == "capacity_range" and ev["type"] == "agent.state":
        bad["capacity"] = 101
    else:  # missing_field: a required field of the type (clock has none: its ts)
        required = {"agent.state": "status", "visitor.arrived": "channel",
                    "page.viewed": "page", "chat.requested": "chat",
                    "chat.accepted": "agent", "chat.declined": "agent",
                    "chat.transferred": "agent",
                    "bot.escalated": "chat", "chat.ended": "chat",
                    "visitor.left": "visitor", "order.placed": "amount", "clock": "ts"}
        bad.pop(required[ev["type"]], None)
    return bad


@st.composite
def streams(draw: st.DrawFn, max_size: int = 80, tenantless_clocks: bool = True,
            bad_lines: bool = True) -> list[Obj | str]:
    """Events (dicts; a str is a line that is not JSON), drain included."""
    tenants = (*MERCHANTS, PLATFORM)
    n = draw(st.integers(1, max_size))
    ts = T0
    out: list[Obj | str] = []
    holders = Holders()
    for i in range(n):
        ts += draw(st.sampled_from([0, 400, 3_000, 15_000, 45_000, 130_000]))
        etype = draw(st.sampled_from(TYPES))
        ev = _event(draw, etype, draw(st.sampled_from(tenants)))
        if "to_skill" in ev:  # any skill the rules can give a chat
            ev["to_skill"] = draw(st.sampled_from(SKILLS))
        holders.aim(draw, ev)
        holders.see(ev)
        ev["id"] = f"e{i}"
        # now and then a late event: applied at the tenant's current time
        ev["ts"] = ts - 20_000 if draw(st.integers(0, 12)) == 0 else ts
        if etype == "clock" and tenantless_clocks and draw(st.booleans()):
            del ev["tenant"]
        if bad_lines and draw(st.integers(0, 14)) == 0:
            out.append(_broken(draw, ev))
        else:
            out.append(ev)
        if out and draw(st.integers(0, 6)) == 0:  # a re-sent event, as it was sent
            again = draw(st.sampled_from(out))
            out.append(dict(again) if isinstance(again, dict) else again)
    return out + drain(tenants, ts)


def drain(tenants: tuple[str, ...], ts: int) -> list[Obj | str]:
    """Time past every reservation, offer and overflow bound, then capacity
    for everyone (an agent that accepts nothing still takes every chat)."""
    out: list[Obj | str] = []
    for t in tenants:
        out.append({"type": "clock", "id": "drain-clock", "ts": ts + DAY_MS, "tenant": t})
    for t in tenants:
        out.append({"type": "agent.state", "id": "drain-agent", "ts": ts + DAY_MS, "tenant": t,
                    "agent": DRAIN_AGENT, "status": "online", "capacity": 100,
                    "skills": {s: 5 for s in SKILLS}})
    return out


def encode(events: list[Obj | str]) -> list[bytes]:
    return [(e if isinstance(e, str) else json.dumps(e, separators=(",", ":"))).encode()
            for e in events]


def rename(events: list[Obj | str], prefix: str) -> list[Obj | str]:
    """The same stream under tenant names of its own (and clock ids of its own
    where a clock has no tenant), for runtimes shared by several examples."""
    out: list[Obj | str] = []
    for e in events:
        if isinstance(e, dict):
            e = dict(e)
            if isinstance(e.get("tenant"), str) and " " not in e["tenant"]:
                e["tenant"] = prefix + e["tenant"]
            elif "tenant" not in e and isinstance(e.get("id"), str):
                e["id"] = prefix + e["id"]
        out.append(e)
    return out
