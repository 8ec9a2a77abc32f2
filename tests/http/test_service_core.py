"""The service core without HTTP: numbering, replay = live, results per line."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from engine import default_rules
from streams.embedded.state import StateLayout
from streams.embedded.store import MemoryStore
from streams.http.service import Service, parse_cursor
from tests.helpers import make_rules
from tests.http.server import ev


def lines(*events: dict) -> list[bytes]:
    return [orjson.dumps(e) for e in events]


def started(history: int = 1000) -> tuple[Service, MemoryStore]:
    store = MemoryStore()
    svc = Service(default_rules(), StateLayout(store), history=history)
    svc.start()
    return svc, store


def traffic(svc: Service) -> None:
    svc.submit([lines(ev("agent.state", "a", 1, "s1", agent="ann", status="online",
                         capacity=1),
                      ev("agent.state", "b", 1, "s2", agent="bob", status="online",
                         capacity=1))])
    svc.submit([lines(*[ev("chat.requested", f"r{i}", 10 + i, f"s{1 + i % 2}",
                           visitor=f"v{i}", chat=f"c{i}") for i in range(6)]),
                lines(ev("clock", "tick", 100, None))])
    svc.submit([lines(ev("chat.ended", "e0", 200, "s1", chat="c0"),
                      ev("visitor.left", "l3", 210, "s2", visitor="v3"))])


def test_results_per_line_and_offsets() -> None:
    svc, _ = started()
    res = svc.submit([lines(ev("clock", "k1", 5, "s1")),
                      [b"{oops", orjson.dumps(ev("clock", "k1", 6, "s1"))]])
    assert [[(r.status, r.offset) for r in req] for req in res] == [
        [("accepted", 0)], [("rejected", 1), ("duplicate", 2)]]
    assert res[1][0].error is not None and svc.offset == 3


def test_numbering_and_replay_equal_the_live_outputs() -> None:
    svc, _ = started(history=3)  # keeps only the last few
    sub = svc.subscribe(None, lambda: None)
    traffic(svc)
    kept = list(sub.items)
    assert [it.id for it in kept][:3] == ["2.0", "3.0", "4.0"]  # agents at 0, 1: no output
    # ids are unique and increasing
    assert [it.cursor for it in kept] == sorted({it.cursor for it in kept})
    # what the history no longer holds comes back from the log, byte for byte
    assert svc.history_from > 0
    old = svc.replay_range((-1, -1), svc.history_from, None)
    recent, _ = svc.recent(old[-1].cursor, None)
    assert [(it.cursor, it.line) for it in old + recent] == [(it.cursor, it.line) for it in kept]
    # a tenant sees its own only
    mine = svc.replay_range((-1, -1), svc.offset + 1, "s2")
    assert mine and all(orjson.loads(it.line)["tenant"] == "s2" for it in mine)
    assert [it.line for it in mine] == [it.line for it in kept if it.tenant == "s2"]


def test_chat_view_follows_the_queue() -> None:
    svc, _ = started()
    traffic(svc)
    # s1: c0 assigned then ended -> c2 assigned, c4 waits first
    assert svc.chat_view("s1", "c2")["state"] == "assigned"  # type: ignore[index]
    view = svc.chat_view("s1", "c4")
    assert view is not None and view["position"] == 1 and view["queue_length"] == 1
    assert svc.chat_view("s2", "c3") == {"tenant": "s2", "chat": "c3", "state": "abandoned",
                                         "ended_ms": 210}
    assert svc.chat_view("s1", "c0") == {"tenant": "s1", "chat": "c0", "state": "ended",
                                         "ended_ms": svc.chat_view("s1", "c0")["ended_ms"]}  # type: ignore[index]
    assert svc.chat_view("s1", "c3") is None


def test_parse_cursor() -> None:
    assert parse_cursor("12.3") == (12, 3)
    assert parse_cursor("12") == (12, -1)
    assert parse_cursor("") is None


def test_stored_outputs_read_from_any_cursor_equal_the_replay() -> None:
    svc, _ = started(history=2)
    traffic(svc)
    for _ in range(3):
        traffic_more = [ev("clock", f"k{svc.offset}", 1_000 + svc.offset, None)]
        svc.submit([lines(*traffic_more)])
    every = svc.replay_range((-1, -1), svc.offset, None)
    assert svc.replayed > 0 and len(every) > 5
    cursors = [(-1, -1), (0, -1)] + [it.cursor for it in every]
    for tenant in (None, "s1", "s2"):
        for after in cursors:
            pages: list = []
            pos = after
            while pos is not None:  # pages of about 2
                got, pos = svc.read_range(pos, svc.offset, tenant, limit=2)
                pages += got
            want = [it for it in every if it.cursor > after and it.visible_to(tenant)]
            assert [(it.cursor, it.line) for it in pages] == [
                (it.cursor, it.line) for it in want], (tenant, after)
    # below: nothing at or past it
    got, pos = svc.read_range((0, -1), 5, None)
    assert pos is None and all(it.offset < 5 for it in got)
    assert svc.read_stored > 0


def test_feed_applies_the_decoded_events_it_is_given() -> None:
    """The runtime takes the events serve decoded and does not decode the lines
    again: a line and the event given for it that differ show which counts."""
    from streams.embedded.inputs import Chunk
    from streams.embedded.runtime import Runtime

    class Out:
        data = b""

        def outputs(self, outputs: list[dict[str, Any]], data: bytes) -> None:
            self.data += data

    out = Out()
    rt = Runtime(default_rules(), out)
    line = orjson.dumps(ev("chat.requested", "r1", 5, "s1", visitor="v", chat="from-line"))
    given = ev("chat.requested", "r1", 5, "s1", visitor="v", chat="given")
    rt.feed(Chunk([line], [1], "-", 0, 0, len(line) + 1, None, 0), ([given], []))
    assert orjson.loads(out.data)["chat"] == "given"
    # and afterwards the runtime decodes what ``feed`` gets, as before
    rt.feed(Chunk([line.replace(b"r1", b"r2")], [2], "-", 0, 0, len(line) + 1, None, 0))
    assert orjson.loads(out.data.splitlines()[-1])["chat"] == "from-line"


def test_each_posted_line_is_parsed_once(monkeypatch: Any) -> None:
    """A post's lines are parsed once (``parse_body``); the tenant check, the
    clock-skew guard, the decoder and the fan-out of the outputs take the
    values and the output objects as they are."""
    from streams.embedded.skew import skewed_lines
    from streams.http.ingest import check_tenant, parse_body

    svc = Service(default_rules(), None)
    svc.start()
    events = [ev("agent.state", "a", 1, "s1", agent="ann", status="online", capacity=2),
              ev("chat.requested", "r1", 2, "s1", visitor="v1", chat="c1"),
              ev("chat.requested", "r2", 3, "s1", visitor="v2", chat="c2"),
              ev("page.viewed", "p1", 4, "s1", visitor="v1")]  # no page: rejected
    real = orjson.loads
    parsed: list[object] = []

    def counting(data: Any) -> Any:
        parsed.append(data)
        return real(data)

    monkeypatch.setattr(orjson, "loads", counting)
    for ctype, body, parses in (
            ("application/x-ndjson", b"\n".join(map(orjson.dumps, events)), len(events)),
            ("application/json", orjson.dumps(events), 1)):
        parsed.clear()
        lines, values = parse_body(body, ctype)
        check_tenant(values, "s1")
        assert skewed_lines(values, 300_000, now_ms=10) == {}
        res = svc.submit([lines], [values])
        assert [r.status for r in res[0]] == (
            ["accepted"] * 3 + ["rejected"] if parses > 1 else ["duplicate"] * 3 + ["rejected"])
        assert len(parsed) == parses
    assert [it.type for it in svc.history][:3] == ["chat.assigned", "chat.assigned",
                                                   "event.rejected"]


OVERFLOW_RULES = {"overflow": {"enabled": True, "after_s": 10.0},
                  "modes": {"default": "human_only"}}


def figures(svc: Service, tenant: str) -> tuple[int, int, int]:
    """(chats answered, of them within 20 s, abandoned) in the tenant's last hour."""
    tot = svc.stats[tenant].totals()
    return tot.assigned, tot.answered_in_sl, tot.abandoned


