"""Agents with room, grouped into classes the match score cannot tell apart.

The priority policy scores agent ``a`` for a chat needing skill ``s`` as
``skill(a, s) + load(a) + sticky + exclusive + region + channel`` and breaks
ties on the agent's ``seq``. Leaving aside the visitor's last and exclusive
agent (scored one by one), agents with the same skill level, the same load and
the same regions and channels score the same for every chat: they form one
class, and only its lowest ``seq`` that the chat may go to can win. So a pick
walks classes, best first, and stops when no later class can catch up; at a
shift start with 2,000 agents alike that is one class, not 2,000 agents.

A pool is one skill (agents who have it) or ``None`` (every agent with room).
A class key is ``(score part, regions, channels)`` where the score part is
``w_skill·level + w_load·free share`` computed exactly as
``scoring.match_parts`` computes those parts and summed in the same order, so
a class's score is bit-identical to each member's.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from operator import itemgetter

from engine.state import Agent

ClassKey = tuple[float, "tuple[str, ...] | None", "tuple[str, ...] | None"]
_SCORE = itemgetter(0)


class Roster:
    __slots__ = ("pools", "_order", "_filed", "by_seq")

    def __init__(self) -> None:
        #: pool -> class key -> seqs of its agents, ascending
        self.pools: dict[str | None, dict[ClassKey, list[int]]] = {}
        self._order: dict[str | None, list[ClassKey]] = {}  # cache: keys, best score first
        self._filed: dict[int, list[tuple[str | None, ClassKey]]] = {}
        self.by_seq: dict[int, Agent] = {}

    def __contains__(self, a: Agent) -> bool:
        return a.seq in self._filed

    def file(self, a: Agent, w_skill: float, w_load: float) -> None:
        """File an agent with room under its current skills, load, regions, channels."""
        load = w_load * (1.0 - a.used / a.capacity)
        regions, channels = a.regions, a.channels
        where: list[tuple[str | None, ClassKey]] = [(None, (0.0 + load, regions, channels))]
        for s, lvl in a.skills.items():
            where.append((s, (w_skill * lvl + load, regions, channels)))
        pools = self.pools
        seq = a.seq
        for pool, key in where:
            classes = pools.get(pool)
            if classes is None:
                classes = pools[pool] = {}
            seqs = classes.get(key)
            if seqs is None:
                classes[key] = [seq]
                self._order.pop(pool, None)
            elif seqs[-1] < seq:
                seqs.append(seq)
            else:
                insort(seqs, seq)
        self._filed[seq] = where
        self.by_seq[seq] = a

    def unfile(self, a: Agent) -> None:
        where = self._filed.pop(a.seq, None)
        if where is None:
            return
        del self.by_seq[a.seq]
        for pool, key in where:
            classes = self.pools[pool]
            seqs = classes[key]
            if len(seqs) == 1:
                del classes[key]
                self._order.pop(pool, None)
            else:
                del seqs[bisect_left(seqs, a.seq)]

    def in_pool(self, a: Agent, pool: str | None) -> bool:
        where = self._filed.get(a.seq)
        return where is not None and any(p == pool for p, _ in where)

    def order(self, pool: str | None) -> list[ClassKey]:
        """The pool's class keys, best score part first."""
        keys = self._order.get(pool)
        if keys is None:
            keys = self._order[pool] = sorted(self.pools.get(pool, ()), key=_SCORE, reverse=True)
        return keys
