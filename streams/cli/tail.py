"""``routeq tail``: print the output (or rejected) topic as JSON Lines."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from streams.kafka.settings import add_topic_options, settings_from


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser(
        "tail",
        help="print the routing decisions from the Kafka output topic",
        description="Print the output topic (or --rejected) as JSON Lines, from the "
        "beginning, following new messages until interrupted or --idle-s passes quietly.",
    )
    add_topic_options(p)
    p.add_argument("--rejected", action="store_true", help="read the rejected topic instead")
    p.add_argument("--latest", action="store_true", help="only messages from now on")
    p.add_argument("--idle-s", type=float, default=0.0, metavar="S",
                   help="stop after S seconds without a message (default: follow forever)")
    p.add_argument("--max", type=int, default=0, help="stop after this many messages")
    return p


def main(args: argparse.Namespace) -> int:
    from kafka import KafkaConsumer, TopicPartition

    s = settings_from(args)
    # SIGTERM (a supervisor, `kill`) ends a follow cleanly, as it does `routeq
    # worker` and `routeq serve`: what was read is flushed, exit 0
    stopped: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.append(signum))
    topic = s.rejected_topic if args.rejected else s.output_topic
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=200)
    start = time.monotonic()
    parts = consumer.partitions_for_topic(topic)
    while not parts:  # no such topic yet: wait for a worker to create it
        if stopped:
            consumer.close()
            return 0
        if args.idle_s and time.monotonic() - start > args.idle_s:
            print(f"routeq tail: no topic {topic!r} on {s.bootstrap}", file=sys.stderr)
            consumer.close()
            return 0
        time.sleep(0.5)
        consumer.topics()  # refresh the metadata
        parts = consumer.partitions_for_topic(topic)
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    if args.latest:
        consumer.seek_to_end(*tps)
    else:
        consumer.seek_to_beginning(*tps)
    out = sys.stdout.buffer
    n = 0
    last = time.monotonic()
    try:
        while not stopped:
            got = consumer.poll(timeout_ms=200, max_records=10000)
            for records in got.values():
                for r in records:
                    out.write(r.value + b"\n")
                    n += 1
                    if args.max and n >= args.max:
                        out.flush()
                        return 0
            if got:
                out.flush()
                last = time.monotonic()
            elif args.idle_s and time.monotonic() - last > args.idle_s:
                return 0
        out.flush()
        return 0
    finally:
        consumer.close()
