"""A small client of ``routeq serve`` for chat servers (standard library only).

```python
from streams.http.client import Client

rq = Client("http://127.0.0.1:8080", token="shop-1's token")
rq.send({"type": "chat.requested", "tenant": "shop-1", "ts": ms, "visitor": "v1",
         "chat": "c1"})           # buffered; posted when the batch is full
rq.flush()                        # post what is buffered (retried until logged)
for out in rq.outputs(last_event_id=saved):   # follows /v1/stream, resumes by itself
    handle(out.data)
    saved = out.id                # store it with your own state
```

- **Batching.** ``send`` buffers events and posts them together (``batch``
  events or ``max_bytes`` at most a post); ``flush`` posts the rest.
- **Retries with the same ids.** An event without ``id`` gets one when it is
  buffered, so a retry sends the very same lines: a post that failed (no
  answer, 5xx, 429, 408, the server restarting) is sent again, after
  ``Retry-After`` or a backoff, until routeq answers it; events that routeq had
  logged before the failure come back ``duplicate``, the others ``accepted``.
  Only an answer that will not change (400, 401, 403, 413, 415) raises
  ``RouteqError`` at once; ``retry_for_s`` bounds the rest.
- **Outputs.** ``outputs`` follows ``GET /v1/stream`` and, when the
  connection drops (a restart of the server, a network cut), reconnects with
  ``Last-Event-ID`` = the last id it gave you: no output lost, none twice.
  Pass the id you stored to start after it (across your own restarts too).
- **The consumer rule.** Ids are ``OFFSET.K``: an output at or below the last
  one taken is dropped (``Cursor``), so outputs from a stream you opened again
  from an older position, or delivered again by a webhook, are taken once.
  ``verify_webhook`` checks a signed webhook delivery (README, "Signed
  webhooks").
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

#: the stream's first comment: ": routeq stream, next offset N"
NEXT_OFFSET = b": routeq stream, next offset "
#: answers that a retry may change (the server busy, restarting, or cut off)
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})


class RouteqError(Exception):
    """routeq refused a request for good (or retries ran out); ``status`` and
    the server's ``error`` say why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def parse_id(event_id: str) -> tuple[int, int]:
    """``"123.4"`` -> (123, 4): an output id, in the stream's order."""
    off, _, k = event_id.partition(".")
    return int(off), int(k) if k else -1


@dataclass
class Cursor:
    """The consumer rule: take an output only if its id is after the last one
    taken. ``last`` is that id (store it; give it back to resume)."""

    last: str | None = None

    def take(self, event_id: str) -> bool:
        """True (and remember it) if ``event_id`` is new; False for one at or
        below the last taken (a duplicate)."""
        if self.last is not None and parse_id(event_id) <= parse_id(self.last):
            return False
        self.last = event_id
        return True


@dataclass(frozen=True)
class Output:
    """One decision from the stream: ``id`` (``OFFSET.K``), ``type``, ``data``."""

    id: str
    type: str
    data: dict[str, Any]


def verify_webhook(secret: bytes, headers: Mapping[str, str], body: bytes,
                   max_age_s: int = 300) -> bool:
    """True when a webhook delivery is routeq's: signed with the tenant's
    ``webhook_secret`` (``X-Routeq-Signature``) and recent (``X-Routeq-Timestamp``)."""
    ts = headers.get("X-Routeq-Timestamp", "")
    sig = headers.get("X-Routeq-Signature", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > max_age_s:
        return False
    mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig, "sha256=" + mac)


