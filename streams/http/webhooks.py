"""Webhooks: each tenant's outputs POSTed to its URL from the position its
receiver acknowledged last, signed when the tenant has a secret, retried
with backoff for as long as the server runs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any

from aiohttp import ClientSession, ClientTimeout

from streams.http.limits import WEBHOOK_BATCH
from streams.http.server import LOG
from streams.http.service import Cursor, Item, Service
from streams.http.stream import deliveries
from streams.http.tokens import Tokens


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


class Webhooks:
    """The webhook deliveries: a part of ``App``, whose ``follow`` and
    ``store_failed`` it uses with the fields below."""

    service: Service
    tokens: Tokens
    closing: asyncio.Event
    hooks: dict[str, HookState]
    metrics: Any

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

