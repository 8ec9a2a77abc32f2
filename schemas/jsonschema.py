"""The contract, machine-readable: JSON Schema (draft 2020-12) of the input and
output events and an OpenAPI 3.1 document of ``routeq serve``.

Everything is generated from the tables in ``schemas.events`` (``FIELDS`` and
``JSON_SCHEMA``, what each check accepts) and ``schemas.outputs``
(``OUTPUTS``: every output type's fields and values); the files
under ``schemas/json/`` are committed and shipped in the package::

    python -m schemas.jsonschema --write    # regenerate schemas/json/
    python -m schemas.jsonschema --check    # exit 1 if a file is not current

tests/schemas/test_json_schema.py fails when a committed file is not what
this module generates.

What JSON Schema cannot say, and the decoder does:

- integers are written without a fraction or exponent: JSON Schema counts
  ``1.0`` as an integer, routeq rejects it where it wants an integer;
- a line is at most 64 KiB (``MAX_LINE_BYTES``);
- ``pattern`` is ECMA-262, as JSON Schema says: ``$`` matches only at the very
  end. Python's ``re`` (which the ``jsonschema`` package uses) also lets it
  match before a final newline; ``validator()`` gives a ``jsonschema``
  validator with the standard meaning.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from schemas.events import (
    AT_LEAST_ONE,
    COMMON_FIELDS,
    FIELDS,
    INTERNAL_FIELDS,
    INTERNAL_TYPES,
    JSON_SCHEMA,
    MAX_LINE_BYTES,
    _status,
)
from schemas.outputs import OUTPUTS, Field, Value

Schema = dict[str, Any]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
VERSION = "v1"
DIR = Path(__file__).resolve().parent / "json"
INPUT_FILE, OUTPUT_FILE, INTERNAL_FILE, OPENAPI_FILE = (
    "input.schema.json", "output.schema.json", "internal.schema.json", "openapi.json")

#: input types of the public contract (what chat servers send)
PUBLIC_TYPES = tuple(t for t in FIELDS if t not in INTERNAL_TYPES)

INTEGERS = ("integers are written without a fraction or exponent (1, not 1.0 or 1e0); "
            f"a line (one event) is at most {MAX_LINE_BYTES} bytes")

#: serve's live figures (``/v1/overview``), each chat counted once
SERVICE_LEVEL_DOC = ("chats answered within 20 s (by their first chat.assigned's wait_ms) / "
                     "(chats answered + chats abandoned before any answer); each chat "
                     "counts once")
ABANDONMENT_DOC = ("chats abandoned before any answer / (chats answered + those abandoned); "
                   "each chat counts once")

FIELD_DOCS: Mapping[str, str] = {
    "type": "the event type",
    "id": "unique within its tenant; an event whose id was already applied for that "
          "tenant is ignored (at-least-once delivery is safe)",
    "ts": "event time, milliseconds since the Unix epoch",
    "tenant": "the merchant or the platform",
    "agent": "the agent's id, scoped to the tenant",
    "visitor": "the visitor's id, scoped to the tenant",
    "chat": "the chat's id, scoped to the tenant",
    "status": "the agent's status: only online agents get chats",
    "capacity": "how many chats the agent may hold at once (absent: the agent's current "
                "value; a new agent: 5)",
    "skills": "skill name -> level 1-5 (absent: the agent's current skills; a new agent: "
              "none)",
    "channels": "the channels the agent serves (absent: the agent's current ones; a new "
                "agent: all)",
    "regions": "the regions the agent serves (absent: the agent's current ones; a new "
               "agent: all)",
    "channel": "the visitor's channel (web, app, wechat, mini_program, ...)",
    "region": "the visitor's region",
    "customer": "who the visitor is to the shop (absent keys take their defaults)",
    "exclusive_agent": "the agent this visitor's chats are reserved for a while",
    "page": "the page type (home, list, search, detail, cart, checkout, order, "
            "after_sales or any other, weighted by the rules' default)",
    "keyword": "the search keyword",
    "category": "the product category",
    "sku": "the product",
    "message": "the visitor's first message (its keywords can pick a skill)",
    "skill": "the skill the chat needs",
    "resolved": "whether the chat solved the visitor's problem",
    "amount": "the order's amount",
    "origin": "internal: the merchant tenant whose overflowed chat this is",
    "from": "the merchant tenant the chat overflowed from",
    "requested_ts": "when the chat was requested at the merchant (ms)",
    "returning": "whether the visitor is a returning customer",
    "to_agent": "the agent the chat is transferred to (it waits for them "
                "[assignment] transfer_wait_s at most)",
    "to_skill": "the skill the chat is transferred to (it waits for an agent with it "
                "[assignment] transfer_wait_s at most)",
}

INPUT_DOCS: Mapping[str, str] = {
    "agent.state": "An agent's status, capacity and skills (an agent is created on its "
                   "first agent.state; a later one changes only the fields it gives).",
    "visitor.arrived": "A visitor comes to the shop (a visitor id seen before marks a "
                       "returning customer).",
    "page.viewed": "The visitor is on a page: the page type weighs the priority of their "
                   "chats.",
    "chat.requested": "The visitor asks for a chat.",
    "chat.accepted": "The agent took the assigned chat.",
    "chat.declined": "The agent refused the offered chat: it is requeued and not offered "
                     "to that agent again.",
    "bot.escalated": "The bot hands the chat to a human.",
    "chat.transferred": "The agent holding the chat hands it to another agent (to_agent) or "
                        "skill group (to_skill), at least one of them: it is requeued "
                        "with its arrival time and priority and waits for that target "
                        "first, then goes through the tenant's routing steps.",
    "chat.ended": "The chat is over: the agent's capacity is free again.",
    "visitor.left": "The visitor left: a waiting chat of theirs is abandoned.",
    "order.placed": "The visitor placed an order.",
    "clock": "Advances time so timers fire; without a tenant it applies to every tenant.",
    "chat.handed_over": "Internal: a merchant's overflowed chat arriving at the platform "
                        "tenant (published by a distributed runtime). Chat servers never "
                        "send it.",
}

# ----------------------------------------------------------------- outputs

_COUNT: Schema = {"type": "integer", "minimum": 0}
_NUMBER: Schema = {"type": "number"}


# ------------------------------------------------------------- generation


def _nullable(schema: Mapping[str, Any]) -> Schema:
    """``schema`` or null (an optional field given as null counts as absent)."""
    out = dict(schema)
    out["type"] = [out["type"], "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def _input_def(etype: str, *, internal: bool) -> Schema:
    common = tuple((name, check, required or etype != "clock")
                   for name, check, required in COMMON_FIELDS)
    props: dict[str, Any] = {"type": {"const": etype, "description": FIELD_DOCS["type"]}}
    required = ["type"]
    for i, (name, check, req) in enumerate((*common, *FIELDS[etype])):
        if name in INTERNAL_FIELDS and not internal:
            props[name] = False
            continue
        frag = dict(JSON_SCHEMA[check])
        if name in FIELD_DOCS:
            frag["description"] = FIELD_DOCS[name]
        if req:
            required.append(name)
        elif i >= len(common):  # the type's own optional fields: null counts as absent
            frag = _nullable(frag)
        props[name] = frag
    out: Schema = {"title": etype, "description": INPUT_DOCS[etype], "type": "object",
                   "properties": props, "required": required, "additionalProperties": True}
    if etype in AT_LEAST_ONE:  # null counts as absent
        out["anyOf"] = [{"required": [n], "properties": {n: {"not": {"type": "null"}}}}
                        for n in AT_LEAST_ONE[etype]]
    if not internal and any(n in INTERNAL_FIELDS for n, *_ in FIELDS[etype]):
        out["$comment"] = ("fields set to false are internal: routeq writes them itself, "
                           "chat servers must not send them")
    return out


def _value(value: Value, *, strict: bool) -> Schema:
    out: Schema = {"type": value.type}
    for key, given in (("minimum", value.minimum), ("maximum", value.maximum),
                       ("minLength", value.min_length), ("maxLength", value.max_length),
                       ("pattern", value.pattern)):
        if given is not None:
            out[key] = given
    if value.enum:
        out["enum"] = list(value.enum)
    if value.keys:
        out["properties"] = {k: dict(_NUMBER) for k in value.keys}
        out["required"] = list(value.keys)
        if strict:
            out["additionalProperties"] = False
    return out


def _field(otype: str, f: Field, *, strict: bool) -> Schema:
    if f.name == "type":
        return {"const": otype}
    return {**_value(f.value, strict=strict), "description": f.doc}


def _output_def(otype: str, *, strict: bool) -> Schema:
    o = OUTPUTS[otype]
    return {"title": otype, "description": o.doc, "type": "object",
            "properties": {f.name: _field(otype, f, strict=strict) for f in o.fields},
            "required": list(o.required), "additionalProperties": not strict}


def _ref(prefix: str, name: str) -> Schema:
    return {"$ref": prefix + name}


def input_defs(prefix: str = "#/$defs/", *, internal: bool = False) -> dict[str, Schema]:
    """One schema per input type (public ones; ``internal``: routeq's own too,
    with their internal fields), and ``event``: any of them."""
    types = tuple(FIELDS) if internal else PUBLIC_TYPES
    defs = {t: _input_def(t, internal=internal) for t in types}
    defs["event"] = {
        "title": "input event" + (" (internal)" if internal else ""),
        "description": "One line of routeq's input (JSON Lines). Fields not named here are "
                       "ignored; " + INTEGERS + ".",
        "type": "object", "required": ["type"],
        "oneOf": [_ref(prefix, t) for t in types],
    }
    return defs


def output_defs(prefix: str = "#/$defs/", *, strict: bool = False) -> dict[str, Schema]:
    """One schema per output type, and ``output``: any of them. ``strict``:
    no field beyond those named (for tests; consumers ignore unknown fields)."""
    defs = {t: _output_def(t, strict=strict) for t in OUTPUTS}
    defs["output"] = {
        "title": "output", "type": "object", "required": ["type"],
        "description": "One line of routeq's output (JSON Lines; keys in a fixed order: "
                       "type, ts, tenant, cause, offset, then the type's own). Fields may "
                       "be added: ignore those you do not know.",
        "oneOf": [_ref(prefix, t) for t in OUTPUTS],
    }
    return defs


def _document(title: str, description: str, defs: dict[str, Schema], top: str) -> Schema:
    """A file's document: ``defs[top]`` at the top, the other defs under ``$defs``."""
    defs = dict(defs)
    main = defs.pop(top)
    return {"$schema": DIALECT, **main, "title": title, "description": description,
            "$defs": defs}


