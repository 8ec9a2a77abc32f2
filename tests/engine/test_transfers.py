"""Transfers (chat.transferred): to an agent or a skill group, bounded by
``[assignment] transfer_wait_s``, then the tenant's steps."""

from __future__ import annotations

import pytest

from schemas.events import EventError, validate
from tests.helpers import T0, Driver, EventBuilder, one, types

HUMANS = {"modes": {"default": "human_only"}}


def test_a_transfer_to_a_free_agent_assigns_at_once_keeping_the_arrival() -> None:
    b, d = EventBuilder(), Driver(HUMANS)
    d.feed(b.agent("ann"), b.agent("bob"))
    first = one(d.feed(b.page("v1", "cart"), b.request("v1", "c1")), "chat.assigned")
    to = "bob" if first["agent"] == "ann" else "ann"
    b.wait(30)
    out = d.feed(b.transfer("c1", first["agent"], to_agent=to))
    assert types(out) == ["chat.requeued", "chat.assigned"]
    assert (out[0]["why"], out[0]["agent"]) == ("transferred", first["agent"])
    a = out[1]
    assert (a["agent"], a["reason"], a["step"]) == (to, "transfer", "transfer")
    assert a["wait_ms"] == out[1]["ts"] - first["ts"] + first["wait_ms"]  # from the request
    assert a["priority"] >= first["priority"]  # the same base, aged


def two_of_three_busy(transfer_wait_s: float) -> tuple[EventBuilder, Driver, dict[str, str],
                                                       str, str, str]:
    """Agents ann, bob and cy (one chat each at most), two of them holding a
    chat: (builder, driver, agent -> chat held, the free agent, the busy
    agent who will transfer, the busy agent it goes to)."""
    b = EventBuilder()
    d = Driver({**HUMANS, "assignment": {"transfer_wait_s": transfer_wait_s}})
    d.feed(b.agent("ann", capacity=1), b.agent("bob", capacity=1), b.agent("cy", capacity=1))
    held = {one(d.feed(b.request(f"v{i}", f"c{i}")), "chat.assigned")["agent"]: f"c{i}"
            for i in range(2)}
    free = ({"ann", "bob", "cy"} - set(held)).pop()
    frm, to = sorted(held)
    return b, d, held, free, frm, to


def test_a_transfer_waits_for_a_busy_agent_then_anyone_after_the_transfer_wait() -> None:
    b, d, held, free, frm, to = two_of_three_busy(20)
    out = d.feed(b.transfer(held[frm], frm, to_agent=to))
    # the chat waits for its busy agent: not for the free one, nor back to the one
    # who handed it over (who is free now too)
    assert types(out) == ["chat.requeued", "chat.queued"]
    t = b.now
    assert d.feed(b.clock(ts=t + 19_999)) == []
    late = one(d.feed(b.clock(ts=t + 20_000)), "chat.assigned")
    assert late["chat"] == held[frm] and late["agent"] == free and late["step"] == "any"


def test_a_transfer_to_a_skill_needs_that_skill_and_names_it() -> None:
    b, d = EventBuilder(), Driver(HUMANS)
    d.feed(b.agent("gen", skills={"presales": 3}))
    first = one(d.feed(b.request("v1", "c1")), "chat.assigned")
    out = d.feed(b.transfer("c1", "gen", to_skill="after_sales"))
    assert types(out) == ["chat.requeued", "chat.queued"]
    out = d.feed(b.agent("spec", skills={"after_sales": 1}))
    a = one(out, "chat.assigned")
    assert (a["agent"], a["skill"], a["step"], a["reason"]) == (
        "spec", "after_sales", "transfer", "skill")
    assert first["agent"] == "gen"


