"""8 worker processes racing on one breaker in a real Redis: slots and counts stay exact."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier

import pytest
import redis

from orchestrator.breaker import CircuitBreaker
from orchestrator.breaker.policy import BreakerPolicy

PROCESSES = 8
T0 = 1_700_000_000.0
HALF_OPEN = BreakerPolicy(failure_threshold=1, open_seconds=10, half_open_max_calls=2, success_threshold=2)
COUNTING = BreakerPolicy(mode="rate", window_size=10_000, minimum_calls=10_000, failure_rate_threshold=1.0)
WAIT = 30  # seconds any join or barrier may take


def race_admit(url: str, barrier: Barrier, results: multiprocessing.Queue) -> None:
    """Child: wait for all, then ask for a trial slot once (the open wait is over by then)."""
    breaker = CircuitBreaker(redis.Redis.from_url(url), "sonarr", HALF_OPEN, clock=lambda: T0 + 10)
    barrier.wait(timeout=WAIT)
    admission = breaker.admit()
    results.put((admission.allowed, admission.trial))


def record_failures(url: str, barrier: Barrier, count: int) -> None:
    """Child: wait for all, then admit and record ``count`` failures."""
    breaker = CircuitBreaker(redis.Redis.from_url(url), "sonarr", COUNTING)
    barrier.wait(timeout=WAIT)
    for _ in range(count):
        breaker.record(breaker.admit(), success=False, duration=0.01)


def run_children(target, url: str, *args) -> None:
    """Start 8 children on ``target(url, barrier, *args)`` and wait for all to exit cleanly."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    procs = [ctx.Process(target=target, args=(url, barrier, *args)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=WAIT)
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES


@pytest.mark.slow
def test_eight_processes_racing_for_two_trial_slots_get_exactly_two(redis_url):
    """Half-open with half_open_max_calls=2: of 8 simultaneous admits, exactly 2 are trials."""
    breaker = CircuitBreaker(redis.Redis.from_url(redis_url), "sonarr", HALF_OPEN, clock=lambda: T0)
    breaker.record(breaker.admit(), success=False, duration=0.01)
    assert breaker.snapshot().state == "open"
    results = multiprocessing.get_context("spawn").Queue()
    run_children(race_admit, redis_url, results)
    outcomes = [results.get(timeout=WAIT) for _ in range(PROCESSES)]
    assert sorted(outcomes) == [(False, False)] * 6 + [(True, True)] * 2
    snap = breaker.snapshot()
    assert (snap.state, snap.trials_in_flight, snap.transitions) == ("half_open", 2, 2)


@pytest.mark.slow
def test_eight_processes_recording_failures_at_once_lose_none(redis_url):
    """8 x 250 concurrent failures are all in the window afterwards."""
    run_children(record_failures, redis_url, 250)
    snap = CircuitBreaker(redis.Redis.from_url(redis_url), "sonarr", COUNTING).snapshot()
    assert (snap.state, snap.window_calls, snap.window_failures) == ("closed", 2000, 2000)