def input_schema() -> Schema:
    return _document("routeq input event (v1)",
                     "An input event of routeq's public contract. Generated by "
                     "`python -m schemas.jsonschema --write` from schemas/events.py.",
                     input_defs(), "event")


def internal_schema() -> Schema:
    return _document("routeq input event, internal types included (v1)",
                     "Internal: every input type the decoder takes, with routeq's own "
                     "(chat.handed_over) and internal fields (origin), which routeq "
                     "writes itself and chat servers must not send. Generated by "
                     "`python -m schemas.jsonschema --write` from schemas/events.py.",
                     input_defs(internal=True), "event")


def output_schema(*, strict: bool = False) -> Schema:
    return _document("routeq output (v1)",
                     "An output of routeq (a decision, or event.rejected). Generated by "
                     "`python -m schemas.jsonschema --write` from schemas/outputs.py.",
                     output_defs(strict=strict), "output")


# ---------------------------------------------------------------- OpenAPI

_C = "#/components/schemas/"
_ERR = {"$ref": "#/components/responses/error"}


def _obj(props: Mapping[str, Any], required: tuple[str, ...] | None = None,
         **more: Any) -> Schema:
    out: Schema = {"type": "object", "properties": dict(props),
                   "required": list(props if required is None else required)}
    out.update(more)
    return out


