"""Clock skew (issue 21, item 2): ``routeq serve`` rejects, line by line, an
event whose ``ts`` is more than ``--max-skew-s`` ahead of the wall clock or
looks like seconds; such a line is not logged, so one skewed event cannot move
a tenant's time into the future. ``routeq run`` stays pure (it takes them)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from tests.http.server import TOKEN_A, Server, ev
from tests.routeq import routeq

pytestmark = pytest.mark.integration


def now_ms() -> int:
    return int(time.time() * 1000)


def test_an_event_ahead_of_wall_time_or_in_seconds_is_rejected_for_skew(tmp_path: Path) -> None:
    t = now_ms()
    events = [
        ev("agent.state", "sk-1", t - 60_000, "shopA", agent="ann", status="online",
           capacity=1),
        ev("chat.requested", "sk-2", t + 600_000, "shopA", visitor="v-ahead", chat="ahead"),
        ev("chat.requested", "sk-3", t // 1000, "shopA", visitor="v-secs", chat="secs"),
        ev("chat.requested", "sk-4", t - 1_000, "shopA", visitor="v-ok", chat="ok"),
    ]
    with Server(tmp_path) as server:
        status, ans = server.post(TOKEN_A, events)
        assert status == 200, ans
        res = ans["results"]
        assert [r["status"] for r in res] == ["accepted", "rejected", "rejected", "accepted"]
        assert ans["rejected"] == 2 and ans["skewed"] == 2 and ans["accepted"] == 2
        assert "skew" not in res[0] and "skew" not in res[3]
        for r in res[1:3]:
            assert r["skew"] is True and "offset" not in r, r  # not logged
            assert r["error"].startswith("chat.requested: field 'ts'"), r
        assert "ahead of this server's clock" in res[1]["error"]
        assert "--max-skew-s 300" in res[1]["error"]
        assert "seconds" in res[2]["error"] and "milliseconds" in res[2]["error"]
        # the skewed lines are not in the log: the logged ones are numbered on
        assert res[3]["offset"] == res[0]["offset"] + 1
        # the tenant's time did not move into the future, and the waiting
        # chat's wait is counted from its own ts
        status, q = server.get("/v1/queue", TOKEN_A)
        assert status == 200 and q["now"] <= now_ms()
        assert server.get("/v1/chats/ahead", TOKEN_A)[0] == 404
        status, chat = server.get("/v1/chats/ok", TOKEN_A)
        assert status == 200 and chat["state"] == "assigned"
        # a retry after fixing the clock is taken (the id was never applied)
        status, ans = server.post(TOKEN_A, ev("chat.requested", "sk-2", now_ms(), "shopA",
                                              visitor="v-ahead", chat="ahead"))
        assert status == 200 and ans["results"][0]["status"] == "accepted", ans
        # NDJSON too, answered per line
        line = orjson.dumps(ev("clock", "sk-5", now_ms() + 3_600_000, "shopA"))
        status, ans = server.post(TOKEN_A, None, raw=line + b"\n",
                                  ctype="application/x-ndjson")
        assert status == 200 and ans["results"][0]["skew"] is True, ans


def test_max_skew_s_widens_the_window(tmp_path: Path) -> None:
    with Server(tmp_path, "--max-skew-s", "3600") as server:
        status, ans = server.post(TOKEN_A, ev("chat.requested", "w-1", now_ms() + 600_000,
                                              "shopA", visitor="v", chat="c"))
        assert status == 200 and ans["results"][0]["status"] == "accepted", ans
        assert ans["skewed"] == 0
        status, ans = server.post(TOKEN_A, ev("chat.requested", "w-2", now_ms() + 7_200_000,
                                              "shopA", visitor="v2", chat="c2"))
        assert ans["results"][0]["status"] == "rejected", ans
        assert "--max-skew-s 3600" in ans["results"][0]["error"]


def test_routeq_run_stays_pure_and_takes_the_same_lines(tmp_path: Path) -> None:
    """The batch runtime has no wall clock: the same lines are applied."""
    t = now_ms()
    path = tmp_path / "ahead.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in [
        ev("agent.state", "r-1", t, "shopA", agent="ann", status="online", capacity=1),
        ev("chat.requested", "r-2", t + 600_000, "shopA", visitor="v", chat="c"),
    ]) + b"\n")
    out = routeq("run", str(path), "--out", str(tmp_path / "out.jsonl"))
    assert out.returncode == 0, out.stderr
    outs = [orjson.loads(x) for x in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [o["type"] for o in outs] == ["chat.assigned"]
