"""One conformance suite, subclassed per runtime.

A runtime is anything a chat server can talk to: ``Engine.apply``, ``routeq
run``, ``routeq run --state`` killed and resumed, ``routeq serve`` over HTTP,
``routeq worker`` on a Kafka-protocol broker. A subclass says only how to hand
it input lines and how to read back, per input line, the outputs that line
caused (``execute``); the suite then checks, on Hypothesis streams and on
named cases, that

- every step keeps the contract, as ``tests/conformance/model.py`` (a chat
  server's model that shares no code with the engine) reads it;
- the runtime decides exactly what the engine decides, tenant by tenant
  (fields that only place an output in a runtime's log aside).
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any, ClassVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine, Rules, rules_from_toml
from schemas.events import EventError, decode
from tests.conformance.model import ChatServerModel, Step
from tests.conformance.streams import Obj, drain, encode, streams

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SPANS = "[" + ", ".join(f'"{h:02d}:{m:02d}-{h:02d}:{m + 20:02d}"'
                        for h in range(24) for m in (0, 40) if m + 20 < 60) + "]"

#: the rules of the runtimes shared by every example (serve, worker): RULES[1]
#: and the presence and capacity rules; tenants are renamed per example there
#: (``x0-m2``, ``k0-m2``, ...), so m2's hours (robot_only outside the first 20
#: minutes of every hour at +08:00; streams start on a Monday evening there)
#: are named for the first examples' prefixes
LIVE_RULES = (
    '[assignment]\nacceptance_required = true\noffer_timeout_s = 5.0\nsticky_wait_s = 20.0\n'
    'away_requeues = "all"\nmax_missed_offers = 2\nwrap_up_s = 10.0\noffline_grace_s = 20.0\n'
    '[capacity.weights]\nafter_sales = 2\nbilling = 3\n'
    + "".join(f'[hours.tenants."{p}{i}-m2"]\nutc_offset = "+08:00"\n'
              f'week = {{ mon = {SPANS}, tue = {SPANS} }}\n'
              for p, n in (("x", 250), ("k", 60)) for i in range(n)))

#: rules a stream runs under (TOML); the defaults first
RULES: tuple[str, ...] = (
    "",
    '[assignment]\nacceptance_required = true\noffer_timeout_s = 5.0\nsticky_wait_s = 20.0\n'
    'away_requeues = "all"\n',
    '[assignment]\nskill_required = true\nchannel_required = true\naway_requeues = "none"\n'
    'exclusive_wait_s = 30.0\n',
    'policy = "least_loaded"\n[modes]\ndefault = "human_only"\n[modes.pages]\n'
    'home = "robot_first"\n',
    'policy = "longest_idle"\n[assignment]\nacceptance_required = true\n'
    'offer_timeout_s = 30.0\n',
    '[overflow]\nenabled = true\nafter_s = 10.0\n[assignment]\nsticky_wait_s = 0.0\n',
    # policy value: pages ordered by their class's index, the class in chat.assigned
    'policy = "value"\n[assignment]\nsticky_wait_s = 20.0\n[value.pages.checkout]\n'
    'stake = 200.0\nhandle_s = 180.0\npatience_s = 60.0\n[value.pages.default]\n'
    'stake = 20.0\nhandle_s = 200.0\npatience_s = 90.0\n',
    '[assignment]\nrequired_skills = ["after_sales"]\nacceptance_required = true\n',
    '[assignment]\nacceptance_required = true\noffer_timeout_s = 5.0\nmax_missed_offers = 2\n'
    'wrap_up_s = 10.0\noffline_grace_s = 20.0\naway_requeues = "none"\n'
    '[capacity.weights]\nafter_sales = 2\nbilling = 3\n',
    # open the first 20 minutes of every hour (a stream spans about an hour): m1 closes,
    # m2 sends its chats to the bot outside them
    LIVE_RULES,
    '[hours.tenants.m1]\nafter_hours = "closed"\nclosed = ["2026-09-22"]\n'
    '[hours.tenants.m1.week]\n' + "".join(f'{d} = {SPANS}\n' for d in DAYS)
    + '[hours.tenants.m2]\nutc_offset = "+08:00"\n[hours.tenants.m2.week]\n'
    + "".join(f'{d} = {SPANS}\n' for d in DAYS),
)

#: fields that place an output in one runtime's log, not part of the decision
PLACEMENT = ("offset", "partition", "line")

#: runs of the suite, per runtime: examples, events and seconds (the closing note)
TALLY: dict[str, dict[str, float]] = {}


@functools.lru_cache(maxsize=16)
def parsed(rules: str) -> Rules:
    """The rules of a TOML text, parsed once (LIVE_RULES is long)."""
    return rules_from_toml(rules)


def reference(lines: list[bytes], rules: str) -> list[Step]:
    """The engine's decisions for ``lines``, line by line (the oracle of equality)."""
    engine = Engine(parsed(rules))
    steps = []
    for i, line in enumerate(lines):
        try:
            outputs = engine.apply(decode(line), offset=i)
        except EventError as err:
            outputs = [engine.reject(err, line, line=i + 1, offset=i)]
        steps.append(Step(line, outputs))
    return steps


