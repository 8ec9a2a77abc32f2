"""Malformed input at every entry point: JSON Lines (in process and the real
``routeq run`` subprocess) and HTTP ingest (a real ``routeq serve``).

For each: nothing crashes, every bad line is rejected with an error that names
the field at fault (or says the line is not a JSON object), and the outputs for
the good events are those of a run without the bad lines. The bad lines come
from ``tests/malformed.py`` (kinds listed there).

(``tests/embedded/test_embedded_runtime.py`` checks a fixed list of bad lines;
these properties draw them. The Kafka input topic is covered by the Kafka
runtime's own tests.)
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine, parse_rules
from schemas.events import EventError, decode
from streams.cli import main
from tests.helpers import feed
from tests.http.server import ADMIN, Server
from tests.malformed import Bad, bad_lines, mixed_streams
from tests.routeq import lines, routeq
from tests.tally import TALLY

pytestmark = pytest.mark.reliability

SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture]

Mixed = list[tuple[bytes, Bad | None]]


def jsonl(data: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in data)


def outputs(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in lines(data)]


def tally(mixed: Mixed) -> None:
    for _, bad in mixed:
        if bad is not None:
            TALLY["bad_lines"] += 1
            TALLY[f"bad_lines.{bad.kind}"] += 1


def check_split(mixed: Mixed, got: list[dict[str, Any]], clean: list[dict[str, Any]],
                base: int = 0) -> None:
    """``got`` (outputs of the mixed input, offsets from ``base``) = one
    rejection per bad line, naming its field, and ``clean`` for the rest."""
    to_good: dict[int, int] = {}
    for i, (_, bad) in enumerate(mixed):
        if bad is None:
            to_good[base + i] = len(to_good)
    rejected = [o for o in got if o["type"] == "event.rejected"]
    assert [o["offset"] - base for o in rejected] == [
        i for i, (_, bad) in enumerate(mixed) if bad is not None]
    for o in rejected:
        bad = mixed[o["offset"] - base][1]
        assert bad is not None and bad.explains(o["error"]), (bad, o["error"])
        assert len(o["input"]) <= 512
    kept = []
    for o in got:
        if o["type"] != "event.rejected":
            kept.append({**o, "offset": to_good[o["offset"]]})
    assert kept == clean


# ------------------------------------------------------------- the decoder


@settings(max_examples=600, deadline=None, suppress_health_check=SLOW)
@given(bad_lines())
def test_every_malformed_line_is_refused_with_its_field(bad: Bad) -> None:
    TALLY["decoder_lines"] += 1
    try:
        decode(bad.line)
    except EventError as exc:
        assert bad.explains(str(exc)), (bad, str(exc))
    else:
        raise AssertionError(f"accepted a malformed line ({bad.kind}): {bad.line[:200]!r}")


# ------------------------------------------------- JSON Lines, in process


@settings(max_examples=40, deadline=None, suppress_health_check=SLOW)
@given(mixed_streams(), st.booleans())
def test_routeq_run_rejects_each_bad_line_and_routes_the_rest_the_same(
        data: tuple[list[dict[str, Any]], Mixed], durable: bool) -> None:
    events, mixed = data
    tally(mixed)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)
        (p / "good.jsonl").write_bytes(jsonl([orjson.dumps(e) for e in events]))
        (p / "mixed.jsonl").write_bytes(jsonl([line for line, _ in mixed]))
        state = ("--state", str(p / "s")) if durable else ()
        assert main(["run", str(p / "good.jsonl"), "--out", str(p / "clean"), "--quiet"]) == 0
        assert main(["run", str(p / "mixed.jsonl"), *state, "--out", str(p / "got"),
                     "--quiet"]) == 0
        check_split(mixed, outputs((p / "got").read_bytes()),
                    outputs((p / "clean").read_bytes()))
        if durable:  # the log keeps the bad lines as they came; replay is the same
            assert main(["replay", "--state", str(p / "s"), "--out", str(p / "again"),
                         "--quiet"]) == 0
            assert (p / "again").read_bytes() == (p / "got").read_bytes()


# ---------------------------------------------- JSON Lines, the real command


@settings(max_examples=3, deadline=None, suppress_health_check=SLOW)
@given(mixed_streams(max_size=300, max_bad=120))
def test_routeq_run_subprocess_from_stdin(data: tuple[list[dict[str, Any]], Mixed]) -> None:
    events, mixed = data
    tally(mixed)
    good = jsonl([orjson.dumps(e) for e in events])
    clean = routeq("run", "-", "--quiet", stdin=good)
    got = routeq("run", "-", "--quiet", stdin=jsonl([line for line, _ in mixed]))
    assert got.returncode == 0 and b"Traceback" not in got.stderr
    check_split(mixed, outputs(got.stdout), outputs(clean.stdout))


# ------------------------------------------------------------- HTTP ingest


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("fuzz-http")) as s:
        yield s
    assert b"Traceback" not in s.log.read_bytes()


def own_tenants(events: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """The events under tenant names of their own (a clock for every tenant
    becomes one per tenant of the example, so that other examples on the same
    server see nothing of it)."""
    names = ("t1", "t2", "platform")
    out = []
    for e in events:
        if "tenant" in e:
            out.append({**e, "tenant": f"{prefix}{e['tenant']}"})
        else:
            out += [{**e, "id": f"{e['id']}-{t}", "tenant": f"{prefix}{t}"} for t in names]
    return out


@pytest.mark.integration
@settings(max_examples=25, deadline=None, suppress_health_check=SLOW)
@given(mixed_streams(max_size=40))
def test_http_ingest_rejects_each_bad_event_and_routes_the_rest_the_same(
        server: Server, data: tuple[list[dict[str, Any]], Mixed]) -> None:
    TALLY["http_examples"] += 1
    prefix = f"x{TALLY['http_examples']}-"
    events, mixed0 = data
    events = own_tenants(events, prefix)
    good_lines = iter([orjson.dumps(e) for e in events])
    mixed: Mixed = []
    for line, bad in mixed0:  # the same interleaving, with the renamed good events
        if bad is None:
            n = sum(1 for e in own_tenants([orjson.loads(line)], prefix))
            mixed += [(next(good_lines), None) for _ in range(n)]
        else:
            mixed.append((line, bad))
    tally(mixed)
    status, ans = server.post(ADMIN, None, raw=jsonl([line for line, _ in mixed]),
                              ctype="application/x-ndjson")
    assert status == 200, ans
    results = ans["results"]
    assert len(results) == len(mixed)
    base = results[0]["offset"]
    for i, ((_, bad), r) in enumerate(zip(mixed, results, strict=True)):
        assert r["offset"] == base + i
        if bad is None:
            assert r["status"] == "accepted", r
        else:
            assert r["status"] == "rejected" and bad.explains(r["error"]), (bad, r)
    clean = [orjson.loads(orjson.dumps(o))
             for o in feed(Engine(parse_rules({})), events, offset=0)]
    want = len(clean) + sum(1 for _, bad in mixed if bad is not None)
    stream = server.stream(ADMIN, query=f"?from={base}")
    try:
        got = [data for _, _, data in stream.take(want)]
    finally:
        stream.close()
    check_split(mixed, got, clean, base)


@pytest.mark.parametrize("depth", [300, 1000, 1023])
@pytest.mark.parametrize("field", ["ts", "tenant", "visitor"])
def test_deeply_nested_field_is_named_not_a_recursion_error(depth: int, field: str) -> None:
    """Regression: the error message rendered the bad value with ``repr``, which
    recursed as deep as the nesting (RecursionError past ~1,000 levels, outside
    Hypothesis, which raises the recursion limit); the runtime then said only
    'event: cannot be read'."""
    ev = {"type": "page.viewed", "id": "e1", "ts": 1, "tenant": "t1", "visitor": "v1",
          "page": "home"}
    line = orjson.dumps({**ev, field: "@"}).replace(b'"@"', b"[" * depth + b"]" * depth)
    with pytest.raises(EventError, match=f"field '{field}'"):
        decode(line)
