"""Hypothesis strategies: random but contract-valid event streams and rules."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from engine import Rules, parse_rules

T0 = 1_790_000_000_000
TENANTS = ("t1", "t2", "platform")
AGENTS = tuple(f"a{i}" for i in range(4))
VISITORS = tuple(f"v{i}" for i in range(6))
CHATS = tuple(f"c{i}" for i in range(8))
SKILLS = ("sales", "after_sales", "presales")
REGIONS = ("north", "south")
PAGES = ("home", "list", "search", "detail", "cart", "checkout", "order", "after_sales", "promo")


@st.composite
def rules(draw: st.DrawFn) -> Rules:
    data: dict[str, Any] = {
        "policy": draw(st.sampled_from(
            ["priority", "priority", "value", "fifo_round_robin", "least_loaded",
             "longest_idle"])),
        "assignment": {
            "acceptance_required": draw(st.booleans()),
            "offer_timeout_s": draw(st.sampled_from([5, 30])),
            "sticky_wait_s": draw(st.sampled_from([0, 20, 60])),
            "exclusive_wait_s": draw(st.sampled_from([0, 30, 120])),
            "skill_required": draw(st.booleans()),
            "required_skills": draw(st.sampled_from([[], [], ["after_sales"]])),
            "channel_required": draw(st.booleans()),
            "away_requeues": draw(st.sampled_from(["unaccepted", "all", "none"])),
            "max_missed_offers": draw(st.sampled_from([0, 0, 1, 2])),
            "wrap_up_s": draw(st.sampled_from([0.0, 0.0, 5.0])),
            "offline_grace_s": draw(st.sampled_from([0.0, 0.0, 20.0])),
        },
        "overflow": {"enabled": draw(st.booleans()), "after_s": draw(st.sampled_from([10, 60]))},
        "modes": {
            "default": draw(st.sampled_from(["human_first", "human_only", "human_only"])),
            "pages": draw(st.sampled_from([{}, {"home": "robot_first"}, {"promo": "robot_only"}])),
        },
        "dedup": {"window": draw(st.sampled_from([3, 1000, 2048])),
                  "window_s": draw(st.sampled_from([86_400.0, 30.0]))},
    }
    if data["policy"] == "value":
        data["value"] = {"loyalty": draw(st.booleans()),
                         "overflow_by_value": draw(st.booleans()), "pages": {
            "checkout": {"stake": 200.0, "handle_s": 180.0, "patience_s": 60.0},
            "after_sales": {"stake": draw(st.sampled_from([0.0, 40.0])), "handle_s": 240.0,
                            "patience_s": 120.0},
            "default": {"stake": 20.0, "handle_s": 200.0, "patience_s": 90.0}}}
    return parse_rules(data)


def _event(draw: st.DrawFn, etype: str, tenant: str) -> dict[str, Any]:
    ev: dict[str, Any] = {"type": etype, "tenant": tenant}
    if etype == "agent.state":
        ev["agent"] = draw(st.sampled_from(AGENTS))
        ev["status"] = draw(st.sampled_from(["online", "online", "away", "offline"]))
        # one update in four is a presence change only (the rest is kept)
        if draw(st.integers(0, 3)):
            ev["capacity"] = draw(st.integers(0, 3))
            ev["skills"] = draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5),
                                                max_size=2))
        if draw(st.booleans()):
            ev["channels"] = draw(st.lists(st.sampled_from(["web", "app"]), max_size=2))
        if draw(st.integers(0, 2)) == 0:
            ev["regions"] = draw(st.lists(st.sampled_from(REGIONS), max_size=2))
        if draw(st.integers(0, 5)) == 0:  # the agent's own wrap-up after a chat ends
            ev["wrap_up_s"] = draw(st.sampled_from([0.0, 2.5, 30.0]))
    elif etype == "visitor.arrived":
        ev["visitor"] = draw(st.sampled_from(VISITORS))
        ev["channel"] = draw(st.sampled_from(["web", "app"]))
        if draw(st.booleans()):
            ev["region"] = draw(st.sampled_from(REGIONS))
        if draw(st.booleans()):
            ev["customer"] = {"member": draw(st.booleans()), "tier": draw(st.integers(0, 5)),
                              "orders": draw(st.integers(0, 30)),
                              "ltv": draw(st.integers(0, 20000))}
        if draw(st.integers(0, 3)) == 0:
            ev["exclusive_agent"] = draw(st.sampled_from(AGENTS))
    elif etype == "page.viewed":
        ev["visitor"] = draw(st.sampled_from(VISITORS))
        ev["page"] = draw(st.sampled_from(PAGES))
    elif etype == "chat.requested":
        ev["visitor"] = draw(st.sampled_from(VISITORS))
        ev["chat"] = draw(st.sampled_from(CHATS))
        if draw(st.integers(0, 3)) == 0:
            ev["skill"] = draw(st.sampled_from(SKILLS))
        if draw(st.integers(0, 3)) == 0:
            ev["message"] = draw(st.sampled_from(["refund please", "coupon?", "hello"]))
    elif etype in ("chat.accepted", "chat.declined"):
        ev["chat"] = draw(st.sampled_from(CHATS))
        ev["agent"] = draw(st.sampled_from(AGENTS))
    elif etype == "chat.transferred":
        ev["chat"] = draw(st.sampled_from(CHATS))
        ev["agent"] = draw(st.sampled_from(AGENTS))
        transfer_target(draw, ev, SKILLS)
    elif etype in ("bot.escalated", "chat.ended"):
        ev["chat"] = draw(st.sampled_from(CHATS))
    elif etype in ("visitor.left",):
        ev["visitor"] = draw(st.sampled_from(VISITORS))
    elif etype == "order.placed":
        ev["visitor"] = draw(st.sampled_from(VISITORS))
        ev["amount"] = draw(st.integers(0, 2000))
    return ev


def transfer_target(draw: st.DrawFn, ev: dict[str, Any], skills: tuple[str, ...]) -> None:
    """A chat.transferred's target: ``to_agent`` (one of the stream's agents),
    ``to_skill`` (one of ``skills``), or both now and then."""
    how = draw(st.sampled_from(["agent", "agent", "skill", "skill", "both"]))
    if how != "skill":
        ev["to_agent"] = draw(st.sampled_from(AGENTS))
    if how != "agent":
        ev["to_skill"] = draw(st.sampled_from(skills))


class Holders:
    """A guess, from the stream drawn so far and without the engine, at who
    holds which chat: per tenant, the chats requested and not ended (nor their
    visitor gone), each with the agents that could have taken it (online with
    room when it was requested, or coming online while no one could). A
    chat.transferred drawn through ``aim`` then usually names such a chat and
    such an agent (its tenant drawn anew): only the agent holding a chat can
    transfer it, a transfer from anyone else changes nothing."""

    def __init__(self) -> None:
        self.online: dict[str, list[str]] = {}  # tenant -> agents online with room
        # tenant -> chat -> (its visitor, agents that may hold it)
        self.open: dict[str, dict[str, tuple[str, list[str]]]] = {}

    def see(self, ev: dict[str, Any]) -> None:
        tenant, etype = ev.get("tenant"), ev.get("type")
        if not isinstance(tenant, str):
            return
        online = self.online.setdefault(tenant, [])
        chats = self.open.setdefault(tenant, {})
        if etype == "agent.state":
            agent = ev["agent"]
            if agent in online:
                online.remove(agent)
            if ev.get("status") == "online" and ev.get("capacity") != 0:
                online.append(agent)
                for _, may in chats.values():
                    if not may:
                        may.append(agent)
        elif etype == "chat.requested" and ev["chat"] not in chats:
            chats[ev["chat"]] = (ev["visitor"], list(online))
        elif etype == "chat.ended":
            chats.pop(ev["chat"], None)
        elif etype == "visitor.left":
            for chat in [k for k, (v, _) in chats.items() if v == ev["visitor"]]:
                del chats[chat]

    def aim(self, draw: st.DrawFn, ev: dict[str, Any]) -> None:
        """Where the stream has one, a transfer of an open chat by an agent
        that may hold it, in the chat's tenant, to another agent online there
        where it names an agent and there is one (else the event as drawn)."""
        if ev["type"] != "chat.transferred":
            return
        triples = sorted((tenant, chat, agent) for tenant, chats in self.open.items()
                         for chat, (_, may) in chats.items()
                         for agent in may if agent in self.online.get(tenant, []))
        if not triples:
            return
        ev["tenant"], ev["chat"], ev["agent"] = draw(st.sampled_from(triples))
        others = [a for a in self.online[ev["tenant"]] if a != ev["agent"]]
        if "to_agent" in ev and others:
            ev["to_agent"] = draw(st.sampled_from(others))


TYPE_WEIGHTS = (
    ["agent.state"] * 3 + ["visitor.arrived"] * 2 + ["page.viewed"] * 3
    + ["chat.requested"] * 4 + ["chat.accepted"] * 2 + ["chat.declined", "bot.escalated"]
    + ["chat.ended"] * 3 + ["visitor.left", "order.placed", "clock"]
    + ["chat.transferred"]
)


@st.composite
def streams(draw: st.DrawFn, max_size: int = 60, duplicates: bool = False) -> list[dict[str, Any]]:
    """A list of valid event dicts over a few tenants, time mostly moving forward."""
    n = draw(st.integers(1, max_size))
    ts = T0
    out: list[dict[str, Any]] = []
    holders = Holders()
    for i in range(n):
        ts += draw(st.sampled_from([0, 500, 3_000, 15_000, 45_000, 130_000]))
        # now and then a late event: applied at the tenant's current time
        ts_ev = ts - 20_000 if draw(st.integers(0, 15)) == 0 else ts
        etype = draw(st.sampled_from(TYPE_WEIGHTS))
        tenant = draw(st.sampled_from(TENANTS))
        ev = _event(draw, etype, tenant)
        holders.aim(draw, ev)
        holders.see(ev)
        ev["id"] = f"e{i}"
        ev["ts"] = ts_ev
        if etype == "clock" and draw(st.booleans()):
            del ev["tenant"]
        out.append(ev)
        if duplicates and out and draw(st.integers(0, 4)) == 0:
            out.append(dict(draw(st.sampled_from(out))))
    return out


MESS = ("duplicate", "late", "accept_after_end", "end_unknown", "offline_busy", "leave_twice")


@st.composite
def messy_streams(draw: st.DrawFn, max_size: int = 60,
                  ) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """A valid stream delivered badly: (events, [(index, kind)] of what was
    added or changed). Kinds (``MESS``): the same event re-sent anywhere
    later; timestamps far out of order; ``chat.accepted`` after its
    ``chat.ended``; ``chat.ended`` of a chat never requested; ``agent.state``
    offline (or away) while the agent may hold chats; ``visitor.left`` twice."""
    events = draw(streams(max_size=max_size))
    marks: list[tuple[int, str]] = []
    for n in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(MESS))
        at = draw(st.integers(0, len(events)))
        ts = events[at - 1]["ts"] if at else T0
        tenant = draw(st.sampled_from(TENANTS))
        new: list[dict[str, Any]] = []
        if kind == "duplicate" and at:
            new = [dict(events[draw(st.integers(0, at - 1))])]
        elif kind == "late":
            new = [{**_event(draw, draw(st.sampled_from(TYPE_WEIGHTS)), tenant),
                    "ts": ts - draw(st.sampled_from([1, 60_000, 3_600_000, 10**9]))}]
        elif kind == "accept_after_end":
            chat, agent = draw(st.sampled_from(CHATS)), draw(st.sampled_from(AGENTS))
            new = [{"type": "chat.ended", "tenant": tenant, "chat": chat, "ts": ts},
                   {"type": "chat.accepted", "tenant": tenant, "chat": chat, "agent": agent,
                    "ts": ts}]
        elif kind == "end_unknown":
            new = [{"type": "chat.ended", "tenant": tenant, "chat": f"ghost{n}", "ts": ts}]
        elif kind == "offline_busy":
            new = [{"type": "agent.state", "tenant": tenant, "agent": draw(st.sampled_from(AGENTS)),
                    "status": draw(st.sampled_from(["offline", "away"])), "ts": ts,
                    "capacity": 3}]
        elif kind == "leave_twice":
            v = draw(st.sampled_from(VISITORS))
            new = [{"type": "visitor.left", "tenant": tenant, "visitor": v, "ts": ts}
                   for _ in range(2)]
        for k, e in enumerate(new):
            if kind != "duplicate":
                e["id"] = f"m{n}-{k}"
            events.insert(at + k, e)
        marks.append((at, kind))
    return events, marks
