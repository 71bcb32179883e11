"""The breaker's common case from the tracked cache: no round trip, no write, and never a stale answer."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis

from orchestrator.breaker import CircuitBreaker
from orchestrator.breaker.policy import BreakerPolicy
from orchestrator.client import Orchestrator
from orchestrator.config import Settings
from orchestrator.errors import CircuitBreakerOpenError
from orchestrator.tracking import TrackedReads
from tests.support.procs import REPO

POLICY = BreakerPolicy(failure_threshold=2, open_seconds=60)

OTHER_PROCESS = """
import sys
import redis
from orchestrator.breaker import CircuitBreaker
from orchestrator.breaker.policy import BreakerPolicy
from orchestrator.tracking import TrackedReads

client = redis.Redis.from_url(sys.argv[1])
breaker = CircuitBreaker(client, "sonarr", BreakerPolicy(failure_threshold=2, open_seconds=60),
                         tracked=TrackedReads(client))
for _ in range(2):
    breaker.record(breaker.admit(), success=False)
assert breaker.snapshot().state == "open"
"""


@pytest.fixture
def tracked(redis_client: redis.Redis) -> Iterator[TrackedReads]:
    reads = TrackedReads(redis_client, liveness_seconds=math.inf)  # no liveness PING in the counts
    yield reads
    reads.close()


def commands_run(client: redis.Redis) -> dict[str, int]:
    """Calls per command the server has run (INFO commandstats), without INFO itself."""
    return {name: stats["calls"] for name, stats in client.info("commandstats").items() if name != "cmdstat_info"}


def trip_in_another_process(redis_url: str) -> None:
    subprocess.run([sys.executable, "-c", OTHER_PROCESS, redis_url], cwd=REPO, check=True, timeout=60)


def test_a_closed_admission_and_a_success_with_nothing_pending_send_nothing_to_redis(
        redis_client: redis.Redis, tracked: TrackedReads) -> None:
    """Once the breaker hash is cached, admit + record(success) of a closed breaker run no command at all."""
    breaker = CircuitBreaker(redis_client, "sonarr", POLICY, tracked=tracked)
    breaker.record(breaker.admit(), success=True)
    before = commands_run(redis_client)
    for _ in range(20):
        admission = breaker.admit()
        assert (admission.allowed, admission.state) == (True, "closed")
        assert breaker.record(admission, success=True) == "closed"
    assert commands_run(redis_client) == before


def test_a_success_after_a_failure_still_resets_the_count_through_the_script(
        redis_client: redis.Redis, tracked: TrackedReads) -> None:
    """A success with a failure pending is a write: the next failure is the first again, the breaker stays closed."""
    breaker = CircuitBreaker(redis_client, "sonarr", POLICY, tracked=tracked)
    breaker.record(breaker.admit(), success=False)
    breaker.record(breaker.admit(), success=True)
    assert breaker.snapshot().failures == 0
    assert breaker.record(breaker.admit(), success=False) == "closed"


def test_a_breaker_tripped_by_another_process_refuses_the_next_admission(
        redis_client: redis.Redis, redis_url: str, tracked: TrackedReads) -> None:
    """A closed answer cached here is dropped when a worker elsewhere opens the breaker: the next admission
    here is refused, with the time left to wait."""
    breaker = CircuitBreaker(redis_client, "sonarr", POLICY, tracked=tracked)
    assert breaker.admit().allowed
    trip_in_another_process(redis_url)
    admission = breaker.admit()
    assert (admission.allowed, admission.state) == (False, "open")
    assert 0 < (admission.retry_after or 0) <= 60


def test_an_open_breaker_refuses_from_memory_until_its_wait_ends(redis_client: redis.Redis,
                                                                 tracked: TrackedReads) -> None:
    """Refusals while open cost no round trip; the admission that ends the wait goes to the script (half-open)."""
    now = [1_700_000_000.0]
    breaker = CircuitBreaker(redis_client, "sonarr", POLICY, tracked=tracked, clock=lambda: now[0])
    for _ in range(2):
        breaker.record(breaker.admit(), success=False)
    assert not breaker.admit().allowed
    before = commands_run(redis_client)
    assert not any(breaker.admit().allowed for _ in range(10))
    assert commands_run(redis_client) == before
    now[0] += 60
    trial = breaker.admit()
    assert (trial.allowed, trial.state, trial.trial) == (True, "half_open", True)


def test_the_client_fails_fast_on_a_breaker_another_process_opened(redis_url: str) -> None:
    """The client's cached breaker look still raises CircuitBreakerOpenError before enqueue, and enqueues nothing."""
    client = Orchestrator(Settings(broker_url=redis_url,
                                   servers={"sonarr": {"transport": {"type": "stdio", "command": "python"},
                                                       "breaker": {"failure_threshold": 2, "open_seconds": 60}}}))
    try:
        client.breakers.breaker("sonarr").check_or_raise()  # cached: closed
        trip_in_another_process(redis_url)
        with pytest.raises(CircuitBreakerOpenError) as refused:
            client.call_tool("sonarr", "sonarr_get_series", {})
        assert refused.value.server == "sonarr"
        assert client.redis.llen("mcp.sonarr") == 0
    finally:
        client.close()
