"""``routeq serve --state`` killed with SIGKILL three times under posting
clients, restarted each time on the same state (tests/http/
test_kill9.py kills it once): every event answered 2xx is in the log at the
offset it was given, exactly once, and what was logged replays to the same
outputs as a fresh run of the exported log."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import orjson
import pytest

from tests.http.server import ADMIN, Server, ev
from tests.routeq import routeq
from tests.tally import TALLY

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.reliability]

POSTERS = 3
BATCH = 10
KILLS = 3


def test_acknowledged_events_survive_repeated_kill_9(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    server = Server(tmp_path, "--checkpoint-ms", "100")
    acked: dict[int, tuple[str, str]] = {}
    lock = threading.Lock()
    serial = [0]

    def poster(k: int, stop: threading.Event, posts: list[int]) -> None:
        while not stop.is_set():
            batch = []
            with lock:
                base = serial[0]
                serial[0] += BATCH
            for n in range(base, base + BATCH):
                tenant = f"t{n % 3}"
                if n % 5 == 0:
                    batch.append(ev("agent.state", f"e{n}", 1_000 + n, tenant,
                                    agent=f"a{n % 11}", status="online", capacity=3))
                elif n % 5 == 4:
                    batch.append(ev("chat.ended", f"e{n}", 1_000 + n, tenant,
                                    chat=f"c{n - 3}"))
                else:
                    batch.append(ev("chat.requested", f"e{n}", 1_000 + n, tenant,
                                    visitor=f"v{n}", chat=f"c{n}", message="hello"))
            try:
                status, ans = server.post(ADMIN, batch, timeout=10)
            except OSError:
                return
            if status != 200:
                return
            with lock:
                for e, r in zip(batch, ans["results"], strict=True):
                    assert r["status"] == "accepted", (seed, r)
                    assert r["offset"] not in acked, (seed, r)
                    acked[r["offset"]] = (e["id"], e["tenant"])
                posts[0] += 1

    for _ in range(KILLS):
        server.start()
        stop, posts = threading.Event(), [0]
        threads = [threading.Thread(target=poster, args=(k, stop, posts))
                   for k in range(POSTERS)]
        for t in threads:
            t.start()
        want = rng.randint(5, 40)
        deadline = time.monotonic() + 60
        while posts[0] < want and time.monotonic() < deadline:
            time.sleep(0.005)
        server.kill9()
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert posts[0] >= want, f"seed {seed}: the posters did not get going"
        TALLY["http_kills_survived"] += 1
    server.start()
    assert server.stop() == 0
    log = routeq("export", "--state", server.state).stdout.split(b"\n")[:-1]
    for offset, (eid, tenant) in acked.items():
        logged = orjson.loads(log[offset])
        assert (logged["id"], logged["tenant"]) == (eid, tenant), (seed, offset)
    ids = [(o["tenant"], o["id"]) for o in map(orjson.loads, log)]
    assert len(ids) == len(set(ids)), f"seed {seed}: an event was logged twice"
    TALLY["http_acked_after_kills"] += len(acked)
    replayed = routeq("replay", "--state", server.state, "--quiet").stdout
    (tmp_path / "log.jsonl").write_bytes(b"\n".join(log) + b"\n")
    assert routeq("run", tmp_path / "log.jsonl", "--quiet").stdout == replayed
