"""The chat lifecycle table (engine/lifecycle.py): every status change goes
through it, and it refuses the moves it does not list."""

from __future__ import annotations

import pytest

from engine.lifecycle import ENDED, NEW, TRANSITIONS, LifecycleError, step
from engine.state import ASSIGNED, BOT, FORWARDED, WAITING, Chat
from tests.helpers import Driver, EventBuilder


def test_the_table_allows_its_moves_and_refuses_others() -> None:
    statuses = (NEW, WAITING, ASSIGNED, BOT, FORWARDED, ENDED)
    for frm in statuses:
        for to in statuses:
            if (frm, to) in TRANSITIONS:
                assert step(frm, to) == to
            else:
                with pytest.raises(LifecycleError):
                    step(frm, to)
    assert not any(frm == ENDED for frm, _ in TRANSITIONS)  # ended is the end


def test_a_chat_moves_only_as_the_table_says() -> None:
    c = Chat("c1", "c1", 1, "v1", 0)
    assert c.status == NEW
    with pytest.raises(LifecycleError):
        c.move(ASSIGNED)  # a chat is routed (waiting) before it is assigned
    c.move(WAITING)
    c.move(ASSIGNED)
    c.move(WAITING)  # requeued
    c.move(ENDED)
    with pytest.raises(LifecycleError):
        c.move(WAITING)


def test_a_served_chat_goes_through_the_table() -> None:
    b = EventBuilder()
    d = Driver({})
    d.feed(b.agent("a1", capacity=1), b.arrive("v1"), b.request("v1", "c1"))
    c = d.engine.tenants["shop"].chats["c1"]
    assert c.status == ASSIGNED
    d.feed(b.end("c1"))
    assert c.status == ENDED and "c1" not in d.engine.tenants["shop"].chats
