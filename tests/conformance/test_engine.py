"""The contract on ``Engine.apply``, the engine's public entry."""

from __future__ import annotations

from tests.conformance.model import Step
from tests.conformance.suite import ConformanceSuite, reference


class TestEngine(ConformanceSuite):
    runtime = "engine"
    examples = 300
    max_size = 120

    def execute(self, lines: list[bytes], rules: str) -> list[Step]:
        return reference(lines, rules)
