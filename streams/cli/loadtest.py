"""``routeq loadtest``: drive a running ``routeq serve`` with simulated traffic.

Traffic comes from a simulator scenario (``double11`` by default): its input
events, in order, under a tenant name of their own for this run (so runs never
collide with each other or with real tenants), time-stamped with the wall
clock as they are sent. Batches go out open loop at the asked rate over a
few connections; a stream connection (``GET /v1/stream``) watches the
decisions, and the latency of an event is from just before its POST to the
first output on the stream that it caused (``cause`` = its id).

Loopback only, and bounded: at most 600 s, 2,000,000 events.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from streams.cli.options import fail

MAX_DURATION_S = 600.0
MAX_EVENTS = 2_000_000
MAX_RATE = 200_000.0
DRAIN_S = 10.0


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser(
        "loadtest",
        help="drive a running routeq serve (loopback) with simulated traffic; report rate "
             "and POST-to-decision latency",
        description="Send a scenario's events to a routeq serve on this machine at a fixed "
        "rate and report the achieved rate, errors, and the latency from POST to the "
        "matching decision on the stream (p50, p99).",
    )
    p.add_argument("url", metavar="URL", help="the server, e.g. http://127.0.0.1:8080 "
                   "(loopback only)")
    p.add_argument("--scenario", default="double11", help="simulator scenario whose events "
                   "are sent (default %(default)s)")
    p.add_argument("--rate", type=float, required=True, metavar="EVENTS_PER_S",
                   help="events per second to offer")
    p.add_argument("--duration", type=float, required=True, metavar="S",
                   help="seconds to send for (at most 600)")
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="events per POST (default %(default)s)")
    p.add_argument("--connections", type=int, default=0, metavar="C",
                   help="concurrent POSTs (default: 32 for batches of 1, else 8)")
    p.add_argument("--token", default=os.environ.get("ROUTEQ_TOKEN"),
                   help="the admin bearer token (default: $ROUTEQ_TOKEN)")
    p.add_argument("--seed", type=int, default=1, help="scenario seed (default 1)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON here")
    return p


def check_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return f"URL must be http://HOST:PORT, got {url!r}"
    from streams.http.server import is_loopback

    if not is_loopback(parts.hostname):
        return f"loadtest drives loopback servers only, not {parts.hostname}"
    return None


def main(args: argparse.Namespace) -> int:
    problem = check_url(args.url)
    if problem:
        return fail(problem, "loadtest")
    if not 0 < args.duration <= MAX_DURATION_S:
        return fail(f"--duration must be in (0, {MAX_DURATION_S:g}] seconds", "loadtest")
    if not 0 < args.rate <= MAX_RATE:
        return fail(f"--rate must be in (0, {MAX_RATE:g}] events/s", "loadtest")
    if not 1 <= args.batch <= 10_000:
        return fail("--batch must be 1..10000", "loadtest")
    total = int(args.rate * args.duration)
    if total > MAX_EVENTS:
        return fail(f"rate x duration = {total:,} events, over the bound of {MAX_EVENTS:,}",
                    "loadtest")
    total = max(total, args.batch)
    try:
        events = scenario_events(args.scenario, args.seed, total)
    except Exception as exc:  # noqa: BLE001 - a scenario error, say it and stop
        return fail(f"scenario {args.scenario}: {exc}", "loadtest")
    conns = args.connections or (32 if args.batch == 1 else 8)
    report = asyncio.run(drive(args.url.rstrip("/"), args.token, events, args.rate,
                               args.batch, conns))
    report.update(scenario=args.scenario, seed=args.seed, batch=args.batch,
                  offered_rate=args.rate, duration_s=args.duration, connections=conns)
    print(render(report))
    if args.json:
        with open(args.json, "wb") as f:
            f.write(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    return 0 if report["errors"] == 0 else 1


# ----------------------------------------------------------------- traffic


def scenario_events(name: str, seed: int, n: int) -> list[dict[str, Any]]:
    """The first ``n`` input events of a simulated run of the scenario (its
    log repeated, with fresh ids, if one run is shorter)."""
    from engine import parse_rules
    from simulators.scenario import load_scenario, resolve_rules_data
    from simulators.simulation import Simulation

    scenario = load_scenario(name, [])
    rules = parse_rules(resolve_rules_data(scenario, None, None))
    hours = min(24.0, max(0.05, n / 120_000))
    buf = io.BytesIO()
    Simulation(scenario, rules, seed=seed, hours=hours).run(buf)
    base = [orjson.loads(line) for line in buf.getvalue().splitlines() if line]
    if not base:
        raise ValueError("the scenario gives no events")
    out: list[dict[str, Any]] = []
    cycle = 0
    while len(out) < n:
        for ev in base[: n - len(out)]:
            e = dict(ev)
            if cycle:
                e["id"] = f"{e['id']}~{cycle}"
                for key in ("visitor", "chat"):
                    if key in e:
                        e[key] = f"{e[key]}~{cycle}"
            out.append(e)
        cycle += 1
    return out


def batches(events: list[dict[str, Any]], size: int, run: str) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(events), size):
        chunk = []
        for ev in events[i:i + size]:
            e = dict(ev)
            e["id"] = f"{run}:{e['id']}"
            if "tenant" in e:
                e["tenant"] = f"{e['tenant']}-{run}"[:64]
            chunk.append(e)
        yield chunk


# ------------------------------------------------------------------- drive


@dataclass
class Tally:
    sent: int = 0
    acked: int = 0
    rejected: int = 0
    duplicates: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    pending: dict[str, float] = field(default_factory=dict)  # event id -> POST time
    latencies: list[float] = field(default_factory=list)
    outputs: int = 0
    first_post: float = 0.0
    last_ack: float = 0.0
    last_output: float = 0.0

    def error(self, kind: str, n: int) -> None:
        self.errors += n
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + n


async def drive(url: str, token: str | None, events: list[dict[str, Any]], rate: float,
                batch: int, conns: int) -> dict[str, Any]:
    from aiohttp import ClientSession, ClientTimeout, TCPConnector

    run = f"lt{int(time.time() * 1000) % 10**9}"
    tally = Tally()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    todo = list(batches(events, batch, run))
    interval = batch / rate
    connector = TCPConnector(limit=conns + 2)
    async with ClientSession(connector=connector, timeout=ClientTimeout(total=60)) as http:
        ready = asyncio.Event()
        watcher = asyncio.create_task(watch(http, url, headers, tally, ready, run))
        await asyncio.wait_for(ready.wait(), 30)
        start = time.perf_counter()
        tally.first_post = start
        nxt = iter(enumerate(todo))

        async def worker() -> None:
            conn = RawConnection(url, headers)
            try:
                for i, chunk in nxt:
                    delay = start + i * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    now_ms = int(time.time() * 1000)
                    for e in chunk:
                        e["ts"] = now_ms
                    body = orjson.dumps(chunk)
                    t = time.perf_counter()
                    for e in chunk:
                        tally.pending[e["id"]] = t
                    tally.sent += len(chunk)
                    try:
                        status, answer = await conn.post("/v1/events", body)
                    except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
                        tally.error(type(exc).__name__, len(chunk))
                        await conn.close()
                        continue
                    if status != 200:
                        tally.error(f"HTTP {status}", len(chunk))
                        continue
                    tally.last_ack = time.perf_counter()
                    ans = orjson.loads(answer)
                    tally.acked += ans["accepted"]
                    tally.duplicates += ans["duplicates"]
                    tally.rejected += ans["rejected"]
            finally:
                await conn.close()

        await asyncio.gather(*(worker() for _ in range(conns)))
        send_s = (tally.last_ack or time.perf_counter()) - start
        # let the last decisions arrive
        deadline = time.perf_counter() + DRAIN_S
        while (time.perf_counter() < deadline
               and time.perf_counter() - max(tally.last_output, tally.last_ack) < 1.0):
            await asyncio.sleep(0.05)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
    lat = sorted(tally.latencies)
    return {
        "events": len(events), "sent": tally.sent, "accepted": tally.acked,
        "duplicates": tally.duplicates, "rejected": tally.rejected, "errors": tally.errors,
        "error_kinds": tally.error_kinds, "send_s": round(send_s, 3),
        "achieved_rate": round(tally.acked / send_s, 1) if send_s > 0 else 0.0,
        "decisions_seen": tally.outputs, "latency_samples": len(lat),
        "latency_ms": {"p50": _pct(lat, 50), "p90": _pct(lat, 90), "p99": _pct(lat, 99),
                       "max": round(lat[-1] * 1000, 2) if lat else None},
        "tenant_suffix": run,
    }


class RawConnection:
    """A minimal keep-alive HTTP/1.1 client for the POSTs: a general client
    costs more CPU per request than the server does, and the two share the
    machine."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.head = (f"Host: {self.host}:{self.port}\r\n{extra}").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s" % (
            path.encode(), self.head, len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise ValueError("answer without Content-Length")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def _pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    k = min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))
    return round(xs[k] * 1000, 2)