@pytest.mark.parametrize("case", ["unknown chat", "other agent", "waiting chat", "ended chat"])
def test_a_transfer_of_a_chat_the_agent_does_not_hold_changes_nothing(case: str) -> None:
    b, d = EventBuilder(), Driver(HUMANS)
    d.feed(b.agent("ann", capacity=1), b.agent("bob", capacity=1))
    d.feed(b.request("v1", "c1"), b.request("v2", "c2"), b.request("v3", "c3"))
    holder = d.engine.tenants["shop"].chats["c1"].agent
    other = "bob" if holder == "ann" else "ann"
    if case == "ended chat":
        d.feed(b.end("c1"))
    chat, agent = {"unknown chat": ("zz", holder), "other agent": ("c1", other),
                   "waiting chat": ("c3", holder), "ended chat": ("c1", holder)}[case]
    before = list(d.engine.snapshot())
    assert d.feed(b.transfer(chat, agent, to_agent=other)) == []
    after = list(d.engine.snapshot())
    # only the tenant's clock and its ids moved
    changed = [k for (k, v), (k2, v2) in zip(before, after, strict=True) if v != v2]
    assert all(k[0] in ("tenant", "engine", "ids") for k in changed), changed


def test_a_transfer_needs_a_target() -> None:
    ev = {"type": "chat.transferred", "id": "t1", "ts": T0, "tenant": "s", "chat": "c1",
          "agent": "a1"}
    with pytest.raises(EventError, match="field 'to_agent' or 'to_skill' is required"):
        validate(ev)
    with pytest.raises(EventError, match="field 'to_agent' or 'to_skill' is required"):
        validate({**ev, "to_agent": None})
    assert validate({**ev, "to_skill": "billing"})["to_skill"] == "billing"


def test_the_target_declining_sends_the_chat_through_the_tenants_steps() -> None:
    b = EventBuilder()
    d = Driver({**HUMANS, "assignment": {"acceptance_required": True}})
    d.feed(b.agent("ann", capacity=1), b.agent("bob", capacity=1), b.agent("cy", capacity=1))
    first = one(d.feed(b.request("v1", "c1")), "chat.assigned")["agent"]
    d.feed(b.accept("c1", first))
    to = sorted({"ann", "bob", "cy"} - {first})[0]
    third = sorted({"ann", "bob", "cy"} - {first, to})[0]
    out = d.feed(b.transfer("c1", first, to_agent=to))
    assert one(out, "chat.assigned")["agent"] == to
    out = d.feed(b.decline("c1", to))
    a = one(out, "chat.assigned", chat="c1")
    # neither the agent who handed it over nor the one who declined
    assert (a["agent"], a["step"]) == (third, "any")


def test_no_transfer_wait_gives_the_target_the_chat_only_if_free_now() -> None:
    b, d, held, free, frm, to = two_of_three_busy(0)
    out = d.feed(b.transfer(held[frm], frm, to_agent=to))  # the target is busy: anyone
    a = one(out, "chat.assigned")
    assert (a["agent"], a["step"]) == (free, "any")
    out = d.feed(b.transfer(held[to], to, to_skill="nobody"))  # nobody has it: anyone
    assert one(out, "chat.assigned")["agent"] == frm


def test_a_transferred_chat_waits_for_its_target_before_the_overflow_bound() -> None:
    """Served past [overflow] after_s, a transferred chat waits for its agent;
    the bound applies again when it reaches the tenant's steps."""
    b = EventBuilder()
    d = Driver({**HUMANS, "overflow": {"enabled": True, "after_s": 120},
                "assignment": {"transfer_wait_s": 30}})
    d.feed(b.agent("ann", capacity=1), b.agent("bob", capacity=1))
    first = one(d.feed(b.request("v1", "c1")), "chat.assigned")["agent"]
    other = "bob" if first == "ann" else "ann"
    d.feed(b.request("v2", "c2"))  # the other agent is busy
    b.wait(300)
    out = d.feed(b.transfer("c1", first, to_agent=other))
    assert types(out) == ["chat.requeued", "chat.queued"]
    out = d.feed(b.end("c2"))
    assert one(out, "chat.assigned", chat="c1")["agent"] == other
    # a second one, whose target stays busy: overflows when the transfer wait ends
    d.feed(b.request("v3", "c3"))
    b.wait(200)
    out = d.feed(b.transfer("c3", first, to_agent=other))
    assert types(out) == ["chat.requeued", "chat.queued"]
    b.wait(30)
    assert types(d.feed(b.clock()))[0] == "chat.overflowed"
