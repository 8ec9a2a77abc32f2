"""``routeq serve`` against a real server on a free loopback port."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http.server import ADMIN, TOKEN_A, TOKEN_B, Server, ev

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("serve"), "--max-body", "65536") as s:
        yield s


def agent(eid: str, tenant: str, name: str, capacity: int = 1, ts: int = 1_000) -> dict:
    return ev("agent.state", eid, ts, tenant, agent=name, status="online", capacity=capacity)


def request(eid: str, tenant: str, chat: str, ts: int = 2_000, **kw: object) -> dict:
    return ev("chat.requested", eid, ts, tenant, visitor="v-" + chat, chat=chat, **kw)


def test_ingest_answers_each_event(server: Server) -> None:
    status, ans = server.post(TOKEN_A, [
        agent("in-1", "shopA", "ann"),
        request("in-2", "shopA", "in-c1"),
        request("in-2", "shopA", "in-c1"),  # the same id again
        ev("page.viewed", "in-3", "yesterday", "shopA", visitor="v1", page="cart"),  # type: ignore[arg-type]
    ])
    assert status == 200, ans
    assert [r["status"] for r in ans["results"]] == ["accepted", "accepted", "duplicate",
                                                    "rejected"]
    offsets = [r["offset"] for r in ans["results"]]
    assert offsets == list(range(offsets[0], offsets[0] + 4))
    assert ans["results"][3]["error"].startswith("page.viewed: field 'ts' must be")
    assert (ans["accepted"], ans["duplicates"], ans["rejected"]) == (2, 1, 1)
    # posting the same event again later is a duplicate too
    status, ans = server.post(TOKEN_A, request("in-2", "shopA", "in-c1"))
    assert status == 200 and ans["results"][0]["status"] == "duplicate"


def test_ndjson_body(server: Server) -> None:
    lines = b"\n".join([
        b'{"type":"agent.state","id":"nd-1","ts":1000,"tenant":"shopA","agent":"nd",'
        b'"status":"away","capacity":2}',
        b"",
        b"not json at all",
        b'{"type":"clock","id":"nd-2","ts":1500,"tenant":"shopA"}\r',
    ]) + b"\n"
    status, ans = server.post(TOKEN_A, None, raw=lines, ctype="application/x-ndjson")
    assert status == 200, ans
    assert [r["status"] for r in ans["results"]] == ["accepted", "rejected", "accepted"]


def test_auth_and_body_errors(server: Server) -> None:
    one = [agent("au-1", "shopA", "ann2")]
    assert server.post(None, one)[0] == 401
    assert server.post("not-a-token-at-all-123", one)[0] == 401
    assert server.get("/v1/queue", None)[0] == 401
    # a tenant's token posts and reads only its own tenant
    status, ans = server.post(TOKEN_A, [agent("au-2", "shopB", "bob")])
    assert status == 403 and "shopA" in ans["error"]
    assert server.post(TOKEN_A, [ev("clock", "au-3", 5, None)])[0] == 403
    assert server.get("/v1/queue?tenant=shopB", TOKEN_A)[0] == 403
    assert server.get("/v1/overview?tenant=shopB", TOKEN_A)[0] == 403
    status, ans = server.get("/v1/overview", TOKEN_A)  # its own dashboard (issue 21)
    assert status == 200 and [t["tenant"] for t in ans["tenants"]] == ["shopA"]
    assert server.get("/metrics", TOKEN_B)[0] == 403
    assert server.get("/v1/queue", ADMIN)[0] == 400  # which tenant?
    # bodies
    big = [request(f"big-{i}", "shopA", f"big-{i}", message="x" * 900) for i in range(80)]
    status, ans = server.post(TOKEN_A, big)
    assert status == 413, ans
    status, ans = server.post(TOKEN_A, None, raw=b'{"type": "clock", ', ctype="application/json")
    assert status == 400 and "not valid JSON" in ans["error"]
    assert server.post(TOKEN_A, [])[0] == 400
    assert server.post(TOKEN_A, None, raw=b"42", ctype="application/json")[0] == 400
    status, ans = server.post(TOKEN_A, None, raw=b"<xml/>", ctype="application/xml")
    assert status == 415 and "application/json" in ans["error"]
    # nothing of the refused requests reached the log
    status, q = server.get("/v1/agents", TOKEN_A)
    assert status == 200 and "ann2" not in {a["agent"] for a in q["agents"]}


def test_queue_position_and_chat_state(server: Server) -> None:
    t = "qpos"  # the admin may post for any tenant
    events = [agent("qp-0", t, "amy", capacity=1)]
    events += [request(f"qp-{i}", t, f"c{i}", ts=2_000 + i) for i in range(1, 5)]
    status, ans = server.post(ADMIN, events)
    assert status == 200 and ans["accepted"] == 5
    status, c1 = server.get(f"/v1/chats/c1?tenant={t}", ADMIN)
    assert status == 200 and c1["state"] == "assigned" and c1["agent"] == "amy"
    for i, chat in enumerate(["c2", "c3", "c4"], start=1):
        status, view = server.get(f"/v1/chats/{chat}?tenant={t}", ADMIN)
        assert status == 200
        assert view["state"] == "waiting" and view["position"] == i
        assert view["queue_length"] == 3 and view["eta_s"] > 0
    # the visitor of c3 leaves: c4 moves up; c1 ends: c2 is assigned
    server.post(ADMIN, [ev("visitor.left", "qp-5", 3_000, t, visitor="v-c3"),
                        ev("chat.ended", "qp-6", 3_100, t, chat="c1")])
    assert server.get(f"/v1/chats/c4?tenant={t}", ADMIN)[1]["position"] == 1
    assert server.get(f"/v1/chats/c2?tenant={t}", ADMIN)[1]["state"] == "assigned"
    assert server.get(f"/v1/chats/c3?tenant={t}", ADMIN)[1]["state"] == "abandoned"
    status, q = server.get(f"/v1/queue?tenant={t}", ADMIN)
    assert status == 200 and [r["chat"] for r in q["chats"]] == ["c4"]
    status, a = server.get(f"/v1/agents?tenant={t}", ADMIN)
    assert a["agents"] == [{"agent": "amy", "status": "online", "load": 1, "capacity": 1,
                            "skills": {}, "chats": ["c2"]}]
    assert server.get(f"/v1/chats/nope?tenant={t}", ADMIN)[0] == 404


def test_tenant_never_sees_another_tenants_data(server: Server) -> None:
    s_a = server.stream(TOKEN_A)
    s_b = server.stream(TOKEN_B)
    assert s_a.status == s_b.status == 200
    try:
        status, ans = server.post(TOKEN_B, [agent("iso-b1", "shopB", "bea"),
                                            request("iso-b2", "shopB", "secret-b")])
        assert status == 200
        status, ans = server.post(TOKEN_A, [request("iso-a1", "shopA", "iso-a")])
        assert status == 200
        # B sees its own assignment; A's next output is A's own queued chat
        _, typ, data = s_b.next()
        assert (typ, data["chat"], data["tenant"]) == ("chat.assigned", "secret-b", "shopB")
        while True:
            _, typ, data = s_a.next()
            assert data["tenant"] == "shopA"
            if data.get("chat") == "iso-a":
                break
    finally:
        s_a.close()
        s_b.close()
    assert server.get("/v1/chats/secret-b", TOKEN_A)[0] == 404
    assert server.get("/v1/chats/secret-b", TOKEN_B)[0] == 200
    status, q = server.get("/v1/agents", TOKEN_A)
    assert "bea" not in {a["agent"] for a in q["agents"]}
    assert server.get("/v1/tenants", TOKEN_A)[1] == {"tenants": ["shopA"]}
    # the admin sees both
    tenants = server.get("/v1/tenants", ADMIN)[1]["tenants"]
    assert {"shopA", "shopB"} <= set(tenants)


def test_stream_resumes_with_no_gap(server: Server) -> None:
    t = "resume"
    status, ans = server.post(ADMIN, [agent("rs-0", t, "rio", capacity=2)])
    start = ans["results"][0]["offset"]
    batches = [[request(f"rs-{b}-{i}", t, f"r{b}-{i}", ts=3_000 + 10 * b + i)
                for i in range(5)] for b in range(4)]
    s = server.stream(ADMIN, query=f"?tenant={t}&from={start}")
    server.post(ADMIN, batches[0])
    seen = s.take(3)  # the client reads a few, then the connection drops
    s.close()
    for b in batches[1:3]:  # meanwhile more is decided
        assert server.post(ADMIN, b)[0] == 200
    s = server.stream(ADMIN, last_event_id=seen[-1][0], query=f"?tenant={t}")
    server.post(ADMIN, batches[3])
    rest = s.take(20 - 3)
    s.close()
    got = seen + rest
    # one uninterrupted read from the start gives the same events
    full = server.stream(ADMIN, query=f"?tenant={t}&from={start}")
    whole = full.take(20)
    full.close()
    assert [e[0] for e in got] == [e[0] for e in whole]
    assert [e[2] for e in got] == [e[2] for e in whole]
    assert [e[2]["chat"] for e in got] == [f"r{b}-{i}" for b in range(4) for i in range(5)]
    assert [e[1] for e in got[:2]] == ["chat.assigned"] * 2
    assert all(re.fullmatch(r"\d+\.\d+", e[0]) for e in got)


def test_metrics(server: Server) -> None:
    t = "metered"
    server.post(ADMIN, [agent("m-0", t, "max", capacity=1),
                        request("m-1", t, "m1"), request("m-2", t, "m2"),
                        ev("page.viewed", "m-3", "x", t, visitor="v")])  # type: ignore[arg-type]
    status, text = server.get("/metrics", ADMIN)
    assert status == 200 and isinstance(text, str)
    want = [
        f'routeq_events_total{{result="accepted",tenant="{t}"}} 3.0',
        f'routeq_events_total{{result="rejected",tenant="{t}"}} 1.0',
        f'routeq_decisions_total{{tenant="{t}",type="chat.assigned"}} 1.0',
        f'routeq_decisions_total{{tenant="{t}",type="chat.queued"}} 1.0',
        f'routeq_queue_length{{tenant="{t}"}} 1.0',
        f'routeq_agent_occupancy{{tenant="{t}"}} 1.0',
        f'routeq_wait_seconds_count{{tenant="{t}"}} 1.0',
        f'routeq_service_level{{tenant="{t}"}} 1.0',
        f'routeq_abandonment{{tenant="{t}"}} 0.0',
    ]
    for line in want:
        assert line in text.splitlines(), line


RULES_ACCEPT = """
[assignment]
acceptance_required = true
offer_timeout_s = 5.0
"""


def test_service_level_and_abandonment_count_each_chat_once(tmp_path: Path) -> None:
    """A chat counts once in ``/metrics`` and the dashboard: its first
    ``chat.assigned`` answers it (within 20 s by that one's wait); a
    reassignment after a requeue does not count again, and a chat abandoned
    after it was answered is not abandoned. Only a chat abandoned before any
    answer is."""
    t = "once"
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES_ACCEPT)
    steps = [
        [agent("on-1", t, "ann", ts=1_000)],
        [request("on-2", t, "c1", ts=2_000)],  # offered to ann: answered at once
        [ev("chat.declined", "on-3", 3_000, t, chat="c1", agent="ann")],  # requeued
        # bob takes it 28 s after it was requested: a second answer, not counted
        [agent("on-4", t, "bob", ts=30_000)],
        [ev("chat.accepted", "on-5", 30_500, t, chat="c1", agent="bob")],
        [request("on-6", t, "c2", ts=31_000)],  # offered to ann: answered at once
        # ann's offer times out (36 s): c2 waits again (bob is full), the visitor leaves
        [ev("clock", "on-7", 37_000, t)],
        [ev("visitor.left", "on-8", 38_000, t, visitor="v-c2")],
        # a chat no one answered: the one abandonment
        [ev("agent.state", "on-9", 39_000, t, agent="ann", status="away")],
        [request("on-10", t, "c3", ts=40_000)],
        [ev("visitor.left", "on-11", 41_000, t, visitor="v-c3")],
        [ev("chat.ended", "on-12", 42_000, t, chat="c1")],
    ]
    with Server(tmp_path, "--rules", str(rules)) as server:
        stream = server.stream(ADMIN, query=f"?tenant={t}&from=0")
        for events in steps:
            status, ans = server.post(ADMIN, events)
            assert status == 200 and ans["accepted"] == len(events), ans
        seen = []
        try:
            while len(seen) < 10:
                _, typ, data = stream.next()
                seen.append((typ, data.get("chat"), data.get("agent"), data.get("wait_ms")))
        finally:
            stream.close()
        # the story the figures count: c1 and c2 twice assigned or requeued
        assert [s[:2] for s in seen] == [
            ("chat.assigned", "c1"), ("chat.requeued", "c1"), ("chat.queued", "c1"),
            ("chat.assigned", "c1"), ("chat.assigned", "c2"), ("chat.requeued", "c2"),
            ("chat.queued", "c2"), ("chat.abandoned", "c2"), ("chat.queued", "c3"),
            ("chat.abandoned", "c3")], seen
        assert seen[3][3] == 28_000  # c1's second answer was late; its first was not
        status, text = server.get("/metrics", ADMIN)
        assert status == 200 and isinstance(text, str)
        gauges = {line.split(" ")[0]: float(line.split(" ")[1])
                  for line in text.splitlines() if f'tenant="{t}"' in line}
        # 2 chats answered (both first answers within 20 s), 1 abandoned
        assert gauges[f'routeq_service_level{{tenant="{t}"}}'] == pytest.approx(2 / 3)
        assert gauges[f'routeq_abandonment{{tenant="{t}"}}'] == pytest.approx(1 / 3)
        status, ov = server.get(f"/v1/overview?tenant={t}", ADMIN)
        assert status == 200, ov
        (summary,) = ov["tenants"]
        assert summary["service_level"] == pytest.approx(2 / 3)
        assert summary["abandonment"] == pytest.approx(1 / 3)
        (minute,) = [m for m in summary["series"] if m["assigned"] or m["abandoned"]]
        assert (minute["t"], minute["assigned"], minute["abandoned"]) == (0, 2, 1)


def test_static_dashboard_files(server: Server) -> None:
    status, page = server.get("/", None)
    assert status == 200 and "routeq" in page and "http" not in page.replace(
        "http-equiv", "")  # nothing fetched from elsewhere
    assert server.get("/static/../serve.py", None)[0] == 404


def test_a_static_name_too_long_for_the_file_system_is_not_found(server: Server) -> None:
    """A name longer than a file name may be (255 bytes) made the lookup raise
    (ENAMETOOLONG) and the server answer 500 (found by schemathesis)."""
    status, body = server.get("/static/" + "x" * 300 + ".js", None)
    assert status == 404 and "no static file" in body["error"]


def test_restart_resumes_the_stream_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    t = "restart"
    events = [agent("rt-0", t, "ray", capacity=1)]
    events += [request(f"rt-{i}", t, f"x{i}", ts=2_000 + i) for i in range(1, 9)]
    with Server(tmp_path, "--history", "2") as s:
        status, ans = s.post(ADMIN, events[:5])
        assert status == 200
        st = s.stream(ADMIN, query=f"?tenant={t}&from=0")
        first = st.take(3)
        assert s.stop() == 0  # SIGTERM: the open stream ends
        with pytest.raises((EOFError, OSError)):  # after what was sent, the end
            for _ in range(2):
                st.next()
        st.close()
    with Server(tmp_path, "--history", "2") as s:
        assert s.post(ADMIN, events[5:])[0] == 200
        # outputs before the restart come back from the log (the history holds 2)
        st = s.stream(ADMIN, last_event_id=first[-1][0], query=f"?tenant={t}")
        rest = st.take(8 - 3)
        st.close()
        assert [e[2]["chat"] for e in first + rest] == [f"x{i}" for i in range(1, 9)]
        assert [e[1] for e in first + rest] == ["chat.assigned"] + ["chat.queued"] * 7
        # the chat state survived the restart
        assert s.get(f"/v1/chats/x1?tenant={t}", ADMIN)[1]["agent"] == "ray"
        assert s.get(f"/v1/chats/x8?tenant={t}", ADMIN)[1]["position"] == 7