def by_tenant(steps: list[Step]) -> dict[str, list[Obj]]:
    """Decisions per tenant, without the fields that only place them in a log."""
    out: dict[str, list[Obj]] = {}
    for step in steps:
        for o in step.outputs:
            if o["type"] in ("event.rejected", "event.forwarded"):
                continue
            o = {k: v for k, v in o.items() if k not in PLACEMENT}
            out.setdefault(o["tenant"], []).append(o)
    return out


def window(rules: str) -> int:
    return parsed(rules).dedup_window


def window_s(rules: str) -> float:
    return parsed(rules).dedup_window_ms / 1000


def presence(rules: str) -> dict[str, Any]:
    """The presence and capacity rules the model needs (missed offers, wrap-up, grace)."""
    data = parsed(rules).data
    return {**{k: data["assignment"][k]
               for k in ("max_missed_offers", "wrap_up_s", "offline_grace_s")},
            "capacity_weights": data["capacity"]["weights"],
            "hours": data["hours"]["tenants"]}


def verify(steps: list[Step], lines: list[bytes], rules: str, runtime: str) -> None:
    """The suite's two checks on what a runtime answered for ``lines``: the
    chat-server model reads every step, and the decisions equal the engine's
    tenant by tenant."""
    model = ChatServerModel(window(rules), window_s(rules), **presence(rules))
    for step in steps:
        model.feed(step)
    model.finish()
    expected = by_tenant(reference(lines, rules))
    got = by_tenant(steps)
    for tenant in sorted(set(expected) | set(got)):
        assert got.get(tenant, []) == expected.get(tenant, []), (
            f"{runtime} decided otherwise than the engine for tenant {tenant}")


