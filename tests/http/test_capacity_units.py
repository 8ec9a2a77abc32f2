"""Weighted capacity over HTTP (issue 18): a chat heavier than every online
agent's whole capacity waits, and ``GET /v1/queue`` says why; one that fits
is assigned with its ``units``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.http.server import TOKEN_A, Server, ev

pytestmark = pytest.mark.integration

RULES = "[capacity.weights]\nbilling = 4\nafter_sales = 2\n"


def test_the_queue_says_why_a_heavy_chat_waits(tmp_path: Path) -> None:
    (tmp_path / "rules.toml").write_text(RULES)
    t = int(time.time() * 1000) - 10_000
    with Server(tmp_path, "--rules", str(tmp_path / "rules.toml")) as server:
        status, ans = server.post(TOKEN_A, [
            ev("agent.state", "u-1", t, "shopA", agent="ann", status="online", capacity=3),
            ev("chat.requested", "u-2", t + 1, "shopA", visitor="v1", chat="inv", skill="billing"),
            ev("chat.requested", "u-3", t + 2, "shopA", visitor="v2", chat="ref",
               skill="after_sales"),
        ])
        assert status == 200 and ans["accepted"] == 3, ans
        status, q = server.get("/v1/queue", TOKEN_A)
        assert status == 200
        rows = {r["chat"]: r for r in q["chats"]}
        assert set(rows) == {"inv"}
        assert rows["inv"]["units"] == 4
        assert rows["inv"]["blocked"] == ("needs 4 units of an agent's capacity; no online "
                                          "agent has more than 3")
        status, chat = server.get("/v1/chats/ref", TOKEN_A)
        assert status == 200 and chat["state"] == "assigned" and chat["agent"] == "ann"
