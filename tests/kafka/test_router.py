"""The distributed runtime's logic without a broker (streams/kafka/router.py)."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streams.kafka.router as router_module
from engine import Engine
from schemas.events import decode
from streams.embedded.rules_file import load_rules
from streams.kafka.router import (
    JOURNAL_ROW,
    OFFSET_ROW,
    PartitionRouter,
    SeekBacks,
    TailWatch,
    original_cause,
)
from tests.routeq import routeq

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
        assert fx.outputs == [] and fx.forwards == [] and not fx.held
        assert fx.redelivered == len(again)  # skipped by offset, not even decoded
        # the same events in new messages (a producer's retry): the id window
        renewed = [(p, len(log) + i, v) for i, (_, _, v) in enumerate(again)]
        c.router.revoke([p])
        c.router.assign(p, c.table[p].items())
        fx = c.router.process(renewed)
        assert fx.outputs == [] and fx.forwards == [] and fx.redelivered == 0
        assert fx.duplicates == sum(1 for _, _, v in again if b'"tenant"' in v)
        log.extend(v for _, _, v in renewed)
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


def test_a_jump_past_the_next_offset_is_held_until_the_missing_come() -> None:
    r = PartitionRouter(load_rules(None))
    ev = [orjson.dumps({"type": "page.viewed", "id": f"e{i}", "ts": 1000 + i, "tenant": "t",
                        "visitor": "v", "page": "/"}) for i in range(6)]
    fx = r.process([(1, 10, ev[0]), (1, 11, ev[1]), (1, 14, ev[4]), (1, 15, ev[5])])
    assert fx.applied == 2 and fx.held == {1: (12, 14)}
    assert fx.rows[1][-1] == (OFFSET_ROW, b"12")
    # the seek back brings 12 and 13 again, then the held ones
    fx = r.process([(1, 12, ev[2]), (1, 13, ev[3]), (1, 14, ev[4]), (1, 15, ev[5])])
    assert fx.applied == 4 and not fx.held and r.next_offset[1] == 16
    # the next offset survives a restore from the rows
    rows = dict(fx.rows[1])
    r2 = PartitionRouter(load_rules(None))
    r2.assign(1, rows.items())
    assert r2.next_offset[1] == 16
    assert r2.process([(1, 15, ev[5])]).redelivered == 1
    # a hole in the log is skipped when the shell says so
    r2.skip_to(1, 20)
    assert r2.process([(1, 20, ev[5])]).held == {}


def test_seek_backs_go_on_until_in_order_and_skip_a_hole() -> None:
    r = PartitionRouter(load_rules(None))
    seeks = SeekBacks(r)
    # messages fetched before the seek keep coming: seek back at every batch
    for got in (30, 35, 40):
        assert seeks.on_held({2: (12, got)}) == [(2, 12)]
    seeks.on_in_order([2])
    assert not seeks.pending and seeks.total == 3 and seeks.holes == 0
    # the log has nothing from 50 to 59: every seek to 50 brings 60 first
    r.skip_to(3, 50)
    answers = [seeks.on_held({3: (50, 60)}) for _ in range(SeekBacks.HOLE_AFTER + 1)]
    assert answers[:-1] == [[(3, 50)]] * SeekBacks.HOLE_AFTER
    assert answers[-1] == [(3, 60)] and seeks.holes == 1 and r.next_offset[3] == 60


def test_a_partition_short_of_its_log_end_and_still_is_sought_back() -> None:
    tails = TailWatch(after_s=5.0)
    # partition 1 caught up, partition 2 short of its end: watched, not yet sought
    assert tails.check(0.0, {1: 40, 2: 12}, {1: 40, 2: 20}) == []
    # partition 2 moves on: its clock starts again
    assert tails.check(4.0, {1: 40, 2: 15}, {1: 40, 2: 20}) == []
    assert tails.check(8.0, {1: 40, 2: 15}, {1: 41, 2: 20}) == []
    # 5 s without a move while its log holds more: seek back to its next offset
    assert tails.check(9.0, {1: 41, 2: 15}, {1: 41, 2: 20}) == [(2, 15)]
    # and again only after another 5 s without a move
    assert tails.check(10.0, {1: 41, 2: 15}, {1: 41, 2: 20}) == []
    assert tails.check(14.0, {1: 41, 2: 15}, {1: 41, 2: 20}) == [(2, 15)]
    assert tails.total == 2
    # a partition with no next offset yet, or no longer asked about, is not watched
    assert tails.check(30.0, {1: 41}, {1: 45, 3: 9}) == []
    assert set(tails.since) == {1}
    # a rebalance: the wait starts again
    tails.reset()
    assert tails.check(36.0, {1: 41}, {1: 45}) == []


def test_a_tail_out_of_reach_is_given_up_until_the_log_moves() -> None:
    tails = TailWatch(after_s=5.0)
    assert tails.check(0.0, {4: 7}, {4: 8}) == []
    got = [tails.check(5.0 * k, {4: 7}, {4: 8}) for k in range(1, TailWatch.GIVE_UP_AFTER + 3)]
    assert got == [[(4, 7)]] * TailWatch.GIVE_UP_AFTER + [[], []]
    # new input moves the end: watched again
    assert tails.check(100.0, {4: 7}, {4: 9}) == []
    assert tails.check(105.0, {4: 7}, {4: 9}) == [(4, 7)]


LOG_LEN = 120


@st.composite
def deliveries(draw: st.DrawFn) -> list[tuple[str, int]]:
    """What a consumer may do: deliver the next k messages, lose k (its position
    moves on, nothing delivered), go back j (a redelivery), restart the worker."""
    step = st.one_of(st.tuples(st.just("deliver"), st.integers(1, 30)),
                     st.tuples(st.just("lose"), st.integers(1, 10)),
                     st.tuples(st.just("back"), st.integers(1, 40)),
                     st.tuples(st.just("restart"), st.just(0)))
    return draw(st.lists(step, max_size=25))


@settings(max_examples=60, deadline=None)
@given(plan=deliveries())
def test_each_offset_is_applied_once_in_order_whatever_the_delivery(
        trace: Any, plan: list[tuple[str, int]]) -> None:
    """Lost, repeated and rewound deliveries, restarts from the table, and the
    shell's seek back on a jump: every offset applied once, in order, and the
    outputs are the embedded runtime's."""
    lines, rules = trace
    mine = [line for line in lines if b'"m02"' in line][:LOG_LEN]
    table: dict[bytes, bytes] = {}
    router = PartitionRouter(rules)
    router.assign(0, table.items(), start=0)
    applied: list[int] = []
    outs: list[dict[str, Any]] = []
    pos = 0

    def deliver(k: int) -> None:
        nonlocal pos
        batch = [(0, o, mine[o]) for o in range(pos, min(pos + k, len(mine)))]
        pos += len(batch)
        before = router.next_offset[0]
        fx = router.process(batch)
        applied.extend(range(before, router.next_offset[0]))
        for key, v in fx.rows.get(0, []):
            if v is None:
                table.pop(key, None)
            else:
                table[key] = v
        outs.extend(norm(o) for _, o in fx.outputs)
        if fx.held:  # the shell seeks back to the next offset
            pos = fx.held[0][0]

    for action, k in plan:
        if action == "deliver":
            deliver(k)
        elif action == "lose":
            pos = min(pos + k, len(mine))
        elif action == "back":
            pos = max(0, pos - k)
        else:
            router.revoke([0])
            router.assign(0, table.items(), start=0)
    for _ in range(3):  # the consumer goes on: a seek back at most, then the rest
        deliver(LOG_LEN)
    assert applied == list(range(len(mine)))
    eng = Engine(rules)
    assert outs == [norm(o) for i, line in enumerate(mine) for o in eng.apply(decode(line), i)]


