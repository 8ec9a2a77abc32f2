"""Compact builders for contract events and a driver that feeds them to an Engine.

Build events with :class:`EventBuilder` (ids and timestamps are numbered
automatically; every method takes ``tenant=``, ``ts=`` and ``id=`` to override),
then apply them with :func:`run` (a fresh engine) or a :class:`Driver` (one
engine, fed step by step)::

    b = EventBuilder()
    out = run([b.agent("a1", capacity=1), b.page("v1", "cart"), b.request("v1", "c1")])
    assert one(out, "chat.assigned", chat="c1")["agent"] == "a1"

Events are validated with ``schemas.events.validate`` before they are applied,
so a test exercises the same defaults a real input line gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine import Engine, Rules, parse_rules
from schemas.events import Event, validate

#: 2026-11-11T00:00:00Z in ms: a fixed, realistic epoch for every test
T0 = 1_794_355_200_000

_UNSET: Any = object()


class EventBuilder:
    """Makes contract input events with auto-numbered ``id`` and ``ts``.

    Each event is ``step_ms`` after the previous one unless ``ts=`` is given;
    :meth:`wait` and :meth:`at` move the clock explicitly. Ids are
    ``"<prefix><n>"``, unique across tenants. Fields given as ``None`` are
    left out; ``**extra`` adds any other (e.g. unknown) field as is.
    """

    def __init__(
        self, tenant: str = "shop", *, start: int = T0, step_ms: int = 1000, prefix: str = "e"
    ) -> None:
        self.tenant = tenant
        self.now = start - step_ms  # the first event lands on ``start``
        self.step_ms = step_ms
        self.prefix = prefix
        self.count = 0
        self._agents: dict[tuple[str, str], dict[str, Any]] = {}

    # ---------------------------------------------------------------- time

    def wait(self, seconds: float) -> int:
        """Move the clock forward; the next event (without ``ts=``) comes after it."""
        self.now += round(seconds * 1000)
        return self.now

    def at(self, ts: int) -> int:
        """Set the clock; the next event (without ``ts=``) is ``step_ms`` after ``ts``."""
        self.now = ts
        return self.now

    # --------------------------------------------------------------- generic

    def event(
        self, etype: str, *, tenant: Any = _UNSET, ts: int | None = None, id: str | None = None,
        **fields: Any,
    ) -> Event:
        """Any event; ``tenant=None`` leaves the tenant out (a clock for all tenants)."""
        if ts is None:
            self.now += self.step_ms
            ts = self.now
        else:
            self.now = max(self.now, ts)
        self.count += 1
        ev: Event = {"type": etype, "id": id if id is not None else f"{self.prefix}{self.count}"}
        ev["ts"] = ts
        name = self.tenant if tenant is _UNSET else tenant
        if name is not None:
            ev["tenant"] = name
        ev.update({k: v for k, v in fields.items() if v is not None})
        return ev

    # ---------------------------------------------------------------- agents

    def agent(
        self, agent: str, status: str = "online", *, capacity: int | None = None,
        skills: Mapping[str, int] | None = None, channels: list[str] | None = None,
        regions: list[str] | None = None, **kw: Any,
    ) -> Event:
        """``agent.state``. Capacity, skills, channels and regions not given are
        those this builder last sent for the agent (capacity 5, no skills at first)."""
        tenant = kw.get("tenant", self.tenant)
        last = self._agents.get((tenant, agent), {"capacity": 5, "skills": {}})
        state = {
            "capacity": capacity if capacity is not None else last["capacity"],
            "skills": dict(skills) if skills is not None else dict(last["skills"]),
            "channels": channels if channels is not None else last.get("channels"),
            "regions": regions if regions is not None else last.get("regions"),
        }
        self._agents[(tenant, agent)] = state
        return self.event("agent.state", agent=agent, status=status, **state, **kw)

    def away(self, agent: str, **kw: Any) -> Event:
        return self.agent(agent, "away", **kw)

    def offline(self, agent: str, **kw: Any) -> Event:
        return self.agent(agent, "offline", **kw)

    # -------------------------------------------------------------- visitors

    def arrive(
        self, visitor: str, channel: str = "web", *, region: str | None = None,
        customer: Mapping[str, Any] | None = None, exclusive_agent: str | None = None,
        **kw: Any,
    ) -> Event:
        """``visitor.arrived``."""
        return self.event(
            "visitor.arrived", visitor=visitor, channel=channel, region=region,
            customer=dict(customer) if customer is not None else None,
            exclusive_agent=exclusive_agent, **kw,
        )

    def page(
        self, visitor: str, page: str, *, keyword: str | None = None,
        category: str | None = None, sku: str | None = None, **kw: Any,
    ) -> Event:
        """``page.viewed``."""
        return self.event(
            "page.viewed", visitor=visitor, page=page, keyword=keyword, category=category,
            sku=sku, **kw,
        )

    def order(self, visitor: str, amount: float, **kw: Any) -> Event:
        """``order.placed``."""
        return self.event("order.placed", visitor=visitor, amount=amount, **kw)

    def leave(self, visitor: str, **kw: Any) -> Event:
        """``visitor.left``."""
        return self.event("visitor.left", visitor=visitor, **kw)

    # ----------------------------------------------------------------- chats

    def request(
        self, visitor: str, chat: str, *, message: str | None = None, skill: str | None = None,
        **kw: Any,
    ) -> Event:
        """``chat.requested``."""
        return self.event(
            "chat.requested", visitor=visitor, chat=chat, message=message, skill=skill, **kw
        )

    def accept(self, chat: str, agent: str, **kw: Any) -> Event:
        return self.event("chat.accepted", chat=chat, agent=agent, **kw)

    def decline(self, chat: str, agent: str, **kw: Any) -> Event:
        return self.event("chat.declined", chat=chat, agent=agent, **kw)

    def transfer(self, chat: str, agent: str, *, to_agent: str | None = None,
                 to_skill: str | None = None, **kw: Any) -> Event:
        """``chat.transferred`` from ``agent`` to ``to_agent`` or ``to_skill``."""
        return self.event("chat.transferred", chat=chat, agent=agent, to_agent=to_agent,
                          to_skill=to_skill, **kw)

    def escalate(self, chat: str, **kw: Any) -> Event:
        """``bot.escalated``."""
        return self.event("bot.escalated", chat=chat, **kw)

    def end(self, chat: str, *, resolved: bool | None = None, **kw: Any) -> Event:
        """``chat.ended``."""
        return self.event("chat.ended", chat=chat, resolved=resolved, **kw)

    def clock(self, *, tenant: str | None = None, **kw: Any) -> Event:
        """``clock``; for every tenant unless ``tenant=`` names one."""
        return self.event("clock", tenant=tenant, **kw)


# ------------------------------------------------------------------ driving


def make_rules(rules: Rules | Mapping[str, Any] | None = None) -> Rules:
    """``Rules`` as given, or parsed from a nested mapping (defaults when None)."""
    if isinstance(rules, Rules):
        return rules
    return parse_rules(rules or {})


def feed(engine: Engine, events: Iterable[Event], offset: int | None = None) -> list[Event]:
    """Validate and apply ``events`` in order; return all outputs.

    With ``offset``, events get consecutive log offsets starting there.
    """
    out: list[Event] = []
    for i, ev in enumerate(events):
        out.extend(engine.apply(validate(ev), None if offset is None else offset + i))
    return out


def run(
    events: Iterable[Event], rules: Rules | Mapping[str, Any] | None = None, **engine_kw: Any
) -> list[Event]:
    """The outputs of a fresh engine (``rules`` as ``Rules`` or a mapping) fed ``events``.

    ``engine_kw`` goes to ``Engine`` as is.
    """
    return feed(Engine(make_rules(rules), **engine_kw), events)


class Driver:
    """One engine fed step by step; keeps every output and numbers offsets.

    ``engine_kw`` goes to ``Engine`` as is.
    """

    def __init__(self, rules: Rules | Mapping[str, Any] | None = None, **engine_kw: Any) -> None:
        self.engine = Engine(make_rules(rules), **engine_kw)
        self.outputs: list[Event] = []
        self.offset = 0

    def feed(self, *events: Event) -> list[Event]:
        """Apply events; return the outputs they caused."""
        out = feed(self.engine, events, self.offset)
        self.offset += len(events)
        self.outputs.extend(out)
        return out


# ----------------------------------------------------------------- queries


def of(outputs: Iterable[Event], otype: str, **fields: Any) -> list[Event]:
    """Outputs of type ``otype`` whose fields equal ``fields``."""
    return [
        o for o in outputs
        if o["type"] == otype and all(o.get(k, _UNSET) == v for k, v in fields.items())
    ]


def one(outputs: Iterable[Event], otype: str, **fields: Any) -> Event:
    """The only output of type ``otype`` matching ``fields`` (assertion error otherwise)."""
    found = of(outputs, otype, **fields)
    assert len(found) == 1, f"expected one {otype} {fields}, got {found}"
    return found[0]


def assigned(outputs: Iterable[Event], **fields: Any) -> dict[str, str]:
    """chat -> agent of the ``chat.assigned`` outputs (the latest wins)."""
    return {o["chat"]: o["agent"] for o in of(outputs, "chat.assigned", **fields)}


def types(outputs: Iterable[Event]) -> list[str]:
    """The output types, in order."""
    return [o["type"] for o in outputs]