async def watch(http: Any, url: str, headers: dict[str, str], tally: Tally,
                ready: asyncio.Event, run: str) -> None:
    """Follow the stream; time the first decision caused by each sent event."""
    h = {k: v for k, v in headers.items() if k != "Content-Type"}
    h["Accept"] = "text/event-stream"
    suffix = f"-{run}"
    async with http.get(url + "/v1/stream", headers=h, timeout=None) as r:
        if r.status != 200:
            raise RuntimeError(f"stream answered {r.status}")
        ready.set()
        pending = tally.pending
        loads = orjson.loads
        async for line in r.content:
            if not line.startswith(b"data: "):
                continue
            now = time.perf_counter()
            o = loads(line[6:])
            if not o.get("tenant", "").endswith(suffix):
                continue
            tally.outputs += 1
            tally.last_output = now
            t = pending.pop(o.get("cause", ""), None)
            if t is not None:
                tally.latencies.append(now - t)


def render(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    kinds = ", ".join(f"{k}: {n}" for k, n in r["error_kinds"].items()) or "none"
    return (f"routeq loadtest: {r['scenario']} events, batches of {r['batch']}, "
            f"{r['connections']} connections, offered {r['offered_rate']:,.0f} events/s for "
            f"{r['duration_s']:g} s\n"
            f"  sent {r['sent']:,}, accepted {r['accepted']:,}, duplicates {r['duplicates']:,}, "
            f"rejected {r['rejected']:,}, errors {r['errors']:,} ({kinds})\n"
            f"  achieved {r['achieved_rate']:,.0f} events/s over {r['send_s']:.2f} s\n"
            f"  POST -> decision on the stream: p50 {lat['p50']} ms, p99 {lat['p99']} ms "
            f"(max {lat['max']} ms, {r['latency_samples']:,} events with a decision; "
            f"{r['decisions_seen']:,} decisions seen)")