def _n(schema: Schema) -> Schema:
    return _nullable(schema)


_TENANT: Schema = {"type": "string"}
_STATUS: Schema = dict(JSON_SCHEMA[_status])
_STATE = ["waiting", "assigned", "bot", "forwarded", "abandoned", "ended"]


def _view_schemas() -> dict[str, Schema]:
    num, cnt, s = _NUMBER, _COUNT, {"type": "string"}
    waiting = _obj({
        "chat": s, "visitor": s, "position": cnt, "eta_s": cnt, "skill": _n(s),
        "page": _n(s), "waited_ms": cnt, "priority": num, "reserved_for": _n(s),
        "origin": _n(s), "step": {**s, "description": "the routing step it waits in"}})
    agent = _obj({"agent": s, "status": _STATUS, "load": cnt, "capacity": cnt,
                  "skills": {"type": "object", "additionalProperties": {"type": "integer"}},
                  "chats": {"type": "array", "items": s}})
    minute = _obj({"t": {"type": "integer", "description": "the minute's start (event time, "
                          "ms; before 0 where the tenant's time is within an hour of 0)"},
                   "service_level": {**_n(num), "description": SERVICE_LEVEL_DOC + "; null: no "
                                     "such chat"},
                   "abandonment": {**_n(num), "description": ABANDONMENT_DOC + "; null: no "
                                   "such chat"},
                   "assigned": {**cnt, "description": "chats answered: their first "
                                "chat.assigned fell in this minute (a reassignment after a "
                                "requeue does not count again)"},
                   "abandoned": {**cnt, "description": "chats abandoned before any "
                                 "chat.assigned (a chat answered, requeued, then left does "
                                 "not count)"}})
    return {
        "error": _obj({"error": {"type": "string", "description": "what is wrong"}},
                      description="every error answer"),
        "post_result": _obj({
            "accepted": cnt, "duplicates": cnt, "rejected": cnt,
            "skewed": {**cnt, "description": "of the rejected, those refused by the "
                       "clock-skew guard (--max-skew-s; not logged)"},
            "results": {"type": "array", "description": "per posted event, in order",
                        "items": _obj({
                            "status": {"type": "string",
                                       "enum": ["accepted", "duplicate", "rejected"]},
                            "offset": {**cnt, "description": "the event's offset in the "
                                       "log (absent for a line refused for clock skew: "
                                       "it is not logged)"},
                            "error": {"type": "string",
                                      "description": "why it was rejected (names the field)"},
                            "skew": {"type": "boolean", "description": "true: rejected by "
                                     "the clock-skew guard, not logged (send it again with "
                                     "a correct ts)"},
                        }, ("status",))}}),
        "chat_view": _obj({
            "tenant": s, "chat": s,
            "state": {"type": "string", "enum": _STATE},
            "visitor": s, "skill": _n(s), "since_ms": cnt, "waited_ms": cnt,
            "handled_by": {**s, "description": "the tenant that took the chat over"},
            "position": cnt, "queue_length": cnt, "eta_s": cnt, "priority": num,
            "step": {**s, "description": "the routing step a waiting chat is in"},
            "reserved_for": s, "reserve_kind": s, "agent": s, "accepted": {"type": "boolean"},
            "mode": {"type": "string", "enum": ["human_first", "robot_first", "robot_only"],
                     "description": "a chat with the bot: the mode it was opened in "
                     "(robot_only: bot.escalated is ignored)"},
            "ended_ms": {**cnt, "description": "when it ended or was abandoned (event time; "
                         "the last 100,000 chats that ended are kept)"},
        }, ("tenant", "chat", "state")),
        "queue_view": _obj({"tenant": s, "now": cnt, "length": cnt,
                            "chats": {"type": "array", "items": waiting,
                                      "description": "in service order"}},
                           ("tenant", "length", "chats")),
        "agents_view": _obj({"tenant": s, "now": cnt, "agents": {"type": "array",
                                                                 "items": agent}},
                            ("tenant", "agents")),
        "tenants": _obj({"tenants": {"type": "array", "items": s}}),
        "tenant_summary": _obj({
            "tenant": s, "now": cnt, "queue": cnt,
            "waiting_by_page": {"type": "object", "additionalProperties": cnt},
            "bots": cnt,
            "agents": {"type": "array", "items": _obj({
                "agent": s, "status": _STATUS, "load": cnt, "capacity": cnt})},
            "occupancy": _n(num),
            "service_level": {**_n(num), "description": SERVICE_LEVEL_DOC + ", over the "
                              "last hour of event time; null: no such chat"},
            "abandonment": {**_n(num), "description": ABANDONMENT_DOC + ", over the last "
                            "hour of event time; null: no such chat"},
            "series": {"type": "array", "items": minute,
                       "description": "per minute, the last hour of event time"}}),
        "overview": _obj({
            "offset": cnt, "uptime_s": cnt,
            "tenant_count": {**cnt, "description": "how many tenants there are in all"},
            "next": {"type": ["string", "null"], "description": "the last tenant of this "
                     "page, to ask for the next one with ?after= (null: no more)"},
            "tenants": {"type": "array", "items": _ref(_C, "tenant_summary"),
                        "description": "a page of tenants, by name"}}),
        "health": _obj({"ok": {"type": "boolean"}, "offset": cnt,
                        "reason": {"type": "string", "description": "why not ok"}},
                       ("ok", "offset")),
    }


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


