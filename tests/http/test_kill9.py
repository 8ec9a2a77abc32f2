"""kill -9 the server while clients post: every event answered 2xx is in the log."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import pytest

from tests.http.server import ADMIN, Server, ev
from tests.routeq import routeq

pytestmark = pytest.mark.integration

POSTERS = 4
BATCH = 20


def test_every_acknowledged_event_survives_kill_9(tmp_path: Path) -> None:
    server = Server(tmp_path, "--checkpoint-ms", "200").start()
    acked: dict[int, tuple[str, str]] = {}  # offset -> (id, tenant), answered 2xx
    lock = threading.Lock()
    stop = threading.Event()
    posts = [0]

    def poster(k: int) -> None:
        n = 0
        while not stop.is_set():
            batch = []
            for _ in range(BATCH):
                n += 1
                tenant = f"t{(n + k) % 3}"
                if n % 4 == 0:
                    batch.append(ev("agent.state", f"p{k}-{n}", 1_000 + n, tenant,
                                    agent=f"a{k}-{n % 7}", status="online", capacity=2))
                else:
                    batch.append(ev("chat.requested", f"p{k}-{n}", 1_000 + n, tenant,
                                    visitor=f"v{k}-{n}", chat=f"c{k}-{n}"))
            try:
                status, ans = server.post(ADMIN, batch, timeout=10)
            except OSError:
                return  # the server is gone
            if status != 200:
                return
            with lock:
                for e, r in zip(batch, ans["results"], strict=True):
                    assert r["status"] == "accepted", r
                    acked[r["offset"]] = (e["id"], e["tenant"])
                posts[0] += 1

    threads = [threading.Thread(target=poster, args=(k,)) for k in range(POSTERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while posts[0] < 40 and time.monotonic() < deadline:  # past a few checkpoints
        time.sleep(0.01)
    server.kill9()  # with posts in flight
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert posts[0] >= 40, "the posters did not get going"

    # restart: the server resumes from the state and takes more
    server.start()
    status, ans = server.post(ADMIN, [ev("clock", "after-restart", 10**6, None)])
    assert status == 200 and ans["results"][0]["status"] == "accepted"
    after = ans["results"][0]["offset"]
    assert after >= len(acked)
    # re-sent acknowledged events are duplicates (the engine state has them)
    some = sorted(acked)[-5:]
    status, ans = server.post(ADMIN, [ev("agent.state", acked[o][0], 1, acked[o][1],
                                         agent="x", status="away") for o in some])
    assert status == 200
    assert [r["status"] for r in ans["results"]] == ["duplicate"] * len(some)
    assert server.stop() == 0

    log = routeq("export", "--state", server.state).stdout.split(b"\n")
    for offset, (eid, tenant) in acked.items():
        logged = orjson.loads(log[offset])
        assert (logged["id"], logged["tenant"]) == (eid, tenant), offset
    assert orjson.loads(log[after])["id"] == "after-restart"
