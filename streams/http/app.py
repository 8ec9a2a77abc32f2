"""``routeq serve``: the embedded runtime behind HTTP, for chat servers.

A thin aiohttp shell over ``streams.http.service.Service`` (which holds all the
logic that tests can reach without HTTP). This module has the routes, auth
and queries; ``ingest.py`` the posts, ``stream.py`` the event streams,
``webhooks.py`` the deliveries, ``server.py`` the listening side and
``limits.py`` the limits:

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
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

import schemas
from streams.embedded.skew import DEFAULT_MAX_SKEW_S
from streams.embedded.state import StateLayout
from streams.http.ingest import Batcher, Ingest
from streams.http.limits import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_STREAMS_PER_TENANT,
    NDJSON_TYPES,
    OVERVIEW_PAGE,
)
from streams.http.metrics import DEFAULT_LABELED, ServeMetrics, TenantLabels
from streams.http.server import LOG, is_loopback
from streams.http.service import (
    CLOSED_KEPT,
    Service,
)
from streams.http.stream import Streams
from streams.http.tokens import Principal, Tokens
from streams.http.webhooks import HookState, Webhooks

STATIC = Path(__file__).resolve().parent / "dashboard"
STATIC_FILES = frozenset(p.name for p in STATIC.iterdir()
                         if p.is_file() and not p.name.startswith("."))
#: the OpenAPI document of this server (generated: python -m schemas.jsonschema --write)
OPENAPI = Path(schemas.__file__).resolve().parent / "json" / "openapi.json"
STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                ".svg": "image/svg+xml"}


# ---------------------------------------------------------------- the app


class App(Ingest, Streams, Webhooks):
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
        # only the dashboard's own files: a name is never handed to the file
        # system (one longer than it allows made the lookup raise)
        if name not in STATIC_FILES:
            raise web.HTTPNotFound(text=f"no static file {name[:200]!r}")
        path = STATIC / name
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


