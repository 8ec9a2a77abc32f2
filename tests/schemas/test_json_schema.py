"""The machine-readable contract (schemas/json/) against what routeq does.

- the committed files are what ``python -m schemas.jsonschema`` generates;
- every output of the bundled scenarios, of ``routeq run`` (bad lines too) and
  of the Kafka worker's router validates against the output schema (and
  against a strict variant that allows no field the schema does not name);
- events drawn from the input schemas (hypothesis-jsonschema) are accepted by
  ``schemas.events.decode``; events broken in one field are rejected by the
  decoder, naming that field, exactly when the schema rejects them; the
  existing strategies' events (tests/strategies.py, tests/malformed.py) get the
  same verdict from both.

Where the two cannot agree (JSON Schema counts 1.0 as an integer; a line is at
most 64 KiB) the tests say so explicitly (``test_known_differences``).
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from engine import Engine
from engine.policies import POLICIES
from schemas.events import (
    FIELDS,
    INTERNAL_TYPES,
    JSON_SCHEMA,
    MAX_LINE_BYTES,
    MAX_TS,
    EventError,
    decode,
)
from schemas.jsonschema import (
    DIR,
    PUBLIC_TYPES,
    documents,
    input_schema,
    internal_schema,
    main,
    openapi,
    output_schema,
    stale,
    validator,
)
from schemas.outputs import BASELINE_REASONS, OUTPUTS, REASONS
from streams.embedded.rules_file import load_rules
from streams.kafka.router import PartitionRouter
from tests.malformed import bad_lines
from tests.routeq import ROOT, routeq
from tests.schemas.hjs_compat import from_schema
from tests.strategies import messy_streams, streams

SCENARIOS = ("demo", "double11", "marketplace", "erlang_c", "erlang_a")
HOURS = "1"
EXAMPLES = 200

PUBLIC = input_schema()
INTERNAL = internal_schema()
V_IN = validator(PUBLIC)
V_INTERNAL = validator(INTERNAL)
V_OUT = validator(output_schema())
V_STRICT = validator(output_schema(strict=True))
TYPE_DEFS = {t: PUBLIC["$defs"][t] for t in PUBLIC_TYPES}
INTERNAL_DEFS = {t: INTERNAL["$defs"][t] for t in FIELDS}


def errors(v: Any, obj: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
            for e in v.iter_errors(obj)]


# ------------------------------------------------------------ the files


def test_committed_files_are_what_the_generator_writes() -> None:
    assert stale() == [], "schemas/json/ is not current: run python -m schemas.jsonschema --write"
    assert main(["--check"]) == 0
    assert sorted(p.name for p in DIR.glob("*.json")) == sorted(documents())


def test_documents_are_valid_json_schema() -> None:
    for name, doc in documents().items():
        if name.endswith(".schema.json"):
            jsonschema.Draft202012Validator.check_schema(doc)
            assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    api = openapi()
    assert api["openapi"].startswith("3.1")
    for schema in api["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_check_has_a_schema() -> None:
    for spec in FIELDS.values():
        for _, check, *_ in spec:
            assert check in JSON_SCHEMA, check


def test_internal_types_and_fields_are_kept_apart() -> None:
    assert set(TYPE_DEFS) == set(FIELDS) - INTERNAL_TYPES
    assert "chat.handed_over" not in PUBLIC["$defs"]
    for t in ("chat.accepted", "chat.declined", "chat.ended"):
        assert PUBLIC["$defs"][t]["properties"]["origin"] is False
        assert INTERNAL["$defs"][t]["properties"]["origin"]["pattern"]
    handover = {"type": "chat.handed_over", "id": "h1", "ts": 5, "tenant": "platform",
                "chat": "c1", "visitor": "v1", "from": "shop", "requested_ts": 1}
    decode(orjson.dumps(handover))  # the decoder takes it (routeq's own)...
    assert not V_IN.is_valid(handover)  # ...the public contract does not
    assert V_INTERNAL.is_valid(handover)
    accepted = {"type": "chat.accepted", "id": "a", "ts": 5, "tenant": "platform",
                "chat": "c1", "agent": "a1", "origin": "shop"}
    assert not V_IN.is_valid(accepted) and V_INTERNAL.is_valid(accepted)


def test_reasons_name_every_baseline_policy() -> None:
    baselines = {name for name, policy in POLICIES.items() if not policy.reserves}
    assert set(BASELINE_REASONS) == baselines
    reasons = output_schema()["$defs"]["chat.assigned"]["properties"]["reason"]["enum"]
    assert reasons == list(REASONS)


# ------------------------------------------------------------ outputs


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("contract")
    out: dict[str, list[dict[str, Any]]] = {}
    for name in SCENARIOS:
        d = tmp / name
        routeq("simulate", "--scenario", name, "--seed", "1", "--hours", HOURS, "--quiet",
               "--out", d)
        out[name] = [orjson.loads(x) for x in (d / "outputs.jsonl").read_bytes().splitlines()]
    shop = ROOT / "examples" / "shop_morning.jsonl"
    proc = routeq("run", shop, "--rules", ROOT / "examples" / "rules.toml")
    out["run"] = [orjson.loads(x) for x in proc.stdout.splitlines()]
    # bad lines among good ones: event.rejected with line and offset
    good = shop.read_bytes().splitlines()
    bad = [b"not json", b"[1,2]", b'{"type":"page.viewed","id":"x","ts":"yesterday",'
           b'"tenant":"shop-1","visitor":"v","page":"home"}', b'{"type":"nope"}',
           b'{"type":"clock","id":"c","ts":1,"tenant":"bad tenant!"}', b"\xff\xfe" * 400]
    mixed = tmp / "mixed.jsonl"
    mixed.write_bytes(b"\n".join(x for pair in zip(good, bad * 9, strict=False)
                                 for x in pair) + b"\n")
    proc = routeq("run", mixed)
    out["rejected"] = [orjson.loads(x) for x in proc.stdout.splitlines()]
    # an agent who lets an offer time out is set away (agent.away)
    rules = tmp / "presence.toml"
    rules.write_text("[assignment]\nacceptance_required = true\noffer_timeout_s = 5.0\n"
                     "max_missed_offers = 1\nwrap_up_s = 3.0\n"
                     "[capacity.weights]\nsales = 2\n"
                     "[hours.tenants.n]\nafter_hours = \"closed\"\nweek = { mon = [] }\n")
    t = 1_790_000_000_000
    events = tmp / "presence.jsonl"
    events.write_bytes(b"\n".join(orjson.dumps(e) for e in (
        {"type": "agent.state", "id": "1", "ts": t, "tenant": "m", "agent": "ann",
         "status": "online", "wrap_up_s": 2.5},
        {"type": "chat.requested", "id": "2", "ts": t + 1, "tenant": "m", "visitor": "v",
         "chat": "c1"},
        {"type": "clock", "id": "3", "ts": t + 6_000, "tenant": "m"},
        {"type": "chat.requested", "id": "4", "ts": t + 6_001, "tenant": "m", "visitor": "w",
         "chat": "c2", "skill": "sales"},
        # a Monday: tenant n is closed all day
        {"type": "chat.requested", "id": "5", "ts": t + 7_000, "tenant": "n", "visitor": "v",
         "chat": "c9"})) + b"\n")
    proc = routeq("run", events, "--rules", rules)
    out["presence"] = [orjson.loads(x) for x in proc.stdout.splitlines()]
    return out


@pytest.mark.parametrize("name", [*SCENARIOS, "run", "rejected", "presence"])
def test_outputs_validate(outputs: dict[str, list[dict[str, Any]]], name: str) -> None:
    outs = outputs[name]
    assert outs
    for o in outs:
        assert not errors(V_STRICT, o), (o, errors(V_STRICT, o))
        assert V_OUT.is_valid(o)


def test_outputs_cover_every_type_and_optional_field(
        outputs: dict[str, list[dict[str, Any]]]) -> None:
    seen = {o["type"] for outs in outputs.values() for o in outs}
    assert seen == set(OUTPUTS)
    fields = {k for outs in outputs.values() for o in outs for k in o}
    assert {"offset", "origin", "skill", "line", "units"} <= fields
    rejected = [o for o in outputs["rejected"] if o["type"] == "event.rejected"]
    assert len(rejected) >= 6 and all("line" in o and "offset" in o for o in rejected)


def test_kafka_router_outputs_and_forwards_validate(tmp_path: Path) -> None:
    """routeq worker's outputs carry ``partition``; the events it forwards to
    the platform (hand-overs, events about overflowed chats) are internal ones."""
    routeq("simulate", "--scenario", "marketplace", "--hours", "0.4", "--seed", "5", "--quiet",
           "--out", tmp_path)
    rules = load_rules(str(tmp_path / "rules.toml"))
    router = PartitionRouter(rules)
    parts = 4
    logs: dict[int, int] = {p: 0 for p in range(parts)}
    for p in range(parts):
        router.assign(p, [])
    outs: list[dict[str, Any]] = []
    forwards: list[dict[str, Any]] = []

    def feed(p: int, value: bytes) -> None:
        fx = router.process([(p, logs[p], value)])
        logs[p] += 1
        outs.extend(o for _, o in fx.outputs)
        for tenant, ev in fx.forwards:
            forwards.append(ev)
            feed(zlib.crc32(tenant.encode()) % parts, orjson.dumps(ev))

    for line in (tmp_path / "events.jsonl").read_bytes().splitlines():
        tenant = orjson.loads(line).get("tenant")
        for p in range(parts) if tenant is None else [zlib.crc32(tenant.encode()) % parts]:
            feed(p, line)
    assert outs and forwards
    assert all("partition" in o for o in outs)
    for o in outs:
        assert not errors(V_STRICT, o), (o, errors(V_STRICT, o))
    for ev in forwards:
        assert not errors(V_INTERNAL, ev), (ev, errors(V_INTERNAL, ev))
        decode(orjson.dumps(ev))
    assert any(ev["type"] == "chat.handed_over" for ev in forwards)


def test_engine_outputs_with_external_handoff_validate() -> None:
    eng = Engine(load_rules(str(ROOT / "examples" / "rules.toml")), handoff="external")
    for i, line in enumerate((ROOT / "examples" / "shop_morning.jsonl").read_bytes()
                             .splitlines()):
        for o in eng.apply(decode(line), i):
            assert not errors(V_STRICT, o), o


# ------------------------------------------------------------- inputs


def encoded(obj: Any) -> bytes:
    """The line a chat server would send (examples orjson cannot write, or
    over the line limit the schema cannot express, are not drawn)."""
    try:
        line = orjson.dumps(obj)
    except TypeError:
        reject()
    if len(line) > MAX_LINE_BYTES:
        reject()
    return line


def verdict(line: bytes) -> tuple[bool, str]:
    try:
        decode(line)
    except EventError as exc:
        return False, str(exc)
    return True, ""


_STRATEGIES: dict[tuple[str, bool], st.SearchStrategy[Any]] = {}


def of_type(etype: str, internal: bool = False) -> st.SearchStrategy[Any]:
    key = (etype, internal)
    if key not in _STRATEGIES:
        _STRATEGIES[key] = from_schema((INTERNAL_DEFS if internal else TYPE_DEFS)[etype])
    return _STRATEGIES[key]


public_events = st.sampled_from(PUBLIC_TYPES).flatmap(of_type)
internal_events = st.sampled_from(tuple(FIELDS)).flatmap(lambda t: of_type(t, True))

SETTINGS = settings(max_examples=EXAMPLES, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])


@SETTINGS
@given(public_events)
def test_events_drawn_from_the_input_schema_are_accepted(ev: dict[str, Any]) -> None:
    assert V_IN.is_valid(ev)
    line = encoded(ev)
    ok, err = verdict(line)
    assert ok, (err, ev)
    clean = decode(line)
    assert V_IN.is_valid(clean), errors(V_IN, clean)  # defaults filled in: still valid
    known = {"type", "id", "ts", "tenant", *(n for n, *_ in FIELDS[ev["type"]])}
    assert set(clean) <= known
    for k, v in ev.items():
        if k in known and v is not None:
            assert clean[k] == v or k == "customer", k


@SETTINGS
@given(internal_events)
def test_events_drawn_from_the_internal_schema_are_accepted(ev: dict[str, Any]) -> None:
    ok, err = verdict(encoded(ev))
    assert ok, (err, ev)


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    # integral floats (1.0) are integers to JSON Schema, not to routeq: see below
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
    st.text(max_size=8))
json_values = st.recursive(_scalars, lambda c: st.lists(c, max_size=3)
                           | st.dictionaries(st.text(max_size=4), c, max_size=3),
                           max_leaves=6)
EDGES: list[Any] = [
    None, True, False, 0, -1, 1, 5, 6, 100, 101, 0.5, -0.5, 1e300, MAX_TS, MAX_TS + 1,
    10**9 + 1, 2**63 - 1, "", "x", "x" * 64, "x" * 65, "x" * 128, "x" * 129, "x" * 4096,
    "x" * 4097, "shop\n", "a b", "é", "online", "busy", [], ["a"], [""], ["x" * 129],
    ["a"] * 65, [1], {}, {"a": 1}, {"a": 0}, {"a": 6}, {"": 1}, {"a": True}, {"a": 1.5},
    {f"s{i}": 1 for i in range(65)}, {"member": 1}, {"member": None}, {"tier": 6},
    {"tier": -1}, {"tier": 2.5}, {"orders": -1}, {"orders": 10**9 + 1}, {"ltv": -1},
    {"ltv": "1"}, {"member": True, "tier": 5, "orders": 10**9, "ltv": 0.5}, {"x": "y"},
    *PUBLIC_TYPES, "chat.handed_over", "Clock"]


@settings(max_examples=EXAMPLES * 2, suppress_health_check=SETTINGS.suppress_health_check)
@given(st.data())
def test_schema_and_decoder_agree_on_events_broken_in_one_field(data: st.DataObject) -> None:
    etype = data.draw(st.sampled_from(PUBLIC_TYPES), label="type")
    ev = dict(data.draw(of_type(etype), label="valid event"))
    props = [k for k, s in TYPE_DEFS[etype]["properties"].items() if s is not False]
    field = data.draw(st.sampled_from(props), label="field")
    if data.draw(st.integers(0, 3), label="how") == 0:
        ev.pop(field, None)
    else:
        ev[field] = data.draw(st.sampled_from(EDGES) | json_values, label="value")
    if isinstance(ev.get("type"), str) and ev["type"] in INTERNAL_TYPES:
        reject()  # routeq's own type: refused by the public schema, read by the decoder
    line = encoded(ev)
    by_schema = V_IN.is_valid(ev)
    by_decoder, err = verdict(line)
    assert by_schema == by_decoder, (ev, err, errors(V_IN, ev))
    if not by_decoder and (field != "type" or not isinstance(ev.get("type"), str)
                           or ev["type"] not in FIELDS):
        assert f"field '{field}'" in err, (field, err)


@settings(max_examples=EXAMPLES // 2, suppress_health_check=SETTINGS.suppress_health_check)
@given(streams(max_size=30, duplicates=True))
def test_events_of_the_property_strategies_are_valid(events: list[dict[str, Any]]) -> None:
    for ev in events:
        assert verdict(orjson.dumps(ev))[0]
        assert not errors(V_IN, ev), (ev, errors(V_IN, ev))


@settings(max_examples=EXAMPLES // 2, suppress_health_check=SETTINGS.suppress_health_check)
@given(messy_streams(max_size=30))
def test_messy_streams_get_the_same_verdict(drawn: Any) -> None:
    events, _ = drawn
    for ev in events:
        assert verdict(orjson.dumps(ev))[0] == V_IN.is_valid(ev), ev


def _judgeable(obj: Any) -> bool:
    """No integral float (1.0) anywhere, nested at most 50 levels."""
    todo = [(obj, 0)]
    while todo:
        x, depth = todo.pop()
        if depth > 50 or (isinstance(x, float) and x.is_integer()):
            return False
        if isinstance(x, dict):
            todo.extend((v, depth + 1) for v in x.values())
        elif isinstance(x, list):
            todo.extend((v, depth + 1) for v in x)
    return True


@settings(max_examples=EXAMPLES, suppress_health_check=SETTINGS.suppress_health_check)
@given(bad_lines())
def test_malformed_lines_are_refused_by_the_schema_too(bad: Any) -> None:
    """tests/malformed.py's lines: the decoder rejects every one; the
    schema rejects every one it can judge (a JSON object within the line limit,
    no integral float, not routeq's own type; not nested past 50 levels, which
    the jsonschema package walks by recursion)."""
    ok, err = verdict(bad.line)
    assert not ok and bad.explains(err)
    if len(bad.line) > MAX_LINE_BYTES:
        return
    try:
        obj = orjson.loads(bad.line)
    except orjson.JSONDecodeError:
        return
    if not isinstance(obj, dict) or not _judgeable(obj) or (
            isinstance(obj.get("type"), str) and obj["type"] in INTERNAL_TYPES):
        return
    assert not V_IN.is_valid(obj), (bad.kind, bad.line[:300])


def test_known_differences() -> None:
    """What JSON Schema cannot say, spelled out (schemas/jsonschema.py's docstring)."""
    ev = {"type": "agent.state", "id": "e1", "ts": 1_790_000_000_000, "tenant": "shop",
          "agent": "a1", "status": "online", "capacity": 2.0}
    assert V_IN.is_valid(ev)  # 2.0 is an integer to JSON Schema...
    ok, err = verdict(orjson.dumps(ev))
    assert not ok and "field 'capacity'" in err  # ...not to routeq
    long = {**ev, "capacity": 2, "note": "x" * MAX_LINE_BYTES}
    assert V_IN.is_valid(long)  # unknown fields are ignored, but a line has a limit
    assert not verdict(orjson.dumps(long))[0]
    # `$` in a pattern: ECMA-262 (JSON Schema) vs Python's re (the jsonschema package)
    nl = {**ev, "capacity": 2, "tenant": "shop\n"}
    assert not verdict(orjson.dumps(nl))[0]
    assert not V_IN.is_valid(nl)  # validator(): `$` at the very end only
    assert jsonschema.Draft202012Validator(PUBLIC).is_valid(nl)  # the package as it is
