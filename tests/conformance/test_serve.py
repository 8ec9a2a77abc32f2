"""The contract on ``routeq serve``, over HTTP as a chat server uses it: the
stream posted as NDJSON, the decisions read back from ``/v1/stream``.

One server for the class; each example gets tenants of its own (a prefix),
and the outputs of the example's lines are those of its tenants (the admin's
stream carries every tenant's; a clock without a tenant also moves the
earlier examples' tenants). Overflow stays off: its target is one tenant
that all examples would share."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conformance.model import Step
from tests.conformance.streams import Obj, encode, rename
from tests.conformance.suite import LIVE_RULES, ConformanceSuite
from tests.http.server import ADMIN, Server

pytestmark = pytest.mark.integration

SERVE_RULES = LIVE_RULES


class TestServe(ConformanceSuite):
    runtime = "routeq serve"
    rules = (SERVE_RULES,)
    examples = 100
    server: ClassVar[Server]
    counter = itertools.count()
    prefix = ""

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def started(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
        d: Path = tmp_path_factory.mktemp("conformance-serve")
        (d / "rules.toml").write_text(SERVE_RULES)
        with Server(d, "--rules", str(d / "rules.toml"), state=False) as server:
            cls.server = server
            yield

    def prepare(self, events: list[Obj | str]) -> list[Obj | str]:
        type(self).prefix = f"x{next(self.counter)}-"
        return rename(events, self.prefix)

    def execute(self, lines: list[bytes], rules: str) -> list[Step]:
        assert rules == SERVE_RULES
        sentinel = encode([{"type": "chat.requested", "id": "sentinel", "ts": 1,
                            "tenant": self.prefix + "sentinel", "visitor": "s", "chat": "s"}])
        body = b"".join(line + b"\n" for line in lines + sentinel)
        status, answer = self.server.post(ADMIN, None, raw=body, ctype="application/x-ndjson")
        assert status == 200, answer
        results = answer["results"]
        assert len(results) == len(lines) + 1
        offsets = [r["offset"] for r in results]
        mine: dict[int, list[Obj]] = {}
        stream = self.server.stream(ADMIN, query=f"?from={offsets[0]}")
        try:
            while True:
                _, _, out = stream.next()
                if out.get("tenant") == self.prefix + "sentinel":
                    break
                if out["tenant"].startswith(self.prefix) or out["type"] == "event.rejected":
                    mine.setdefault(out["offset"], []).append(out)
        finally:
            stream.close()
        steps = []
        for line, result, offset in zip(lines, results, offsets, strict=False):
            outputs = mine.get(offset, [])
            if result["status"] == "duplicate":
                assert not outputs, "a post answered 'duplicate' caused decisions"
            steps.append(Step(line, outputs))
        return steps
