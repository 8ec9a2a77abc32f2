"""Attacks on a live ``routeq serve`` (issue 14), each against a real server
on loopback with tokens for an admin and two shops A and B:

- a tenant token posting routeq's internal event type (``chat.handed_over``)
  or internal fields (``origin``) to write into another tenant;
- forged tenant names exploding the ``/metrics`` label sets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.integration.http.server import ADMIN, TOKEN_A, TOKEN_B, Server, ev

pytestmark = pytest.mark.integration

METRIC_TENANTS = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("hard"), "--metrics-tenants",
                str(METRIC_TENANTS)) as s:
        yield s


def offset(server: Server) -> int:
    status, health = server.get("/healthz", None)
    assert status == 200, health
    return int(health["offset"])


# ------------------------------------------------------------ tenant isolation


def test_a_tenant_token_cannot_post_a_hand_over(server: Server) -> None:
    before = offset(server)
    status, ans = server.post(TOKEN_A, [
        ev("agent.state", "iso-a1", 1_000, "shopA", agent="evil-agent", status="online"),
        ev("chat.handed_over", "iso-h1", 1_000, "shopA", **{"from": "shopB"},
           chat="fake-chat-1", visitor="victim-visitor", requested_ts=1_000)])
    assert status == 403, ans
    assert "event 2" in ans["error"] and "chat.handed_over" in ans["error"], ans
    assert offset(server) == before  # nothing of that post is logged
    # B's stream holds nothing A made up
    st_b = server.stream(TOKEN_B, query=f"?from={before}", timeout=2)
    try:
        with pytest.raises((TimeoutError, OSError, EOFError)):
            st_b.next()
    finally:
        st_b.close()


@pytest.mark.parametrize("typ", ["chat.accepted", "chat.declined", "chat.ended"])
def test_a_tenant_token_cannot_name_an_origin(server: Server, typ: str) -> None:
    before = offset(server)
    fields = {"chat": "bchat", "origin": "shopB"}
    if typ != "chat.ended":
        fields["agent"] = "ann"
    status, ans = server.post(TOKEN_A, [ev(typ, f"iso-{typ}", 1_000, "shopA", **fields)])
    assert status == 403, ans
    assert "event 1" in ans["error"] and "'origin'" in ans["error"], ans
    assert offset(server) == before


def test_a_tenant_token_posts_every_public_type_and_its_own_clock(server: Server) -> None:
    t = "shopA"
    status, ans = server.post(TOKEN_A, [
        ev("agent.state", "pub-1", 1_000, t, agent="pub-agent", status="online"),
        ev("visitor.arrived", "pub-2", 1_000, t, visitor="pv", channel="web"),
        ev("page.viewed", "pub-3", 1_000, t, visitor="pv", page="home"),
        ev("chat.requested", "pub-4", 1_000, t, visitor="pv", chat="pc"),
        ev("chat.declined", "pub-5", 1_000, t, chat="pc", agent="pub-agent"),
        ev("chat.accepted", "pub-6", 1_000, t, chat="pc", agent="pub-agent"),
        ev("bot.escalated", "pub-7", 1_000, t, chat="pc"),
        ev("chat.ended", "pub-8", 1_000, t, chat="pc"),
        ev("order.placed", "pub-9", 1_000, t, visitor="pv", amount=3.5),
        ev("visitor.left", "pub-10", 1_000, t, visitor="pv"),
        ev("clock", "pub-11", 1_000, t)])
    assert status == 200, ans
    assert ans["accepted"] == 11, ans


def test_the_admin_may_replay_internal_events(server: Server) -> None:
    status, ans = server.post(ADMIN, [
        ev("chat.handed_over", "adm-h1", 1_000, "shopA", **{"from": "shopB"},
           chat="replayed", visitor="rv", requested_ts=1_000),
        ev("chat.ended", "adm-e1", 1_100, "shopA", chat="replayed", origin="shopB")])
    assert status == 200, ans
    assert [r["status"] for r in ans["results"]] == ["accepted", "accepted"], ans


# ------------------------------------------------------------ metrics labels


def tenant_labels(text: str) -> set[str]:
    return set(re.findall(r'(?:tenant)="([^"]*)"', text))


def test_forged_tenant_names_do_not_explode_the_metrics(server: Server) -> None:
    """Hand-overs from 300 made-up merchants (the admin's, so accepted) and
    events for 300 made-up tenants: the label sets stay within the cap."""
    events = [ev("agent.state", "lab-a", 2_000, "shopA", agent="lab-agent", status="online",
                 capacity=100)]
    events += [ev("chat.handed_over", f"lab-h{i}", 2_000, "shopA", **{"from": f"forged{i}"},
                  chat=f"lc{i}", visitor=f"lv{i}", requested_ts=2_000) for i in range(300)]
    events += [ev("agent.state", f"lab-t{i}", 2_000, f"made-up{i}", agent="x", status="online")
               for i in range(300)]
    status, ans = server.post(ADMIN, events)
    assert status == 200 and ans["accepted"] == len(events), ans
    status, text = server.get("/metrics", ADMIN)
    assert status == 200 and isinstance(text, str)
    labels = tenant_labels(text)
    assert "shopA" in labels
    # the configured tenants, the cap of others, and "_other"
    assert len(labels) <= 2 + METRIC_TENANTS + 1, sorted(labels)
    assert "_other" in labels
    assert len(text.splitlines()) < 2_000
