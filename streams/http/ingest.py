"""Posting events: the body parsed once into lines and values, a tenant
token's limits checked on the values, and the group commit (``Batcher``)
that logs the posts arriving together in one write."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from schemas.events import INTERNAL_TYPES, TYPES, parse_lines
from streams.embedded.skew import skewed_lines
from streams.http.limits import NDJSON_TYPES, RETRY_AFTER_S
from streams.http.service import (
    Result,
    Service,
)


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
PUBLIC_TYPES = frozenset(TYPES) - INTERNAL_TYPES
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


class Ingest:
    """``POST /v1/events``: a part of ``App``, whose ``principal`` and ``json``
    it uses with the fields below."""

    batcher: Batcher
    body_timeout: float
    closing: asyncio.Event
    max_body: int
    max_queue: int
    max_skew_ms: int
    metrics: Any

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

