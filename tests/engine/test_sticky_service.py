"""A visitor's last agent (stickiness, ``reason: "sticky"``) is the agent who
served them: who accepted their chat, or held it when it ended. An offer
declined or timed out never makes an agent sticky (issue 21, item 3)."""

from __future__ import annotations

from tests.helpers import Driver, EventBuilder, assigned, of, one


def setup(d: Driver, b: EventBuilder) -> None:
    """anna (seq 1) holds one chat of two, bob (seq 2) is empty: on load alone
    a new chat goes to bob; only stickiness would send it to anna."""
    d.feed(b.agent("anna", capacity=2))
    d.feed(b.request("x", "busy"))
    d.feed(b.agent("bob", capacity=2))
    d.feed(b.event("agent.state", agent="bob", status="away"))


def back(d: Driver, b: EventBuilder, chat: str) -> dict[str, object]:
    """v-1002 comes back with ``chat`` while anna (1 of 2) and bob (0 of 2) are free."""
    d.feed(b.event("agent.state", agent="bob", status="online"))
    return one(d.feed(b.arrive("v-1002"), b.request("v-1002", chat)), "chat.assigned")


def test_an_agent_who_declined_does_not_become_sticky() -> None:
    """The issue's morning: anna declines v-1002's chat, which is then
    abandoned; when v-1002 comes back, anna is not their last agent."""
    b = EventBuilder()
    d = Driver()
    setup(d, b)
    out = d.feed(b.arrive("v-1002"), b.request("v-1002", "c1"), b.decline("c1", "anna"))
    assert one(out, "chat.requeued")["why"] == "declined"
    assert one(d.feed(b.leave("v-1002")), "chat.abandoned")["chat"] == "c1"
    a = back(d, b, "c2")
    assert (a["agent"], a["reason"]) == ("bob", "best")
    assert a["score"]["sticky"] == 0.0  # type: ignore[index]


def test_an_offer_that_timed_out_does_not_make_the_agent_sticky() -> None:
    b = EventBuilder()
    d = Driver({"assignment": {"acceptance_required": True, "offer_timeout_s": 10}})
    setup(d, b)
    d.feed(b.accept("busy", "anna"))
    d.feed(b.arrive("v-1002"), b.request("v-1002", "c1"))
    out = d.feed(b.clock(ts=b.now + 10_000))
    assert one(out, "chat.requeued")["why"] == "offer_timeout"
    d.feed(b.leave("v-1002"))
    a = back(d, b, "c2")
    assert (a["agent"], a["reason"]) == ("bob", "best")


def test_a_chat_that_ended_makes_its_agent_sticky() -> None:
    b = EventBuilder()
    d = Driver()
    setup(d, b)
    d.feed(b.arrive("v-1002"), b.request("v-1002", "c1"), b.end("c1"))
    a = back(d, b, "c2")
    assert (a["agent"], a["reason"]) == ("anna", "sticky")


def test_an_accepted_chat_makes_its_agent_sticky_before_it_ends() -> None:
    """A second chat of the visitor while the first, accepted, is still open."""
    b = EventBuilder()
    d = Driver({"assignment": {"acceptance_required": True}})
    setup(d, b)
    d.feed(b.accept("busy", "anna"))
    d.feed(b.arrive("v-1002"), b.request("v-1002", "c1"), b.accept("c1", "anna"))
    d.feed(b.event("agent.state", agent="anna", status="online", capacity=3))
    a = back(d, b, "c2")
    assert (a["agent"], a["reason"]) == ("anna", "sticky")


def test_an_offer_alone_does_not_make_the_agent_sticky() -> None:
    """Assigned but neither accepted nor ended: a second chat is not reserved."""
    b = EventBuilder()
    d = Driver({"assignment": {"acceptance_required": True}})
    setup(d, b)
    d.feed(b.accept("busy", "anna"))
    d.feed(b.arrive("v-1002"), b.request("v-1002", "c1"))
    d.feed(b.event("agent.state", agent="anna", status="online", capacity=3))
    a = back(d, b, "c2")
    assert (a["agent"], a["reason"]) == ("bob", "best")
    assert not of(d.outputs, "chat.requeued")
    assert assigned(d.outputs)["c1"] == "anna"
