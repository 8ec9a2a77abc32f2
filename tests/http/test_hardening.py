"""Attacks on a live ``routeq serve`` (issue 14), each against a real server
on loopback with tokens for an admin and two shops A and B:

- a tenant token posting routeq's internal event type (``chat.handed_over``)
  or internal fields (``origin``) to write into another tenant;
- forged tenant names exploding the ``/metrics`` label sets;
- a value nested deeper than the JSON encoder goes in an ``application/json``
  body;
- a full disk (a file-size limit on the server process): ``/healthz`` turns
  503 with the reason, posts are answered 503 (JSON), and once writes succeed
  again the server recovers by itself, with every acknowledged event applied
  once and the stream equal to a replay.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import resource
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.http.server import ADMIN, TOKEN_A, TOKEN_B, TOKENS_TOML, Server, ev
from tests.http.test_stream_resume import numbered
from tests.routeq import routeq

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

METRIC_TENANTS = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("hard"), "--metrics-tenants",
                str(METRIC_TENANTS)) as s:
        yield s


def offset(server: Server) -> int:
    status, health = server.get("/healthz", None)
    assert status == 200, health
    return int(health["offset"])


# ------------------------------------------------------------ tenant isolation


def test_a_tenant_token_cannot_post_a_hand_over(server: Server) -> None:
    before = offset(server)
    status, ans = server.post(TOKEN_A, [
        ev("agent.state", "iso-a1", 1_000, "shopA", agent="evil-agent", status="online"),
        ev("chat.handed_over", "iso-h1", 1_000, "shopA", **{"from": "shopB"},
           chat="fake-chat-1", visitor="victim-visitor", requested_ts=1_000)])
    assert status == 403, ans
    assert "event 2" in ans["error"] and "chat.handed_over" in ans["error"], ans
    assert offset(server) == before  # nothing of that post is logged
    # B's stream holds nothing A made up
    st_b = server.stream(TOKEN_B, query=f"?from={before}", timeout=2)
    try:
        with pytest.raises((TimeoutError, OSError, EOFError)):
            st_b.next()
    finally:
        st_b.close()


@pytest.mark.parametrize("typ", ["chat.accepted", "chat.declined", "chat.ended"])
def test_a_tenant_token_cannot_name_an_origin(server: Server, typ: str) -> None:
    before = offset(server)
    fields = {"chat": "bchat", "origin": "shopB"}
    if typ != "chat.ended":
        fields["agent"] = "ann"
    status, ans = server.post(TOKEN_A, [ev(typ, f"iso-{typ}", 1_000, "shopA", **fields)])
    assert status == 403, ans
    assert "event 1" in ans["error"] and "'origin'" in ans["error"], ans
    assert offset(server) == before


def test_a_tenant_token_posts_every_public_type_and_its_own_clock(server: Server) -> None:
    t = "shopA"
    status, ans = server.post(TOKEN_A, [
        ev("agent.state", "pub-1", 1_000, t, agent="pub-agent", status="online"),
        ev("visitor.arrived", "pub-2", 1_000, t, visitor="pv", channel="web"),
        ev("page.viewed", "pub-3", 1_000, t, visitor="pv", page="home"),
        ev("chat.requested", "pub-4", 1_000, t, visitor="pv", chat="pc"),
        ev("chat.declined", "pub-5", 1_000, t, chat="pc", agent="pub-agent"),
        ev("chat.accepted", "pub-6", 1_000, t, chat="pc", agent="pub-agent"),
        ev("bot.escalated", "pub-7", 1_000, t, chat="pc"),
        ev("chat.ended", "pub-8", 1_000, t, chat="pc"),
        ev("order.placed", "pub-9", 1_000, t, visitor="pv", amount=3.5),
        ev("visitor.left", "pub-10", 1_000, t, visitor="pv"),
        ev("clock", "pub-11", 1_000, t)])
    assert status == 200, ans
    assert ans["accepted"] == 11, ans


def test_the_admin_may_replay_internal_events(server: Server) -> None:
    status, ans = server.post(ADMIN, [
        ev("chat.handed_over", "adm-h1", 1_000, "shopA", **{"from": "shopB"},
           chat="replayed", visitor="rv", requested_ts=1_000),
        ev("chat.ended", "adm-e1", 1_100, "shopA", chat="replayed", origin="shopB")])
    assert status == 200, ans
    assert [r["status"] for r in ans["results"]] == ["accepted", "accepted"], ans


# ------------------------------------------------------------ metrics labels


def tenant_labels(text: str) -> set[str]:
    return set(re.findall(r'(?:tenant)="([^"]*)"', text))


def test_forged_tenant_names_do_not_explode_the_metrics(server: Server) -> None:
    """Hand-overs from 300 made-up merchants (the admin's, so accepted) and
    events for 300 made-up tenants: the label sets stay within the cap."""
    events = [ev("agent.state", "lab-a", 2_000, "shopA", agent="lab-agent", status="online",
                 capacity=100)]
    events += [ev("chat.handed_over", f"lab-h{i}", 2_000, "shopA", **{"from": f"forged{i}"},
                  chat=f"lc{i}", visitor=f"lv{i}", requested_ts=2_000) for i in range(300)]
    events += [ev("agent.state", f"lab-t{i}", 2_000, f"made-up{i}", agent="x", status="online")
               for i in range(300)]
    status, ans = server.post(ADMIN, events)
    assert status == 200 and ans["accepted"] == len(events), ans
    status, text = server.get("/metrics", ADMIN)
    assert status == 200 and isinstance(text, str)
    labels = tenant_labels(text)
    assert "shopA" in labels
    # the configured tenants, the cap of others, and "_other"
    assert len(labels) <= 2 + METRIC_TENANTS + 1, sorted(labels)
    assert "_other" in labels
    assert len(text.splitlines()) < 2_000


# ------------------------------------------------------------ deep nesting


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [255, 300, 900])
def test_deeply_nested_json_is_rejected_per_line_like_ndjson(server: Server,
                                                              depth: int) -> None:
    """orjson writes at most 254 levels: such a value in a JSON array is
    answered for its line, as the same lines in NDJSON are, and the valid
    events of the post are logged."""
    lines = [
        f'{{"type":"page.viewed","id":"deep{depth}-1","ts":1000,"tenant":"shopA",'
        f'"visitor":"dv","page":"home"}}',
        f'{{"type":"chat.requested","id":"deep{depth}-2","ts":1000,"tenant":"shopA",'
        f'"visitor":"dv","chat":"dc","message":{nested(depth)}}}',
        f'{{"type":"page.viewed","id":"deep{depth}-3","ts":1000,"tenant":"shopA",'
        f'"visitor":"dv","page":"cart"}}',
    ]
    status, ans = server.post(TOKEN_A, None, raw=("[" + ",".join(lines) + "]").encode())
    assert status == 200, ans
    assert [r["status"] for r in ans["results"]] == ["accepted", "rejected", "accepted"]
    assert "'message'" in ans["results"][1]["error"], ans
    # the same lines as NDJSON (new ids): the same answers
    nd = "\n".join(ln.replace(f"deep{depth}-", f"ndeep{depth}-") for ln in lines)
    status, nd_ans = server.post(TOKEN_A, None, raw=nd.encode(), ctype="application/x-ndjson")
    assert status == 200, nd_ans
    assert [(r["status"], r.get("error")) for r in nd_ans["results"]] == [
        (r["status"], r.get("error")) for r in ans["results"]]


def test_a_single_deeply_nested_event_is_answered_json(server: Server) -> None:
    body = ('{"type":"page.viewed","id":"deep-single","ts":1000,"tenant":"shopA",'
            '"visitor":"dv","page":"home","extra":' + nested(1000) + "}").encode()
    status, ans = server.post(TOKEN_A, None, raw=body)
    assert status in (200, 400), ans
    assert isinstance(ans, dict), ans  # JSON, not a plain-text 500
    if status == 400:
        assert "event 1" in ans["error"], ans


# ------------------------------------------------------------ a full disk

FSIZE = 1 << 20  # bytes a file of the server may reach while "the disk is full"


def limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE, resource.RLIM_INFINITY))


def requests(prefix: str, n: int, ts: int) -> list[dict[str, object]]:
    return [ev("chat.requested", f"{prefix}-{i}", ts, "shopA", visitor=f"{prefix}-v{i}",
               chat=f"{prefix}-c{i}", message="m" * 2_000) for i in range(n)]


def test_a_full_disk_turns_health_red_and_the_server_recovers(tmp_path: Path) -> None:
    server = Server(tmp_path, "--history", "50", preexec_fn=limit_file_size)
    with server:
        assert server.post(TOKEN_A, [ev("agent.state", "df-agent", 1_000, "shopA",
                                        agent="dfa", status="online", capacity=3)])[0] == 200
        acked: list[str] = []
        failed: list[dict[str, object]] = []
        for p in range(200):  # about 40 KB a post: the 1 MiB limit is reached
            batch = requests(f"df{p}", 20, 2_000 + p)
            status, ans = server.post(TOKEN_A, batch)
            if status == 200:
                acked += [str(e["id"]) for e in batch]
                continue
            assert status == 503, ans
            assert isinstance(ans, dict) and "error" in ans, ans  # JSON, with the reason
            failed = batch
            break
        assert failed, "the file-size limit was never reached"
        status, health = server.get("/healthz", None)
        assert status == 503, health
        assert health["ok"] is False and health["reason"], health
        status, ans = server.post(TOKEN_A, requests("while-full", 1, 9_000))
        assert status == 503 and isinstance(ans, dict), ans

        # space comes back: the server recovers by itself
        assert server.proc is not None
        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        deadline = time.monotonic() + 60
        while (status := server.get("/healthz", None)[0]) != 200:
            assert time.monotonic() < deadline, "still unhealthy a minute after"
            time.sleep(0.2)
        status, ans = server.post(TOKEN_A, failed)  # the client retries the failed post
        assert status == 200, ans
        assert {r["status"] for r in ans["results"]} <= {"accepted", "duplicate"}
        after = requests("after", 5, 20_000)
        status, ans = server.post(TOKEN_A, after)
        assert status == 200 and ans["accepted"] == 5, ans
        acked += [str(e["id"]) for e in failed + after]

        # every acknowledged event applied once: one decision per chat, and the
        # stream from the start (read back from the stored outputs, the
        # history holds 50) is the bytes of a replay
        outputs = numbered([ln for ln in routeq("replay", "--state", server.state)
                            .stdout.split(b"\n") if ln])
        chats = [orjson.loads(ln)["chat"] for _, ln in outputs
                 if orjson.loads(ln)["type"] in ("chat.queued", "chat.assigned")]
        assert sorted(chats) == sorted(f"{i.rsplit('-', 1)[0]}-c{i.rsplit('-', 1)[1]}"
                                       for i in acked)
        st = server.stream(ADMIN, query="?from=0", timeout=30)
        got = st.take(len(outputs))
        st.close()
        assert [g[0] for g in got] == [oid for oid, _ in outputs]
        assert [g[2] for g in got] == [orjson.loads(ln) for _, ln in outputs]
    log = server.log.read_text(errors="replace")
    assert log.count("Traceback") <= 1, log[-3000:]


# ------------------------------------------------------------ Last-Event-ID


def stream_status(server: Server, headers: dict[str, str], query: str = "") -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", "/v1/stream" + query,
                     headers={"Authorization": f"Bearer {TOKEN_A}", **headers})
        resp = conn.getresponse()
        if resp.status == 200:
            return 200, resp.readline()
        return resp.status, orjson.loads(resp.read())
    finally:
        conn.close()


def test_a_last_event_id_ahead_of_the_log_is_refused(tmp_path: Path) -> None:
    """A client of an in-memory server that restarted holds ids the new log
    has not reached: 409 saying what to do, not a stream that skips."""
    with Server(tmp_path, state=False) as server:
        status, ans = server.post(TOKEN_A, [
            ev("agent.state", "le-1", 1_000, "shopA", agent="ann", status="online"),
            ev("chat.requested", "le-2", 1_000, "shopA", visitor="v", chat="c")])
        assert status == 200, ans
        nxt = offset(server)
        for headers, query in (({"Last-Event-ID": f"{nxt + 500}.0"}, ""),
                               ({"Last-Event-ID": f"{nxt}.0"}, ""),
                               ({}, f"?from={nxt + 1}")):
            status, ans = stream_status(server, headers, query)
            assert status == 409, (headers, query, ans)
            assert "ahead" in ans["error"] and "from=0" in ans["error"], ans
        # ids the log holds, and from= the next offset, still stream
        assert stream_status(server, {"Last-Event-ID": f"{nxt - 1}.0"})[0] == 200
        assert stream_status(server, {}, f"?from={nxt}")[0] == 200


# ------------------------------------------------------------ no-token mode


def raw(server: Server, method: str, path: str, headers: dict[str, str],
        body: bytes | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, orjson.loads(resp.read())
    finally:
        conn.close()


def test_without_tokens_only_the_servers_own_pages_may_call_it(tmp_path: Path) -> None:
    """A page of another origin open in the operator's browser (a no-cors
    text/plain post, or a DNS-rebound host name) cannot write or read."""
    with Server(tmp_path, state=False, tokens=None) as server:
        own = f"http://127.0.0.1:{server.port}"
        line = orjson.dumps(ev("agent.state", "xs-1", 1_000, "shopA", agent="evil",
                               status="online"))
        before = offset(server)
        for headers in (
                {"Origin": "http://evil.example", "Content-Type": "text/plain"},
                {"Origin": "http://evil.example", "Content-Type": "application/json"},
                {"Origin": "null", "Content-Type": "application/json"},
                {"Host": f"evil.example:{server.port}",
                 "Origin": f"http://evil.example:{server.port}",
                 "Content-Type": "application/json"}):
            status, ans = raw(server, "POST", "/v1/events", headers, line)
            assert status == 403, (headers, ans)
            assert "origin" in ans["error"].lower() or "host" in ans["error"].lower(), ans
        status, ans = raw(server, "GET", "/v1/overview", {"Origin": "http://evil.example"})
        assert status == 403, ans
        # a simple (CORS-safelisted) content type is refused even without Origin
        status, ans = raw(server, "POST", "/v1/events", {"Content-Type": "text/plain"}, line)
        assert status == 415 and "application/x-ndjson" in ans["error"], ans
        assert offset(server) == before
        # the server's own pages, and clients that are no browser, go on
        status, ans = raw(server, "POST", "/v1/events",
                          {"Origin": own, "Content-Type": "application/json"}, line)
        assert status == 200 and ans["accepted"] == 1, ans
        status, ans = raw(server, "POST", "/v1/events",
                          {"Content-Type": "application/x-ndjson"}, line + b"\n")
        assert status == 200 and ans["duplicates"] == 1, ans
        status, ans = raw(server, "GET", "/v1/overview",
                          {"Host": f"localhost:{server.port}"})
        assert status == 200, ans


# ------------------------------------------------------------ webhooks


class Misbehaving:
    """A webhook receiver on a raw socket: its first answers are a closed
    connection, bytes that are not HTTP, a 307 to another receiver (which
    must never be posted to), a 307 to a URL that is not HTTP and a 302;
    then it answers 204 and keeps the outputs."""

    ANSWERS = [b"", b"hello, this is not HTTP\r\n\r\n",
               b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:%d/steal\r\n"
               b"Content-Length: 0\r\nConnection: close\r\n\r\n",
               b"HTTP/1.1 307 Temporary Redirect\r\nLocation: ftp://127.0.0.1/x\r\n"
               b"Content-Length: 0\r\nConnection: close\r\n\r\n",
               b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n"
               b"Content-Length: 0\r\nConnection: close\r\n\r\n"]

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thief = socket.create_server(("127.0.0.1", 0))
        self.thief_port = self.thief.getsockname()[1]
        self.stolen = 0
        self.requests = 0
        self.got: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._serve, daemon=True),
                        threading.Thread(target=self._steal, daemon=True)]
        for t in self.threads:
            t.start()

    @staticmethod
    def _request(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)content-length: *(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(body) < n:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return body

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(10)
                body = self._request(conn)
                i = self.requests
                self.requests += 1
                if i < len(self.ANSWERS):
                    answer = self.ANSWERS[i]
                    if b"%d" in answer:
                        answer = answer % self.thief_port
                    if answer:
                        conn.sendall(answer)
                    continue  # and close
                self.got += [orjson.loads(x) for x in body.splitlines() if x]
                conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    def _steal(self) -> None:
        self.thief.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.thief.accept()
            except TimeoutError:
                continue
            with conn:
                self.stolen += 1
                conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)
        self.sock.close()
        self.thief.close()


def test_a_misbehaving_webhook_receiver_never_stops_delivery(tmp_path: Path) -> None:
    hook = Misbehaving()
    tokens = TOKENS_TOML.replace(
        f'token = "{TOKEN_A}"',
        f'token = "{TOKEN_A}"\nwebhook = "http://127.0.0.1:{hook.port}/routeq"')
    try:
        with Server(tmp_path, tokens=tokens) as server:
            status, ans = server.post(TOKEN_A, [
                ev("agent.state", "wh-0", 1_000, "shopA", agent="ann", status="online",
                   capacity=2),
                ev("chat.requested", "wh-1", 2_000, "shopA", visitor="v1", chat="w1"),
                ev("chat.requested", "wh-2", 3_000, "shopA", visitor="v2", chat="w2")])
            assert status == 200, ans
            deadline = time.monotonic() + 60
            while len(hook.got) < 2:
                assert time.monotonic() < deadline, (hook.requests, hook.got)
                time.sleep(0.1)
            assert [(o["type"], o["chat"]) for o in hook.got] == [
                ("chat.assigned", "w1"), ("chat.assigned", "w2")]
            assert hook.stolen == 0  # no redirect was followed
            status, text = server.get("/metrics", ADMIN)
            m = re.search(r'^routeq_webhook_failures_total\{tenant="shopA"\} (\S+)$', text,
                          re.M)
            assert m and float(m.group(1)) == len(Misbehaving.ANSWERS), text[-2000:]
            status, listing = server.get("/v1/tenants", ADMIN)
            assert status == 200, listing
            hook_a = listing["webhooks"]["shopA"]
            assert hook_a["failures"] == len(Misbehaving.ANSWERS)
            assert "302" in hook_a["last_error"], hook_a  # the latest failure
            assert hook_a["delivered"].split(".")[0] == str(hook.got[-1]["offset"])
            status, mine = server.get("/v1/tenants", TOKEN_A)
            assert status == 200 and "webhooks" not in mine, mine
    finally:
        hook.close()
    log = server.log.read_text(errors="replace")
    lines = [ln for ln in log.splitlines() if "webhook of tenant" in ln]
    assert 1 <= len(lines) <= 2, lines  # one line a minute per failing receiver
    assert "Traceback" not in log


# ------------------------------------------------------------ bounded resources


def sse_get(port: int, token: str, query: str = "") -> socket.socket:
    """A stream request on a raw socket that the test then reads (or not)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"GET /v1/stream{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Bearer {token}\r\n\r\n".encode())
    return sock


