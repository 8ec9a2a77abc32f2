"""The dedup window by event time (issue 21, item 8): ``[dedup] window_s``
(default 24 h) beside the count ``window``, which stays a hard cap."""

from __future__ import annotations

from engine import Engine, parse_rules
from engine.dedup import IdWindow
from schemas.events import validate

T = 1_794_355_200_000


def clock(eng: Engine, eid: str, ts: int) -> list[dict[str, object]]:
    return eng.apply(validate({"type": "clock", "id": eid, "ts": ts, "tenant": "s"}))


def test_ids_older_than_window_s_are_forgotten_a_chunk_at_a_time() -> None:
    eng = Engine(parse_rules({"dedup": {"window": 2048, "window_s": 60}}))  # chunks of 1,024
    for i in range(1024):
        clock(eng, f"a{i}", T)  # chunk 0
    for i in range(1024):
        clock(eng, f"b{i}", T + 1_000)  # chunk 1, started at T + 1 s
    ids = eng.tenants["s"].ids
    assert "a0" in ids and "b0" in ids
    clock(eng, "c0", T + 61_000)  # chunk 2: chunk 1 started 60 s ago, not more
    assert "a0" in ids
    for i in range(1, 1024):
        clock(eng, f"c{i}", T + 61_001)
    clock(eng, "d0", T + 61_002)  # chunk 3: the count cap drops chunk 0 anyway
    assert "a0" not in ids and "b0" in ids


def test_time_drops_what_the_count_would_keep() -> None:
    eng = Engine(parse_rules({"dedup": {"window": 100_000, "window_s": 60}}))
    for i in range(1024):
        clock(eng, f"a{i}", T)
    clock(eng, "b0", T + 1_000)  # chunk 1 starts at T + 1 s
    for i in range(1, 1024):
        clock(eng, f"b{i}", T + 2_000)
    ids = eng.tenants["s"].ids
    clock(eng, "c0", T + 61_001)  # chunk 2: chunk 1 started more than 60 s ago
    assert "a0" not in ids and "b5" in ids and "c0" in ids
    assert len(ids.chunks) == 2  # bounded by time, far below the count's 98 chunks
    # forgotten: the id is a new event again; remembered: a duplicate does nothing
    assert eng.apply(validate({"type": "chat.requested", "id": "a1", "ts": T + 61_002,
                               "tenant": "s", "visitor": "v", "chat": "c"}))
    assert clock(eng, "b7", T + 61_003) == [] and eng.tenants["s"].now == T + 61_002


def test_the_default_is_a_day_and_old_rules_keep_their_hash() -> None:
    r = parse_rules({})
    assert (r.dedup_window, r.dedup_window_ms) == (100_000, 86_400_000)
    assert r.hash == "369eb92931e9"


def test_a_restored_window_forgets_as_the_original_does() -> None:
    rules = parse_rules({"dedup": {"window": 100_000, "window_s": 60}})
    a = Engine(rules)
    for i in range(1024):
        clock(a, f"a{i}", T)
    clock(a, "b0", T + 1_000)
    b = Engine.restore(rules, a.snapshot())
    for e in (a, b):
        for i in range(1, 1024):
            clock(e, f"b{i}", T + 2_000)
        clock(e, "c0", T + 61_001)
    assert a.tenants["s"].ids.chunks == b.tenants["s"].ids.chunks
    assert a.tenants["s"].ids.starts == b.tenants["s"].ids.starts


def test_a_chunk_record_of_ids_alone_still_restores() -> None:
    w = IdWindow(2048, window_ms=60_000)
    w.restore_chunk(0, ["x", "y"], 5)  # written before chunks had a start
    w.restore_chunk(1, [7, "z"])
    w.finish_restore(1026)
    assert "x" in w and "z" in w and w.starts == {0: 5, 1: 7}
    assert w.record(1) == [7, "z"]


def test_without_dedup_an_id_applied_again_counts_again() -> None:
    """``dedup=False`` (a what-if re-simulation, whose ids are unique already)
    applies an event whose id it saw; the default ignores it."""
    order = {"type": "order.placed", "id": "o1", "ts": T, "tenant": "s", "visitor": "v",
             "amount": 10.0}
    for dedup, orders in ((True, 1), (False, 2)):
        eng = Engine(parse_rules({}), dedup=dedup)
        eng.apply(validate(order))
        eng.apply(validate({**order, "ts": T + 1}))
        assert eng.tenants["s"].visitors["v"].orders == orders
        clock_all = validate({"type": "clock", "id": "k", "ts": T + 2})
        eng.apply(clock_all)
        eng.apply(validate({**clock_all, "ts": T + 3}))
        assert eng.now == T + 3 if not dedup else eng.now == T + 2


def test_an_id_restored_in_two_chunks_is_forgotten_with_the_later() -> None:
    """Records written apart may leave an id in two chunks: it is the later
    chunk's, and dropping the earlier one keeps it."""
    w = IdWindow(2, window_ms=None)  # chunks of 2, one full chunk kept besides the current
    w.restore_chunk(0, [T, "a", "b"])
    w.restore_chunk(1, [T, "b", "c"])
    w.finish_restore(4)
    assert all(i in w for i in "abc")
    assert w.admit("d", T) and w.admit("e", T)  # chunk 2: chunk 0 goes
    assert "a" not in w and "b" in w and "c" in w
    assert w.admit("f", T)  # chunk 3: chunk 1 goes, and "b" with it
    assert "b" not in w and "c" not in w and "d" in w
    assert not w.admit("d", T)
