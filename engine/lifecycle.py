"""A chat's lifecycle, written as data.

A chat is ``new`` until its request is decided, then ``waiting`` (queued or
reserved), ``assigned`` (offered to an agent; ``Chat.accepted`` says whether
the agent took it, so an offer and an accepted chat share the status that
outputs and records show), ``bot`` (served by the chat bot) or ``forwarded``
(overflowed to another tenant). ``ended`` is the last status: the chat is
gone from its tenant.

``TRANSITIONS`` lists every allowed move with the name of what causes it;
``step`` is the one place a status changes, and refuses any other move.
"""

from __future__ import annotations

NEW, WAITING, ASSIGNED, BOT, FORWARDED, ENDED = (
    "new", "waiting", "assigned", "bot", "forwarded", "ended")

#: (from, to) -> what moves a chat so
TRANSITIONS: dict[tuple[str, str], str] = {
    (NEW, WAITING): "requested",  # or handed over to the platform tenant
    (NEW, BOT): "to_bot",
    (BOT, WAITING): "escalated",
    (WAITING, WAITING): "rerouted",  # its reservation lapsed or its agent went
    (WAITING, ASSIGNED): "assigned",
    (ASSIGNED, WAITING): "requeued",  # declined, offer timed out, agent away/offline
    (WAITING, FORWARDED): "overflowed",
    (WAITING, ENDED): "abandoned",
    (ASSIGNED, ENDED): "ended",
    (BOT, ENDED): "ended",
    (FORWARDED, ENDED): "ended",  # ended where it went, or passed on from here
}


class LifecycleError(Exception):
    """A status change that ``TRANSITIONS`` does not allow (a bug in the engine)."""


#: from -> where it may go (what ``step`` looks up: no tuple per move)
ALLOWED: dict[str, frozenset[str]] = {
    s: frozenset(b for a, b in TRANSITIONS if a == s) for s, _ in TRANSITIONS}


def step(status: str, to: str) -> str:
    """``to`` if a chat in ``status`` may move there; else LifecycleError."""
    allowed = ALLOWED.get(status)
    if allowed is None or to not in allowed:
        raise LifecycleError(f"chat status {status!r} cannot become {to!r}")
    return to