#: error answers with a header of their own
_ERR_OF = {401: {"$ref": "#/components/responses/unauthorized"},
           429: {"$ref": "#/components/responses/busy"}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _ERR_OF.get(c, _ERR) for c in sorted(codes)}


_TENANT_Q = {"name": "tenant", "in": "query", "required": False,
             "description": "the tenant to read (the admin token must give it; a tenant's "
                            "token may give only its own)",
             "schema": _TENANT, "example": "acme"}
_OPEN: list[Any] = []  # no auth


def openapi() -> Schema:
    """The OpenAPI 3.1 document of ``routeq serve``."""
    components = {**{f"{k}": v for k, v in input_defs(_C).items()},
                  **output_defs(_C), **_view_schemas()}
    components["event"]["discriminator"] = {
        "propertyName": "type", "mapping": {t: _C + t for t in PUBLIC_TYPES}}
    components["output"]["discriminator"] = {
        "propertyName": "type", "mapping": {t: _C + t for t in OUTPUTS}}
    event = _ref(_C, "event")
    text = {"type": "string"}
    paths: dict[str, Any] = {
        "/v1/events": {"post": {
            "operationId": "postEvents", "summary": "Log and apply events",
            "description": "One event (application/json), a JSON array of events, or NDJSON "
                           "(one event a line). A 2xx answer means every line is in the "
                           "state's log. Each event is accepted, a duplicate (its id was "
                           "already applied for its tenant) or rejected (the error names "
                           "the field): a malformed event does not fail the request. NDJSON "
                           "is also taken as application/ndjson, application/jsonl, "
                           "application/json-lines and application/jsonlines (text/plain: 415). A "
                           "tenant's token may post only its tenant's events (403, nothing "
                           "logged).",
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"oneOf": [
                    event, {"type": "array", "items": event, "minItems": 1}]}},
                "application/x-ndjson": {"schema": {
                    **text, "description": "events, one JSON object a line"}},
            }},
            "responses": {"200": _json(_ref(_C, "post_result"), "what became of each event"),
                          **_errors(400, 401, 403, 408, 413, 415, 429)},
        }},
        "/v1/stream": {"get": {
            "operationId": "stream", "summary": "The decisions as they are made (SSE)",
            "description": "Server-Sent Events: `event:` the output type, `data:` the output "
                           "(schema `output`), `id:` OFFSET.K. Reconnect with Last-Event-ID "
                           "to go on with no gap and no duplicate. The stream does not end.",
            "parameters": [
                _TENANT_Q,
                {"name": "from", "in": "query", "required": False,
                 "description": "start at this offset",
                 "schema": {"type": "integer", "minimum": 0}},
                {"name": "Last-Event-ID", "in": "header", "required": False,
                 "description": "go on after this id (OFFSET.K)",
                 "schema": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}},
            ],
            "responses": {"200": {"description": "the stream",
                                  "content": {"text/event-stream": {"schema": text}}},
                          **_errors(400, 401, 403, 409, 410, 429)},
        }},
        "/v1/chats/{chat}": {"get": {
            "operationId": "getChat", "summary": "A chat's state",
            "parameters": [
                {"name": "chat", "in": "path", "required": True, "schema": text,
                 "example": "c-amy-1"},
                _TENANT_Q],
            "responses": {"200": _json(_ref(_C, "chat_view")), **_errors(400, 401, 403, 404)},
        }},
        "/v1/queue": {"get": {
            "operationId": "getQueue", "summary": "The tenant's waiting chats in service order",
            "parameters": [
                _TENANT_Q,
                {"name": "limit", "in": "query", "required": False,
                 "description": "at most this many chats (default 1000)",
                 "schema": {"type": "integer"}}],
            "responses": {"200": _json(_ref(_C, "queue_view")), **_errors(400, 401, 403)},
        }},
        "/v1/agents": {"get": {
            "operationId": "getAgents", "summary": "The tenant's agents",
            "parameters": [_TENANT_Q],
            "responses": {"200": _json(_ref(_C, "agents_view")), **_errors(400, 401, 403)},
        }},
        "/v1/tenants": {"get": {
            "operationId": "getTenants", "summary": "The tenants the token may read",
            "responses": {"200": _json(_ref(_C, "tenants")), **_errors(401)},
        }},
        "/v1/overview": {"get": {
            "operationId": "getOverview", "summary": "Every tenant's figures (admin; a "
                                                     "tenant's token: its own only)",
            "parameters": [
                {"name": "limit", "in": "query", "required": False,
                 "description": "tenants a page (default 100; taken as 1 to 1,000)",
                 "schema": {"type": "integer"}},
                {"name": "after", "in": "query", "required": False,
                 "description": "the page after this tenant name (the last page's next)",
                 "schema": {"type": "string"}}],
            "responses": {"200": _json(_ref(_C, "overview")), **_errors(400, 401, 403)},
        }},
        "/metrics": {"get": {
            "operationId": "getMetrics", "summary": "Prometheus metrics (admin)",
            "responses": {"200": {"description": "Prometheus text format 0.0.4",
                                  "content": {"text/plain": {"schema": text}}},
                          **_errors(401, 403)},
        }},
        "/healthz": {"get": {
            "operationId": "health", "summary": "Liveness", "security": _OPEN,
            "responses": {"200": _json(_ref(_C, "health")),
                          "503": _json(_ref(_C, "health"), "posts cannot be taken now "
                                       "(shutting down, or the state cannot be written)")},
        }},
        "/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document", "security": _OPEN,
            "responses": {"200": _json({"type": "object"})},
        }},
        "/": {"get": {
            "operationId": "dashboard", "summary": "The live dashboard (HTML)",
            "security": _OPEN,
            "responses": {"200": {"description": "the page",
                                  "content": {"text/html": {"schema": text}}}},
        }},
        "/static/{name}": {"get": {
            "operationId": "static", "summary": "The dashboard's files", "security": _OPEN,
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": text,
                            "example": "dashboard.js"}],
            "responses": {
                "200": {"description": "the file", "content": {
                    t: {"schema": text} for t in ("text/html", "text/javascript", "text/css",
                                                  "image/svg+xml",
                                                  "application/octet-stream")}},
                **_errors(404)},
        }},
    }
    for item in paths.values():
        for op in item.values():
            # any request may find the server unable to take it; without --tokens,
            # one naming another Host or Origin is refused
            op["responses"].setdefault("503", {"$ref": "#/components/responses/unavailable"})
            op["responses"].setdefault("403", _ERR)
            op["responses"] = dict(sorted(op["responses"].items()))
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": DIALECT,
        "info": {
            "title": "routeq serve", "version": VERSION,
            "description": "The embedded routing engine behind HTTP, for chat servers. Every "
                           "answer is JSON unless said otherwise; errors are "
                           "{\"error\": \"...\"}. Generated by `python -m schemas.jsonschema "
                           "--write`; the event schemas are those of "
                           "schemas/json/input.schema.json and output.schema.json.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": {
                "error": _json(_ref(_C, "error"), "an error"),
                "unauthorized": {**_json(_ref(_C, "error"), "no token, or an unknown one"),
                                 "headers": {"WWW-Authenticate": {
                                     "required": True, "schema": {"type": "string"}}}},
                "busy": {**_json(_ref(_C, "error"), "too many events wait to be logged "
                                 "(nothing of the post was logged), or too many streams are "
                                 "open: retry after Retry-After seconds"),
                         "headers": {"Retry-After": {
                             "required": True, "schema": {"type": "integer", "minimum": 0}}}},
                "unavailable": {**_json(_ref(_C, "error"), "shutting down, the state cannot "
                                        "be written, or too many connections are open"),
                                "headers": {"Retry-After": {
                                    "required": False,
                                    "schema": {"type": "integer", "minimum": 0}}}},
            },
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "--tokens gives the admin's and each tenant's tokens; "
                               "without --tokens every caller is the admin"}},
        },
    }


