"""``routeq worker``: a Faust worker of the distributed runtime (see streams/kafka/)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import socket
import sys

from engine import RulesError
from streams.cli.options import add_number, add_rules, fail
from streams.embedded.rules_file import load_rules
from streams.embedded.skew import DEFAULT_MAX_SKEW_S
from streams.kafka.settings import (
    DEFAULT_APP_ID,
    DEFAULT_BATCH,
    DEFAULT_BATCH_MS,
    DEFAULT_CLOCK_MS,
    DEFAULT_FETCH_WAIT_MS,
    add_topic_options,
    ensure_topics,
    settings_from,
)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser(
        "worker",
        help="route events from Kafka as a Faust worker (distributed runtime)",
        description="Consume the input topic (keyed by tenant), route with one engine per "
        "tenant, publish outputs, keep the entities in a changelog-backed Faust table "
        "(RocksDB). Start several with the same --app-id to share the partitions.",
    )
    add_topic_options(p)
    add_rules(p, default="built-in")
    p.add_argument("--app-id", default=DEFAULT_APP_ID,
                   help="Faust app id = consumer group and table prefix (default %(default)s)")
    p.add_argument("--data-dir", default=None,
                   help="local table data (default: routeq-worker-data/HOSTNAME-PID)")
    add_number(p, "--batch", default=DEFAULT_BATCH, minimum=1,
               help="input messages per batch at most (a message may carry several "
                    "events)")
    add_number(p, "--batch-ms", default=DEFAULT_BATCH_MS, minimum=1,
               help="wait at most this long (ms) to fill a batch (lower: less latency, "
                    "a little less throughput)")
    add_number(p, "--clock-ms", default=DEFAULT_CLOCK_MS, minimum=0,
               help="inject a clock event (wall time) into each owned partition this "
                    "often so timers fire on quiet partitions; 0 = never, for replaying "
                    "traces whose event time is not now")
    add_number(p, "--max-skew-s", default=DEFAULT_MAX_SKEW_S, minimum=0, metavar="S",
               help="reject (to the rejected topic) an event whose ts is more than S "
                    "seconds ahead of this worker's clock, or looks like seconds instead "
                    "of ms; 0 = no check")
    add_number(p, "--fetch-wait-ms", default=DEFAULT_FETCH_WAIT_MS, minimum=0, metavar="T",
               help="longest a fetch waits at the broker for records, in ms; Faust's 1500 "
                    "adds latency on brokers that hold fetches")
    p.add_argument("--guarantee", choices=("at_least_once", "exactly_once"),
                   default="at_least_once", help="Faust processing guarantee (default "
                   "%(default)s; see the README before using exactly_once)")
    add_number(p, "--session-timeout", default=6.0, minimum=1.0, metavar="S",
               help="consumer group session timeout in seconds: a worker that stops "
                    "heartbeating (killed, frozen) loses its partitions after this long; "
                    "6 is the least a stock Kafka broker accepts (README: failover)")
    add_number(p, "--heartbeat", default=0.5, minimum=0.1, metavar="S",
               help="consumer group heartbeat interval in seconds; a worker learns of a "
                    "rebalance at its next heartbeat")
    p.add_argument("--loglevel", default="WARNING", help="(default %(default)s)")
    return p


def main(args: argparse.Namespace) -> int:
    try:
        rules = load_rules(args.rules)
    except (OSError, RulesError) as exc:
        return fail(str(exc), "worker")
    data_dir = args.data_dir or os.path.join(
        "routeq-worker-data", f"{socket.gethostname()}-{os.getpid()}")
    s = settings_from(
        args, app_id=args.app_id, data_dir=data_dir, batch=args.batch,
        batch_ms=args.batch_ms, clock_ms=args.clock_ms, fetch_wait_ms=args.fetch_wait_ms,
        max_skew_s=args.max_skew_s,
        guarantee=args.guarantee,
        session_timeout_s=args.session_timeout, heartbeat_s=args.heartbeat)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency, but optional here
        pass
    # the local table data is a cache of the changelogs, which Faust reads from
    # the start anyway (routeq does not record changelog offsets): begin empty,
    # so nothing written locally by a batch that a stop cut short survives
    shutil.rmtree(data_dir, ignore_errors=True)
    # Faust creates only the last level of its datadir: make the parents (the
    # default routeq-worker-data/HOST-PID has none in a fresh directory)
    try:
        os.makedirs(data_dir, exist_ok=True)
    except OSError as exc:
        return fail(f"cannot create --data-dir {data_dir}: {exc}", "worker")
    ensure_topics(s)
    import faust

    from streams.kafka.app import build_app

    app, _shell = build_app(s, rules)
    # workers record no rules: each says which it runs, so that the workers
    # of one group can be seen to agree (a rules change is a restart of each)
    print(f"routeq worker: rules {rules.hash} ({args.rules or 'built-in'})",
          file=sys.stderr, flush=True)
    logging.getLogger("routeq").setLevel(args.loglevel.upper())
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    # the engines' state is millions of long-lived objects: pause the cyclic GC
    # and let the shell collect what is new now and then (as `routeq run` does)
    gc.disable()
    worker.execute_from_commandline()
    return 0
