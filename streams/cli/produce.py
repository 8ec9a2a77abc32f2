"""``routeq produce``: send a trace (JSON Lines) to the input topic with kafka-python.

Each line goes keyed by its ``tenant``, so a tenant's events stay in order on
one partition. A ``clock`` without a tenant goes to every partition (each
worker applies it to the tenants of the partition it reads it from). Lines
that are not JSON objects are sent unkeyed; the worker rejects them. With
``--pack N`` consecutive events of a tenant share a message (JSON Lines).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson

from streams.kafka.settings import add_topic_options, ensure_topics, settings_from


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser(
        "produce",
        help="send events (a trace file or stdin) to the Kafka input topic",
        description="Send JSON Lines events to the input topic, keyed by tenant, at "
        "--rate events/s (default: as fast as possible). Pipe `routeq simulate` output "
        "or a live source into '-'.",
    )
    p.add_argument("trace", metavar="TRACE", help="events file (JSON Lines), or - for stdin")
    add_topic_options(p)
    p.add_argument("--rate", type=float, default=0.0, metavar="N",
                   help="target events per second (default: unthrottled)")
    p.add_argument("--pack", type=int, default=1, metavar="N",
                   help="put up to N consecutive events of a tenant in one message "
                        "(JSON Lines; fewer messages, much higher throughput; default 1)")
    p.add_argument("--pack-ms", type=float, default=5.0, metavar="T",
                   help="hold a packed message at most T ms (default %(default)s)")
    return p


def lines_of(path: str) -> Iterator[bytes]:
    f = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        for line in f:
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield line
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def tenant_of(line: bytes) -> tuple[bool, str | None]:
    """(is a JSON object, its tenant if it is a string)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False, None
    if not isinstance(obj, dict):
        return False, None
    t = obj.get("tenant")
    return True, t if isinstance(t, str) else None


def produce(lines: Iterator[bytes], producer: Any, topic: str, rate: float = 0.0,
            pack: int = 1, pack_ms: float = 5.0) -> int:
    """Send ``lines``; return how many events were sent.

    With ``pack`` > 1, consecutive events of one tenant go together in one
    message (JSON Lines), up to ``pack`` of them and held at most ``pack_ms``.
    """
    partitions = sorted(producer.partitions_for(topic) or [0])
    sent = 0
    start = time.perf_counter()
    send = producer.send
    held: dict[str, list[bytes]] = {}
    last_flush = start

    def flush_all() -> None:
        for tenant, buf in held.items():
            send(topic, key=tenant.encode(), value=b"\n".join(buf))
        held.clear()

    for n, line in enumerate(lines):
        if n % 64 == 0:
            now = time.perf_counter()
            if rate > 0:
                ahead = start + n / rate - now
                if ahead > 0:
                    time.sleep(ahead)
                    now += ahead
            if held and (now - last_flush) * 1000 >= pack_ms:
                flush_all()
                last_flush = now
        is_obj, tenant = tenant_of(line)
        sent += 1
        if tenant is not None:
            if pack <= 1:
                send(topic, key=tenant.encode(), value=line)
                continue
            buf = held.setdefault(tenant, [])
            buf.append(line)
            if len(buf) >= pack:
                send(topic, key=tenant.encode(), value=b"\n".join(buf))
                del held[tenant]
        elif is_obj and b'"clock"' in line:
            flush_all()  # a clock for every tenant stays in order with their events
            for p in partitions:
                send(topic, value=line, partition=p)
        else:
            send(topic, value=line)
    flush_all()
    producer.flush()
    return sent


def ordered_producer(bootstrap: str, **options: Any) -> Any:
    """A kafka-python producer that keeps each partition's messages in the
    order sent. With ``acks=1`` kafka-python turns its idempotence off, and
    then a request retried (a slow broker, a timeout) while later ones are in
    flight lands after them: a tenant's events out of order. One request in
    flight per connection keeps the order; a retry may still write a batch
    twice (at least once), which the engine's event ids make harmless."""
    from kafka import KafkaProducer

    config: dict[str, Any] = {"linger_ms": 5, "acks": 1,
                              "max_in_flight_requests_per_connection": 1, **options}
    return KafkaProducer(bootstrap_servers=bootstrap, **config)


def main(args: argparse.Namespace) -> int:
    s = settings_from(args)
    ensure_topics(s)
    producer = ordered_producer(s.bootstrap, batch_size=1 << 20, max_request_size=8 << 20)
    t0 = time.perf_counter()
    try:
        n = produce(lines_of(args.trace), producer, s.input_topic, args.rate,
                    args.pack, args.pack_ms)
    except FileNotFoundError as exc:
        print(f"routeq produce: {exc}", file=sys.stderr)
        return 2
    finally:
        producer.close()
    wall = time.perf_counter() - t0
    print(f"routeq produce: {n} events to {s.input_topic} in {wall:.1f} s "
          f"({n / wall if wall else 0:,.0f}/s)", file=sys.stderr)
    return 0
