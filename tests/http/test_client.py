"""``streams.http.client.Client`` against a live ``routeq serve`` (issue 21): the
chat server's batching, retries with the same ids, and a stream that resumes
by itself with ``Last-Event-ID``; across a ``kill -9`` and restart of the
server on its ``--state``, no output is lost or doubled (the outputs equal
``routeq run``'s on the same events)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.http.client import Client, Cursor, Output, RouteqError
from tests.http.server import TOKEN_A, TOKEN_B, Server, ev
from tests.routeq import routeq

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def morning(n: int, t0: int) -> list[dict[str, Any]]:
    """Three agents, then ``n`` chats; every third one ends a while later."""
    events = [ev("agent.state", f"ag-{i}", t0, "shopA", agent=f"agent-{i}", status="online",
                 capacity=2) for i in range(3)]
    for i in range(n):
        ts = t0 + 1_000 + i * 200
        events.append(ev("chat.requested", f"rq-{i}", ts, "shopA", visitor=f"v-{i}",
                         chat=f"c-{i}"))
        if i >= 5 and i % 3 == 0:
            events.append(ev("chat.ended", f"end-{i - 5}", ts + 1, "shopA", chat=f"c-{i - 5}"))
    return events


class Collector:
    """Follows ``client.outputs()`` in a thread."""

    def __init__(self, client: Client) -> None:
        self.got: list[Output] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.client = client
        self.thread.start()

    def _run(self) -> None:
        try:
            for out in self.client.outputs(idle_timeout=30):
                self.got.append(out)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def wait_for(self, n: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline and self.error is None:
            time.sleep(0.05)
        assert self.error is None, self.error
        assert len(self.got) >= n, f"{len(self.got)} of {n} outputs"


def test_no_output_lost_or_doubled_across_a_kill_and_restart(tmp_path: Path) -> None:
    t0 = int(time.time() * 1000) - 3_600_000
    events = morning(240, t0)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    routeq("run", path, "--out", tmp_path / "run.jsonl")
    expected = [orjson.loads(x) for x in (tmp_path / "run.jsonl").read_bytes().splitlines()]
    for o in expected:
        o.pop("offset")

    port = free_port()
    server = Server(tmp_path, "--port", str(port)).start()
    try:
        client = Client(server.url, TOKEN_A, batch=40)
        reader = Collector(Client(server.url, TOKEN_A))
        time.sleep(0.3)  # the stream is open ("from now on": offset 0)
        half = len(events) // 2
        results = client.post(events[:half])
        assert {r["status"] for r in results} == {"accepted"}
        server.kill9()  # mid-stream: the reader is cut off, posts fail
        later: list[dict[str, Any]] = []
        poster = threading.Thread(target=lambda: later.extend(client.post(events[half:])))
        poster.start()  # retries (same ids) until the server is back
        time.sleep(1.0)
        server.start()
        poster.join(120)
        assert not poster.is_alive()
        assert len(later) == len(events) - half
        assert {r["status"] for r in later} <= {"accepted", "duplicate"}
        reader.wait_for(len(expected))
        time.sleep(1.0)  # anything doubled would be here by now
        got = [o.data for o in reader.got]
        ids = [o.id for o in reader.got]
        assert len(set(ids)) == len(ids)
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("."))))
        for o in got:
            o.pop("offset")
        assert got == expected
    finally:
        if server.proc is not None:
            server.stop()


def test_batching_ids_and_views(tmp_path: Path) -> None:
    with Server(tmp_path) as server:
        client = Client(server.url, TOKEN_B, batch=3)
        now = int(time.time() * 1000)
        assert client.send({"type": "agent.state", "tenant": "shopB", "ts": now,
                            "agent": "bo", "status": "online", "capacity": 1}) == []
        assert client.send({"type": "chat.requested", "tenant": "shopB", "ts": now,
                            "visitor": "v/1", "chat": "order/7"}) == []
        # the third event fills the batch: one post, three results
        done = client.send({"type": "chat.requested", "tenant": "shopB", "ts": now + 600_000,
                            "visitor": "v2", "chat": "late"})
        assert [r["status"] for r in done] == ["accepted", "accepted", "rejected"]
        assert done[2]["skew"] is True  # not logged: the caller fixes its clock
        assert client.flush() == []
        view = client.chat("order/7")  # sent as order%2F7
        assert view is not None and view["state"] == "assigned" and view["visitor"] == "v/1"
        assert client.chat("nope") is None
        assert client.get("/v1/agents")["agents"][0]["agent"] == "bo"
        # a refusal that a retry cannot change raises at once
        with pytest.raises(RouteqError) as err:
            client.post([{"type": "clock", "tenant": "shopA", "ts": now}])
        assert err.value.status == 403
        with pytest.raises(RouteqError):
            Client(server.url, "wrong-token-0123456789").post([{"type": "clock",
                                                                 "tenant": "shopB",
                                                                 "ts": now}])


def test_the_consumer_rule_drops_what_it_has_taken() -> None:
    c = Cursor()
    assert [c.take(i) for i in ("5.0", "5.1", "5.1", "4.9", "6.0", "10.0", "9.3")] == [
        True, True, False, False, True, True, False]
    assert c.last == "10.0"
