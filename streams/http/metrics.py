"""Prometheus metrics of ``routeq serve`` (``GET /metrics``), per tenant.

Counters and the wait histogram are updated from the outputs as they are
decided; queue length, agents and occupancy are read from the engine's state
when scraped; service level and abandonment are over the last hour of event
time (the same figures as the dashboard), each chat counted once: at its first
``chat.assigned``, or at its ``chat.abandoned`` if that came before any (see
``streams.http.service.Minute``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.http.service import Item, Service, abandonment, service_level

WAIT_BUCKETS = (1, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
#: tenants with labels of their own, beyond the configured ones (the rest: OTHER)
DEFAULT_LABELED = 1000
OTHER = "_other"


class TenantLabels:
    """The ``tenant`` label of a name: the configured tenants' own names, then
    the first ``cap`` other names seen, then ``OTHER`` (names made up in
    events, e.g. a hand-over's ``from``, must not grow the series without end)."""

    def __init__(self, configured: frozenset[str] = frozenset(),
                 cap: int = DEFAULT_LABELED) -> None:
        self.configured = configured
        self.cap = cap
        self.seen: set[str] = set()

    def __call__(self, name: str) -> str:
        if name in self.configured or name in self.seen:
            return name
        if len(self.seen) < self.cap:
            self.seen.add(name)
            return name
        return OTHER


class ServeMetrics:
    def __init__(self, service: Service, labels: TenantLabels | None = None) -> None:
        self.service = service
        self.label = labels if labels is not None else TenantLabels()
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter("routeq_events", "Posted events by tenant and result "
                              "(accepted, duplicate, rejected)", ["tenant", "result"],
                              registry=self.registry)
        self.decisions = Counter("routeq_decisions", "Outputs decided, by tenant and type",
                                 ["tenant", "type"], registry=self.registry)
        self.waits = Histogram("routeq_wait_seconds", "Wait from entering the queue to "
                               "assignment (chat.assigned wait_ms; every assignment, a "
                               "reassignment after a requeue too)", ["tenant"],
                               buckets=WAIT_BUCKETS, registry=self.registry)
        self.requests = Counter("routeq_http_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.webhook_failures = Counter(
            "routeq_webhook_failures", "Webhook deliveries that failed (no 2xx: an error "
            "status, a redirect, a closed connection, an answer that is not HTTP, a "
            "timeout), by tenant; each is retried with backoff", ["tenant"],
            registry=self.registry)
        self.registry.register(_StateCollector(service, self.label))

    def posted(self, tenant: str, result: str, n: int = 1) -> None:
        self.events.labels(self.label(tenant), result).inc(n)

    def outputs(self, items: list[Item], outs: list[dict[str, Any]]) -> None:
        counts: dict[tuple[str, str], int] = {}
        for it, o in zip(items, outs, strict=True):
            key = (it.tenant, it.type)
            counts[key] = counts.get(key, 0) + 1
            if it.type == "chat.assigned":
                self.waits.labels(self.label(it.origin or it.tenant)).observe(
                    o.get("wait_ms", 0) / 1000)
        for (tenant, typ), n in counts.items():
            self.decisions.labels(self.label(tenant), typ).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, service: Service, label: TenantLabels) -> None:
        self.service = service
        self.label = label

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        queue = GaugeMetricFamily("routeq_queue_length", "Chats waiting for an agent",
                                  labels=["tenant"])
        online = GaugeMetricFamily("routeq_agents_online", "Agents online", labels=["tenant"])
        held = GaugeMetricFamily("routeq_chats_held", "Chats held by online agents",
                                 labels=["tenant"])
        occ = GaugeMetricFamily("routeq_agent_occupancy", "Chats held / capacity of online "
                                "agents", labels=["tenant"])
        sl = GaugeMetricFamily("routeq_service_level", "Share of chats for a human answered "
                               "within 20 s, each chat counted once: at its first assignment "
                               "(a reassignment after a requeue does not count again), or "
                               "abandoned before any; last hour of event time",
                               labels=["tenant"])
        ab = GaugeMetricFamily("routeq_abandonment", "Share of chats for a human abandoned "
                               "before any assignment, each chat counted once (one answered, "
                               "requeued, then left counts as answered); last hour of event "
                               "time", labels=["tenant"])
        log = GaugeMetricFamily("routeq_log_offset", "Next offset of the state's input log")
        # tenants past the label cap are summed under OTHER
        sums: dict[str, list[int]] = {}
        for name, waiting, n_online, n_held, cap in self.service.gauges():
            row = sums.setdefault(self.label(name), [0, 0, 0, 0])
            row[0] += waiting
            row[1] += n_online
            row[2] += n_held
            row[3] += cap
        for name, (waiting, n_online, n_held, cap) in sums.items():
            queue.add_metric([name], waiting)
            online.add_metric([name], n_online)
            held.add_metric([name], n_held)
            occ.add_metric([name], n_held / cap if cap else 0.0)
        for name, st in sorted(self.service.stats.items()):
            if self.label(name) != name:
                continue  # a share is not summed: none for OTHER
            tot = st.totals()
            s, a = service_level(tot), abandonment(tot)
            if s is not None:
                sl.add_metric([name], s)
            if a is not None:
                ab.add_metric([name], a)
        log.add_metric([], self.service.offset)
        resumed = CounterMetricFamily(
            "routeq_resume_reads", "What resuming streams and webhooks older than the "
            "in-memory history read: stored outputs, or log inputs re-applied (a resume "
            "from before the outputs were kept)", labels=["what"])
        resumed.add_metric(["stored_outputs"], self.service.read_stored)
        resumed.add_metric(["replayed_inputs"], self.service.replayed)
        yield from (queue, online, held, occ, sl, ab, log, resumed)
