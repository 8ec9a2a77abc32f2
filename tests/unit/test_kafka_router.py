"""The distributed runtime's logic without a broker (streams/kafka/router.py)."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine import Engine
from schemas.events import decode
from streams.kafka.router import PartitionRouter, original_cause
from streams.rules_file import load_rules
from tests.integration.routeq import routeq

PARTS = 4


def part(tenant: str) -> int:
    return zlib.crc32(tenant.encode()) % PARTS


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], Any]:
    d = tmp_path_factory.mktemp("mp")
    routeq("simulate", "--scenario", "marketplace", "--hours", "0.4", "--seed", "5",
           "--quiet", "--out", d)
    return (d / "events.jsonl").read_bytes().splitlines(), load_rules(str(d / "rules.toml"))


def embedded(lines: list[bytes], rules: Any) -> dict[str, list[dict[str, Any]]]:
    eng = Engine(rules)
    out: dict[str, list[dict[str, Any]]] = {}
    for off, line in enumerate(lines):
        for o in eng.apply(decode(line), off):
            out.setdefault(o["tenant"], []).append(norm(o))
    return out


def norm(o: dict[str, Any]) -> dict[str, Any]:
    o = dict(o)
    o.pop("offset", None)
    o.pop("partition", None)
    o["cause"] = original_cause(o["cause"])
    return o


class Cluster:
    """Partitions as lists, a table as a dict per partition, forwards appended
    right after the batch that made them (the order of one in-order consumer)."""

    def __init__(self, rules: Any) -> None:
        self.rules = rules
        self.router = PartitionRouter(rules)
        self.table: dict[int, dict[bytes, bytes]] = {p: {} for p in range(PARTS)}
        self.logs: dict[int, list[bytes]] = {p: [] for p in range(PARTS)}
        self.out: dict[str, list[dict[str, Any]]] = {}

    def feed(self, p: int, value: bytes) -> None:
        self.logs[p].append(value)
        self.run([(p, len(self.logs[p]) - 1, value)])

    def run(self, msgs: list[tuple[int, int, bytes]]) -> None:
        for p, _, _ in msgs:
            if p not in self.router.assigned:
                self.router.assign(p, self.table[p].items())
        fx = self.router.process(msgs)
        for p, rows in fx.rows.items():
            for k, v in rows:
                if v is None:
                    self.table[p].pop(k, None)
                else:
                    self.table[p][k] = v
        for tenant, o in fx.outputs:
            self.out.setdefault(tenant, []).append(norm(o))
        for tenant, ev in fx.forwards:
            self.feed(part(tenant), orjson.dumps(ev))

    def send(self, line: bytes) -> None:
        tenant = orjson.loads(line).get("tenant")
        if tenant is None:
            for p in range(PARTS):
                self.feed(p, line)
        else:
            self.feed(part(tenant), line)


def test_in_order_forwarding_gives_the_embedded_outputs(trace: Any) -> None:
    lines, rules = trace
    c = Cluster(rules)
    for line in lines:
        c.send(line)
    want = embedded(lines, rules)
    assert c.out == want
    assert any(o["type"] == "chat.overflowed" for outs in want.values() for o in outs)


@pytest.mark.parametrize("cut", [0.2, 0.5, 0.83])
def test_restore_from_table_rows_continues_the_same(trace: Any, cut: float) -> None:
    """Drop every engine mid-stream and rebuild from the rows: same outputs."""
    lines, rules = trace
    c = Cluster(rules)
    k = int(len(lines) * cut)
    for line in lines[:k]:
        c.send(line)
    c.router.revoke(range(PARTS))
    assert not c.router.engines
    for line in lines[k:]:
        c.send(line)
    assert c.out == embedded(lines, rules)


def test_redelivered_messages_are_ignored(trace: Any) -> None:
    lines, rules = trace
    c = Cluster(rules)
    k = len(lines) // 2
    for line in lines[:k]:
        c.send(line)
    # a rebalance redelivers the last 200 messages of every partition
    c.router.revoke(range(PARTS))
    total = sum(map(len, c.out.values()))
    for p in range(PARTS):
        log = c.logs[p]
        again = [(p, i, log[i]) for i in range(max(0, len(log) - 200), len(log))]
        c.router.assign(p, c.table[p].items())
        fx = c.router.process(again)
        assert fx.outputs == [] and fx.forwards == []
        assert fx.duplicates == sum(1 for _, _, v in again if b'"tenant"' in v)
    assert sum(map(len, c.out.values())) == total
    for line in lines[k:]:
        c.send(line)
    assert c.out == embedded(lines, rules)


def test_packed_messages_equal_single_ones(trace: Any) -> None:
    lines, rules = trace
    one, packed = PartitionRouter(rules), PartitionRouter(rules)
    mine = [line for line in lines if b'"m01"' in line][:2000]
    a = one.process([(0, i, line) for i, line in enumerate(mine)])
    b = packed.process([(0, i, b"\n".join(mine[j:j + 7]))
                        for i, j in enumerate(range(0, len(mine), 7))])
    assert [norm(o) for _, o in a.outputs] == [norm(o) for _, o in b.outputs]
    assert a.outputs  # the sample routes chats


def test_bad_lines_are_rejected_with_their_position() -> None:
    r = PartitionRouter(load_rules(None))
    fx = r.process([(2, 7, b"{not json"),
                    (2, 8, b'{"type":"page.viewed","id":"x","ts":"soon","tenant":"t"}')])
    assert [o["offset"] for _, o in fx.rejected] == [7, 8]
    assert all(o["type"] == "event.rejected" and o["partition"] == 2 for _, o in fx.rejected)
    assert "ts" in fx.rejected[1][1]["error"]
    assert fx.applied == 0 and not fx.outputs


def test_a_clock_without_tenant_reaches_the_partitions_tenants(tmp_path: Path) -> None:
    rules_path = tmp_path / "rules.toml"
    rules_path.write_text("[assignment]\nacceptance_required = true\noffer_timeout_s = 1.0\n")
    r = PartitionRouter(load_rules(str(rules_path)))
    evs = [
        {"type": "agent.state", "id": "a", "ts": 1000, "tenant": "s", "agent": "ann",
         "status": "online"},
        {"type": "chat.requested", "id": "r", "ts": 1000, "tenant": "s", "visitor": "v",
         "chat": "c"},
    ]
    r.process([(0, i, orjson.dumps(e)) for i, e in enumerate(evs)])
    other = r.process([(1, 0, orjson.dumps({"type": "clock", "id": "k1", "ts": 5000}))])
    assert other.outputs == []  # tenant s is not on partition 1
    fx = r.process([(0, 2, orjson.dumps({"type": "clock", "id": "k2", "ts": 5000}))])
    assert [(t, o["type"], o.get("why")) for t, o in fx.outputs][0] == (
        "s", "chat.requeued", "offer_timeout")