@pytest.mark.parametrize("where", ["m1", "platform"])
def test_an_overflowed_chat_counts_once_for_its_merchant_and_is_forgotten_when_it_ends(
        where: str) -> None:
    svc = Service(make_rules(OVERFLOW_RULES), None)
    svc.start()
    svc.submit([lines(ev("agent.state", "p1", 0, "platform", agent="pat", status="online",
                         capacity=1),
                      ev("chat.requested", "r0", 0, "m1", visitor="v0", chat="c0"))])
    # it waits 10 s at m1, overflows, and the platform answers it at once
    svc.submit([lines(ev("clock", "k1", 10_000, None))])
    assert figures(svc, "m1") == (1, 1, 0) and "platform" not in svc.stats
    assert set(svc.answered) == {("m1", "c0")}
    # declined there, answered again 30 s later: not counted again
    svc.submit([lines(ev("chat.declined", "d1", 11_000, "platform", chat="c0",
                         agent="pat", origin="m1"))])
    svc.submit([lines(ev("agent.state", "p2", 40_000, "platform", agent="pia",
                         status="online", capacity=1))])
    assigned = [it for it in svc.history if it.type == "chat.assigned"]
    assert [(it.tenant, it.origin) for it in assigned] == [("platform", "m1")] * 2
    assert figures(svc, "m1") == (1, 1, 0)
    # it ends (said to its merchant, or to the platform with its origin): forgotten
    origin = {"origin": "m1"} if where == "platform" else {}
    svc.submit([lines(ev("chat.ended", "e1", 50_000, where, chat="c0", **origin))])
    assert svc.answered == {}
    assert svc.chat_view("m1", "c0") == {"tenant": "m1", "chat": "c0", "state": "ended",
                                         "ended_ms": 50_000}


