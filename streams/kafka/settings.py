"""Settings of the distributed runtime: topic names, partitions, batching.

The defaults are documented in the README ("Running on Kafka"); every one of
them is a command-line option of ``routeq worker`` / ``produce`` / ``tail``.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass

DEFAULT_APP_ID = "routeq"
DEFAULT_INPUT = "routeq-events"
DEFAULT_OUTPUT = "routeq-outputs"
DEFAULT_REJECTED = "routeq-rejected"
DEFAULT_PARTITIONS = 8
DEFAULT_TABLE = "entities"
DEFAULT_BATCH = 1000
DEFAULT_BATCH_MS = 100
DEFAULT_CLOCK_MS = 1000
DEFAULT_FETCH_WAIT_MS = 100


@dataclass(frozen=True)
class KafkaSettings:
    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = DEFAULT_APP_ID
    input_topic: str = DEFAULT_INPUT
    output_topic: str = DEFAULT_OUTPUT
    rejected_topic: str = DEFAULT_REJECTED
    partitions: int = DEFAULT_PARTITIONS
    table: str = DEFAULT_TABLE
    data_dir: str = "routeq-worker-data"
    batch: int = DEFAULT_BATCH
    batch_ms: int = DEFAULT_BATCH_MS
    clock_ms: int = DEFAULT_CLOCK_MS
    #: the clock-skew guard (streams/embedded/skew.py); 0: off
    max_skew_s: int = 0
    fetch_wait_ms: int = DEFAULT_FETCH_WAIT_MS
    guarantee: str = "at_least_once"
    #: failover: see the README ("Failover"); 6 s is the least stock Kafka accepts
    session_timeout_s: float = 6.0
    heartbeat_s: float = 0.5

    @property
    def bootstrap(self) -> str:
        """``host:port`` list for kafka-python / aiokafka."""
        return ",".join(b.split("://", 1)[-1] for b in self.broker.split(";"))

    @property
    def changelog_topic(self) -> str:
        return f"{self.app_id}-{self.table}-changelog"


def add_topic_options(p: argparse.ArgumentParser) -> None:
    """Options every Kafka command shares."""
    p.add_argument("--broker", required=True, metavar="kafka://HOST:PORT",
                   help="Kafka bootstrap server (several: separate with ';')")
    p.add_argument("--input-topic", default=DEFAULT_INPUT,
                   help="input events, keyed by tenant (default %(default)s)")
    p.add_argument("--output-topic", default=DEFAULT_OUTPUT,
                   help="routing decisions, keyed by tenant (default %(default)s)")
    p.add_argument("--rejected-topic", default=DEFAULT_REJECTED,
                   help="event.rejected for malformed input (default %(default)s)")
    p.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS,
                   help="partitions of the topics when routeq creates them "
                        "(default %(default)s)")


def settings_from(args: argparse.Namespace, **extra: object) -> KafkaSettings:
    broker = args.broker if "://" in args.broker else "kafka://" + args.broker
    return KafkaSettings(
        broker=broker, input_topic=args.input_topic, output_topic=args.output_topic,
        rejected_topic=args.rejected_topic, partitions=args.partitions,
        **extra,  # type: ignore[arg-type]
    )


def ensure_topics(s: KafkaSettings) -> None:
    """Create the input, output and rejected topics if they are missing."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=s.bootstrap, client_id="routeq-admin")
    try:
        have = set(admin.list_topics())
        new = [NewTopic(name, s.partitions, 1)
               for name in (s.input_topic, s.output_topic, s.rejected_topic) if name not in have]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
    finally:
        admin.close()
