"""The listening side of ``routeq serve``: loopback checks, the connection cap,
JSON answers for what aiohttp refuses before a handler runs, and logs that
say a thing once a minute and never quote a request."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import resource
import time
from typing import Any

import orjson
from aiohttp import web

from streams.http.limits import RETRY_AFTER_S


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
