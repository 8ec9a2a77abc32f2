"""A real ``routeq serve`` in a subprocess on a free loopback port, and small
HTTP and Server-Sent-Events clients (stdlib only) to talk to it."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.tokens_file import tokens_toml
from tests.routeq import ROOT, ROUTEQ, env

ADMIN = "admin-token-0123456789abcdef"
TOKEN_A = "shopA-token-0123456789abcdef"
TOKEN_B = "shopB-token-0123456789abcdef"

TOKENS_TOML = tokens_toml(ADMIN, {"shopA": TOKEN_A, "shopB": TOKEN_B})

START_TIMEOUT = 90.0


class Server:
    def __init__(self, tmp: Path, *extra: str, state: bool = True,
                 tokens: str | None = TOKENS_TOML,
                 preexec_fn: Callable[[], None] | None = None) -> None:
        self.preexec_fn = preexec_fn  # run in the child before exec (limits)
        self.tmp = tmp
        self.state = tmp / "state"
        self.tokens = tmp / "tokens.toml"
        self.use_tokens = tokens is not None  # None: no --tokens (no auth, loopback)
        if tokens is not None:
            self.tokens.write_text(tokens)
        self.extra = list(extra)
        self.use_state = state
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = tmp / "serve.log"

    def start(self) -> Server:
        ready = self.tmp / "ready"
        ready.unlink(missing_ok=True)
        args = [*ROUTEQ, "serve", "--port", "0", "--ready-file", str(ready), "--clock-ms", "0",
                *(["--tokens", str(self.tokens)] if self.use_tokens else []), *self.extra]
        if self.use_state:
            args += ["--state", str(self.state)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env(), stdout=log, stderr=log,
                                         preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"routeq serve exited {self.proc.returncode}: "
                                     f"{self.log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError("routeq serve did not start: " + self.log.read_text())
            time.sleep(0.05)
        self.port = int(ready.read_text())
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.stop()

    # ------------------------------------------------------------- clients

    def call(self, method: str, path: str, token: str | None = None, body: Any = None,
             ctype: str = "application/json", raw: bytes | None = None,
             timeout: float = 60) -> tuple[int, Any]:
        """(status, decoded JSON answer or text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        if data is not None:
            headers["Content-Type"] = ctype
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, orjson.loads(payload)
        except orjson.JSONDecodeError:
            return resp.status, payload.decode(errors="replace")

    def post(self, token: str | None, events: Any, **kw: Any) -> tuple[int, Any]:
        return self.call("POST", "/v1/events", token, events, **kw)

    def get(self, path: str, token: str | None) -> tuple[int, Any]:
        return self.call("GET", path, token)

    def stream(self, token: str, last_event_id: str | None = None, query: str = "",
               timeout: float = 60) -> Stream:
        return Stream(self.port, token, last_event_id, query, timeout)


class Stream:
    """A Server-Sent-Events connection: ``next()`` gives (id, type, data)."""

    def __init__(self, port: int, token: str, last_event_id: str | None, query: str,
                 timeout: float) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", "/v1/stream" + query, headers=headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def next(self) -> tuple[str, str, dict[str, Any]]:
        """The next event (blocks up to the timeout; comments are skipped)."""
        fields: dict[str, str] = {}
        while True:
            line = self.resp.readline()
            if not line:
                raise EOFError("stream closed")
            line = line.rstrip(b"\n")
            if not line:
                if "data" in fields:
                    return fields.get("id", ""), fields.get("event", ""), orjson.loads(
                        fields["data"])
                fields = {}
                continue
            if line.startswith(b":"):
                continue
            name, _, value = line.decode().partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value

    def take(self, n: int) -> list[tuple[str, str, dict[str, Any]]]:
        return [self.next() for _ in range(n)]

    def close(self) -> None:
        self.conn.close()


def ev(typ: str, eid: str, ts: int, tenant: str | None, **fields: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"type": typ, "id": eid, "ts": ts}
    if tenant is not None:
        e["tenant"] = tenant
    e.update(fields)
    return e