def story(svc: Service, part: int) -> None:
    """c1 answered, declined, answered again; c2 answered, declined, left
    waiting (not abandoned: it was answered); c3 abandoned unanswered."""
    if part == 0:
        svc.submit([lines(ev("agent.state", "a1", 1_000, "s", agent="ann", status="online",
                             capacity=1),
                          ev("chat.requested", "r1", 2_000, "s", visitor="v1", chat="c1"))])
    else:
        for e in [ev("chat.declined", "d1", 3_000, "s", chat="c1", agent="ann"),
                  ev("agent.state", "b1", 30_000, "s", agent="bob", status="online",
                     capacity=1),
                  ev("chat.requested", "r2", 31_000, "s", visitor="v2", chat="c2"),
                  ev("chat.declined", "d2", 32_000, "s", chat="c2", agent="ann"),
                  ev("visitor.left", "l2", 33_000, "s", visitor="v2"),
                  ev("agent.state", "a2", 34_000, "s", agent="ann", status="away"),
                  ev("chat.requested", "r3", 35_000, "s", visitor="v3", chat="c3"),
                  ev("visitor.left", "l3", 36_000, "s", visitor="v3")]:
            svc.submit([lines(e)])


def test_the_figures_after_a_restart() -> None:
    """Rebuilt from the log (no checkpoint since), they are the same; resumed
    from a checkpoint taken after a chat's first answer, its reassignment and
    its abandonment after a requeue still do not count."""
    svc, store = started()
    story(svc, 0)
    story(svc, 1)
    live = figures(svc, "s")
    assert live == (2, 2, 1)  # c1 and c2, both answered at once; c3
    again = Service(default_rules(), StateLayout(store))
    again.start()  # re-derives every output from offset 0
    assert figures(again, "s") == live
    assert again.tenant_summary("s") == svc.tenant_summary("s")
    assert svc.answered == again.answered == {("s", "c1"): None}
    # a checkpoint after c1's first answer: the rest comes after the restart
    svc, store = started()
    story(svc, 0)
    svc.close()
    svc = Service(default_rules(), StateLayout(store))
    svc.start()
    assert "s" not in svc.stats  # nothing re-derived
    story(svc, 1)
    # c2 answered, c3 abandoned; c1's reassignment is not a first answer
    assert figures(svc, "s") == (1, 1, 1)