def head_of(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_streams_are_capped_per_tenant_and_in_all(tmp_path: Path) -> None:
    with Server(tmp_path, "--max-streams", "4", "--max-streams-per-tenant", "2") as server:
        held = [sse_get(server.port, TOKEN_A), sse_get(server.port, TOKEN_A)]
        try:
            assert [head_of(s)[0] for s in held] == [200, 200]
            status, ans = stream_status(server, {})  # a third of shop A's
            assert status == 429, ans
            assert "2 streams" in ans["error"] and "--max-streams-per-tenant" in ans["error"]
            held += [sse_get(server.port, TOKEN_B), sse_get(server.port, TOKEN_B)]
            assert [head_of(s)[0] for s in held[2:]] == [200, 200]
            status, data = head_of(sse_get(server.port, ADMIN))  # a fifth in all
            assert status == 429 and b"--max-streams" in data, data
            held.pop(0).close()  # a stream ends: its place is free again
            deadline = time.monotonic() + 30
            while (status := stream_status(server, {})[0]) == 429:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert status == 200
        finally:
            for s in held:
                s.close()


@pytest.mark.parametrize("history", ["100000", "50"])  # from memory, from the store
def test_a_slow_reader_gets_everything_in_bounded_writes(tmp_path: Path,
                                                         history: str) -> None:
    """A stream resuming from a history far bigger than a socket's buffers,
    read slowly, gets every output once and in order; clients that hang up
    in the middle of it leave no traceback in the log."""
    with Server(tmp_path, "--history", history) as server:
        n = 0
        for p in range(10):
            events = [ev("chat.requested", f"sr{p}-{i}", 1_000 + p, "shopA",
                         visitor=f"srv{p}-{i}", chat=f"src{p}-{i}") for i in range(2_000)]
            status, ans = server.post(TOKEN_A, events)
            assert status == 200, ans
            n += len(events)
        # hang-ups in the middle of a resume
        for _ in range(5):
            s = sse_get(server.port, TOKEN_A, "?from=0")
            s.recv(1000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()  # a reset, with most of the resume unsent
        st = server.stream(TOKEN_A, query="?from=0", timeout=30)
        try:
            got = []
            for i in range(n):
                got.append(st.next())
                if i % 2_000 == 0:
                    time.sleep(0.2)  # slow
        finally:
            st.close()
        assert [g[2]["chat"] for g in got] == [f"src{p}-{i}" for p in range(10)
                                             for i in range(2_000)]
        assert len({g[0] for g in got}) == n
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


def test_idle_connections_are_closed_and_capped(tmp_path: Path) -> None:
    with Server(tmp_path, "--idle-timeout", "1", "--max-connections", "20") as server:
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=30)
                for _ in range(20)]
        try:
            time.sleep(0.3)
            # over the cap: answered at once, JSON, and closed
            extra = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            data = b""
            while chunk := extra.recv(65536):
                data += chunk
            extra.close()
            assert data.startswith(b"HTTP/1.1 503"), data
            assert b"--max-connections" in orjson.loads(data.partition(b"\r\n\r\n")[2])[
                "error"].encode()
            # idle ones (nothing sent, or half a header) are closed by the server
            idle[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            t0 = time.monotonic()
            for s in idle:
                s.settimeout(30)
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    data = b""
                assert data == b"" or data.startswith(b"HTTP/1.1 4"), data
            closed_after = time.monotonic() - t0
            assert closed_after < 20, closed_after
            # room again (once the server has seen the closes: Retry-After 1 s)
            deadline = time.monotonic() + 10
            while (status := server.get("/healthz", None)[0]) == 503:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert status == 200
        finally:
            for s in idle:
                s.close()


def test_the_overview_is_paginated(server: Server) -> None:
    names = [f"ov{i:02d}" for i in range(30)]
    status, ans = server.post(ADMIN, [ev("agent.state", f"ov-{t}", 1_000, t, agent="a",
                                         status="online") for t in names])
    assert status == 200, ans
    seen: list[str] = []
    query = "?limit=7"
    while True:
        status, page = server.get("/v1/overview" + query, ADMIN)
        assert status == 200, page
        assert len(page["tenants"]) <= 7
        assert page["tenant_count"] >= 30
        seen += [t["tenant"] for t in page["tenants"]]
        if page["next"] is None:
            break
        query = f"?limit=7&after={page['next']}"
    assert len(seen) == len(set(seen)) == page["tenant_count"]
    assert set(names) <= set(seen)
    status, page = server.get("/v1/overview", ADMIN)  # a default page size
    assert status == 200 and len(page["tenants"]) <= 100


# ------------------------------------------------------------ JSON everywhere


@pytest.mark.parametrize("request_bytes", [
    b"NOT-HTTP\r\n\r\n",
    b"GET /v1/queue HTTP/1.1\r\nHost: x\r\nX-Long: " + b"h" * 100_000 + b"\r\n\r\n",
    b"GET /v1/queue HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN_A.encode()
    + b"\x01\r\n\r\n",
    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: nine\r\n\r\n",
])
def test_requests_that_cannot_be_parsed_are_answered_json(server: Server,
                                                          request_bytes: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(request_bytes)
        data = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] 4\d\d ", head), data[:300]
    assert b"application/json" in head, head
    ans = orjson.loads(body)
    assert ans["error"], ans
    assert TOKEN_A.encode() not in data
