"""The live dashboard in headless Chromium, against a real server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.http.cdp import Browser, find_chromium
from tests.http.server import ADMIN, TOKEN_A, Server, ev

pytestmark = pytest.mark.integration

CHROMIUM = find_chromium()


def shop(tenant: str, token: str, server: Server, n_agents: int, chats: int, t0: int) -> None:
    events = [ev("agent.state", f"{tenant}-a{i}", t0, tenant, agent=f"{tenant}-agent{i}",
                 status="online", capacity=1) for i in range(n_agents)]
    for i in range(chats):
        v = f"{tenant}-v{i}"
        events.append(ev("page.viewed", f"{tenant}-p{i}", t0 + 10 + i, tenant, visitor=v,
                         page=["cart", "checkout", "home"][i % 3]))
        events.append(ev("chat.requested", f"{tenant}-c{i}", t0 + 20 + i, tenant, visitor=v,
                         chat=f"{tenant}-chat{i}"))
    status, ans = server.post(token, events)
    assert status == 200 and ans["rejected"] == 0, ans


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make test installs it)")
def test_dashboard_shows_tenants_and_updates_live(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    with Server(tmp_path) as server:
        shop("shopA", TOKEN_A, server, n_agents=2, chats=5, t0=1_700_000_000_000)
        shop("mall-7", ADMIN, server, n_agents=3, chats=2, t0=1_700_000_000_000)
        asyncio.run(_drive(server, tmp_path))


async def _drive(server: Server, tmp: Path) -> None:
    assert CHROMIUM is not None
    async with Browser(CHROMIUM, tmp / "chromium") as b:
        await b.goto(f"{server.url}/#token={ADMIN}")
        await b.wait_for("document.getElementById('conn').textContent === 'live'")
        names = await b.wait_for(
            "[...document.querySelectorAll('[data-tenant]')].map(e => e.dataset.tenant)"
            ".sort().join(',') === 'mall-7,shopA' && 'ok'")
        assert names == "ok"
        # the token does not stay in the address bar
        assert "token" not in await b.eval("location.href")

        def queue(tenant: str) -> str:
            return (f"(document.querySelector('[data-tenant=\"{tenant}\"] [data-queue]')"
                    f" || {{}}).textContent")

        assert await b.wait_for(queue("shopA") + " === '3' && 'ok'") == "ok"
        pages = await b.eval(
            "[...document.querySelectorAll('[data-tenant=\"shopA\"] [data-page]')]"
            ".map(e => e.dataset.page).sort().join(',')")
        assert pages == "cart,checkout,home"
        agents = await b.eval("document.querySelectorAll('[data-tenant=\"shopA\"] "
                              "[data-agent]').length")
        assert agents == 2
        charts = await b.eval("document.querySelectorAll('[data-tenant=\"shopA\"] "
                              "svg[data-chart] circle').length")
        assert charts >= 2  # one point of service level, one of abandonment
        # new traffic: the page follows the stream without a reload
        more = [ev("chat.requested", f"late-{i}", 1_700_000_001_000 + i, "shopA",
                   visitor=f"late-v{i}", chat=f"late-chat{i}") for i in range(4)]
        more.append(ev("visitor.left", "late-left", 1_700_000_001_100, "shopA",
                       visitor="shopA-v2"))
        status, _ = server.post(TOKEN_A, more)
        assert status == 200
        assert await b.wait_for(queue("shopA") + " === '6' && 'ok'") == "ok"
        feed = await b.wait_for("document.getElementById('feed').textContent"
                                ".includes('late-chat3') && document.getElementById('feed')"
                                ".textContent")
        assert "chat.abandoned" in feed
        await b.wait_for("document.querySelector('[data-tenant=\"shopA\"]').textContent"
                         ".includes('abandoned')")
        shot = await b.screenshot(tmp / "dashboard.png")
        assert shot.stat().st_size > 10_000
        (tmp / "dashboard-state.json").write_text(json.dumps({"feed": feed}))
        print(f"dashboard screenshot: {shot}")
