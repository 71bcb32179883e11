"""Rate mode: count- and time-based sliding windows, with a hand-moved clock (no sleeps)."""

from __future__ import annotations

from orchestrator.breaker import CircuitBreaker
from orchestrator.breaker.policy import BreakerPolicy
from tests.support.breaker_fixtures import Clock

COUNT = BreakerPolicy(mode="rate", window_type="count", window_size=10, minimum_calls=4,
                      failure_rate_threshold=0.5)
TIME = BreakerPolicy(mode="rate", window_type="time", window_seconds=10, window_buckets=10, minimum_calls=4,
                     failure_rate_threshold=0.5)


def outcomes(breaker: CircuitBreaker, pattern: str, clock: Clock | None = None, step: float = 0.0) -> str:
    """Record 'F'ailures and 'S'uccesses in order, moving the clock ``step`` s after each."""
    state = ""
    for outcome in pattern:
        state = breaker.record(breaker.admit(), success=outcome == "S", duration=0.01)
        if clock is not None:
            clock.advance(step)
    return state


def test_a_count_window_trips_when_the_failure_rate_reaches_the_threshold(store):
    """2 failures in 4 calls is 50 %: open."""
    breaker = CircuitBreaker(store, "sab", COUNT, clock=Clock())
    assert outcomes(breaker, "SFS") == "closed"
    assert outcomes(breaker, "F") == "open"


def test_a_count_window_waits_for_minimum_calls(store):
    """3 failures out of 3 calls is not enough evidence when minimum_calls is 4."""
    breaker = CircuitBreaker(store, "sab", COUNT, clock=Clock())
    assert outcomes(breaker, "FFF") == "closed"
    assert breaker.snapshot().window_failures == 3


def test_a_count_window_forgets_calls_older_than_window_size(store):
    """After 10 more successes the old failures have slid out of the window."""
    breaker = CircuitBreaker(store, "sab", COUNT, clock=Clock())
    outcomes(breaker, "SSSFSSFSSS" + "SSSS")
    snap = breaker.snapshot()
    assert (snap.window_calls, snap.window_failures) == (10, 1)
    assert outcomes(breaker, "FFFF") == "closed"  # the old failure slid out: 4 of 10
    assert outcomes(breaker, "F") == "open"  # 5 of 10


def test_a_time_window_trips_on_failures_within_window_seconds(store):
    """2 failures in 4 calls spread over 3 s trip a 10 s window at the 4th call."""
    clock = Clock()
    breaker = CircuitBreaker(store, "sab", TIME, clock=clock)
    assert outcomes(breaker, "SFS", clock, step=1.0) == "closed"
    assert outcomes(breaker, "F") == "open"


def test_a_time_window_forgets_failures_older_than_window_seconds(store):
    """Failures 11 s ago no longer count; the window then holds only recent successes."""
    clock = Clock()
    breaker = CircuitBreaker(store, "sab", TIME, clock=clock)
    outcomes(breaker, "FSS")
    clock.advance(11)
    outcomes(breaker, "SSS")
    snap = breaker.snapshot()
    assert (snap.window_calls, snap.window_failures) == (3, 0)
    assert outcomes(breaker, "F") == "closed"  # 1 of 4 is 25 %


def test_a_time_window_counts_each_bucket_until_it_leaves_the_window(store):
    """With 1 s buckets, a call made at t is counted until t + 10 s, then dropped."""
    clock = Clock()
    breaker = CircuitBreaker(store, "sab", TIME, clock=clock)
    outcomes(breaker, "F")
    clock.advance(9.5)
    assert breaker.snapshot().window_failures == 1
    clock.advance(0.5)
    assert breaker.snapshot().window_failures == 0


def test_a_rate_breaker_closes_with_an_empty_window(store):
    """After half-open closes, the failures that tripped it are gone from the window."""
    clock = Clock()
    policy = COUNT.model_copy(update={"success_threshold": 1})
    breaker = CircuitBreaker(store, "sab", policy, clock=clock)
    outcomes(breaker, "FFFF")
    clock.advance(60)
    assert outcomes(breaker, "S") == "closed"
    snap = breaker.snapshot()
    assert (snap.window_calls, snap.window_failures) == (0, 0)
