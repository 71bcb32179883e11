"""admit + record cost at most 2 Redis round trips on every path (counted on the socket), none on a closed success
with the tracked cache."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from orchestrator.breaker import CircuitBreaker
from orchestrator.breaker.policy import BreakerPolicy
from orchestrator.tracking import TrackedReads
from tests.support.breaker_fixtures import Clock

POLICY = BreakerPolicy(failure_threshold=2, open_seconds=10, success_threshold=2, half_open_max_calls=1)


class CountingConnection(redis.Connection):
    """A connection that counts requests written to the socket (a pipeline is one)."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


@pytest.fixture
def counted(redis_url: str) -> Iterator[redis.Redis]:
    """A client whose round trips are counted, connected and with its scripts loaded."""
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    client.ping()
    yield client
    client.close()


def round_trips(breaker: CircuitBreaker, *, success: bool) -> tuple[int, str]:
    """Round trips of one admit + record, and the state it left."""
    before = CountingConnection.sent
    state = breaker.record(breaker.admit(), success=success, duration=0.01)
    return CountingConnection.sent - before, state


def every_path(breaker, clock):
    """(round trips, state after) of each path, walked in order from closed through open and half-open back
    to closed."""
    paths = {"closed success": round_trips(breaker, success=True),
             "closed failure": round_trips(breaker, success=False),
             "closed failure that trips": round_trips(breaker, success=False),
             "open refusal": round_trips(breaker, success=True)}
    clock.now += 10
    paths["half-open trial success"] = round_trips(breaker, success=True)
    paths["half-open trial failure"] = round_trips(breaker, success=False)
    clock.now += 20
    trial = breaker.admit()
    paths["half-open refusal (slot taken)"] = round_trips(breaker, success=True)
    breaker.record(trial, success=True, duration=0.01)
    paths["half-open trial success that closes"] = round_trips(breaker, success=True)
    return paths


def test_each_path_costs_at_most_two_round_trips(counted):
    """closed success, closed failure, the tripping failure, open refusal, half-open trial paths."""
    clock = Clock()
    breaker = CircuitBreaker(counted, "sonarr", POLICY, clock=clock)
    breaker.record(breaker.admit(), success=True, duration=0.01)  # loads the scripts
    paths = every_path(breaker, clock)
    assert paths == {
        "closed success": (2, "closed"), "closed failure": (2, "closed"),
        "closed failure that trips": (2, "open"), "open refusal": (1, "open"),
        "half-open trial success": (2, "half_open"), "half-open trial failure": (2, "open"),
        "half-open refusal (slot taken)": (1, "half_open"),
        "half-open trial success that closes": (2, "closed")}


def test_a_rate_window_costs_two_round_trips_too(counted):
    """Count and time windows are updated inside the record script, not by extra commands."""
    for window_type in ("count", "time"):
        policy = BreakerPolicy(mode="rate", window_type=window_type, minimum_calls=2, window_size=10)
        breaker = CircuitBreaker(counted, f"sab-{window_type}", policy, clock=Clock())
        breaker.record(breaker.admit(), success=True, duration=0.01)
        assert round_trips(breaker, success=False) == (2, "open")


def test_a_snapshot_is_one_round_trip(counted):
    """Operators' snapshot reads are pipelined."""
    breaker = CircuitBreaker(counted, "sonarr", POLICY, clock=Clock())
    before = CountingConnection.sent
    breaker.snapshot()
    assert CountingConnection.sent - before == 1


def test_with_the_tracked_cache_no_path_costs_more_and_a_closed_success_costs_nothing(counted):
    """The same paths with the tracked cache (its connection counted too): the closed success and the
    open refusal are answered from memory; a write is followed by one read that refills the cache (not
    around half-open, which is never answered from memory: the first call after it reads once)."""
    clock = Clock()
    tracked = TrackedReads(counted, liveness_seconds=math.inf)  # no liveness PING (one a second) in the counts
    breaker = CircuitBreaker(counted, "sonarr", POLICY, clock=clock, tracked=tracked)
    breaker.record(breaker.admit(), success=True, duration=0.01)  # loads the scripts, fills the cache
    paths = every_path(breaker, clock)
    paths["closed success after closing"] = round_trips(breaker, success=True)
    tracked.close()
    assert paths == {
        "closed success": (0, "closed"), "closed failure": (2, "closed"),
        "closed failure that trips": (2, "open"), "open refusal": (0, "open"),
        "half-open trial success": (2, "half_open"), "half-open trial failure": (2, "open"),
        "half-open refusal (slot taken)": (1, "half_open"),
        "half-open trial success that closes": (2, "closed"), "closed success after closing": (1, "closed")}
