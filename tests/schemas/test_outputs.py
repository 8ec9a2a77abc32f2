"""Every output the engine writes is one that ``schemas/outputs.py`` declares:
its type is in ``OUTPUTS`` (``INTERNAL_OUTPUTS`` with the external hand-over),
its keys are declared fields of that type in the declared order, every required
field is there, and every value is what the field's ``Value`` says (``score``
with exactly ``SCORE_KEYS``, ``reason`` one of ``REASONS``, ``why`` one of
``REQUEUE_WHY``). Checked on the bundled scenarios (``routeq simulate``) and
on the engine fed Hypothesis streams, so schemas/ cannot drift from the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine, Rules
from schemas.events import EventError, validate
from schemas.outputs import (
    AWAY_WHY,
    CLOSED_WHY,
    INTERNAL_OUTPUTS,
    OUTPUTS,
    REASONS,
    REQUEUE_WHY,
    SCORE_KEYS,
    OutputType,
    Value,
)
from tests.routeq import routeq
from tests.strategies import messy_streams, rules, streams

_PY: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "object": (dict,)}


def value_problem(v: Value, x: object) -> str | None:
    if isinstance(x, bool) or not isinstance(x, _PY[v.type]):
        return f"not a {v.type}: {x!r}"
    if isinstance(x, int | float):
        if v.minimum is not None and x < v.minimum:
            return f"{x} < {v.minimum}"
        if v.maximum is not None and x > v.maximum:
            return f"{x} > {v.maximum}"
    if isinstance(x, str):
        if v.min_length is not None and len(x) < v.min_length:
            return f"shorter than {v.min_length}"
        if v.max_length is not None and len(x) > v.max_length:
            return f"longer than {v.max_length}"
        if v.enum and x not in v.enum:
            return f"{x!r} not one of {v.enum}"
    if v.keys:
        assert isinstance(x, dict)
        if tuple(x) != v.keys:
            return f"keys {tuple(x)} are not {v.keys}"
        bad = {k: y for k, y in x.items() if isinstance(y, bool) or not isinstance(y, int | float)}
        if bad:
            return f"not numbers: {bad}"
    return None


def problems(o: dict[str, Any], internal: bool = False) -> list[str]:
    """What in ``o`` is not as ``schemas.outputs`` declares it (empty: nothing)."""
    decl: OutputType | None = OUTPUTS.get(o.get("type", ""))
    if decl is None and internal:
        decl = INTERNAL_OUTPUTS.get(o.get("type", ""))
    if decl is None:
        return [f"undeclared type {o.get('type')!r}"]
    order = [f.name for f in decl.fields]
    out = [f"undeclared field {k!r}" for k in o if k not in order]
    out += [f"missing field {k!r}" for k in decl.required if k not in o]
    keys = [k for k in o if k in order]
    if keys != sorted(keys, key=order.index):
        out.append(f"keys {keys} not in the declared order {order}")
    for f in decl.fields:
        if f.name in o and f.name != "type":
            why = value_problem(f.value, o[f.name])
            if why is not None:
                out.append(f"{f.name}: {why}")
    return out


def test_the_tables_hold_together() -> None:
    assert [f.name for f in OUTPUTS["chat.assigned"].fields][-4:] == [
        "skill", "units", "value", "partition"]
    for decl in (*OUTPUTS.values(), *INTERNAL_OUTPUTS.values()):
        names = [f.name for f in decl.fields]
        assert len(names) == len(set(names)), decl.name
        assert names[:4] == ["type", "ts", "tenant", "cause"], decl.name
        assert names[-1] == "partition", decl.name
    score = next(f for f in OUTPUTS["chat.assigned"].fields if f.name == "score")
    assert score.value.keys == SCORE_KEYS
    why = next(f for f in OUTPUTS["chat.requeued"].fields if f.name == "why")
    assert why.value.enum == REQUEUE_WHY
    for otype, values in (("agent.away", AWAY_WHY), ("chat.closed", CLOSED_WHY)):
        assert next(f for f in OUTPUTS[otype].fields if f.name == "why").value.enum == values


@pytest.mark.parametrize("scenario", ["double11", "marketplace", "demo"])
def test_simulated_outputs_are_as_declared(tmp_path: Path, scenario: str) -> None:
    routeq("simulate", "--scenario", scenario, "--seed", "3", "--hours", "1", "--quiet",
           "--out", tmp_path)
    seen: set[str] = set()
    reasons: set[str] = set()
    for line in (tmp_path / "outputs.jsonl").read_bytes().splitlines():
        o = orjson.loads(line)
        assert not problems(o), (o, problems(o))
        seen.add(o["type"])
        if o["type"] == "chat.assigned":
            reasons.add(o["reason"])
    assert "chat.assigned" in seen
    assert reasons <= set(REASONS)
    if scenario == "marketplace":
        assert "chat.overflowed" in seen and "origin" in {
            k for o in map(orjson.loads, (tmp_path / "outputs.jsonl").read_bytes()
                           .splitlines()) for k in o}


def test_rejected_lines_of_routeq_run_are_as_declared() -> None:
    lines = [b"not json", b"[1]", b'{"type":"nope","id":"x"}',
             b'{"type":"clock","id":"c","ts":1,"tenant":"bad tenant!"}', b"\xff\xfe" * 400,
             b'{"type":"page.viewed","id":"p","ts":"late","tenant":"s","visitor":"v"}']
    proc = routeq("run", "-", stdin=b"\n".join(lines) + b"\n")
    outs = [orjson.loads(x) for x in proc.stdout.splitlines()]
    assert len(outs) == len(lines)
    for o in outs:
        assert o["type"] == "event.rejected" and not problems(o), (o, problems(o))


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def engine_outputs(r: Rules, events: list[dict[str, Any]], handoff: str) -> list[dict[str, Any]]:
    eng = Engine(r, handoff=handoff)
    return [o for i, ev in enumerate(events) for o in eng.apply(validate(ev), i)]


@SETTINGS
@given(r=rules(), events=streams(duplicates=True),
       handoff=st.sampled_from(["inline", "external"]))
def test_engine_outputs_on_random_streams_are_as_declared(
        r: Rules, events: list[dict[str, Any]], handoff: str) -> None:
    for o in engine_outputs(r, events, handoff):
        assert not problems(o, internal=handoff == "external"), (o, problems(o, True))


@SETTINGS
@given(r=rules(), drawn=messy_streams())
def test_engine_outputs_on_messy_streams_are_as_declared(
        r: Rules, drawn: tuple[list[dict[str, Any]], Any]) -> None:
    eng = Engine(r)
    for i, ev in enumerate(drawn[0]):
        try:
            clean = validate({"id": f"m{i}", **ev})
        except EventError:
            continue  # rejected lines: checked on routeq run's outputs
        for o in eng.apply(clean, i):
            assert not problems(o), (o, problems(o))


def test_an_undeclared_field_or_order_is_caught() -> None:
    good = {"type": "chat.to_bot", "ts": 1, "tenant": "t", "cause": "e", "chat": "c",
            "visitor": "v"}
    assert problems(good) == []
    assert problems({**good, "origin": "m"})  # a bot chat is never an overflowed one
    assert problems({"type": "chat.to_bot", "tenant": "t", "ts": 1, "cause": "e",
                     "chat": "c", "visitor": "v"})
    assert problems({k: v for k, v in good.items() if k != "visitor"})
    assert problems({"type": "chat.nope"})
