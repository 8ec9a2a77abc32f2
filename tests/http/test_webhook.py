"""Webhooks: a tenant's outputs are POSTed to its URL, retried with backoff."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from tests.http.server import ADMIN, TOKEN_A, TOKEN_B, TOKENS_TOML, Server, ev

pytestmark = pytest.mark.integration


class Receiver(BaseHTTPRequestHandler):
    failures_left = 2
    got: list[dict] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with Receiver.lock:
            if Receiver.failures_left > 0:  # the chat server is down for a moment
                Receiver.failures_left -= 1
                self.send_response(503)
                self.end_headers()
                return
            Receiver.got.extend(orjson.loads(x) for x in body.splitlines() if x)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_delivers_the_tenants_outputs_after_failures(tmp_path: Path) -> None:
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    tokens = TOKENS_TOML.replace(
        f'token = "{TOKEN_A}"',
        f'token = "{TOKEN_A}"\nwebhook = "http://127.0.0.1:{hook.server_port}/routeq"')
    try:
        with Server(tmp_path, tokens=tokens) as server:
            assert server.post(TOKEN_B, [ev("chat.requested", "b1", 1, "shopB", visitor="v",
                                            chat="not-for-a")])[0] == 200
            assert server.post(TOKEN_A, [
                ev("agent.state", "a0", 1, "shopA", agent="ann", status="online", capacity=1),
                ev("chat.requested", "a1", 2, "shopA", visitor="v1", chat="w1"),
                ev("chat.requested", "a2", 3, "shopA", visitor="v2", chat="w2"),
            ])[0] == 200
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with Receiver.lock:
                    if len(Receiver.got) >= 2:
                        break
                time.sleep(0.05)
            assert server.get("/v1/tenants", ADMIN)[0] == 200
    finally:
        hook.shutdown()
    assert Receiver.failures_left == 0
    assert [(o["type"], o["chat"]) for o in Receiver.got] == [("chat.assigned", "w1"),
                                                              ("chat.queued", "w2")]
