"""Prometheus metrics of the orchestrator, read from Redis at scrape time.

Flower's own ``/metrics`` covers Celery task events; this endpoint adds what it lacks, all read
from Redis at scrape time (a handful of round trips), so any number of workers and machines
report through one place:

- breaker state and transitions per server (``BreakerBoard.snapshots``);
- health status, latency and consecutive failures per server (``orchestrator.health``);
- calls, failures (by error type), retries and duration per server and tool (written by the
  workers, see ``orchestrator.metrics.record_call`` and ``workers.metrics``);
- queue lengths (``LLEN mcp.<server>``) and live consumers per queue.

Run it with ``mcp-orch metrics --port 9808``; ``mcp-orch stats`` prints the call counters.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestrator import redis_conn
from orchestrator.breaker import BreakerBoard, BreakerState
from orchestrator.config import Settings
from orchestrator.health import HealthStatus, HealthStore
from orchestrator.metrics import DURATION_BUCKETS, ToolStats, read_call_stats

log = logging.getLogger("orchestrator.metrics")

METRICS_PORT = 9808
"""Default port of ``mcp-orch metrics``."""
PREFIX = "mcp_orch"
"""Prefix of every metric name."""
_PRIORITY_SEP = "\x06\x16"
"""Kombu's Redis transport keeps prioritised messages in ``<queue>\\x06\\x16<priority>`` lists."""
_PRIORITY_STEPS = (3, 6, 9)


