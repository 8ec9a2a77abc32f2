"""Output events of the contract (v1): every type, its fields, and their encoding.

Outputs are plain dicts whose keys come in a fixed order: ``type``, ``ts``,
``tenant``, ``cause``, ``offset`` (only where the input has a position in a
log), ``origin`` (the platform's outputs about an overflowed chat), then the
type's own fields, then ``line`` and ``partition`` where the runtime has them.
orjson keeps that order, so the same outputs always encode to the same bytes.

``OUTPUTS`` says, per output type, every field it may have, in that order,
what each holds and whether it is optional; ``SCORE_KEYS``, ``REASONS`` and
``REQUEUE_WHY`` are the values of ``chat.assigned``'s ``score`` and
``reason`` and of ``chat.requeued``'s ``why``. The published JSON Schema
(``schemas/json/output.schema.json``, ``python -m schemas.jsonschema``) is
generated from these tables, and tests/schemas/test_outputs.py checks that
every output the engine writes has exactly the fields declared here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.events import MAX_TS, TENANT_RE

Output = dict[str, Any]

MAX_REJECTED_INPUT = 512

#: ``chat.assigned``'s ``score``: the parts of the chat's priority, then the
#: parts of the agent's match (``match`` is their sum), every one always there
PRIORITY_KEYS = ("page", "loyalty", "returning", "level", "aging")
MATCH_KEYS = ("skill", "load", "sticky", "exclusive", "region", "channel")
SCORE_KEYS = PRIORITY_KEYS + MATCH_KEYS
#: ``chat.assigned``'s ``value`` (policy ``value``): the class of the chat's page
VALUE_KEYS = ("stake", "handle_s", "patience_s")

#: ``chat.assigned``'s ``reason`` under a policy that reserves (``priority``, ``value``,
#: ``policy``): why this agent
PLACEMENT_REASONS = ("exclusive", "sticky", "skill", "best", "overflow", "transfer")
#: ``reason`` under a baseline policy: the policy's name (but ``overflow``)
BASELINE_REASONS = ("fifo_round_robin", "least_loaded", "longest_idle")
REASONS = PLACEMENT_REASONS + BASELINE_REASONS

#: ``chat.requeued``'s ``why``
REQUEUE_WHY = ("declined", "offer_timeout", "agent_away", "agent_offline", "transferred")
#: ``agent.away``'s ``why``
AWAY_WHY = ("missed_offers",)
#: ``chat.closed``'s ``why``
CLOSED_WHY = ("after_hours",)


@dataclass(frozen=True)
class Value:
    """What a field holds, in the terms of JSON Schema (draft 2020-12)."""

    type: str  # string, integer, number, object
    minimum: int | None = None
    maximum: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    enum: tuple[str, ...] = ()
    #: an object: its keys, each a number, all of them always there
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Field:
    name: str
    value: Value
    doc: str
    optional: bool = False


@dataclass(frozen=True)
class OutputType:
    name: str
    doc: str
    #: every field, in encoding order
    fields: tuple[Field, ...]

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if not f.optional)


_ID = Value("string", min_length=1, max_length=128)
_COUNT = Value("integer", minimum=0)
_NUMBER = Value("number")

TYPE = Field("type", Value("string"), "the output type")
TS = Field("ts", Value("integer", minimum=0, maximum=MAX_TS),
           "engine time when it was decided (ms)")
TENANT = Field("tenant", Value("string", min_length=1), "the tenant whose decision it is")
CAUSE = Field("cause", Value("string", max_length=128),
              "the id of the input event that triggered it, or 'timer'")
OFFSET = Field("offset", _COUNT,
               "the position of that input in the runtime's log, where it has one",
               optional=True)
ORIGIN = Field("origin", Value("string", pattern="^" + TENANT_RE.pattern + "$"),
               "the merchant tenant, on the platform's decisions about a chat that "
               "overflowed from it", optional=True)
PARTITION = Field("partition", _COUNT, "routeq worker (Kafka): the input's partition",
                  optional=True)

CHAT = Field("chat", _ID, "the chat's id as the chat server knows it")
VISITOR = Field("visitor", _ID, "the visitor's id as the chat server knows it")
AGENT = Field("agent", _ID, "the agent's id")
WAIT_MS = Field("wait_ms", _COUNT, "how long the chat waited (ms)")
PRIORITY = Field("priority", _NUMBER,
                 "the chat's priority (" + ", ".join(PRIORITY_KEYS) + ")")

#: the head of a decision about a chat (the platform's about an overflowed one:
#: with ``origin``), and of one that never has ``origin``
_HEAD = (TYPE, TS, TENANT, CAUSE, OFFSET, ORIGIN)
_HEAD_HOME = (TYPE, TS, TENANT, CAUSE, OFFSET)

OUTPUTS: Mapping[str, OutputType] = {o.name: o for o in (
    OutputType("chat.queued", "The chat waits: its place in the queue and the estimated wait.", (
        *_HEAD, CHAT, VISITOR,
        Field("position", Value("integer", minimum=1), "1-based place in the queue"),
        Field("eta_s", _COUNT, "estimated wait in seconds"),
        PRIORITY, PARTITION)),
    OutputType("chat.assigned", "The chat goes to an agent, with the wait, the scores and "
               "the reason.", (
        *_HEAD, CHAT, VISITOR, AGENT, WAIT_MS, PRIORITY,
        Field("match", _NUMBER, "the agent's match score (the sum of "
              + ", ".join(MATCH_KEYS[:-1]) + " and " + MATCH_KEYS[-1] + ")"),
        Field("score", Value("object", keys=SCORE_KEYS), "the breakdown of priority and "
              "match"),
        Field("reason", Value("string", enum=REASONS), "why this agent: "
              + ", ".join(PLACEMENT_REASONS) + ", or the baseline policy's name"),
        Field("step", _ID, "the routing step the chat was in ([[routing.steps]] name, or "
              "exclusive, last, any: the steps derived from older rules)"),
        Field("rules", Value("string", pattern="^[0-9a-f]{12}$"),
              "the hash of the rules in force"),
        Field("skill", _ID, "the skill the chat needed", optional=True),
        Field("units", Value("integer", minimum=1), "units of the agent's capacity the "
              "chat holds (where the rules set [capacity.weights])", optional=True),
        Field("value", Value("object", keys=VALUE_KEYS), "policy value: the class of the "
              "chat's page (stake, handle_s, patience_s); the score's page part is its "
              "index, [value] scale x stake x patience_s / handle_s", optional=True),
        PARTITION)),
    OutputType("chat.to_bot", "The chat goes to the bot (robot-first modes, or no agent "
               "online).", (*_HEAD_HOME, CHAT, VISITOR, PARTITION)),
    OutputType("chat.requeued", "The agent lost the chat (declined, offer timeout, away, "
               "offline, transferred): it waits again.", (
        *_HEAD, CHAT, Field("agent", _ID, "the agent who held it"),
        Field("why", Value("string", enum=REQUEUE_WHY), "why the agent lost it"),
        PARTITION)),
    OutputType("chat.closed", "The tenant is closed ([hours], after_hours = \"closed\"): "
               "the request opens no chat.", (
        *_HEAD_HOME, CHAT, VISITOR,
        Field("why", Value("string", enum=CLOSED_WHY), "why no chat opened"),
        PARTITION)),
    OutputType("agent.away", "The engine set an online agent away: they let "
               "[assignment] max_missed_offers offers in a row time out. Their offers "
               "not accepted are requeued (offer_timeout) after it; they get chats again "
               "after their next agent.state online.", (
        *_HEAD_HOME, AGENT,
        Field("why", Value("string", enum=AWAY_WHY), "why the engine set them away"),
        PARTITION)),
    OutputType("chat.overflowed", "The chat waited too long: the platform tenant takes it "
               "over.", (
        *_HEAD_HOME, CHAT, VISITOR,
        Field("to", Value("string", min_length=1), "the tenant that takes it over"),
        PARTITION)),
    OutputType("chat.abandoned", "The visitor left, or the chat was ended, while it "
               "waited.", (*_HEAD, CHAT, VISITOR, WAIT_MS, PARTITION)),
    OutputType("event.rejected", "A malformed input line (the run goes on).", (
        TYPE, TS,
        Field("tenant", Value("string"), "the tenant the line names, if it names a valid "
              "one; else empty"),
        Field("cause", Value("string", max_length=128), "the bad line's id where it had a "
              "valid one (a string of 1-128 chars), else empty"),
        OFFSET,
        Field("error", Value("string", min_length=1),
              "names the event type, the field and what was expected"),
        Field("input", Value("string", max_length=MAX_REJECTED_INPUT),
              f"the offending line, cut to {MAX_REJECTED_INPUT} chars"),
        Field("line", Value("integer", minimum=1), "the line number in the input (routeq "
              "run; routeq serve: the event's number in its post)", optional=True),
        PARTITION)),
)}

#: outputs a runtime consumes itself and never writes out: with
#: ``handoff="external"`` (Kafka workers) the engine asks the shell to publish
#: ``event`` (an internal input event) to tenant ``to``
INTERNAL_OUTPUTS: Mapping[str, OutputType] = {o.name: o for o in (
    OutputType("event.forwarded", "Internal: an input event for another tenant, which a "
               "distributed runtime publishes.", (
        *_HEAD_HOME, Field("to", Value("string", min_length=1), "the receiving tenant"),
        Field("event", Value("object"), "the input event to publish (internal schema)"),
        PARTITION)),
)}

def head(otype: str, ts: int, tenant: str, cause: str, offset: int | None) -> Output:
    """The common fields every output starts with."""
    out: Output = {"type": otype, "ts": ts, "tenant": tenant, "cause": cause}
    if offset is not None:
        out["offset"] = offset
    return out


def rejected(
    error: str,
    raw: bytes | str,
    *,
    ts: int,
    tenant: str,
    line: int | None = None,
    offset: int | None = None,
    cause: str = "",
) -> Output:
    """An ``event.rejected`` for a malformed input line."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    out = head("event.rejected", ts, tenant, cause, offset)
    out["error"] = error
    out["input"] = text[:MAX_REJECTED_INPUT]
    if line is not None:
        out["line"] = line
    return out


def encode(output: Mapping[str, Any]) -> bytes:
    """The canonical JSON encoding of one output (no newline)."""
    return orjson.dumps(output)


def encode_lines(outputs: list[Output]) -> bytes:
    """JSON Lines for a batch of outputs (each line ends with a newline)."""
    if not outputs:
        return b""
    return b"\n".join(map(orjson.dumps, outputs)) + b"\n"
