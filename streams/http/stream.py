"""``GET /v1/stream``: a tenant's outputs as Server-Sent Events, resumable
from any ``OFFSET.K``, from memory or the stored outputs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

from aiohttp import web

from streams.http.limits import DONE, HEARTBEAT_S, PAGE, STREAM_RETRY_S, WRITE_CHUNK
from streams.http.service import (
    Cursor,
    Item,
    Service,
    parse_cursor,
)


class Streams:
    """The output streams: a part of ``App``, whose ``principal`` and ``scope``
    it uses with the fields below (``follow`` serves the webhooks too)."""

    service: Service
    closing: asyncio.Event
    max_streams: int
    max_streams_per_tenant: int
    streams: dict[str, int]  # open streams by tenant ("" = the admin)
    reads: int  # stored-output reads running in worker threads

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
