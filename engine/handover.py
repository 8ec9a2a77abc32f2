"""Hand-over: a merchant's chat that waited too long goes to the platform tenant.

Two modes (``Engine(handoff=...)``). ``inline`` (one engine holds every
tenant, the embedded runtime): the platform takes the chat over at once, and
later events about it are followed there. ``external`` (tenants partitioned
over workers): the engine emits ``event.forwarded`` outputs carrying a
``chat.handed_over`` input for the platform, and later events about the chat
sent to the merchant are forwarded the same way; the shell publishes them as
inputs keyed by the platform tenant.

This module holds both modes as strategies (:class:`Inline`,
:class:`External`: the three moments where they differ, each mode's answers
together) and builds what crosses between tenants (the hand-over input, the
forwarded inputs, the platform's copy of the chat). The engine decides when a
chat overflows and asks its strategy what that means.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from engine.lifecycle import FORWARDED
from engine.state import Chat, Visitor
from engine.tenant import Tenant
from schemas.events import OVERFLOW_SEP, Event

INLINE, EXTERNAL = "inline", "external"
HANDOFFS = (INLINE, EXTERNAL)


def forward_id(tenant: str, event_id: str) -> str:
    """A unique id, within the receiving tenant, for an event forwarded from ``tenant``."""
    fid = tenant + OVERFLOW_SEP + event_id
    if len(fid) <= 128:
        return fid
    return tenant + OVERFLOW_SEP + hashlib.sha256(event_id.encode()).hexdigest()[:40]


def platform_key(origin: str, ident: str) -> str:
    """The key, at the platform tenant, of a chat or visitor from ``origin``."""
    return origin + OVERFLOW_SEP + ident


def handover_input(origin: str, c: Chat, v: Visitor) -> Event:
    """The ``chat.handed_over`` input that gives chat ``c`` of ``origin`` to the platform."""
    handover: Event = {
        "type": "chat.handed_over", "chat": c.id, "visitor": v.id, "from": origin,
        "requested_ts": c.t0,
    }
    if c.skill is not None:
        handover["skill"] = c.skill
    carried = (("page", v.page), ("keyword", v.keyword), ("category", v.category),
               ("channel", v.channel), ("region", v.region))
    for field, value in carried:
        if value is not None:
            handover[field] = value
    handover["customer"] = {"member": v.member, "tier": v.tier, "orders": v.orders,
                            "ltv": v.ltv}
    handover["returning"] = v.returning
    return handover


def receive(p: Tenant, ev: Event) -> tuple[Chat, Visitor] | None:
    """The platform's new chat and visitor for a ``chat.handed_over`` input
    (None: it has that chat already). The chat is ``new``: the engine routes it."""
    origin = ev["from"]
    key = platform_key(origin, ev["chat"])
    if key in p.chats:
        return None
    pv_id = platform_key(origin, ev["visitor"])
    pv = p.visitors.get(pv_id)
    if pv is None:
        pv = p.visitors[pv_id] = Visitor(pv_id, p.now)
    pv.page, pv.keyword, pv.category = ev.get("page"), ev.get("keyword"), ev.get("category")
    pv.channel, pv.region = ev.get("channel"), ev.get("region")
    cust = ev.get("customer")
    if cust is not None:
        pv.member, pv.tier, pv.orders, pv.ltv = (
            cust["member"], cust["tier"], cust["orders"], cust["ltv"])
    pv.returning = bool(ev.get("returning", False))
    pv.left = False
    pc = Chat(key, ev["chat"], p.take_seq(), pv_id, ev["requested_ts"])
    pc.origin = origin
    pc.skill = ev.get("skill")
    pc.mode = "human_only"
    p.chats[key] = pc
    pv.chats += (key,)
    return pc, pv


def passed_on(ev: Event, c: Chat) -> Event:
    """The fields of an event about forwarded chat ``c`` to pass on to where
    it went (``visitor.left`` ends the chat there)."""
    fwd = {k: v for k, v in ev.items() if k not in ("tenant", "id", "ts")}
    fwd["type"] = "chat.ended" if ev["type"] == "visitor.left" else ev["type"]
    fwd["chat"] = c.id
    fwd.pop("visitor", None)
    return fwd


def forwarded_input(origin: str, to: str, event_id: str, fields: Event, now: int) -> Event:
    """The input for tenant ``to`` that carries ``fields`` (their ``type`` included)."""
    event: Event = {"type": fields.pop("type"), "id": forward_id(origin, event_id),
                    "ts": now, "tenant": to}
    if event["type"] != "chat.handed_over":
        fields["origin"] = origin
    event.update(fields)
    return event


class Host(Protocol):
    """What a strategy asks of the engine that holds it."""

    tenants: dict[str, Tenant]

    def _tenant_at(self, name: str, now: int) -> Tenant: ...

    def _advance(self, t: Tenant, ts: int) -> None: ...

    def _receive(self, p: Tenant, ev: Event) -> None: ...

    def _forward(self, t: Tenant, to: str, event_id: str, fields: Event, c: Chat) -> None: ...

    def _drop(self, t: Tenant, c: Chat) -> None: ...


class Inline:
    """One engine holds every tenant: the platform takes a chat over at once."""

    def overflowed(self, eng: Host, t: Tenant, c: Chat, handed: Event, to: str) -> None:
        """Chat ``c`` of ``t`` overflowed to tenant ``to`` (``handed``: its hand-over input)."""
        eng._receive(eng._tenant_at(to, t.now), handed)

    def follow(self, eng: Host, t: Tenant, ev: Event, c: Chat) -> tuple[Tenant, Chat] | None:
        """Where event ``ev`` about ``t``'s forwarded chat ``c`` applies (None: nowhere here)."""
        assert c.to is not None
        target = eng.tenants[c.to]  # it received the chat
        eng._advance(target, t.now)
        fc = target.chats.get(platform_key(t.name, c.id))
        return (target, fc) if fc is not None else None

    def dropped(self, eng: Host, t: Tenant, c: Chat) -> None:
        """Chat ``c`` is gone from ``t``; a platform copy ends its merchant's chat."""
        if c.origin is None:
            return
        home = eng.tenants.get(c.origin)
        if home is not None:
            hc = home.chats.get(c.id)
            if hc is not None and hc.status == FORWARDED:
                eng._drop(home, hc)


class External:
    """Tenants partitioned over workers: what crosses is published as inputs."""

    def overflowed(self, eng: Host, t: Tenant, c: Chat, handed: Event, to: str) -> None:
        eng._forward(t, to, "overflow:" + c.id, handed, c)

    def follow(self, eng: Host, t: Tenant, ev: Event, c: Chat) -> tuple[Tenant, Chat] | None:
        assert c.to is not None
        fwd = passed_on(ev, c)
        ended = fwd["type"] == "chat.ended"
        eng._forward(t, c.to, ev["id"], fwd, c)
        if ended:
            eng._drop(t, c)
        return None

    def dropped(self, eng: Host, t: Tenant, c: Chat) -> None:
        return None  # the merchant's chat ended when it was passed on


STRATEGIES: dict[str, Inline | External] = {INLINE: Inline(), EXTERNAL: External()}