class ConformanceSuite:
    """Subclass, set ``runtime`` and implement ``execute``."""

    runtime: ClassVar[str] = ""
    rules: ClassVar[tuple[str, ...]] = RULES
    examples: ClassVar[int] = 100
    max_size: ClassVar[int] = 80
    tenantless_clocks: ClassVar[bool] = True

    def execute(self, lines: list[bytes], rules: str) -> list[Step]:
        """Hand ``lines`` to the runtime under ``rules``; the outputs of each line."""
        raise NotImplementedError

    def prepare(self, events: list[Obj | str]) -> list[Obj | str]:
        """The stream as this runtime gets it (a shared runtime renames tenants)."""
        return events

    # ------------------------------------------------------------- checks

    def check(self, events: list[Obj | str], rules: str) -> None:
        lines = encode(self.prepare(events))
        started = time.monotonic()
        steps = self.execute(lines, rules)
        tally = TALLY.setdefault(self.runtime, {"examples": 0, "events": 0, "seconds": 0.0})
        tally["examples"] += 1
        tally["events"] += len(lines)
        tally["seconds"] += time.monotonic() - started
        assert [s.line for s in steps] == lines, "the runtime answered for other lines"
        verify(steps, lines, rules, self.runtime)

    def test_contract_holds_on_random_streams(self) -> None:
        @settings(max_examples=self.examples, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(streams(max_size=self.max_size, tenantless_clocks=self.tenantless_clocks),
               st.sampled_from(self.rules))
        def run(events: list[Obj | str], rules: str) -> None:
            self.check(events, rules)
        run()

    # ------------------------------------------------------- named cases

    def test_no_assignment_after_the_visitor_left(self) -> None:
        """A visitor with one chat served and one waiting leaves: the agent
        freed by the served chat must not get the waiting one."""
        t = 1_790_000_000_000
        events: list[Obj | str] = [
            ev("agent.state", "1", t, agent="ann", status="online", capacity=1),
            ev("chat.requested", "2", t + 1, visitor="v", chat="c1"),
            ev("chat.requested", "3", t + 2, visitor="v", chat="c2"),
            ev("visitor.left", "4", t + 3, visitor="v"),
            ev("chat.requested", "5", t + 4, visitor="w", chat="c3"),
        ]
        for rules in self.rules[:1]:
            self.check(events + drain(("m1",), t + 5), rules)

    def test_a_duplicate_changes_nothing(self) -> None:
        t = 1_790_000_000_000
        first = ev("chat.requested", "2", t + 1, visitor="v", chat="c1")
        events: list[Obj | str] = [
            ev("agent.state", "1", t, agent="ann", status="online", capacity=1),
            first, ev("chat.ended", "3", t + 2, chat="c1"), dict(first),
        ]
        self.check(events + drain(("m1",), t + 5), self.rules[0])

    def test_a_transfer_moves_the_chat_for_good(self) -> None:
        """ann transfers her chat to bob, who transfers it to a skill nobody
        has; transfers by an agent not holding the chat change nothing; the
        chat never goes back to ann or bob, whose rooms take the next chat."""
        t = 1_790_000_000_000
        events: list[Obj | str] = [
            ev("agent.state", "1", t, agent="ann", status="online", capacity=1),
            ev("agent.state", "2", t, agent="bob", status="online", capacity=1),
            ev("chat.requested", "3", t + 1_000, visitor="v", chat="c1"),
            ev("chat.transferred", "4", t + 2_000, chat="c1", agent="zed", to_agent="bob"),
            ev("chat.transferred", "5", t + 3_000, chat="c1", agent="ann", to_agent="bob"),
            ev("chat.transferred", "6", t + 4_000, chat="c1", agent="bob", to_skill="sales"),
            ev("chat.transferred", "7", t + 5_000, chat="c1", agent="bob", to_agent="ann"),
            ev("chat.requested", "8", t + 6_000, visitor="w", chat="c2"),
            ev("clock", "9", t + 120_000),
        ]
        self.check(events + drain(("m1",), t + 130_000), self.rules[0])

    def test_a_bad_line_costs_no_good_one(self) -> None:
        t = 1_790_000_000_000
        events: list[Obj | str] = [
            ev("agent.state", "1", t, agent="ann", status="online", capacity=1),
            "not json",
            {**ev("chat.requested", "2", t + 1, visitor="v"), "_bad": True},  # no chat
            ev("chat.requested", "3", t + 2, visitor="v", chat="c1"),
        ]
        self.check(events + drain(("m1",), t + 5), self.rules[0])


def ev(etype: str, eid: str, ts: int, tenant: str = "m1", **fields: Any) -> Obj:
    return {"type": etype, "id": eid, "ts": ts, "tenant": tenant, **fields}


def outputs_of(text: bytes) -> list[Obj]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def group_by_offset(lines: list[bytes], outputs: list[Obj]) -> list[Step]:
    """Steps from a log's outputs, each output placed by its input's ``offset``."""
    steps = [Step(line, []) for line in lines]
    for o in outputs:
        steps[o["offset"]].outputs.append(o)
    return steps
