"""Priority of a waiting chat and match score of an agent for a chat.

Priority = page + loyalty + returning + level + aging, where aging grows with
one rate for everyone, so the queue can be keyed on ``base - rate·t0``.
Match = skill + load + sticky + exclusive + region + channel.
Both are sums of named parts so every decision can be explained.
"""

from __future__ import annotations

import math

from engine.rules import Rules
from engine.state import Agent, Chat, Visitor


def priority_parts(rules: Rules, v: Visitor) -> tuple[float, float, float, float]:
    """(page, loyalty, returning, level) of a visitor's chat, aging aside."""
    page = v.page
    weight = (rules.page_default if page is None
              else rules.page_weights.get(page, rules.page_default))
    loyalty = 0.0
    if v.member:
        loyalty += rules.member
    orders = v.orders
    if orders:
        cap = rules.max_orders
        loyalty += rules.per_order * (orders if orders < cap else cap)  # min(orders, cap)
    if v.ltv:
        points = rules.per_1000_ltv * v.ltv / 1000.0
        cap_points = rules.max_ltv_points
        loyalty += points if points < cap_points else cap_points  # min(cap_points, points)
    return (weight, loyalty, rules.returning if v.returning else 0.0,
            rules.levels[v.tier])


def priority_base(rules: Rules, v: Visitor) -> float:
    """A chat's priority without aging: the sum of ``priority_parts``."""
    page, loyalty, returning, level = priority_parts(rules, v)
    return page + loyalty + returning + level


def priority_at(rules: Rules, c: Chat, now: int) -> float:
    """The priority of waiting chat ``c`` at time ``now``, as outputs show it."""
    return round3(c.base + rules.aging_per_ms * (now - c.t0))


def round3(x: float) -> float:
    """``round(x, 3)``, the same float, without its decimal conversion where
    the thousandths are not within the product's error of a half.

    ``round`` rounds the exact binary value to a decimal and takes the float
    nearest to it; where ``x * 1000`` (off by at most half an ulp, under
    1e-7 below 1e9) is not that close to a half, its nearest integer ``n`` is
    the exact value's too, and ``n / 1000`` (one correctly rounded division)
    is the float nearest to that decimal. Outputs carry a few such numbers
    each, and the conversion was the larger part of building them.
    """
    y = x * 1000.0
    if not -1e9 < y < 1e9:
        return round(x, 3)  # large, infinite or NaN
    f = math.floor(y)
    d = y - f
    if -1e-6 < d - 0.5 < 1e-6:
        return round(x, 3)  # near a half: the exact value decides
    n = f if d < 0.5 else f + 1
    return math.copysign(n / 1000.0, x)  # -0.0 stays -0.0, as round keeps it


def skill_of_request(
    rules: Rules, explicit: str | None, message: str | None, v: Visitor
) -> str | None:
    """The skill a new chat needs: explicit, message keywords, page, search, category."""
    if explicit:
        return explicit
    if message and rules.skill_keywords:
        text = message.lower()
        for word, skill in rules.skill_keywords:
            if word in text:
                return skill
    if v.page is not None:
        by_page = rules.skill_pages.get(v.page)
        if by_page is not None:
            return by_page
    if v.keyword and rules.skill_search:
        text = v.keyword.lower()
        for word, skill in rules.skill_search:
            if word in text:
                return skill
    if v.category is not None:
        return rules.skill_categories.get(v.category)
    return None


#: (skill, load, sticky, exclusive, region, channel)
MatchParts = tuple[float, float, float, float, float, float]


def match_parts(rules: Rules, a: Agent, c: Chat, v: Visitor) -> MatchParts:
    """The match score of agent ``a`` for chat ``c`` as its parts (``MatchParts``)."""
    skill = rules.w_skill * a.skills.get(c.skill, 0) if c.skill is not None else 0.0
    cap = a.capacity
    load = rules.w_load * (1.0 - a.used / cap) if cap else 0.0
    sticky = rules.w_sticky if v.last_agent == a.id else 0.0
    exclusive = rules.w_exclusive if v.exclusive == a.id else 0.0
    region = rules.w_region if v.region is not None and a.regions and v.region in a.regions else 0.0
    channel = (
        rules.w_channel if v.channel is not None and a.channels and v.channel in a.channels
        else 0.0
    )
    return skill, load, sticky, exclusive, region, channel


def match_sum(m: MatchParts) -> float:
    """``sum(m)`` as Python 3.11 adds floats: from 0, left to right. Spelled
    out, compiled code adds native floats instead of boxing the parts into a
    tuple object for the builtin."""
    skill, load, sticky, exclusive, region, channel = m
    return 0.0 + skill + load + sticky + exclusive + region + channel


def match_total(rules: Rules, a: Agent, c: Chat, v: Visitor) -> float:
    """The match score: the sum of ``match_parts``, in their order."""
    return match_sum(match_parts(rules, a, c, v))


def units_of(rules: Rules, skill: str | None) -> int:
    """Units of an agent's capacity a chat of ``skill`` holds (``[capacity.weights]``)."""
    if skill is None or not rules.capacity_weights:
        return 1
    return rules.capacity_weights.get(skill, 1)


def fits(rules: Rules, a: Agent, c: Chat) -> bool:
    """Whether the agent has the units free that the chat holds (the indexes
    only know the agent has one)."""
    return a.used + units_of(rules, c.skill) <= a.capacity


def eligible(rules: Rules, a: Agent, c: Chat, v: Visitor) -> bool:
    """Hard constraints besides tenant, status and room (checked by the indexes
    and ``fits``); a chat heavier than the agent's whole capacity never is."""
    if a.id in c.excluded:
        return False
    if c.need and a.skills.get(c.skill, 0) < c.need:  # type: ignore[arg-type]
        return False  # a skilled step's least level
    if rules.capacity_weights and units_of(rules, c.skill) > a.capacity:
        return False
    skill = c.skill
    if (skill is not None and skill not in a.skills
            and (rules.skill_required or skill in rules.required_skills)):
        return False
    if rules.channel_required and a.channels is not None and v.channel not in a.channels:
        return False
    return not (rules.region_required and a.regions is not None and v.region not in a.regions)