def queue_lengths(client: redis.Redis, queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each queue (its list plus kombu's priority lists), in one round trip."""
    names = list(queues)
    pipe = client.pipeline(transaction=False)
    for queue in names:
        pipe.llen(queue)
        for step in _PRIORITY_STEPS:
            pipe.llen(f"{queue}{_PRIORITY_SEP}{step}")
    counts = pipe.execute()
    width = 1 + len(_PRIORITY_STEPS)
    return {queue: sum(counts[i * width:(i + 1) * width]) for i, queue in enumerate(names)}


# -- the Prometheus collector -----------------------------------------------------------------


class OrchestratorCollector(Collector):
    """Reads everything from Redis at scrape time; a Redis outage gives ``mcp_orch_redis_up 0``."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.redis = client
        self.breakers = BreakerBoard(client, {name: s.breaker for name, s in settings.servers.items()})

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily(f"{PREFIX}_redis_up", "1 if Redis (broker, results, state) answered this scrape")
        try:
            families = list(self._families())
        except redis.RedisError as exc:
            log.warning("metrics: Redis unavailable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families
        took = GaugeMetricFamily(f"{PREFIX}_scrape_duration_seconds", "Time this scrape spent reading Redis")
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _families(self) -> Iterator[Metric]:
        servers = self.settings.enabled_servers()
        yield from self._breaker_families()
        yield from self._health_families()
        lengths = queue_lengths(self.redis, [server.queue for server in servers.values()])
        queue = GaugeMetricFamily(f"{PREFIX}_queue_length", "Messages waiting in a server's queue",
                                  labels=["server", "queue"])
        for name, server in servers.items():
            queue.add_metric([name, server.queue], lengths[server.queue])
        yield queue
        yield from self._call_families(read_call_stats(self.redis, self.settings.servers))

    def _breaker_families(self) -> Iterator[Metric]:
        snapshots = self.breakers.snapshots()
        state = GaugeMetricFamily(f"{PREFIX}_breaker_state", "1 for the breaker's current state, 0 for the others",
                                  labels=["server", "state"])
        transitions = CounterMetricFamily(f"{PREFIX}_breaker_transitions", "Breaker state transitions",
                                          labels=["server"])
        trips = CounterMetricFamily(f"{PREFIX}_breaker_trips", "Times the breaker opened", labels=["server"])
        window = GaugeMetricFamily(f"{PREFIX}_breaker_window_failures", "Failures in the breaker's current window",
                                   labels=["server"])
        trials = GaugeMetricFamily(f"{PREFIX}_breaker_trials_in_flight", "Half-open trial calls running",
                                   labels=["server"])
        retry = GaugeMetricFamily(f"{PREFIX}_breaker_retry_after_seconds",
                                  "Seconds until an open breaker admits a trial (0 when not open)", labels=["server"])
        for name, snap in snapshots.items():
            for candidate in BreakerState:
                state.add_metric([name, candidate.value], 1 if snap.state == candidate.value else 0)
            transitions.add_metric([name], snap.transitions)
            trips.add_metric([name], snap.trips)
            window.add_metric([name], snap.window_failures)
            trials.add_metric([name], snap.trials_in_flight)
            retry.add_metric([name], snap.retry_after or 0.0)
        yield from (state, transitions, trips, window, trials, retry)

    def _health_families(self) -> Iterator[Metric]:
        reports = HealthStore(self.redis).read_many(list(self.settings.enabled_servers().values()))
        if not reports:
            return
        status = GaugeMetricFamily(f"{PREFIX}_health_status", "1 for the server's current health status",
                                   labels=["server", "status"])
        latency = GaugeMetricFamily(f"{PREFIX}_health_latency_seconds", "Latency of the last health check",
                                    labels=["server"])
        failures = GaugeMetricFamily(f"{PREFIX}_health_consecutive_failures", "Failed health checks in a row",
                                     labels=["server"])
        checked = GaugeMetricFamily(f"{PREFIX}_health_last_check_timestamp_seconds",
                                    "When the last health check ended (epoch seconds)", labels=["server"])
        consumers = GaugeMetricFamily(f"{PREFIX}_queue_consumers", "Workers consuming a server's queue",
                                      labels=["server", "queue"])
        why = GaugeMetricFamily(f"{PREFIX}_health_failure", "1 for why a server is not healthy (failure kind)",
                                labels=["server", "kind"])
        for name, report in reports.items():
            if report.failure_kind:
                why.add_metric([name, report.failure_kind], 1)
            for candidate in HealthStatus:
                status.add_metric([name, candidate.value], 1 if report.status == candidate else 0)
            if report.latency_ms is not None:
                latency.add_metric([name], report.latency_ms / 1000)
            failures.add_metric([name], report.consecutive_failures)
            if report.last_check_at:
                checked.add_metric([name], report.last_check_at)
            consumers.add_metric([name, report.queue], report.consumers)
        yield from (status, latency, failures, checked, consumers, why)

    def _call_families(self, stats: Mapping[str, Mapping[str, ToolStats]]) -> Iterator[Metric]:
        calls = CounterMetricFamily(f"{PREFIX}_calls", "Tool calls finished by workers", labels=["server", "tool"])
        failures = CounterMetricFamily(f"{PREFIX}_call_failures", "Tool calls that failed (error or isError)",
                                       labels=["server", "tool"])
        errors = CounterMetricFamily(f"{PREFIX}_call_errors", "Failed tool calls by error type",
                                     labels=["server", "tool", "error"])
        retries = CounterMetricFamily(f"{PREFIX}_call_retries", "Extra attempts made by worker retries",
                                      labels=["server", "tool"])
        duration = HistogramMetricFamily(f"{PREFIX}_call_duration_seconds",
                                         "Time a worker spent on a tool call (all attempts)", labels=["server", "tool"])
        for server, tools in stats.items():
            for tool, item in tools.items():
                labels = [server, tool]
                calls.add_metric(labels, item.calls)
                failures.add_metric(labels, item.failures)
                retries.add_metric(labels, item.retries)
                for error, count in sorted(item.errors.items()):
                    errors.add_metric([*labels, error], count)
                cumulative, buckets = 0, []
                for bound, count in zip([*DURATION_BUCKETS, math.inf], item.buckets, strict=True):
                    cumulative += count
                    buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
                duration.add_metric(labels, buckets, item.duration_sum)
        yield from (calls, failures, errors, retries, duration)


def build_registry(settings: Settings, client: redis.Redis) -> CollectorRegistry:
    """A registry holding only the orchestrator's collector (no process metrics of this exporter)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OrchestratorCollector(settings, client))
    return registry


def exposition(settings: Settings, client: redis.Redis) -> str:
    """The metrics once, in Prometheus text format."""
    return generate_latest(build_registry(settings, client)).decode()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are frequent: no access log."""


def make_metrics_server(settings: Settings, address: str, port: int) -> WSGIServer:
    """An HTTP server answering ``GET /metrics`` (any path) in Prometheus text format."""
    client = redis_conn.connect(settings, socket_timeout=5, socket_connect_timeout=5)
    app = make_wsgi_app(build_registry(settings, client))
    return make_server(address, port, app, handler_class=_QuietHandler)