def test_the_clock_skew_guard_rejects_an_event_ahead_of_the_wall_clock() -> None:
    """``routeq worker``'s guard (issue 21, item 2): per line, not applied; off by default."""
    now = 1_790_000_000_000
    lines = [orjson.dumps(e) for e in (
        {"type": "agent.state", "id": "k1", "ts": now, "tenant": "t", "agent": "a",
         "status": "online", "capacity": 1},
        {"type": "chat.requested", "id": "k2", "ts": now + 301_000, "tenant": "t",
         "visitor": "v", "chat": "ahead"},
        {"type": "chat.requested", "id": "k3", "ts": now // 1000, "tenant": "t",
         "visitor": "v", "chat": "secs"},
        {"type": "chat.requested", "id": "k4", "ts": now + 299_000, "tenant": "t",
         "visitor": "w", "chat": "ok"},
    )]
    guarded = PartitionRouter(load_rules(None), max_skew_ms=300_000, wall_ms=lambda: now)
    fx = guarded.process([(0, i, line) for i, line in enumerate(lines)])
    assert [o["offset"] for _, o in fx.rejected] == [1, 2]
    assert all(o["error"].startswith("chat.requested: field 'ts'") for _, o in fx.rejected)
    assert [(o["type"], o["chat"]) for _, o in fx.outputs] == [("chat.assigned", "ok")]
    plain = PartitionRouter(load_rules(None))  # the default: the router is pure
    fx = plain.process([(0, i, line) for i, line in enumerate(lines)])
    assert not fx.rejected


