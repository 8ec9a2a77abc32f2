"""Smaller things a chat server's engineer ran into (issue 21, item 10), on a
real ``routeq serve``: ``text/plain`` is refused (415, as the README says);
a chat that ended is not 404 at once; ids with ``/`` are read as ``%2F``; a
shop's token opens its own dashboard (its tenant only); the dashboard says
its times are UTC."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from tests.http.server import ADMIN, TOKEN_A, TOKEN_B, Server, ev

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("details")) as s:
        yield s


def test_text_plain_is_refused_with_415(server: Server) -> None:
    line = orjson.dumps(ev("clock", "tp-1", 1, "shopA"))
    status, ans = server.post(TOKEN_A, None, raw=line, ctype="text/plain")
    assert status == 415, ans
    assert "text/plain" in ans["error"] and "application/x-ndjson" in ans["error"]
    status, ans = server.post(TOKEN_A, None, raw=line, ctype="application/x-ndjson")
    assert status == 200 and ans["accepted"] == 1


def test_an_ended_chat_answers_its_end_for_a_while(server: Server) -> None:
    status, ans = server.post(TOKEN_A, [
        ev("agent.state", "end-1", 10_000, "shopA", agent="erin", status="online",
           capacity=1),
        ev("chat.requested", "end-2", 10_001, "shopA", visitor="v-end", chat="served"),
        ev("chat.requested", "end-3", 10_002, "shopA", visitor="v-wait", chat="waited"),
        ev("chat.ended", "end-4", 12_000, "shopA", chat="served"),
        ev("chat.requested", "end-5", 12_001, "shopA", visitor="v-bot", chat="left"),
        ev("visitor.left", "end-6", 13_000, "shopA", visitor="v-bot"),
    ])
    assert status == 200 and ans["accepted"] == 6, ans
    # "waited" took erin's place when "served" ended; "left" waited, then its visitor left
    status, view = server.get("/v1/chats/served", TOKEN_A)
    assert status == 200, view
    assert view == {"tenant": "shopA", "chat": "served", "state": "ended",
                    "ended_ms": 12_000}
    status, view = server.get("/v1/chats/left", TOKEN_A)
    assert status == 200 and view["state"] == "abandoned" and view["ended_ms"] == 13_000
    status, ans = server.post(TOKEN_A, ev("chat.ended", "end-7", 14_000, "shopA",
                                          chat="waited"))
    assert status == 200
    assert server.get("/v1/chats/waited", TOKEN_A)[1]["state"] == "ended"
    # another tenant does not see it; a chat never requested is 404
    assert server.get("/v1/chats/served", TOKEN_B)[0] == 404
    status, ans = server.get("/v1/chats/never", TOKEN_A)
    assert status == 404 and "ended" in ans["error"]


def test_ids_with_a_slash_are_read_as_percent_2f(server: Server) -> None:
    status, ans = server.post(TOKEN_A, [
        ev("chat.requested", "sl-1", 20_000, "shopA", visitor="v/1", chat="order/42")])
    assert status == 200 and ans["accepted"] == 1, ans
    status, view = server.get("/v1/chats/order%2F42", TOKEN_A)
    assert status == 200 and view["chat"] == "order/42" and view["visitor"] == "v/1", view
    assert server.get("/v1/chats/order/42", TOKEN_A)[0] == 404  # a path of its own


def test_a_shops_token_opens_its_own_dashboard_only(server: Server) -> None:
    assert server.post(TOKEN_B, [ev("clock", "db-1", 1, "shopB")])[0] == 200
    status, ans = server.get("/v1/overview", TOKEN_A)
    assert status == 200, ans
    assert [t["tenant"] for t in ans["tenants"]] == ["shopA"]
    assert ans["tenant_count"] == 1 and ans["next"] is None
    status, ans = server.get("/v1/overview?after=a", TOKEN_B)
    assert status == 200 and [t["tenant"] for t in ans["tenants"]] == ["shopB"]
    status, ans = server.get("/v1/overview", ADMIN)
    assert status == 200 and {"shopA", "shopB"} <= {t["tenant"] for t in ans["tenants"]}


def test_the_dashboard_says_its_times_are_utc(server: Server) -> None:
    status, page = server.get("/", None)
    assert status == 200 and "UTC" in page
    status, script = server.get("/static/dashboard.js", None)
    assert status == 200 and '" UTC"' in script
    assert "admin token" not in script or "its own" in script


def test_a_chat_with_the_bot_says_its_mode(server: Server) -> None:
    """With no agent online a human_first chat goes to the bot; its view says
    which mode it came in, so a chat server knows bot.escalated will work."""
    status, ans = server.post(TOKEN_B, [
        ev("chat.requested", "bm-1", 30_000, "shopB", visitor="v-bm", chat="botchat")])
    assert status == 200 and ans["accepted"] == 1, ans
    status, view = server.get("/v1/chats/botchat", TOKEN_B)
    assert status == 200 and view["state"] == "bot" and view["mode"] == "human_first", view
