"""Webhooks across ``kill -9``: ``routeq serve --state`` delivers each
tenant's outputs to a real receiver (an aiohttp server run by the test) while
clients post; the server is killed with SIGKILL three times, each time while
a delivery is at the receiver and not yet answered, and restarted on the same
state. Every output reaches the receiver, in order; the only duplicates are
outputs of the delivery that was in flight at a kill (its position was not
stored), and the README's receiver rule (drop what is at or below the highest
offset taken) removes them, leaving exactly the outputs of a replay."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.http.server import ADMIN, TOKEN_A, TOKEN_B, TOKENS_TOML, Server, ev
from tests.routeq import routeq
from tests.tally import TALLY

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.reliability]

TENANTS = ("shopA", "shopB")
KILLS = 3
POSTS = 100  # posts of 2 x EVENTS events, at least
EVENTS = 6


@dataclass
class Delivery:
    tenant: str
    epoch: int  # server runs before it (0: the first run)
    first_id: str
    last_id: str
    lines: list[bytes]


class Receiver:
    """The chat server's webhook endpoint, on its own thread and event loop.
    When ``armed``, it records the next delivery and holds its answer back
    (the test kills the sender meanwhile)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()
        self.epoch = 0
        self.armed = False
        self.held: list[int] = []  # indexes of the deliveries held (one a kill)
        self.caught = threading.Event()
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _take(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self.lock:
            self.deliveries.append(Delivery(
                request.match_info["tenant"], self.epoch,
                request.headers["X-Routeq-First-Event-ID"],
                request.headers["X-Routeq-Last-Event-ID"],
                [ln for ln in body.split(b"\n") if ln]))
            hold, self.armed = self.armed, False
            if hold:
                self.held.append(len(self.deliveries) - 1)
        if hold:
            self.caught.set()
            await asyncio.sleep(2.0)  # the sender is killed before it hears back
        return web.Response(status=204)

    async def _main(self) -> None:
        app = web.Application()
        app.router.add_post("/hook/{tenant}", self._take)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> Receiver:
        self._thread.start()
        assert self._ready.wait(30)
        return self

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def count(self) -> int:
        with self.lock:
            return len(self.deliveries)

    def causes(self, tenant: str) -> set[str]:
        with self.lock:
            return {orjson.loads(ln)["cause"] for d in self.deliveries if d.tenant == tenant
                    for ln in d.lines}


def traffic(n: int) -> list[dict[str, Any]]:
    """Post ``n``: for each tenant, agents coming and going, chats requested and ended."""
    out: list[dict[str, Any]] = []
    for t in TENANTS:
        base = n * EVENTS
        ts = 1_000 + n * 100
        if n % 10 == 0:
            out.append(ev("agent.state", f"{t}-a{n}", ts, t, agent=f"ag{n % 3}",
                          status="online", capacity=2))
        else:
            out.append(ev("chat.ended", f"{t}-e{n}", ts, t, chat=f"c{base - 2 * EVENTS + 1}"))
        for i in range(1, EVENTS):
            out.append(ev("chat.requested", f"{t}-r{base + i}", ts + i, t,
                          visitor=f"v{base + i}", chat=f"c{base + i}"))
    return out


def post_until_taken(server: Server, events: list[dict[str, Any]]) -> None:
    """POST until a 2xx (the server may be down or restarting meanwhile)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            status, _ = server.post(ADMIN, events, timeout=10)
        except OSError:
            status = 0
        if status == 200:
            return
        time.sleep(0.05)
    raise AssertionError("the server took no post for 120 s")


def test_webhook_delivers_every_output_across_kill_9(tmp_path: Path) -> None:
    receiver = Receiver().start()
    hook = f"http://127.0.0.1:{receiver.port}/hook"
    tokens = TOKENS_TOML.replace(
        f'token = "{TOKEN_A}"', f'token = "{TOKEN_A}"\nwebhook = "{hook}/shopA"').replace(
        f'token = "{TOKEN_B}"', f'token = "{TOKEN_B}"\nwebhook = "{hook}/shopB"')
    server = Server(tmp_path, "--checkpoint-ms", "100", tokens=tokens).start()
    done = threading.Event()
    kills_done = threading.Event()

    def poster() -> None:  # at least POSTS posts, and on until the last kill is over
        n = 0
        while n < POSTS or not kills_done.is_set():
            post_until_taken(server, traffic(n))
            n += 1
            time.sleep(0.01)
        done.set()

    thread = threading.Thread(target=poster, daemon=True)
    thread.start()
    try:
        for kill in range(KILLS):
            time.sleep(0.3 + 0.2 * kill)  # let some deliveries through first
            receiver.caught.clear()
            receiver.armed = True
            assert receiver.caught.wait(60), "no delivery came to hold"
            time.sleep(0.5)  # outputs go on being decided, not delivered
            server.kill9()
            with receiver.lock:
                receiver.epoch += 1
            server.start()
        kills_done.set()
        thread.join(timeout=300)
        assert done.is_set(), "the poster did not finish"
        # a last output per tenant: once it is delivered, so is everything before
        post_until_taken(server, [ev("chat.requested", f"{t}-last", 10**7, t, visitor="vz",
                                     chat="last") for t in TENANTS])
        deadline = time.monotonic() + 120
        while not all(f"{t}-last" in receiver.causes(t) for t in TENANTS):
            assert time.monotonic() < deadline, "the last outputs were not delivered"
            time.sleep(0.05)
        assert server.stop() == 0
    finally:
        if server.proc is not None:
            server.kill9()
        receiver.stop()

    # what the state's log gives, output by output (the live run's bytes)
    replayed = [ln for ln in routeq("replay", "--state", server.state).stdout.split(b"\n")
                if ln]
    deliveries = receiver.deliveries
    duplicated = 0
    for t in TENANTS:
        want = [ln for ln in replayed
                if (o := orjson.loads(ln))["tenant"] == t or o.get("origin") == t]
        mine = [(i, d) for i, d in enumerate(deliveries) if d.tenant == t]
        # the receiver rule: drop every output at or below the highest offset taken
        kept: list[bytes] = []
        dropped: list[tuple[int, bytes]] = []
        high = -1
        for i, d in mine:
            offsets = [orjson.loads(ln)["offset"] for ln in d.lines]
            assert offsets == sorted(offsets), "a delivery out of order"
            assert d.first_id.split(".")[0] == str(offsets[0])
            assert d.last_id.split(".")[0] == str(offsets[-1])
            for ln, off in zip(d.lines, offsets, strict=True):
                if off <= high:
                    dropped.append((i, ln))
                else:
                    kept.append(ln)
            high = max(high, offsets[-1])
        assert kept == want, f"{t}: the deliveries, deduplicated, are not the outputs"
        # a duplicate is an output of the last delivery of the tenant before a kill
        last_before_kill = set()
        for epoch in range(KILLS):
            before = [i for i, d in mine if d.epoch == epoch]
            if before:
                last_before_kill.add(before[-1])
        windows = {ln for i in last_before_kill for ln in deliveries[i].lines}
        assert all(ln in windows for _, ln in dropped), f"{t}: a duplicate from elsewhere"
        duplicated += len(dropped)
        # the held delivery (no answer before the kill) came again, every line
        for i in receiver.held:
            if deliveries[i].tenant == t:
                assert set(deliveries[i].lines) <= {ln for _, ln in dropped}, (
                    f"{t}: a held delivery was not sent again")
    assert len(receiver.held) == KILLS and duplicated > 0
    TALLY["webhook_kills"] += KILLS
    TALLY["webhook_outputs_checked"] += len(replayed)
    TALLY["webhook_duplicates_resent"] += duplicated
