"""The health status model on a real Redis: transitions, consumers, staleness, breaker overlay."""

from __future__ import annotations

import time

import pytest
import redis

from orchestrator.config import ServerConfig
from orchestrator.health import HealthStatus, HealthStore


@pytest.fixture
def server() -> ServerConfig:
    return ServerConfig(name="sonarr", transport={"type": "stdio", "command": "python"}, health_interval_seconds=10,
                        down_after_failures=3, timeout=5, connect_timeout=5)


@pytest.fixture
def store(redis_client: redis.Redis, server: ServerConfig) -> HealthStore:
    """A store whose server has one live consumer, so only the recorded checks decide."""
    filled = HealthStore(redis_client)
    filled.beat("sonarr@test", [server.queue])
    return filled


def test_a_server_never_checked_is_unknown(store: HealthStore, server: ServerConfig) -> None:
    """No record yet reads as unknown, 'not checked yet'."""
    health = store.read(server)
    assert health.status == HealthStatus.UNKNOWN and health.reason == "not checked yet" and health.consumers == 1


def test_down_after_k_consecutive_failures_and_up_after_one_success(store: HealthStore, server: ServerConfig) -> None:
    """Failures 1..K-1 are degraded, the K-th is down; one success is healthy with the counter reset."""
    statuses = [store.record(server, ok=False, error=f"boom {i}")[0] for i in range(4)]
    assert statuses == [HealthStatus.DEGRADED, HealthStatus.DEGRADED, HealthStatus.DOWN, HealthStatus.DOWN]
    health = store.read(server)
    assert health.status == HealthStatus.DOWN and health.consecutive_failures == 4 and health.reason == "boom 3"
    assert store.record(server, ok=True, latency=0.002, server_info={"name": "s", "version": "4"},
                        tool_count=5) == (HealthStatus.HEALTHY, 0)
    health = store.read(server)
    assert health.status == HealthStatus.HEALTHY and health.consecutive_failures == 0 and health.checks == 5
    assert health.latency_ms == pytest.approx(2.0) and health.server_version == "4" and health.tool_count == 5
    assert health.last_error == "boom 3" and health.last_success_at >= health.last_failure_at


def test_a_queue_without_consumers_reads_as_down(redis_client: redis.Redis, server: ServerConfig) -> None:
    """Whatever the last check said, no live consumer of the queue means down, naming the queue."""
    store = HealthStore(redis_client)
    store.record(server, ok=True, latency=0.001)
    health = store.read(server)
    assert health.status == HealthStatus.DOWN and health.reason == "no worker consumes mcp.sonarr"
    store.beat("w@test", [server.queue], now=time.time() - 60)  # a heartbeat that lapsed long ago
    assert store.read(server).consumers == 0
    store.beat("w@test", [server.queue])
    assert store.read(server).status == HealthStatus.HEALTHY
    store.leave("w@test", [server.queue])
    assert store.read(server).consumers == 0


def test_a_record_older_than_three_intervals_reads_as_unknown(store: HealthStore, server: ServerConfig) -> None:
    """When checks stop arriving (beat down, queue stuck) the old status is not trusted."""
    store.record(server, ok=True, latency=0.001, now=time.time() - 60)
    health = store.read(server)
    assert health.status == HealthStatus.UNKNOWN and health.recorded_status == HealthStatus.HEALTHY
    assert "is beat running?" in health.reason


def test_passing_checks_with_an_open_breaker_read_as_degraded(store: HealthStore, server: ServerConfig) -> None:
    """The breaker state recorded with a check turns healthy into degraded while it is not closed."""
    store.record(server, ok=True, latency=0.001, breaker={"state": "open", "failures": 5})
    health = store.read(server)
    assert health.status == HealthStatus.DEGRADED and health.reason == "breaker open"
    assert health.breaker == {"state": "open", "failures": 5}
