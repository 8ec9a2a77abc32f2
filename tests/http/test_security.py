"""The HTTP surface under hostile input (a real ``routeq serve`` on loopback):

- tenant isolation under fuzzed tokens and paths: a token that is not one of
  the configured ones gets 401 everywhere; shop A's token never reads or
  writes shop B (403), and no answer to it holds shop B's ids or texts;
- request size limits: a body over ``--max-body`` is refused (413), chunked or
  with a Content-Length, and nothing of it is logged;
- slow clients: connections that send their headers or body a byte now and
  then do not hold up other clients;
- the server's log at the default level holds no token and no visitor text.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.http.server import ADMIN, TOKEN_A, TOKEN_B, Server, ev
from tests.routeq import routeq
from tests.tally import TALLY

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SECRET = "SECRET-visitor-text-7f3a"  # a visitor's message in shop B
MAX_BODY = 64 * 1024
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("sec"), "--max-body", str(MAX_BODY)) as s:
        status, _ = s.post(TOKEN_B, [
            ev("agent.state", "b1", 1_000, "shopB", agent="bob-agent", status="online",
               capacity=1),
            ev("chat.requested", "b2", 2_000, "shopB", visitor="bob-visitor", chat="bchat-1",
               message=SECRET),
            ev("chat.requested", "b3", 3_000, "shopB", visitor="bob-visitor2",
               chat="bchat-2", message=SECRET)])
        assert status == 200
        status, _ = s.post(TOKEN_A, [ev("agent.state", "a1", 1_000, "shopA", agent="ann",
                                        status="online"),
                                     ev("chat.requested", "a2", 2_000, "shopA", visitor="ann-v",
                                        chat="achat")])
        assert status == 200
        yield s
    log = s.log.read_text(errors="replace")
    for secret in (ADMIN, TOKEN_A, TOKEN_B, SECRET, "bob-visitor"):
        assert secret not in log, f"the server log shows {secret!r}"
    assert "Traceback" not in log


B_MARKS = ("shopB", "bob-", "bchat", SECRET)

PATHS = ("/v1/queue", "/v1/agents", "/v1/tenants", "/v1/overview", "/metrics",
         "/v1/chats/bchat-1", "/v1/chats/bchat-2", "/v1/queue?tenant=shopB",
         "/v1/agents?tenant=shopB", "/v1/chats/bchat-1?tenant=shopB",
         "/v1/queue?tenant=shopB&tenant=shopA", "/v1/queue?tenant=shopA&tenant=shopB",
         "/v1/queue?tenant=shop%42", "/v1/queue?TENANT=shopB", "/v1/chats/..%2F..%2Fetc",
         "/static/..%2F..%2Fstreams%2Ftokens.py", "/v1/stream?tenant=shopB&from=0")


def tokens() -> st.SearchStrategy[str]:
    """Authorization header values: real tokens bent out of shape, and junk."""
    real = st.sampled_from([TOKEN_A, TOKEN_B, ADMIN])
    bent = st.one_of(
        real.map(lambda t: t[:-1]), real.map(lambda t: t + "x"), real.map(str.upper),
        real.map(lambda t: t[1:]), real.map(lambda t: t.replace("-", "_")),
        st.tuples(real, real).map(lambda p: p[0][:10] + p[1][10:]),
        real.map(lambda t: t + "\u0000"), st.text(max_size=80))
    return st.one_of(
        bent.map(lambda t: f"Bearer {t}"), real.map(lambda t: f"Basic {t}"),
        real.map(lambda t: f"Token {t}"), st.just("Bearer"), st.just("Bearer "),
        st.text(max_size=60))


def is_valid(header: str) -> str | None:
    scheme, _, tok = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    tok = tok.strip()
    return tok if tok in (TOKEN_A, TOKEN_B, ADMIN) else None


def raw_get(server: Server, path: str, auth: str) -> tuple[int, bytes]:
    """A GET with the header bytes as given (http.client would refuse some)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        head = (f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n").encode()
        head += b"Authorization: " + auth.encode("utf-8", "surrogatepass") + b"\r\n\r\n"
        s.sendall(head)
        data = b""
        s.settimeout(5)
        try:
            while chunk := s.recv(65536):
                data += chunk
                if b"text/event-stream" in data and len(data) > 200:
                    break  # a stream the token may read: enough to judge
        except TimeoutError:
            pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


@FUZZ
@given(auth=tokens(), path=st.sampled_from(PATHS))
def test_fuzzed_tokens_and_paths_never_cross_tenants(server: Server, auth: str,
                                                     path: str) -> None:
    TALLY["http_fuzzed_requests"] += 1
    status, data = raw_get(server, path, auth)
    # aiohttp's 400 for a malformed header quotes that header back to its sender
    data = data.replace(repr(("Authorization: " + auth).encode("utf-8", "surrogatepass"))[2:-1]
                        .encode(), b"")
    who = is_valid(auth)
    marks = [m for m in B_MARKS if m not in path]  # an id asked for may be named back
    if who is None:
        if path.startswith("/static/"):
            assert status in (400, 403, 404), data[:200]
        else:
            assert status in (400, 401), data[:300]
        assert not any(m.encode() in data for m in marks), data[:300]
    elif who == TOKEN_A:
        assert not any(m.encode() in data for m in marks), data[:300]
        if "?tenant=shopB" in path:  # the first tenant= asked for is B's
            assert status in (400, 403, 404), data[:300]


@FUZZ
@given(tenant=st.one_of(st.sampled_from(["shopB", "ShopB", "shopB ", "shopA/../shopB"]),
                        st.text(max_size=20)),
       clock=st.booleans())
def test_a_tenant_token_posts_only_its_own_tenant(server: Server, tenant: str,
                                                  clock: bool) -> None:
    TALLY["http_fuzzed_requests"] += 1
    n = TALLY["http_fuzzed_requests"]
    e = (ev("clock", f"x{n}", 5_000, None) if clock else
         ev("chat.ended", f"x{n}", 5_000, tenant, chat="bchat-1"))
    status, ans = server.post(TOKEN_A, [e])
    if clock or tenant != "shopA":
        assert status == 403, ans
    _, chat = server.get("/v1/chats/bchat-1?tenant=shopB", ADMIN)
    assert chat["state"] == "assigned"  # shop A could not end shop B's chat


def test_stream_of_a_tenant_holds_only_its_own_outputs(server: Server) -> None:
    st_a = server.stream(TOKEN_A, query="?from=0", timeout=3)
    try:
        got = []
        while True:
            try:
                got.append(st_a.next())
            except (TimeoutError, OSError):
                break
    finally:
        st_a.close()
    assert got and all(d["tenant"] == "shopA" for _, _, d in got)


# ------------------------------------------------------------------ size limits


def post_raw(server: Server, head: bytes, body_parts: list[bytes]) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(head)
        try:
            for part in body_parts:
                s.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed early
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return int(data.split(b" ", 2)[1]), data


def test_bodies_over_the_limit_are_refused_and_not_logged(server: Server) -> None:
    before = server.get("/healthz", None)[1]["offset"]
    big = b"".join(orjson.dumps(ev("page.viewed", f"big{i}", 1, "shopA", visitor="v",
                                   page="home")) + b"\n" for i in range(2000))
    assert len(big) > MAX_BODY
    auth = b"Authorization: Bearer " + TOKEN_A.encode() + b"\r\n"
    status, _ = post_raw(server, b"POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         + auth + b"Content-Type: application/x-ndjson\r\nContent-Length: "
                         + str(len(big)).encode() + b"\r\n\r\n", [big])
    assert status == 413
    chunks = [b"%x\r\n%s\r\n" % (len(big[i:i + 8192]), big[i:i + 8192])
              for i in range(0, len(big), 8192)] + [b"0\r\n\r\n"]
    status, _ = post_raw(server, b"POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         + auth + b"Content-Type: application/x-ndjson\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n", chunks)
    assert status == 413
    # a Content-Length smaller than the body: only that much is read, the rest is junk
    status, _ = post_raw(server, b"POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         + auth + b"Content-Type: application/x-ndjson\r\n"
                         b"Content-Length: 10\r\n\r\n", [big[:MAX_BODY]])
    assert status in (200, 400)
    status, data = post_raw(server, b"GET /v1/queue HTTP/1.1\r\nHost: x\r\n" + auth
                            + b"X-Long: " + b"h" * 100_000 + b"\r\nConnection: close\r\n\r\n",
                            [])
    assert status in (400, 431), data[:200]
    after = server.get("/healthz", None)[1]["offset"]
    assert after - before <= 1  # at most the 10 bytes read as one (rejected) line
    log = routeq("export", "--state", server.state).stdout.split(b"\n")
    assert not any(b'"big' in line for line in log[before:after])


# ----------------------------------------------------------------- slow clients


def test_slow_clients_do_not_block_others(server: Server) -> None:
    stop = threading.Event()
    auth = b"Authorization: Bearer " + TOKEN_A.encode() + b"\r\n"
    body = orjson.dumps(ev("clock", "slow-1", 9_000, "shopA"))

    def slow_headers() -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            msg = (b"POST /v1/events HTTP/1.1\r\nHost: x\r\n" + auth
                   + b"Content-Type: application/json\r\nContent-Length: "
                   + str(len(body)).encode() + b"\r\n\r\n" + body)
            for byte in msg:
                if stop.wait(0.2):
                    return
                try:
                    s.send(bytes([byte]))
                except OSError:
                    return

    def slow_body() -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n" + auth
                      + b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
            while not stop.wait(0.2):
                try:
                    s.send(b" ")
                except OSError:
                    return

    slow = [threading.Thread(target=f) for f in (slow_headers, slow_body) * 4]
    for t in slow:
        t.start()
    try:
        time.sleep(0.5)  # let them connect (not an assertion)
        worst = 0.0
        for i in range(20):
            t0 = time.monotonic()
            status, _ = server.post(TOKEN_A, [ev("page.viewed", f"fast{i}", 9_000, "shopA",
                                                 visitor="vf", page="home")], timeout=30)
            worst = max(worst, time.monotonic() - t0)
            assert status == 200
        assert worst < 5.0, f"a fast client waited {worst:.1f} s behind slow ones"
        TALLY["slow_clients_held"] += len(slow)
    finally:
        stop.set()
        for t in slow:
            t.join(timeout=30)


def test_bad_requests_put_no_secret_in_the_log(server: Server) -> None:
    """Refused requests (wrong token, malformed body, 403) do not log what they held."""
    server.post(TOKEN_A + "x", [ev("chat.requested", "s1", 1, "shopA", visitor="v",
                                   chat="c", message=SECRET)])
    server.post(TOKEN_A, None, raw=b'{"message": "' + SECRET.encode() + b'", oops',
                ctype="application/json")
    server.post(TOKEN_A, [ev("chat.requested", "s2", 1, "shopB", visitor="bob-visitor",
                             chat="c", message=SECRET)])
    server.call("GET", "/v1/chats/" + quote(SECRET), TOKEN_A)
    # the fixture checks the log when the server stops
