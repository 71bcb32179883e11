"""Redis unreachable: the policy's on_redis_error decides, and the breaker recovers after."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from orchestrator.breaker import CircuitBreaker
from orchestrator.breaker.policy import BreakerPolicy
from orchestrator.errors import CircuitBreakerOpenError
from orchestrator.tracking import TrackedReads
from tests.support.redis_proc import RedisServer


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A client that gives up at once when Redis is down (redis-py's default retries for seconds)."""
    conn = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1,
                                retry=Retry(NoBackoff(), 0))
    yield conn
    conn.close()


@pytest.fixture
def redis_down(redis_server: RedisServer) -> Iterator[None]:
    """Stop the session's redis-server for one test and always start it again."""
    with redis_server.stopped():
        yield


def test_fail_open_admits_unguarded_and_warns_once_naming_server_and_policy(client, redis_down, caplog):
    """With Redis down, fail_open admits every call and logs one WARNING for the outage."""
    caplog.set_level(logging.DEBUG, logger="orchestrator.breaker")
    breaker = CircuitBreaker(client, "sonarr", BreakerPolicy(on_redis_error="fail_open"))
    admissions = [breaker.admit() for _ in range(3)]
    assert all(a.allowed and a.generation == -1 for a in admissions)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "sonarr" in warnings[0] and "Redis is unreachable" in warnings[0] and "fail_open" in warnings[0]


def test_fail_closed_refuses_with_an_error_saying_redis_is_unreachable(client, redis_down):
    """With Redis down, fail_closed refuses and the error names the server and the cause."""
    breaker = CircuitBreaker(client, "sonarr", BreakerPolicy(on_redis_error="fail_closed"))
    assert not breaker.admit().allowed
    with pytest.raises(CircuitBreakerOpenError, match="Redis is unreachable") as raised:
        breaker.admit_or_raise()
    assert raised.value.server == "sonarr"


def test_an_outcome_recorded_while_redis_is_down_is_logged_and_dropped(client, redis_server, caplog):
    """A call admitted before the outage records nothing and raises nothing."""
    caplog.set_level(logging.WARNING, logger="orchestrator.breaker")
    breaker = CircuitBreaker(client, "sonarr", BreakerPolicy(failure_threshold=1))
    admission = breaker.admit()
    with redis_server.stopped():
        assert breaker.record(admission, success=False, duration=0.1) == "closed"
    assert "outcome dropped" in caplog.text
    assert breaker.snapshot().failures == 0


def test_the_breaker_works_again_once_redis_is_back(client, redis_server, caplog):
    """After a restart (scripts gone with it) decisions are made in Redis again."""
    caplog.set_level(logging.INFO, logger="orchestrator.breaker")
    breaker = CircuitBreaker(client, "sonarr", BreakerPolicy(failure_threshold=1))
    with redis_server.stopped():
        assert breaker.admit().generation == -1
    assert breaker.record(breaker.admit(), success=False, duration=0.1) == "open"
    assert "Redis is reachable again" in caplog.text


def test_a_cached_closed_answer_does_not_outlive_the_connection(client, redis_server):
    """With the tracked cache holding "closed", a stopped Redis still makes fail_closed refuse (the lost
    connection drops the cache), and after the restart the breaker is read afresh."""
    tracked = TrackedReads(client)
    breaker = CircuitBreaker(client, "sonarr", BreakerPolicy(on_redis_error="fail_closed"), tracked=tracked)
    assert breaker.admit().allowed
    with redis_server.stopped():
        refused = breaker.admit()
        assert (refused.allowed, refused.state) == (False, "unknown")
    breaker.force_open()
    assert not breaker.admit().allowed
    tracked.close()
