"""``routeq serve``: the embedded runtime behind HTTP, for chat servers.

A thin aiohttp shell over ``streams.http.service.Service`` (which holds all the
logic that tests can reach without HTTP):

- ``POST /v1/events``: one JSON event, a JSON array of events, or NDJSON.
  Requests that arrive together are logged in one write (group commit); the
  answer comes after that write, so a 2xx means durable.
- ``GET /v1/stream``: Server-Sent Events, ``id`` = ``OFFSET.K``; reconnect
  with ``Last-Event-ID`` (or ``?from=OFFSET``) to resume with no gap.
- webhooks: each tenant's outputs POSTed to its URL, from the position its
  receiver acknowledged last (stored with ``--state``): at least once.
- ``GET /v1/chats/{chat}``, ``/v1/queue``, ``/v1/agents``, ``/v1/tenants``,
  ``/v1/overview`` (admin, paginated), ``/metrics``, ``/healthz``, ``/`` (the
  dashboard).
- limits: streams per tenant and in all, connections, idle/header and body
  timeouts, pages of 1,000 outputs written 64 KiB at a time (a client that
  does not read holds a page, not the history); every answer JSON.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import resource
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientSession, ClientTimeout, web

import schemas
from schemas.events import TYPES, parse_lines
from streams.embedded.skew import DEFAULT_MAX_SKEW_S, skewed_lines
from streams.embedded.state import StateLayout
from streams.http.metrics import DEFAULT_LABELED, ServeMetrics, TenantLabels
from streams.http.service import (
    CLOSED_KEPT,
    Cursor,
    Item,
    Result,
    Service,
    parse_cursor,
)
from streams.http.tokens import Principal, Tokens

DEFAULT_MAX_BODY = 1 << 20
#: events waiting for the next group commit beyond which a POST gets 429
DEFAULT_MAX_QUEUE = 100_000
RETRY_AFTER_S = 1
STREAM_RETRY_S = 5
HEARTBEAT_S = 15.0
#: outputs a stream or webhook takes at a time from the history or the stored outputs
PAGE = 1_000
#: bytes a stream writes at a time (each write waits while the client's socket is full)
WRITE_CHUNK = 64 * 1024
#: a cursor's index that means "every output of that offset"
DONE = 1 << 62
DEFAULT_MAX_STREAMS = 1_000
DEFAULT_MAX_STREAMS_PER_TENANT = 100
DEFAULT_IDLE_TIMEOUT_S = 15.0
DEFAULT_BODY_TIMEOUT_S = 30.0
#: tenants an overview answer holds by default (?limit=, ?after= for the next)
OVERVIEW_PAGE = 100
#: outputs a webhook delivery holds at most (more where one input's outputs go on)
WEBHOOK_BATCH = 1_000
STATIC = Path(__file__).resolve().parent / "dashboard"
#: the OpenAPI document of this server (generated: python -m schemas.jsonschema --write)
OPENAPI = Path(schemas.__file__).resolve().parent / "json" / "openapi.json"
#: (not text/plain: a page of another origin may send it without asking, and
#: the README promises 415 for it)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl",
                "application/json-lines", "application/jsonlines")
STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                ".svg": "image/svg+xml"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OnceIn:
    """Log lines at most once per ``every_s`` per key (a failing receiver or a
    full disk must not flood the log); how many were left out is said with
    the next one."""

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s = every_s
        self.last: dict[str, float] = {}
        self.left_out: dict[str, int] = {}
        self.logger = logging.getLogger("routeq.serve")

    def once(self, key: str, msg: str, *args: Any, exc_info: BaseException | None = None,
             ) -> bool:
        now = time.monotonic()
        last = self.last.get(key)
        if last is not None and now - last < self.every_s:
            self.left_out[key] = self.left_out.get(key, 0) + 1
            return False
        if len(self.last) > 10_000:
            self.last.clear()
        self.last[key] = now
        n = self.left_out.pop(key, 0)
        if n:
            msg += " (%d more like it in the last %d s)"
            args = (*args, n, round(self.every_s))
        self.logger.warning(msg, *args, exc_info=exc_info)
        return True


LOG = OnceIn()


# ---------------------------------------------------------------- the app


class Batcher:
    """Group commit: the posts that arrive while one is being written go in
    the next write together."""

    def __init__(self, service: Service,
                 on_failure: Callable[[Exception], None] | None = None) -> None:
        self.service = service
        self.pending: list[tuple[list[bytes], list[object] | None,
                                 asyncio.Future[list[Result]]]] = []
        self.queued = 0  # events in ``pending``
        self.scheduled = False
        self.closed = False
        #: why the state cannot be written (a full disk); None: healthy
        self.failed: str | None = None
        self.on_failure = on_failure

    def unavailable(self) -> web.HTTPServiceUnavailable:
        return web.HTTPServiceUnavailable(
            text=f"the state cannot be written ({self.failed}); nothing of this post is "
                 f"acknowledged: retry after {RETRY_AFTER_S} s (events that were logged "
                 f"are answered 'duplicate'; GET /healthz says when it is back)",
            headers={"Retry-After": str(RETRY_AFTER_S)})

    def submit(self, lines: list[bytes], values: list[object] | None = None,
               ) -> asyncio.Future[list[Result]]:
        """Log and apply ``lines`` with the next batch; ``values``: their values
        (``parse_lines``), where the caller parsed them already."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Result]] = loop.create_future()
        if self.closed:
            fut.set_exception(web.HTTPServiceUnavailable(text="routeq is shutting down\n"))
            return fut
        if self.failed is not None:
            fut.set_exception(self.unavailable())
            return fut
        self.pending.append((lines, values, fut))
        self.queued += len(lines)
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self.flush)
        return fut

    def flush(self) -> None:
        self.scheduled = False
        pending, self.pending = self.pending, []
        self.queued = 0
        if not pending:
            return
        if self.failed is not None:
            for *_, fut in pending:
                if not fut.done():
                    fut.set_exception(self.unavailable())
            return
        try:
            results = self.service.submit([lines for lines, _, _ in pending],
                                          [values for _, values, _ in pending])
        except Exception as exc:  # the store failed: nobody gets a 2xx
            self.failed = str(exc) or type(exc).__name__
            if self.on_failure is not None:
                self.on_failure(exc)
            for *_, fut in pending:
                if not fut.done():
                    fut.set_exception(self.unavailable())
            return
        for (*_, fut), res in zip(pending, results, strict=True):
            if not fut.done():
                fut.set_result(res)


