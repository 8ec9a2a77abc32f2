"""Routing policies behind one small interface.

A policy orders the waiting queue (``queue_key``) and picks an agent among the
available ones that pass the hard constraints (``pick``). ``priority`` is
routeq's own; the baselines are what the field ships by default:

- ``fifo_round_robin``: first come first served, agents in turn (Chatwoot).
- ``least_loaded``: FIFO, the agent with the lowest share of capacity in use
  (Rocket.Chat load balancing, Zendesk spare capacity).
- ``longest_idle``: FIFO, the agent who finished a chat or came online
  longest ago (Genesys "next agent", Rocket.Chat load rotation).

Every choice is a maximum over a total order that ends in the agent's
persisted ``seq``, so it does not depend on dict order and a restored engine
chooses exactly as an uninterrupted one.
"""

from __future__ import annotations

from engine.rules import Rules
from engine.scoring import eligible, fits, match_total, units_of
from engine.state import Agent, Chat, Visitor
from engine.tenant import Tenant


class Policy:
    name = "policy"
    #: reservations for the exclusive / last agent (sticky routing)
    reserves = False
    #: the queue is ordered by priority (a visitor's change re-keys their chat)
    prioritised = False
    #: picks from ``Tenant.roster`` (score classes) rather than scanning agents
    uses_roster = False

    def queue_key(self, rules: Rules, base: float, t0: int) -> float:
        """Ascending key of a waiting chat (smaller = served first)."""
        return float(t0)

    def pool(self, rules: Rules, t: Tenant, c: Chat) -> dict[str, Agent]:
        """The agents with room who may take the chat, by id (a dict, which
        compiled code walks natively)."""
        if c.need or rules.requires(c.skill):
            return t.avail.get(c.skill, {})  # type: ignore[arg-type]
        return t.avail_all

    def pick(self, rules: Rules, t: Tenant, c: Chat, v: Visitor) -> Agent | None:
        best: Agent | None = None
        best_key: tuple[float, ...] | None = None
        weighted = bool(rules.capacity_weights)  # else an agent with room fits any chat
        for a in self.pool(rules, t, c).values():
            if not eligible(rules, a, c, v) or (weighted and not fits(rules, a, c)):
                continue
            k = self.rank(rules, t, a, c, v)
            if best_key is None or k < best_key:
                best, best_key = a, k
        return best

    def rank(self, rules: Rules, t: Tenant, a: Agent, c: Chat, v: Visitor) -> tuple[float, ...]:
        """Ascending rank of a candidate agent (smallest wins)."""
        raise NotImplementedError


class PriorityPolicy(Policy):
    name = "priority"
    reserves = True
    prioritised = True
    uses_roster = True

    def queue_key(self, rules: Rules, base: float, t0: int) -> float:
        return rules.aging_per_ms * t0 - base

    def pick(self, rules: Rules, t: Tenant, c: Chat, v: Visitor) -> Agent | None:
        # agents with the chat's skill first; anyone else only if none of them fits
        if c.skill is not None:
            best = self.best_in(rules, t, c.skill, c, v)
            if best is not None or c.need or rules.requires(c.skill):
                return best
        return self.best_in(rules, t, None, c, v)

    @staticmethod
    def best_in(rules: Rules, t: Tenant, pool: str | None, c: Chat, v: Visitor) -> Agent | None:
        """The best agent of ``pool`` for ``c``: highest match, then lowest seq.

        Walks the roster's classes (see ``engine/roster.py``) instead of the
        agents; the visitor's exclusive and last agent are scored one by one.
        """
        roster = t.roster
        best: Agent | None = None
        best_score = 0.0
        for aid in (v.exclusive, v.last_agent):
            if aid is None:
                continue
            a = t.agents.get(aid)
            if (a is None or not roster.in_pool(a, pool) or not eligible(rules, a, c, v)
                    or not fits(rules, a, c)):
                continue
            s = match_total(rules, a, c, v)
            if best is None or s > best_score or (s == best_score and a.seq < best.seq):
                best, best_score = a, s
        classes = roster.pools.get(pool)
        if not classes:
            return best
        region, channel, excluded = v.region, v.channel, c.excluded
        w_region, w_channel = rules.w_region, rules.w_channel
        # the most region and channel can add: bounds every later class
        up_r = w_region if region is not None and w_region > 0 else 0.0
        up_c = w_channel if channel is not None and w_channel > 0 else 0.0
        by_seq = roster.by_seq
        # a chat heavier than one unit: an agent of the class must have them free
        units = units_of(rules, c.skill)
        skill, need = c.skill, c.need  # a skilled step's least level
        for key in roster.order(pool):
            part, regions, channels = key
            if best is not None and part + up_r + up_c < best_score:
                break
            if rules.channel_required and channels is not None and channel not in channels:
                continue
            if rules.region_required and regions is not None and region not in regions:
                continue
            s = part  # summed in match_parts' order: bit-identical scores
            if region is not None and regions and region in regions:
                s += w_region
            if channel is not None and channels and channel in channels:
                s += w_channel
            if best is not None and s < best_score:
                continue
            for seq in classes[key]:
                if best is not None and s == best_score and seq >= best.seq:
                    break
                a = by_seq[seq]
                if (a.id not in excluded and (units == 1 or fits(rules, a, c))
                        and (not need or a.skills.get(skill, 0) >= need)):  # type: ignore[arg-type]
                    best, best_score = a, s
                    break
        return best

    def rank(self, rules: Rules, t: Tenant, a: Agent, c: Chat, v: Visitor) -> tuple[float, ...]:
        return (-match_total(rules, a, c, v), a.seq)


class ValuePolicy(PriorityPolicy):
    """``priority``'s queue and placement with each chat's page part set to its
    class's value index (``Rules`` computes it from ``[value]``)."""

    name = "value"


class RoundRobinPolicy(Policy):
    name = "fifo_round_robin"

    def rank(self, rules: Rules, t: Tenant, a: Agent, c: Chat, v: Visitor) -> tuple[float, ...]:
        # the next agent after the last one served, in order of first appearance
        return ((a.seq - t.rr - 1) % (t.next_seq + 1), a.seq)


class LeastLoadedPolicy(Policy):
    name = "least_loaded"

    def rank(self, rules: Rules, t: Tenant, a: Agent, c: Chat, v: Visitor) -> tuple[float, ...]:
        units = a.used
        return (units / a.capacity, units, a.idle_since, a.seq)


class LongestIdlePolicy(Policy):
    name = "longest_idle"

    def rank(self, rules: Rules, t: Tenant, a: Agent, c: Chat, v: Visitor) -> tuple[float, ...]:
        return (a.idle_since, a.seq)


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (PriorityPolicy(), ValuePolicy(), RoundRobinPolicy(), LeastLoadedPolicy(),
              LongestIdlePolicy())
}


def policy_for(rules: Rules) -> Policy:
    return POLICIES[rules.policy]
