"""Routing steps: the targets a waiting chat widens through as it waits.

A tenant's steps are tried in order. A chat starts at the first step that
applies to it and moves on when the step's time is up (or, ``predictive``,
as soon as its predicted wait in the step is longer than that time). While
it is in a step only the agents the step allows may take it; its priority
and its place in the queue never change from step to step.

Kinds of step (``agents``):

- ``exclusive``: the visitor's exclusive agent (the chat is reserved for
  them); skipped without one, when they are offline or cannot take the chat.
- ``last``: the agent who last served the visitor (reserved for them);
  skipped for a first-time visitor, when that agent is not online or cannot
  take the chat.
- ``skilled``: agents with the chat's skill at ``min_level`` or higher;
  skipped for a chat that needs no skill.
- ``any``: any agent the rules' hard constraints allow.

A step naming a ``tenant`` (the platform) overflows the chat there when the
chat reaches it. Rules without ``[[routing.steps]]`` get steps derived from
their older keys (``derived``), which route exactly as those keys always
have: their time counts from the chat's arrival (``from_arrival``), not from
the moment the chat entered the step, and a requeued chat looks at them from
the first one again.
"""

from __future__ import annotations

from dataclasses import dataclass

EXCLUSIVE, LAST, SKILLED, ANY = "exclusive", "last", "skilled", "any"
KINDS = (EXCLUSIVE, LAST, SKILLED, ANY)
#: the kinds that reserve the chat for one agent (it waits in their queue)
RESERVING = (EXCLUSIVE, LAST)
#: the name a transfer's own first step goes by in ``chat.assigned``
TRANSFER = "transfer"


@dataclass(frozen=True, slots=True)
class Step:
    """One routing step (see the module's docstring)."""

    name: str
    agents: str
    timeout_ms: int = 0  # 0: the chat stays in the step until served
    min_level: int = 1  # skilled: the least skill level
    predictive: bool = False
    tenant: str | None = None  # the chat overflows to this tenant on reaching the step
    from_arrival: bool = False  # derived steps: the timeout counts from arrival

    def __reduce__(self) -> tuple[object, ...]:
        # pickled field by field (compiled, a frozen class refuses setattr)
        return (Step, (self.name, self.agents, self.timeout_ms, self.min_level,
                       self.predictive, self.tenant, self.from_arrival))


def derived(reserves: bool, exclusive_wait_ms: int, sticky_wait_ms: int) -> tuple[Step, ...]:
    """The steps of rules that name none: the exclusive agent for
    ``exclusive_wait_s`` and the last agent for ``sticky_wait_s`` (each from
    the chat's arrival, where the policy reserves), then anyone."""
    steps = []
    if reserves and exclusive_wait_ms > 0:
        steps.append(Step(EXCLUSIVE, EXCLUSIVE, exclusive_wait_ms, from_arrival=True))
    if reserves and sticky_wait_ms > 0:
        steps.append(Step(LAST, LAST, sticky_wait_ms, from_arrival=True))
    steps.append(Step(ANY, ANY))
    return tuple(steps)


def transfer_step(to_agent: str | None, wait_ms: int) -> Step:
    """A transfer's first step: its agent (reserved) or its skill, for ``wait_ms``."""
    if to_agent is not None:
        return Step(TRANSFER, EXCLUSIVE, wait_ms)
    return Step(TRANSFER, SKILLED, wait_ms)
