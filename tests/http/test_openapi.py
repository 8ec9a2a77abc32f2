"""``routeq serve`` against its OpenAPI document (schemas/json/openapi.json).

A real ``routeq serve`` (in memory, with tokens) is started once for the
module, and fed examples/shop_morning.jsonl (tenant ``acme``, the example
tenant of the document; moved to end a minute ago) so that the views have something to show. Then:

- ``GET /openapi.json`` answers the committed document, without a token;
- the outputs on ``/v1/stream`` validate against the output schema;
- schemathesis generates requests for every operation but ``/v1/stream``
  (a stream does not end), with the admin's token and with a tenant's, and
  checks each answer: no 5xx, a documented status code, content type,
  headers and body schema.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from benchmarks.tokens_file import tokens_toml
from engine import Engine, parse_rules
from schemas.events import decode
from schemas.jsonschema import DIR, OPENAPI_FILE, openapi, output_schema, validator
from tests.http.server import ADMIN, TOKEN_A, Server
from tests.routeq import ROOT

pytestmark = pytest.mark.integration

SHOP = ROOT / "examples" / "shop_morning.jsonl"


def shop_lines() -> list[bytes]:
    """shop_morning's events moved in time to end a minute ago (serve refuses a
    ts ahead of its clock: the file's dates must not depend on today's)."""
    events = [orjson.loads(x) for x in SHOP.read_bytes().splitlines()]
    shift = int(time.time() * 1000) - 60_000 - max(e["ts"] for e in events)
    return [orjson.dumps({**e, "ts": e["ts"] + shift}) for e in events]

TOKENS = tokens_toml(ADMIN, {"acme": TOKEN_A})
EXAMPLES = 50  # per operation and token

schema = schemathesis.openapi.from_dict(openapi()).exclude(path="/v1/stream")


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    """The document's NDJSON body is a string (events, one a line): as it is.
    Anything else generated is sent as its JSON (the standard library's: it
    writes integers past 64 bits, which orjson refuses)."""
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    with Server(tmp, state=False, tokens=TOKENS) as srv:
        status, answer = srv.call("POST", "/v1/events", ADMIN, raw=b"\n".join(shop_lines()),
                                  ctype="application/x-ndjson")
        assert status == 200 and answer["rejected"] == 0, answer
        yield srv


def test_openapi_json_is_served_without_a_token(server: Server) -> None:
    status, doc = server.call("GET", "/openapi.json")
    assert status == 200
    assert doc == orjson.loads((DIR / OPENAPI_FILE).read_bytes()) == openapi()


def test_stream_outputs_validate(server: Server) -> None:
    v = validator(output_schema(strict=True))
    engine = Engine(parse_rules())  # serve's rules: the built-in defaults
    want = sum(len(engine.apply(decode(line), i))
               for i, line in enumerate(shop_lines()))
    assert want
    stream = server.stream(ADMIN, query="?from=0", timeout=30)
    try:
        assert stream.status == 200
        got = stream.take(want)
    finally:
        stream.close()
    for eid, etype, data in got:
        assert etype == data["type"]
        assert eid.startswith(f"{data['offset']}.")
        assert not list(v.iter_errors(data)), data


def test_unknown_route_and_method_answer_json(server: Server) -> None:
    for method, path in (("GET", "/nope"), ("DELETE", "/v1/events"), ("PUT", "/healthz")):
        status, body = server.call(method, path, ADMIN)
        assert status in (404, 405) and isinstance(body, dict) and body["error"], body


@pytest.mark.parametrize("token", [ADMIN, TOKEN_A], ids=["admin", "tenant"])
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
def test_api_conforms(case: Any, server: Server, token: str) -> None:
    case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                           checks=CHECKS, timeout=30)
