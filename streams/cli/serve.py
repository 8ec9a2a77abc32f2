"""``routeq serve``: the command that starts the HTTP service (streams/http/).

Parses the options, opens the state dir and the tokens, and runs the service
until SIGTERM or SIGINT, then drains (no new connections; a checkpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from engine import RulesError
from streams.cli.common import open_state_dir
from streams.cli.options import fail as _fail
from streams.embedded.rules_file import read_rules
from streams.embedded.runtime import settle_garbage
from streams.embedded.skew import DEFAULT_MAX_SKEW_S
from streams.embedded.state import StateLayout
from streams.embedded.store import RocksStore, StoreError
from streams.http.app import App
from streams.http.limits import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_STREAMS_PER_TENANT,
)
from streams.http.metrics import DEFAULT_LABELED
from streams.http.server import is_loopback, listen, max_connections, quiet_request_text
from streams.http.service import Service
from streams.http.tokens import Tokens, TokensError, load_tokens


def fail(message: str) -> int:
    return _fail(message, "serve")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser(
        "serve",
        help="run the engine behind HTTP: ingest, decision stream, queue views, metrics, "
             "dashboard",
        description="Serve the embedded runtime over HTTP for chat servers: POST /v1/events, "
        "GET /v1/stream (Server-Sent Events), /v1/chats/{chat}, /v1/queue, /v1/agents, "
        "/metrics and a live dashboard at /. See README.md.",
    )
    p.add_argument("--state", metavar="DIR", help="durable state directory (default: in "
                   "memory, nothing survives a restart)")
    p.add_argument("--rules", metavar="R.toml", help="rules file (default: the rules "
                   "recorded in --state, else the built-in defaults)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on "
                   "(default %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port (default %(default)s; 0 "
                   "picks a free one, printed on stderr)")
    p.add_argument("--tokens", metavar="TOKENS.toml", help="bearer tokens per tenant and "
                   "for the admin (without it: no auth, loopback only)")
    p.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, metavar="BYTES",
                   help="largest POST body (default %(default)s); larger -> 413")
    p.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE, metavar="EVENTS",
                   help="events waiting to be logged beyond which a POST is answered 429 "
                        "with Retry-After (default %(default)s)")
    p.add_argument("--clock-ms", type=int, default=1000, metavar="T",
                   help="every T ms, log a clock event (wall time) if a timer of the "
                        "engine is due by then, so timers fire when traffic is quiet; 0: "
                        "never (default %(default)s)")
    p.add_argument("--max-skew-s", type=int, default=DEFAULT_MAX_SKEW_S, metavar="S",
                   help="reject (per line, not logged) an event whose ts is more than S "
                        "seconds ahead of this server's clock, or looks like seconds "
                        "instead of ms; 0: no check (default %(default)s)")
    p.add_argument("--checkpoint-ms", type=int, default=2000, metavar="T",
                   help="checkpoint the entities every T ms while events flow "
                        "(default %(default)s)")
    p.add_argument("--history", type=int, default=200_000, metavar="N",
                   help="outputs kept in memory for resuming streams; older ones are "
                        "read from those stored in --state (default %(default)s)")
    p.add_argument("--sync", action="store_true",
                   help="fsync every write of the state (survives power loss, slower)")
    p.add_argument("--metrics-tenants", type=int, default=DEFAULT_LABELED, metavar="N",
                   help="tenants beyond those in --tokens that get /metrics series of "
                        "their own; the others are summed under tenant=\"_other\" "
                        "(default %(default)s)")
    p.add_argument("--max-streams", type=int, default=DEFAULT_MAX_STREAMS, metavar="N",
                   help="open streams (GET /v1/stream) in all beyond which one more is "
                        "answered 429 (default %(default)s)")
    p.add_argument("--max-streams-per-tenant", type=int,
                   default=DEFAULT_MAX_STREAMS_PER_TENANT, metavar="N",
                   help="open streams of one tenant (the admin counts as one) beyond which "
                        "one more is answered 429 (default %(default)s)")
    p.add_argument("--max-connections", type=int, default=None, metavar="N",
                   help="open connections beyond which a new one is answered 503 and "
                        "closed (default: the open-files limit less 128, at most 4096)")
    p.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_S,
                   metavar="S", help="close a connection that has not sent a whole "
                   "request's headers S seconds after it opened or its last answer "
                   "(default %(default)s)")
    p.add_argument("--body-timeout", type=float, default=DEFAULT_BODY_TIMEOUT_S,
                   metavar="S", help="a post whose body has not arrived within S seconds "
                   "is answered 408 (default %(default)s)")
    p.add_argument("--ready-file", metavar="FILE", help=argparse.SUPPRESS)
    return p


def main(args: argparse.Namespace) -> int:
    try:
        tokens = load_tokens(args.tokens)
        rules, rules_text = read_rules(args.rules)
    except (TokensError, RulesError) as exc:
        return fail(str(exc))
    if tokens.open and not is_loopback(args.host):
        return fail(f"--host {args.host} is not a loopback address: give --tokens")
    if (args.max_body < 1 or args.checkpoint_ms < 1 or args.clock_ms < 0
            or args.max_queue < 1 or args.metrics_tenants < 0 or args.max_streams < 1
            or args.max_streams_per_tenant < 1
            or (args.max_connections is not None and args.max_connections < 1)):
        return fail("--max-body, --max-queue, --checkpoint-ms, --max-streams, "
                    "--max-streams-per-tenant and --max-connections must be at least 1, "
                    "--clock-ms and --metrics-tenants at least 0")
    if args.idle_timeout <= 0 or args.body_timeout <= 0:
        return fail("--idle-timeout and --body-timeout must be more than 0")
    if args.max_skew_s < 0:
        return fail("--max-skew-s must be at least 0 (0: no check)")
    try:
        layout, rules, rules_text = open_state_dir(args, rules, rules_text)
    except (StoreError, RulesError) as exc:
        return fail(str(exc))
    store = layout.store if layout is not None else None
    service: Service | None = None
    try:
        service = Service(rules, layout, rules_text=rules_text,
                          checkpoint_ms=args.checkpoint_ms, history=args.history)
        try:
            service.start()
        except (RulesError, StoreError) as exc:
            return fail(str(exc))
        # as ``routeq run`` does: the cyclic collector stays off (walking the
        # engine's millions of long-lived objects again and again makes long
        # pauses); ``Service.idle`` collects what is new every 50,000 events
        gc.disable()
        settle_garbage()
        runner = _loop_runner()
        with runner:
            runner.run(serve(service, tokens, args))
        return 0
    finally:
        if store is not None:
            # the store the service holds now (reopened after a failed write)
            now = service.layout.store if service is not None and service.layout else store
            with contextlib.suppress(Exception):  # a full disk: it says so again
                now.close()


def reopen_state(args: argparse.Namespace) -> Callable[[], StateLayout] | None:
    """Opens the state dir again (after a failed write), or None in memory."""
    if not args.state:
        return None

    def reopen() -> StateLayout:
        return StateLayout(RocksStore(args.state, sync=args.sync), args.state)

    return reopen


def _loop_runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


async def serve(service: Service, tokens: Tokens, args: argparse.Namespace) -> None:
    quiet_request_text()
    app = App(service, tokens, max_body=args.max_body, clock_ms=args.clock_ms,
              max_queue=args.max_queue, metrics_tenants=args.metrics_tenants,
              reopen=reopen_state(args), host=args.host, max_streams=args.max_streams,
              max_streams_per_tenant=args.max_streams_per_tenant,
              body_timeout=args.body_timeout, max_skew_s=args.max_skew_s)
    # the keep-alive timer of aiohttp runs from a connection's opening and from
    # each answer until a request's headers are in: it is the idle and the
    # header timeout both
    runner = web.AppRunner(app.web, access_log=None, handle_signals=False,
                           shutdown_timeout=2.0, keepalive_timeout=args.idle_timeout)
    await runner.setup()
    site = await listen(runner, args.host, args.port, max_connections(args.max_connections),
                        args.idle_timeout)
    port = site.sockets[0].getsockname()[1] if site.sockets else args.port
    app.start_background()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"routeq serve: listening on http://{args.host}:{port} "
          f"(state: {args.state or 'in memory'}, next offset {service.offset}, "
          f"auth: {'tokens' if not tokens.open else 'none, loopback only'})",
          file=sys.stderr, flush=True)
    rt = service.runtime
    source = args.rules or ("recorded in the state dir" if rt.rules_text else "built-in")
    print(f"routeq serve: rules {rt.rules.hash} ({source})", file=sys.stderr, flush=True)
    if rt.deployed:
        print(f"routeq serve: new rules deployed: {rt.rules.hash} applies from offset "
              f"{rt.offset_at_resume} on", file=sys.stderr, flush=True)
    unsigned = sorted(set(tokens.webhooks) - set(tokens.webhook_secrets))
    if unsigned:
        print(f"routeq serve: webhooks not signed (no webhook_secret in --tokens) of "
              f"tenant{'s' if len(unsigned) > 1 else ''} {', '.join(unsigned[:10])}"
              f"{' ...' if len(unsigned) > 10 else ''}", file=sys.stderr, flush=True)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        Path(tmp).write_text(f"{port}\n")
        os.replace(tmp, args.ready_file)
    await stop.wait()
    print("routeq serve: stopping (no new connections; writing the checkpoint)",
          file=sys.stderr, flush=True)
    site.close()
    await app.close()
    await runner.cleanup()
    print(f"routeq serve: stopped at offset {service.offset}", file=sys.stderr, flush=True)