@dataclass
class Client:
    """A chat server's connection to ``routeq serve`` at ``url`` (``http://HOST:PORT``)."""

    url: str
    token: str | None = None
    batch: int = 500
    max_bytes: int = 512 * 1024  # below serve's --max-body (1 MiB)
    timeout: float = 30.0
    retry_for_s: float = 300.0
    _buffer: list[bytes] = field(default_factory=list, repr=False)
    _size: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http(s)://HOST:PORT, got {self.url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/")

    # --------------------------------------------------------------- posting

    def send(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Buffer ``event`` (given an ``id`` if it has none); post the buffer
        when it is full. Returns the results of that post ([] if none)."""
        if "id" not in event:
            event = {**event, "id": uuid.uuid4().hex}
        line = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        done: list[dict[str, Any]] = []
        if self._buffer and self._size + len(line) + 1 > self.max_bytes:
            done = self.flush()
        self._buffer.append(line)
        self._size += len(line) + 1
        if len(self._buffer) >= self.batch:
            done += self.flush()
        return done

    def flush(self) -> list[dict[str, Any]]:
        """Post the buffered events (retrying until routeq answers); their
        results in order: ``{"status": "accepted" | "duplicate" | "rejected", ...}``."""
        if not self._buffer:
            return []
        lines, self._buffer, self._size = self._buffer, [], 0
        answer = self._post(b"\n".join(lines) + b"\n")
        results: list[dict[str, Any]] = answer["results"]
        return results

    def post(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send ``events`` now (after what is buffered), in batches; their results."""
        out = self.flush()
        for ev in events:
            out += self.send(ev)
        return out + self.flush()

    def _post(self, body: bytes) -> dict[str, Any]:
        headers = {"Content-Type": "application/x-ndjson"}
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.2
        while True:
            try:
                status, answer, retry_after = self._request("POST", "/v1/events", body,
                                                            headers)
            except (OSError, http.client.HTTPException) as exc:  # no answer: retry
                status, answer, retry_after = 0, {"error": f"{type(exc).__name__}: {exc}"}, None
            if 200 <= status < 300:
                return answer
            if status and status not in RETRYABLE:
                raise RouteqError(f"POST /v1/events answered {status}: "
                                  f"{answer.get('error', answer)}", status)
            if time.monotonic() >= deadline:
                raise RouteqError(f"POST /v1/events: no answer in {self.retry_for_s:g} s "
                                  f"(last: {status or ''} {answer.get('error', '')})".rstrip(),
                                  status or None)
            time.sleep(retry_after if retry_after is not None else delay)
            delay = min(delay * 2, 5.0)

    # ------------------------------------------------------------- reading

    def chat(self, chat: str) -> dict[str, Any] | None:
        """``GET /v1/chats/{chat}`` (the id percent-encoded: ``a/b`` -> ``a%2Fb``);
        None when routeq does not know it (404)."""
        status, answer, _ = self._request("GET", "/v1/chats/" + quote(chat, safe=""))
        if status == 404:
            return None
        if status != 200:
            raise RouteqError(f"GET /v1/chats answered {status}: {answer.get('error')}", status)
        return answer

    def get(self, path: str) -> dict[str, Any]:
        """Any read view (``/v1/queue``, ``/v1/agents``, ...) as JSON."""
        status, answer, _ = self._request("GET", path)
        if status != 200:
            raise RouteqError(f"GET {path} answered {status}: {answer.get('error')}", status)
        return answer

    def outputs(self, last_event_id: str | None = None, *, query: str = "",
                idle_timeout: float = 60.0) -> Iterator[Output]:
        """The decisions, after ``last_event_id`` (None: from when the
        iteration starts, which opens the stream; ``"0"``: every output still
        kept), for ever: reconnects with ``Last-Event-ID`` whenever the stream
        drops.
        Raises ``RouteqError`` on 409 (the server's log is not the one that id
        came from: it restarted without ``--state``), 410 and 401/403."""
        cursor = Cursor(last_event_id)
        delay = 0.2
        while True:
            conn = self._connection(idle_timeout)
            headers = {"Accept": "text/event-stream", **self._auth()}
            if cursor.last is not None:
                headers["Last-Event-ID"] = cursor.last
            try:
                conn.request("GET", self._base + "/v1/stream" + query, headers=headers)
                resp = conn.getresponse()
                if resp.status != 200:
                    answer = _json(resp.read())
                    if resp.status not in RETRYABLE:
                        raise RouteqError(f"GET /v1/stream answered {resp.status}: "
                                          f"{answer.get('error')}", resp.status)
                    wait = _retry_after(resp)
                    time.sleep(wait if wait is not None else delay)
                    delay = min(delay * 2, 5.0)
                    continue
                delay = 0.2
                for out in _events(resp, cursor):
                    if cursor.take(out.id):
                        yield out
            except (OSError, http.client.HTTPException):
                time.sleep(delay)  # dropped (restart, network): resume after the last id
                delay = min(delay * 2, 5.0)
            finally:
                conn.close()

    # ------------------------------------------------------------ plumbing

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=timeout)

    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None,
                 ) -> tuple[int, dict[str, Any], float | None]:
        conn = self._connection(self.timeout)
        try:
            conn.request(method, self._base + path, body=body,
                         headers={**self._auth(), **(headers or {})})
            resp = conn.getresponse()
            return resp.status, _json(resp.read()), _retry_after(resp)
        finally:
            conn.close()


def _json(data: bytes) -> dict[str, Any]:
    try:
        got = json.loads(data)
    except ValueError:
        return {"error": data[:200].decode(errors="replace")}
    return got if isinstance(got, dict) else {"error": repr(got)[:200]}


def _retry_after(resp: http.client.HTTPResponse) -> float | None:
    raw = resp.getheader("Retry-After")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _events(resp: http.client.HTTPResponse, cursor: Cursor) -> Iterator[Output]:
    """Server-Sent Events of one connection (pings skipped). A stream opened
    "from now on" says its next offset first: the cursor starts there, so a
    reconnect before the first output still misses nothing."""
    fields: dict[str, str] = {}
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.rstrip(b"\r\n")
        if not line:
            if "data" in fields:
                yield Output(fields.get("id", ""), fields.get("event", ""),
                             json.loads(fields["data"]))
            fields = {}
            continue
        if line.startswith(b":"):
            if cursor.last is None and line.startswith(NEXT_OFFSET):
                cursor.last = line[len(NEXT_OFFSET):].strip().decode()  # "N": N's on
            continue
        name, _, value = line.decode().partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value
