"""docs/integration.md's events, posted in its order to a live ``routeq serve``:
each is accepted and does what the guide says it does."""

from __future__ import annotations

import re
import time
from pathlib import Path

import orjson
import pytest

from streams.http.client import Client
from tests.http.server import ADMIN, Server
from tests.routeq import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

GUIDE = ROOT / "docs" / "integration.md"


def test_the_guides_events_do_what_it_says(tmp_path: Path) -> None:
    blocks = re.findall(r"```json\n(.*?)```", GUIDE.read_text(), re.S)
    events = [orjson.loads(b) for b in blocks]
    assert [e["id"] for e in events] == [f"ev-{i}" for i in range(1, len(events) + 1)]
    t0 = int(time.time() * 1000) - 60_000
    for i, e in enumerate(events):
        e["ts"] = t0 + i * 1_000
    with Server(tmp_path) as server:
        client = Client(server.url, ADMIN)
        results = client.post(events)
        assert [r["status"] for r in results] == ["accepted"] * len(events), results
        got = []
        for out in client.outputs(last_event_id="0", query="?tenant=shop-1"):  # from 0
            got.append((out.type, out.data.get("chat"), out.data.get("agent"),
                        out.data.get("why")))
            if out.type == "chat.queued" and out.data.get("chat") == "c-3":
                break
        assert got == [("chat.assigned", "c-1", "anna", None),
                       ("chat.assigned", "c-2", "anna", None),
                       ("chat.requeued", "c-2", "anna", "declined"),
                       ("chat.queued", "c-2", None, None),
                       ("chat.abandoned", "c-2", None, None),
                       ("chat.assigned", "c-3", "anna", None),
                       ("chat.requeued", "c-3", "anna", "transferred"),
                       ("chat.queued", "c-3", None, None)]
        assert client.get("/v1/chats/c-3?tenant=shop-1")["step"] == "transfer"
        [anna] = client.get("/v1/agents?tenant=shop-1")["agents"]
        assert (anna["status"], anna["capacity"], anna["skills"]) == (
            "online", 3, {"presales": 4, "after_sales": 2})  # away and back kept them
        assert client.get("/v1/chats/c-1?tenant=shop-1")["state"] == "ended"
        assert client.get("/v1/chats/c-2?tenant=shop-1")["state"] == "abandoned"


def test_the_readme_links_the_guide() -> None:
    assert "(docs/integration.md)" in (ROOT / "README.md").read_text()
