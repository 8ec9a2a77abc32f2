"""Signed webhooks (issue 21, item 7): with ``webhook_secret`` in the tokens
file, every delivery carries ``X-Routeq-Timestamp`` and ``X-Routeq-Signature:
sha256=HMAC(secret, timestamp + "." + body)``. A real receiver checks them
with the README's own snippet (executed here as written)."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks.tokens_file import tokens_toml
from tests.http.server import ADMIN, TOKEN_A, TOKEN_B, Server, ev
from tests.routeq import ROOT

pytestmark = pytest.mark.integration

SECRET_A = "shopA-webhook-secret-0123456789"
SECRET_B = "shopB-webhook-secret-9876543210"


def readme_verify() -> Any:
    """The ``verify`` function of the README's ```python block, as written."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    [code] = [b for b in blocks if "def verify(" in b]
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own snippet
    return scope["verify"]


class Hook(BaseHTTPRequestHandler):
    got: list[tuple[str, dict[str, str], bytes]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with Hook.lock:
            Hook.got.append((self.path, dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_deliveries_are_signed_per_tenant_and_verify_with_the_readme_snippet(
        tmp_path: Path) -> None:
    verify = readme_verify()
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{hook.server_port}"
    tokens = tokens_toml(ADMIN, {
        "shopA": {"token": TOKEN_A, "webhook": f"{url}/a", "webhook_secret": SECRET_A},
        "shopB": {"token": TOKEN_B, "webhook": f"{url}/b", "webhook_secret": SECRET_B}})
    try:
        with Server(tmp_path, tokens=tokens) as server:
            for tenant, token in (("shopA", TOKEN_A), ("shopB", TOKEN_B)):
                assert server.post(token, [
                    ev("agent.state", f"{tenant}-0", 1, tenant, agent="ann", status="online",
                       capacity=1),
                    ev("chat.requested", f"{tenant}-1", 2, tenant, visitor="v1", chat="c1"),
                ])[0] == 200
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with Hook.lock:
                    if {p for p, _, _ in Hook.got} == {"/a", "/b"}:
                        break
                time.sleep(0.05)
            assert SECRET_A not in server.log.read_text()  # never logged
    finally:
        hook.shutdown()
    by_path = {p: (h, b) for p, h, b in Hook.got}
    headers_a, body_a = by_path["/a"]
    headers_b, body_b = by_path["/b"]
    assert [orjson.loads(x)["tenant"] for x in body_a.splitlines()] == ["shopA"]
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", headers_a["X-Routeq-Signature"])
    assert abs(int(headers_a["X-Routeq-Timestamp"]) - time.time()) < 120
    assert verify(SECRET_A.encode(), headers_a, body_a)
    assert verify(SECRET_B.encode(), headers_b, body_b)
    # another tenant's secret, a changed body, an old timestamp: refused
    assert not verify(SECRET_B.encode(), headers_a, body_a)
    assert not verify(SECRET_A.encode(), headers_a, body_a + b" ")
    old = dict(headers_a, **{"X-Routeq-Timestamp": str(int(time.time()) - 3600)})
    assert not verify(SECRET_A.encode(), old, body_a)


def test_a_short_webhook_secret_is_refused_at_start(tmp_path: Path) -> None:
    from tests.routeq import routeq
    (tmp_path / "tokens.toml").write_text(f"""
[tenants.shopA]
token = "{TOKEN_A}"
webhook = "http://127.0.0.1:9/x"
webhook_secret = "short"
""")
    out = routeq("serve", "--tokens", tmp_path / "tokens.toml", "--port", "0", check=False,
                 timeout=60)
    assert out.returncode == 2
    assert b"tenants.shopA.webhook_secret" in out.stderr
