"""An idle ``routeq serve`` logs a ``clock`` only when a timer is due (issue
21, item 9): nothing while nothing is due, and an offer that times out still
does, within about ``--clock-ms`` of its deadline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.http.server import TOKEN_A, Server, ev

pytestmark = pytest.mark.integration

RULES = """
[assignment]
acceptance_required = true
offer_timeout_s = 3.0
"""


def offset(server: Server) -> int:
    status, health = server.get("/healthz", None)
    assert status == 200, health
    return int(health["offset"])


def test_idle_serve_logs_no_clock_until_a_timer_is_due(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    with Server(tmp_path, "--clock-ms", "100", "--rules", str(rules)) as server:
        time.sleep(1.5)  # idle, no tenant, no timer: nothing to log
        assert offset(server) == 0
        now = int(time.time() * 1000)
        status, ans = server.post(TOKEN_A, [
            ev("agent.state", "ic-1", now, "shopA", agent="ann", status="online", capacity=1),
            ev("chat.requested", "ic-2", now, "shopA", visitor="v1", chat="c1"),
        ])
        assert status == 200 and ans["accepted"] == 2, ans
        after_post = offset(server)
        stream = server.stream(TOKEN_A, last_event_id=f"{after_post - 1}")
        try:
            time.sleep(1.5)  # the offer times out 3 s after ``now``: nothing is due yet
            assert offset(server) == after_post
            deadline = time.monotonic() + 20
            seen = []
            while time.monotonic() < deadline:
                _, typ, data = stream.next()
                seen.append((typ, data.get("why"), data["cause"]))
                if typ == "chat.requeued":
                    break
            assert ("chat.requeued", "offer_timeout", "timer") in seen, seen
            assert data["ts"] == now + 3_000  # fired at its deadline
        finally:
            stream.close()
        fired = offset(server)
        assert fired > after_post
        time.sleep(1.5)  # the timer fired; nothing else is due
        assert offset(server) == fired