class App:
    def __init__(self, service: Service, tokens: Tokens, *, max_body: int,
                 clock_ms: int = 0, max_queue: int = DEFAULT_MAX_QUEUE,
                 metrics_tenants: int = DEFAULT_LABELED,
                 reopen: Callable[[], StateLayout] | None = None,
                 host: str = "127.0.0.1", max_streams: int = DEFAULT_MAX_STREAMS,
                 max_streams_per_tenant: int = DEFAULT_MAX_STREAMS_PER_TENANT,
                 body_timeout: float = DEFAULT_BODY_TIMEOUT_S,
                 max_skew_s: int = DEFAULT_MAX_SKEW_S) -> None:
        self.service = service
        self.max_skew_ms = max_skew_s * 1000
        self.tokens = tokens
        self.max_body = max_body
        self.max_queue = max_queue
        self.clock_ms = clock_ms
        self.metrics = ServeMetrics(service, TenantLabels(tokens.tenants, metrics_tenants))
        service.on_output = self.metrics.outputs
        self.batcher = Batcher(service, self.store_failed)
        #: opens the state dir again (None: in memory) for ``_recover``
        self.reopen = reopen
        self.closing = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self._recovering: asyncio.Task[None] | None = None
        self.hooks = {t: HookState() for t in tokens.webhooks}
        self.host = host
        self.max_streams = max_streams
        self.max_streams_per_tenant = max_streams_per_tenant
        self.body_timeout = body_timeout
        self.streams: dict[str, int] = {}  # open streams by tenant ("" = the admin)
        self.reads = 0  # stored-output reads running in worker threads
        # without tokens every caller is the admin: only the server's own pages
        # (and clients that are no browser) may call it
        self.web = web.Application(client_max_size=max_body, middlewares=[
            self._errors, *([self._same_origin] if tokens.open else [])])
        r = self.web.router
        r.add_post("/v1/events", self.post_events)
        r.add_get("/v1/stream", self.stream)
        r.add_get("/v1/chats/{chat}", self.chat)
        r.add_get("/v1/queue", self.queue)
        r.add_get("/v1/agents", self.agents)
        r.add_get("/v1/tenants", self.tenants_list)
        r.add_get("/v1/overview", self.overview)
        r.add_get("/metrics", self.metrics_page)
        r.add_get("/healthz", self.health)
        r.add_get("/openapi.json", self.openapi)
        r.add_get("/", self.dashboard)
        r.add_get("/static/{name}", self.static)

    # ------------------------------------------------------------ plumbing

    @web.middleware
    async def _errors(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                      ) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "other"
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            self.metrics.requests.labels(name, str(exc.status)).inc()
            if exc.status < 400:
                raise
            text = exc.text.strip() if exc.text else exc.reason
            if text.startswith(f"{exc.status}:"):  # aiohttp's own "413: Request Entity..."
                text = text.split(":", 1)[1].strip()
            return web.Response(  # every error answers JSON with a message
                status=exc.status, body=orjson.dumps({"error": text}),
                content_type="application/json",
                headers={k: v for k, v in exc.headers.items()
                         if k.lower() in ("www-authenticate", "allow", "retry-after")})
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:  # a bug, or a store error on a read: JSON all the same
            self.metrics.requests.labels(name, "500").inc()
            LOG.once(f"500:{name}:{type(exc).__name__}",
                     "routeq serve: %s answered 500 (%s: %s)", name, type(exc).__name__, exc,
                     exc_info=exc)
            return web.Response(status=500, content_type="application/json", body=orjson.dumps(
                {"error": f"internal error ({type(exc).__name__}); the server's log says more"}))
        self.metrics.requests.labels(name, str(resp.status)).inc()
        return resp

    @web.middleware
    async def _same_origin(self, request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                           ) -> web.StreamResponse:
        """No-token mode: a browser page of another origin must not post or
        read (a no-cors ``text/plain`` post needs no preflight; a DNS-rebound
        name would pass an Origin check alone): the Host must name this
        loopback server, an Origin must be that host's, and posts must say
        JSON or NDJSON (types a cross-origin page cannot send without a
        preflight, which is never granted)."""
        name = (request.url.host or "").lower() if "Host" in request.headers else ""
        if name and name != self.host.lower() and not is_loopback(name):
            raise web.HTTPForbidden(text=f"Host {request.host!r} is not this server's: "
                                    f"without --tokens only loopback names are served")
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() != f"{request.scheme}://{request.host}".lower():
            raise web.HTTPForbidden(text=f"Origin {origin!r} is not this server's own: "
                                    f"without --tokens only its own pages may call it")
        if request.method == "POST" and request.content_type not in (
                "application/json", *NDJSON_TYPES):
            raise web.HTTPUnsupportedMediaType(
                text=f"Content-Type {request.content_type or '(none)'} is not taken without "
                     f"--tokens: send application/json or application/x-ndjson")
        return await handler(request)

    def store_failed(self, exc: Exception) -> None:
        """A write of the state failed: unhealthy until ``_recover`` succeeds."""
        if self.batcher.failed is None:
            self.batcher.failed = str(exc) or type(exc).__name__
        LOG.once("store-failed", "routeq serve: the state cannot be written (%s): posts are "
                 "answered 503 and /healthz is unhealthy until a write succeeds again", exc)
        if self.reopen is not None and (self._recovering is None or self._recovering.done()):
            self._recovering = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        """Try to write the state again (reopening it), with backoff, until it works."""
        assert self.reopen is not None
        delay = 0.5
        while self.batcher.failed is not None and not self.closing.is_set():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            if self.batcher.pending or self.batcher.scheduled or self.reads:
                continue  # (answered 503 by the next flush; reads use the store)
            try:
                self.service.recover(self.reopen)
            except Exception as exc:
                self.batcher.failed = str(exc) or type(exc).__name__
                LOG.once("store-still-failed", "routeq serve: the state still cannot be "
                         "written (%s); trying again", exc)
                continue
            self.batcher.failed = None
            print(f"routeq serve: the state is written again (recovered at offset "
                  f"{self.service.offset})", file=sys.stderr, flush=True)

    def principal(self, request: web.Request) -> Principal:
        p = self.tokens.who(request.headers.get("Authorization"))
        if p is None:
            raise web.HTTPUnauthorized(
                text="a bearer token is needed: Authorization: Bearer TOKEN",
                headers={"WWW-Authenticate": 'Bearer realm="routeq"'})
        return p

    def scope(self, request: web.Request, p: Principal, *, required: bool) -> str | None:
        """The tenant a read is about: the token's own, or ?tenant= for the admin."""
        asked = request.query.get("tenant")
        if p.tenant is not None:
            if asked is not None and asked != p.tenant:
                raise web.HTTPForbidden(text="this token may only read its own tenant")
            return p.tenant
        if asked is None and required:
            raise web.HTTPBadRequest(text="the admin token must say which tenant: ?tenant=NAME")
        return asked

    def admin(self, request: web.Request) -> Principal:
        p = self.principal(request)
        if not p.admin:
            raise web.HTTPForbidden(text="the admin token is needed here")
        return p

    @staticmethod
    def json(data: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status,
                            content_type="application/json")

    # -------------------------------------------------------------- ingest

    async def post_events(self, request: web.Request) -> web.Response:
        p = self.principal(request)
        if self.closing.is_set():
            raise web.HTTPServiceUnavailable(text="routeq is shutting down")
        if self.batcher.failed is not None:
            raise self.batcher.unavailable()
        if request.content_length is not None and request.content_length > self.max_body:
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_body,
                                                actual_size=request.content_length,
                                                text=f"body over {self.max_body} bytes")
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await request.read()
        except TimeoutError:
            raise web.HTTPRequestTimeout(text=f"the body did not arrive within "
                                         f"{self.body_timeout:g} s (--body-timeout)") from None
        lines, values = parse_body(body, request.content_type)
        if p.tenant is not None:
            check_tenant(values, p.tenant)
        queued = self.batcher.queued
        if queued and queued + len(lines) > self.max_queue:  # backpressure, nothing logged
            raise web.HTTPTooManyRequests(
                text=f"{queued} events are waiting to be logged (over --max-queue "
                     f"{self.max_queue}): retry after {RETRY_AFTER_S} s",
                headers={"Retry-After": str(RETRY_AFTER_S)})
        # the clock-skew guard: a line stamped too far ahead (or in seconds) is
        # answered rejected and not logged (the engine and the log stay pure)
        skewed = skewed_lines(values, self.max_skew_ms)
        posted = len(lines)
        if skewed:
            lines = [ln for i, ln in enumerate(lines) if i not in skewed]
            values = [v for i, v in enumerate(values) if i not in skewed]
        results = iter(await self.batcher.submit(lines, values) if lines else [])
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        answers: list[dict[str, Any]] = []
        for i in range(posted):
            if i in skewed:
                error, tenant = skewed[i]
                counts["rejected"] += 1
                self.metrics.posted(tenant, "rejected")
                answers.append({"status": "rejected", "error": error, "skew": True})
                continue
            r = next(results)
            counts[r.status] += 1
            self.metrics.posted(r.tenant, r.status)
            answers.append(r.as_json())
        return self.json({"accepted": counts["accepted"], "duplicates": counts["duplicate"],
                          "rejected": counts["rejected"], "skewed": len(skewed),
                          "results": answers})

    # -------------------------------------------------------------- stream

    async def follow(self, tenant: str | None, cursor: Cursor | None,
                     ) -> AsyncIterator[list[Item]]:
        """Outputs visible to ``tenant`` after ``cursor`` (None: from now on), in
        order, with no gap; an empty list now and then (a heartbeat). A page
        at a time (``PAGE`` outputs about), so a reader that does not read
        holds one page, not the history."""
        svc = self.service
        while True:
            wake = asyncio.Event()
            sub = svc.subscribe(tenant, wake.set)
            try:
                last = cursor
                while last is not None:  # catch up, then live
                    hf = svc.history_from
                    if hf > last[0] and not (hf == last[0] + 1 and last[1] == DONE):
                        # older than the history: from the stored outputs, a page
                        # at a time, starting where the cursor is
                        if svc.layout is None:
                            return  # fell behind an in-memory history: reconnect (410)
                        pos: Cursor | None = last
                        while pos is not None:
                            self.reads += 1  # (the store is not reopened meanwhile)
                            try:
                                old, pos = await asyncio.to_thread(svc.read_range, pos, hf,
                                                                   tenant, PAGE)
                            finally:
                                self.reads -= 1
                            if old:
                                yield old
                                last = old[-1].cursor
                        last = max(last, (hf - 1, DONE))
                        continue  # the history may have moved on meanwhile
                    page, _ = svc.recent(last, tenant, PAGE)
                    if not page:
                        break
                    yield page
                    last = page[-1].cursor
                while True:
                    if sub.items:
                        got = list(sub.items)
                        sub.items.clear()
                        if last is not None:
                            got = [it for it in got if it.cursor > last]
                        for part in deliveries(got, PAGE):  # whole offsets
                            yield part
                        if got:
                            last = got[-1].cursor
                        continue
                    if sub.dropped:
                        break
                    wake.clear()
                    try:
                        await asyncio.wait_for(wake.wait(), HEARTBEAT_S)
                    except TimeoutError:
                        yield []
            finally:
                svc.unsubscribe(sub)
            if self.closing.is_set():
                return
            # fell too far behind: catch up from the history (or the log)
            cursor = last if last is not None else (svc.offset, -1)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        p = self.principal(request)
        tenant = self.scope(request, p, required=False)
        raw = request.headers.get("Last-Event-ID")
        try:
            if raw:
                cursor = parse_cursor(raw)
            elif "from" in request.query:
                cursor = (int(request.query["from"]), -1)
                if cursor[0] < 0:
                    raise ValueError
            else:
                cursor = None
        except ValueError:
            raise web.HTTPBadRequest(text="Last-Event-ID must be OFFSET.K as sent in 'id:', "
                                     "from= an offset >= 0") from None
        nxt = self.service.offset
        if cursor is not None and (cursor[0] > nxt or (cursor[0] == nxt and cursor[1] >= 0)):
            where = (f"Last-Event-ID {raw.strip()}" if raw else
                     f"from={request.query['from']}")
            raise web.HTTPConflict(
                text=f"{where} is ahead of this server's log (next offset {nxt}): the "
                     f"server's state is not the one those ids came from (it restarted "
                     f"without --state, or on another state dir). Drop the outputs you "
                     f"hold past offset {nxt - 1} and reconnect without Last-Event-ID "
                     f"(from now on) or with ?from=0 (everything still kept)")
        if (cursor is not None and self.service.layout is None
                and cursor[0] < self.service.history_from):
            raise web.HTTPGone(text=f"outputs before offset {self.service.history_from} are "
                               f"no longer kept (the server runs without --state)")
        who = p.tenant if p.tenant is not None else ""
        mine = self.streams.get(who, 0)
        total = sum(self.streams.values())
        if mine >= self.max_streams_per_tenant or total >= self.max_streams:
            limit, flag = ((self.max_streams_per_tenant, "--max-streams-per-tenant")
                           if mine >= self.max_streams_per_tenant
                           else (self.max_streams, "--max-streams"))
            raise web.HTTPTooManyRequests(
                text=f"{limit} streams are open already ({flag}): close one, or retry "
                     f"after {STREAM_RETRY_S} s", headers={"Retry-After": str(STREAM_RETRY_S)})
        self.streams[who] = mine + 1
        try:
            resp = web.StreamResponse(headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no"})
            resp.enable_chunked_encoding()
            with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
                await resp.prepare(request)
                await resp.write(f": routeq stream, next offset {self.service.offset}\n\n"
                                 .encode())
                async for items in self.follow(tenant, cursor):
                    if not items:
                        await resp.write(b": ping\n\n")
                        continue
                    # in bounded writes: each waits while the client's socket is full
                    part: list[bytes] = []
                    size = 0
                    for it in items:
                        b = b"id: %s\nevent: %s\ndata: %s\n\n" % (
                            it.id.encode(), it.type.encode(), it.line)
                        part.append(b)
                        size += len(b)
                        if size >= WRITE_CHUNK:
                            await resp.write(b"".join(part))
                            part, size = [], 0
                    if part:
                        await resp.write(b"".join(part))
            return resp
        finally:
            left = self.streams[who] - 1
            if left:
                self.streams[who] = left
            else:
                del self.streams[who]

    # --------------------------------------------------------------- views

    async def chat(self, request: web.Request) -> web.Response:
        p = self.principal(request)
        tenant = self.scope(request, p, required=True)
        assert tenant is not None
        chat = request.match_info["chat"]
        view = self.service.chat_view(tenant, chat)
        if view is None:
            raise web.HTTPNotFound(text=f"chat {chat!r} is not known to tenant {tenant!r} "
                                   f"(never requested, or it ended before the last "
                                   f"{CLOSED_KEPT:,} chats that ended, or before this "
                                   f"server started)")
        return self.json(view)

    async def queue(self, request: web.Request) -> web.Response:
        p = self.principal(request)
        tenant = self.scope(request, p, required=True)
        assert tenant is not None
        try:
            limit = int(request.query.get("limit", "1000"))
        except ValueError:
            raise web.HTTPBadRequest(text="limit must be an integer") from None
        return self.json(self.service.queue_view(tenant, max(0, limit)))

    async def agents(self, request: web.Request) -> web.Response:
        p = self.principal(request)
        tenant = self.scope(request, p, required=True)
        assert tenant is not None
        return self.json(self.service.agents_view(tenant))

    async def tenants_list(self, request: web.Request) -> web.Response:
        p = self.principal(request)
        if not p.admin:
            return self.json({"tenants": [p.tenant]})
        return self.json({"tenants": self.service.tenants(),
                          "webhooks": {t: h.as_json() for t, h in sorted(self.hooks.items())}})

    async def overview(self, request: web.Request) -> web.Response:
        """The dashboard's numbers, a page of tenants (by name) at a time:
        ``?limit=`` (default 100, at most 1,000) after ``?after=NAME``. A
        tenant's token gets its own tenant only (its dashboard)."""
        p = self.principal(request)
        svc = self.service
        if p.tenant is not None:
            self.scope(request, p, required=False)  # ?tenant= of another: 403
            return self.json({"offset": svc.offset,
                              "uptime_s": round(time.time() - svc.started),
                              "tenant_count": 1, "next": None,
                              "tenants": [svc.tenant_summary(p.tenant)]})
        try:
            limit = min(max(1, int(request.query.get("limit", OVERVIEW_PAGE))), 1_000)
        except ValueError:
            raise web.HTTPBadRequest(text="limit must be an integer") from None
        names = svc.tenants()
        after = request.query.get("after")
        start = bisect.bisect_right(names, after) if after is not None else 0
        page = names[start:start + limit]
        nxt = page[-1] if start + limit < len(names) else None
        return self.json({"offset": svc.offset, "uptime_s": round(time.time() - svc.started),
                          "tenant_count": len(names), "next": nxt,
                          "tenants": [svc.tenant_summary(n) for n in page]})

    async def metrics_page(self, request: web.Request) -> web.Response:
        self.admin(request)
        return web.Response(body=self.metrics.render(),
                            headers={"Content-Type": "text/plain; version=0.0.4; "
                                                     "charset=utf-8"})

    async def health(self, request: web.Request) -> web.Response:
        """200 while posts can be taken; 503 with the reason otherwise."""
        reason = ("routeq is shutting down" if self.closing.is_set() else
                  f"the state cannot be written: {self.batcher.failed}"
                  if self.batcher.failed is not None else None)
        if reason is not None:
            return self.json({"ok": False, "reason": reason, "offset": self.service.offset},
                             status=503)
        return self.json({"ok": True, "offset": self.service.offset})

    async def openapi(self, request: web.Request) -> web.Response:
        """schemas/json/openapi.json, as committed (no token needed)."""
        return web.Response(body=OPENAPI.read_bytes(), content_type="application/json")

    async def dashboard(self, request: web.Request) -> web.StreamResponse:
        # the page holds no data: it asks for the token (kept in the browser)
        # and reads /v1/overview and /v1/stream with it
        return web.FileResponse(STATIC / "index.html",
                                headers={"Cache-Control": "no-cache"})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound(text=f"no static file {name!r}")
        return web.FileResponse(path, headers={
            "Content-Type": STATIC_TYPES.get(path.suffix, "application/octet-stream"),
            "Cache-Control": "no-cache"})

    # ------------------------------------------------------ background work

    def start_background(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks.append(loop.create_task(self._ticker()))
        for tenant, url in self.tokens.webhooks.items():
            self.tasks.append(loop.create_task(self._webhook_forever(tenant, url)))

    async def _ticker(self) -> None:
        """Checkpoints while idle; clock events so timers fire in quiet times
        (only when the engine has a timer due: an idle server logs nothing)."""
        next_clock = time.monotonic()
        while not self.closing.is_set():
            await asyncio.sleep(0.2)
            if self.clock_ms and time.monotonic() >= next_clock:
                next_clock = time.monotonic() + self.clock_ms / 1000
                ms = int(time.time() * 1000)
                due = self.service.engine.next_deadline()
                if due is not None and due <= ms:
                    line = b'{"type":"clock","id":"serve-clock-%d","ts":%d}' % (ms, ms)
                    with contextlib.suppress(web.HTTPServiceUnavailable):
                        await self.batcher.submit([line])
            if self.batcher.failed is None:
                try:
                    self.service.idle()  # a checkpoint is a write too
                except Exception as exc:
                    self.store_failed(exc)

    async def _webhook_forever(self, tenant: str, url: str) -> None:
        """``_webhook``, started again after anything unexpected ends it (a
        tenant's delivery never stops for good while the server runs)."""
        delay = 0.2
        while not self.closing.is_set():
            try:
                await self._webhook(tenant, url)
                return  # closing
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._hook_failed(tenant, f"{type(exc).__name__}: {exc}", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _hook_failed(self, tenant: str, error: str, retry_s: float) -> None:
        h = self.hooks.setdefault(tenant, HookState())
        h.failures += 1
        h.last_error = error
        h.last_error_at = time.time()
        self.metrics.webhook_failures.labels(tenant).inc()
        LOG.once(f"webhook:{tenant}", "routeq serve: webhook of tenant %s failed (%s); "
                 "retrying in %.1f s", tenant, error, retry_s)

    async def _webhook(self, tenant: str, url: str) -> None:
        """POST the tenant's outputs (NDJSON) to ``url``, retrying with backoff,
        from the position its receiver acknowledged last (stored with
        ``--state``, so a restart goes on from there: at least once)."""
        svc = self.service
        # after the last output acknowledged in this run (a restart of this
        # task), else as stored
        start = self.hooks[tenant].cursor or svc.webhook_position(tenant)
        if start is None:  # a new webhook: from now on (stored at once, so a
            start = (svc.offset, -1)  # restart before the first delivery misses none)
            self.hooks[tenant].cursor = start
            svc.save_webhook_position(tenant, start)
        timeout = ClientTimeout(total=10)
        async with ClientSession(timeout=timeout) as http:
            async for items in self.follow(tenant, start):
                for part in deliveries(items, WEBHOOK_BATCH):
                    if not await self._deliver(http, tenant, url, part):
                        return  # closing
                    self.hooks[tenant].delivered = part[-1].id
                    self.hooks[tenant].cursor = part[-1].cursor
                    try:
                        svc.save_webhook_position(tenant, part[-1].cursor)
                    except Exception as exc:  # delivered; stored again with the next one
                        self.store_failed(exc)

    async def _deliver(self, http: ClientSession, tenant: str, url: str,
                       items: list[Item]) -> bool:
        """POST ``items`` until the receiver answers 2xx (True), or the server
        closes (False)."""
        body = b"".join(it.line + b"\n" for it in items)
        headers = {"Content-Type": "application/x-ndjson",
                   "X-Routeq-First-Event-ID": items[0].id,
                   "X-Routeq-Last-Event-ID": items[-1].id}
        secret = self.tokens.webhook_secrets.get(tenant)
        delay = 0.2
        while not self.closing.is_set():
            if secret is not None:  # signed afresh at each attempt (its timestamp)
                headers.update(sign_webhook(secret, body))
            try:
                # a redirect is a failed delivery: the outputs go to the URL the
                # tenant configured, and only its 2xx acknowledges them
                async with http.post(url, data=body, headers=headers,
                                     allow_redirects=False) as r:
                    if 200 <= r.status < 300:
                        return True
                    where = r.headers.get("Location")
                    error = f"answered {r.status} {r.reason or ''}".rstrip() + (
                        f" (a redirect to {where[:100]!r}, not followed)" if where else "")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # closed, not HTTP, refused, timed out, ...
                error = f"{type(exc).__name__}: {exc}".rstrip(": ")[:300]
            self.metrics.requests.labels("webhook:" + tenant, "retry").inc()
            self._hook_failed(tenant, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        return False

    async def close(self) -> None:
        """Stop accepting posts, write what is pending, checkpoint, end the streams."""
        self.closing.set()
        self.batcher.closed = True
        self.batcher.flush()
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._recovering is not None:
            self._recovering.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._recovering
        try:
            self.service.close()
        except Exception as exc:  # nothing acknowledged is lost: it is in the log
            print(f"routeq serve: the checkpoint could not be written ({exc}); the next "
                  f"start re-applies the log after the last one", file=sys.stderr, flush=True)


class HookState:
    """A tenant's webhook as the admin sees it in ``/v1/tenants``."""

    def __init__(self) -> None:
        self.failures = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.delivered: str | None = None  # the last output acknowledged (this run)
        self.cursor: Cursor | None = None  # where delivery goes on after a restart

    def as_json(self) -> dict[str, Any]:
        at = self.last_error_at
        return {"failures": self.failures, "last_error": self.last_error,
                "last_error_at": (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
                                  if at is not None else None),
                "delivered": self.delivered}


def sign_webhook(secret: bytes, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers that prove a delivery is routeq's: ``X-Routeq-Timestamp``
    (Unix seconds) and ``X-Routeq-Signature: sha256=`` the hex HMAC-SHA256, with
    the tenant's ``webhook_secret``, of ``TIMESTAMP.BODY`` (a receiver refuses
    an old timestamp: a recorded delivery cannot be replayed later)."""
    ts = str(int(time.time() if now is None else now))
    mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Routeq-Timestamp": ts, "X-Routeq-Signature": "sha256=" + mac}


def deliveries(items: list[Item], size: int) -> Iterator[list[Item]]:
    """``items`` in parts of about ``size``, each cut between two offsets (all
    the outputs of an input go in one delivery)."""
    start = 0
    n = len(items)
    while start < n:
        end = min(start + size, n)
        while end < n and items[end].offset == items[end - 1].offset:
            end += 1
        yield items[start:end]
        start = end


def parse_body(body: bytes, ctype: str) -> tuple[list[bytes], list[object]]:
    """The posted lines (as logged) and their values (``parse_lines``: each
    parsed once, here), or an HTTP error saying what is wrong with the body."""
    if ctype == "application/json":
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise web.HTTPBadRequest(text=f"body is not valid JSON: {exc}") from None
        if isinstance(data, dict):
            return [_line(data, 0)], [data]
        if isinstance(data, list):
            if not data:
                raise web.HTTPBadRequest(text="the array holds no event")
            return [_line(x, i) for i, x in enumerate(data)], data
        raise web.HTTPBadRequest(text="expected an event (JSON object) or an array of events")
    if ctype in NDJSON_TYPES:
        lines = [ln.rstrip(b"\r") for ln in body.split(b"\n")]
        lines = [ln for ln in lines if ln.strip()]
        if not lines:
            raise web.HTTPBadRequest(text="the body holds no event")
        return lines, parse_lines(lines)
    raise web.HTTPUnsupportedMediaType(
        text=f"Content-Type {ctype or '(none)'} is not taken: send application/json (an "
             f"event or an array) or application/x-ndjson (one event a line)")


#: the input types of the contract a tenant's token may post (``chat.handed_over``
#: is routeq's own: only the admin may post it, replaying an exported log)
PUBLIC_TYPES = frozenset({
    "agent.state", "visitor.arrived", "page.viewed", "chat.requested", "chat.accepted",
    "chat.declined", "bot.escalated", "chat.ended", "visitor.left", "order.placed", "clock"})
#: fields routeq writes itself (an overflowed chat's merchant): admin only
INTERNAL_FIELDS = ("origin",)


def _line(value: Any, i: int) -> bytes:
    """One event of a JSON body as a log line. orjson writes 254 levels at
    most: a deeper value is written by the standard library instead, so its
    line is answered for like the same line in NDJSON (rejected, naming the
    field, or accepted where the deep value is in a field routeq ignores)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        pass
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    except (RecursionError, ValueError):
        raise web.HTTPBadRequest(text=f"event {i + 1}: nested too deep to be read "
                                 f"(send events nested at most 254 levels)") from None


def check_tenant(values: list[object], tenant: str) -> None:
    """A tenant's token may post only that tenant's events, of the public
    input types, without routeq's internal fields (403 otherwise, naming the
    event and the field: nothing of the post is logged). ``values``: the
    posted lines' values (a line that is not JSON is rejected as malformed,
    for nobody else)."""
    for i, obj in enumerate(values):
        if not isinstance(obj, dict):
            continue
        named = obj.get("tenant")
        typ = obj.get("type")
        if named is None and typ == "clock":
            raise web.HTTPForbidden(text=f"event {i + 1}: a clock for every tenant needs the "
                                    f"admin token; name the tenant")
        if isinstance(named, str) and named != tenant:
            raise web.HTTPForbidden(text=f"event {i + 1}: this token may post only tenant "
                                    f"{tenant!r}'s events")
        if isinstance(typ, str) and typ not in PUBLIC_TYPES and typ in TYPES:
            raise web.HTTPForbidden(text=f"event {i + 1}: field 'type' {typ!r} is routeq's "
                                    f"own (internal); a tenant's token may post only "
                                    f"{', '.join(sorted(PUBLIC_TYPES))} (the admin token may "
                                    f"replay an exported log that holds it)")
        for name in INTERNAL_FIELDS:
            if obj.get(name) is not None:
                raise web.HTTPForbidden(text=f"event {i + 1}: field {name!r} is routeq's own "
                                        f"(internal) and may not be posted with a tenant's "
                                        f"token (events about an overflowed chat name the "
                                        f"merchant's tenant and chat; routeq follows it)")


class _NoRequestText(logging.Filter):
    """aiohttp logs a request it cannot parse with a traceback that quotes the
    offending bytes (an ``Authorization`` header with its token, a body with a
    visitor's message): keep the fact, drop the quote."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__module__.startswith("aiohttp"):
            said = record.getMessage()
            code = getattr(exc, "code", "")
            record.msg = "%s (%s %s; the request's text is not logged)"
            record.args = (said, type(exc).__name__, code)
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_request_text() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _NoRequestText) for f in logger.filters):
        logger.addFilter(_NoRequestText())


def max_connections(asked: int | None) -> int:
    """``--max-connections``, or what the open-files limit leaves room for
    (raised to its hard limit first) beside the state's files."""
    if asked is not None:
        return asked
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
            soft = max(soft, want)
    return max(16, min(4096, soft - 128))


class _Refuse(asyncio.Protocol):
    """A connection over ``--max-connections``: a JSON 503, then closed."""

    def __init__(self, cap: int) -> None:
        self.cap = cap

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        body = orjson.dumps({"error": f"{self.cap} connections are open already "
                                      f"(--max-connections): retry after {RETRY_AFTER_S} s"})
        transport.write(  # type: ignore[attr-defined]  # (uvloop's is no asyncio.Transport)
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Retry-After: %d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (RETRY_AFTER_S, len(body), body))
        transport.close()


class _JsonErrors(web.RequestHandler):
    """aiohttp's handler, whose own answers (a request it cannot parse: bad
    request line, header too long, bad Content-Length) are JSON like every
    other answer. They do not quote the request (it may hold a token)."""

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        resp = super().handle_error(request, status, exc, message)
        if isinstance(resp, web.Response):
            reason = resp.reason or "error"
            what = f" ({type(exc).__name__})" if exc is not None else ""
            resp.body = orjson.dumps({"error": f"{reason}{what}: the request could not be "
                                               f"read as HTTP"})
            resp.content_type = "application/json"
            resp.charset = None
        return resp


async def listen(runner: web.AppRunner, host: str, port: int, cap: int,
                 idle_timeout: float) -> asyncio.Server:
    """Listen for the app's connections, ``cap`` open at most."""
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.BaseProtocol:
        if len(server.connections) >= cap:
            return _Refuse(cap)
        return _JsonErrors(server, loop=loop, keepalive_timeout=idle_timeout,
                           access_log=None)  # type: ignore[arg-type]

    return await asyncio.get_running_loop().create_server(factory, host, port, backlog=1024)