# ------------------------------------------------------------------ files


def documents() -> dict[str, Schema]:
    """File name (under ``schemas/json/``) -> document."""
    return {INPUT_FILE: input_schema(), OUTPUT_FILE: output_schema(),
            INTERNAL_FILE: internal_schema(), OPENAPI_FILE: openapi()}


def render(doc: Schema) -> bytes:
    """The bytes of a committed file: indented JSON, a newline at the end."""
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


def stale(directory: Path = DIR) -> list[str]:
    """The files under ``directory`` that are missing or not what is generated."""
    out = []
    for name, doc in documents().items():
        path = directory / name
        if not path.is_file() or path.read_bytes() != render(doc):
            out.append(name)
    return out


def write(directory: Path = DIR) -> list[str]:
    """Regenerate the files; the names of those that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = stale(directory)
    for name, doc in documents().items():
        if name in changed:
            (directory / name).write_bytes(render(doc))
    return changed


def validator(schema: Mapping[str, Any]) -> Any:
    """A ``jsonschema`` validator (draft 2020-12) of ``schema`` whose ``pattern``
    means what ECMA-262 says: ``$`` only at the end of the string (needs the
    ``jsonschema`` package, a dev dependency)."""
    import re

    import jsonschema  # type: ignore[import-untyped,unused-ignore]

    base = jsonschema.Draft202012Validator

    def pattern(v: Any, patrn: str, instance: Any, schema: Any) -> Any:
        if v.is_type(instance, "string") and not re.search(_ecma(patrn), instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    cls = jsonschema.validators.extend(base, {"pattern": pattern})
    return cls(schema)


def _ecma(pattern: str) -> str:
    """A trailing, unescaped ``$`` as ``\\Z`` (the end of the string in Python)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + r"\Z"
    return pattern


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m schemas.jsonschema",
        description="Generate routeq's JSON Schema and OpenAPI files under schemas/json/.")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", action="store_true", help="write the files")
    g.add_argument("--check", action="store_true", help="exit 1 if a file is not current")
    args = p.parse_args(argv)
    if args.write:
        changed = write()
        print(f"schemas/json: {', '.join(changed) if changed else 'all current'}"
              f"{' written' if changed else ''}")
        return 0
    bad = stale()
    if bad:
        print(f"schemas/json: not current: {', '.join(bad)} "
              f"(run python -m schemas.jsonschema --write)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