@st.composite
def cut_writes(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Workers killed mid-write, one after the other: (the batch whose write
    was cut, how many of its rows recovery applied; 0: none landed)."""
    cuts = draw(st.lists(st.integers(1, 14), min_size=1, max_size=3, unique=True))
    return [(k, draw(st.integers(0, 40))) for k in sorted(cuts)]


@settings(max_examples=40, deadline=None)
@given(cuts=cut_writes())
def test_a_cut_write_is_rolled_forward_by_the_next_owner(
        trace: Any, cuts: list[tuple[int, int]]) -> None:
    """A worker killed while its batch's rows reach the changelog leaves a
    prefix of them: on Tansu, recovery applies a multi-record last batch only
    up to its first record; on any broker, a write of several batches can be
    cut between them. The batch's outputs were published before its rows. The
    next owner must continue from the state after that batch (its outputs
    are not made again, differently), and stay right after its own cut."""
    lines, rules = trace
    mine = [line for line in lines if b'"m02"' in line][:300]
    table: dict[bytes, bytes] = {}
    outs: dict[int, list[dict[str, Any]]] = {}  # offset -> outputs, the consumer rule
    router = PartitionRouter(rules)
    router.assign(0, table.items(), start=0)
    batches = [list(range(i, min(i + 20, len(mine)))) for i in range(0, len(mine), 20)]
    cut_at = dict(cuts)
    b = 0
    while b < len(batches):
        start = router.next_offset[0]
        todo = [o for o in batches[b] if o >= start] if batches[b][-1] >= start else []
        if not todo:
            b += 1
            continue
        fx = router.process([(0, o, mine[o]) for o in todo])
        made: dict[int, list[dict[str, Any]]] = {}
        for _, o in fx.outputs:
            made.setdefault(o["offset"], []).append(norm(o))
        for off, these in made.items():  # a consumer keeps the first of (offset, k)
            outs.setdefault(off, these)
        rows = fx.rows.get(0, [])
        if b in cut_at:  # killed: a prefix of the rows landed, a new worker takes over
            rows = rows[:cut_at.pop(b)]
        for key, v in rows:
            if v is None:
                table.pop(key, None)
            else:
                table[key] = v
        if len(rows) < len(fx.rows.get(0, [])):
            router = PartitionRouter(rules)
            router.assign(0, table.items(), start=0)
            continue  # the new owner gets the batch again (its offsets were not committed)
        b += 1
    eng = Engine(rules)
    want = [norm(o) for i, line in enumerate(mine) for o in eng.apply(decode(line), i)]
    assert [o for off in sorted(outs) for o in outs[off]] == want


def test_a_write_whole_locally_but_cut_in_the_changelog_is_written_again(trace: Any) -> None:
    """A worker restarted on its own local data, which holds its last write
    whole while the changelog got part of it: the write's rows go to the
    changelog again with the next batch, so a worker that rebuilds from the
    changelog later has every row."""
    lines, rules = trace
    mine = [line for line in lines if b'"m02"' in line][:300]
    local: dict[bytes, bytes] = {}
    changelog: dict[bytes, bytes] = {}

    def put(table: dict[bytes, bytes], rows: list[tuple[bytes, bytes | None]]) -> None:
        for key, v in rows:
            if v is None:
                table.pop(key, None)
            else:
                table[key] = v

    a = PartitionRouter(rules)
    a.assign(0, local.items(), start=0)
    for i in range(0, 60, 20):
        rows = a.process([(0, o, mine[o]) for o in range(i, i + 20)]).rows[0]
        put(local, rows)
        put(changelog, rows if i < 40 else rows[:1])  # the last write cut after its journal
    b = PartitionRouter(rules)  # the same worker again, on its local data
    b.assign(0, local.items(), start=0)
    assert b.next_offset[0] == 60
    put(changelog, b.process([(0, o, mine[o]) for o in range(60, 80)]).rows[0])
    c = PartitionRouter(rules)  # another worker, from the changelog alone
    c.assign(0, changelog.items(), start=0)
    outs = [norm(o) for _, o in c.process([(0, o, mine[o]) for o in range(80, 300)]).outputs]
    eng = Engine(rules)
    want = [norm(o) for i, line in enumerate(mine) for o in eng.apply(decode(line), i)
            if i >= 80]
    assert outs == want and outs


def test_a_write_too_big_for_one_record_goes_without_its_journal(
        trace: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    lines, rules = trace
    monkeypatch.setattr(router_module, "JOURNAL_MAX", 64)  # as if Kafka took 64 bytes a record
    r = PartitionRouter(rules)
    fx = r.process([(0, i, line) for i, line in enumerate(lines[:50])])
    assert fx.rows[0][-1] == (OFFSET_ROW, b"50")
    assert all(key != JOURNAL_ROW for key, _ in fx.rows[0])
    assert "too big for its journal" in caplog.text


def test_a_tenant_on_another_partition_than_its_engine_does_not_stop_the_router() -> None:
    """A message keyed otherwise than its tenant lands on another partition:
    its engine's partition gets the rows (and a journal), nothing fails."""
    r = PartitionRouter(load_rules(None))
    ev = [orjson.dumps({"type": "page.viewed", "id": f"e{i}", "ts": 1000 + i, "tenant": "t",
                        "visitor": "v", "page": "cart"}) for i in range(2)]
    r.process([(0, 0, ev[0])])
    fx = r.process([(1, 0, ev[1])])
    assert fx.applied == 1 and fx.rows[0][0][0] == JOURNAL_ROW
    assert any(key.startswith(b"t\x00") for key, _ in fx.rows[0])
