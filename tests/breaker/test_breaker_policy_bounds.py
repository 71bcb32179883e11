"""BreakerPolicy at its edges: the smallest legal values, the cross-field rules' exact boundaries, and
the millisecond figures the Lua scripts receive (found by ``make mutate``; see tests/mutation_survivors.md)."""

from __future__ import annotations

import json

import pydantic
import pytest

from orchestrator.breaker.policy import BreakerPolicy


def test_the_lua_scripts_get_every_time_in_whole_milliseconds() -> None:
    """open_seconds, max_open_seconds and the bucket width (window / buckets, rounded down) arrive as integer ms."""
    policy = BreakerPolicy(open_seconds=1.5, max_open_seconds=12, window_seconds=10, window_buckets=3)
    argument = json.loads(policy.script_argument())
    assert (argument["open_ms"], argument["max_open_ms"], argument["bucket_ms"]) == (1500, 12000, 3333)
    assert isinstance(argument["bucket_ms"], int)


def test_the_rate_mode_and_lease_defaults_are_the_documented_ones() -> None:
    """Rate 0.5 over the last 100 calls or 60 s in 10 buckets, at least 10 calls; a trial slot leased 30 s."""
    policy = BreakerPolicy()
    assert (policy.failure_rate_threshold, policy.window_size, policy.window_seconds, policy.window_buckets,
            policy.minimum_calls, policy.trial_lease_seconds) == (0.5, 100, 60, 10, 10, 30)


@pytest.mark.parametrize("options", [
    {"failure_rate_threshold": 0.01}, {"failure_rate_threshold": 1}, {"window_size": 1}, {"window_buckets": 1},
    {"minimum_calls": 1}, {"slow_call_seconds": 0.5}, {"open_seconds": 30, "max_open_seconds": 30},
    {"failure_threshold": 1}, {"success_threshold": 1}, {"open_backoff_multiplier": 1}, {"half_open_max_calls": 1},
    {"open_seconds": 0.5, "max_open_seconds": 0.5}, {"trial_lease_seconds": 0.5},
    {"window_seconds": 0.01, "window_buckets": 10},
    {"mode": "rate", "window_size": 20, "minimum_calls": 20}, {"mode": "rate", "window_size": 20, "minimum_calls": 5},
    {"mode": "rate", "window_type": "time", "window_size": 5, "minimum_calls": 10},
    {"mode": "consecutive", "window_size": 5, "minimum_calls": 10},
])
def test_the_smallest_legal_values_and_equal_bounds_are_accepted(options: dict[str, object]) -> None:
    """Edges that are allowed: a cap equal to the wait, a count window exactly as large as its minimum, and
    minimum_calls over window_size where no count window is used."""
    BreakerPolicy(**options)


@pytest.mark.parametrize(("field", "value"), [
    ("failure_rate_threshold", 0), ("window_size", 0), ("window_buckets", 0), ("minimum_calls", 0),
    ("success_threshold", 0), ("open_seconds", 0), ("max_open_seconds", 0), ("trial_lease_seconds", 0),
])
def test_zero_is_refused_where_a_count_a_rate_or_a_time_must_be_positive(field: str, value: int) -> None:
    """No empty window, no trip on zero calls or a zero rate, no zero-length wait or lease, no close on no success."""
    with pytest.raises(pydantic.ValidationError, match=field):
        BreakerPolicy(**{field: value})


def test_a_count_window_that_cannot_trip_is_refused_also_when_read_from_json() -> None:
    """Options parsed from a file (new string objects, not the module's literals) still meet the cross-field rule."""
    with pytest.raises(pydantic.ValidationError, match="minimum_calls"):
        BreakerPolicy.model_validate_json(
            '{"mode": "rate", "window_type": "count", "window_size": 5, "minimum_calls": 10}')


def test_a_success_at_or_under_the_slow_call_limit_is_not_a_failure() -> None:
    """Only a success slower than slow_call_seconds counts against the server."""
    policy = BreakerPolicy(slow_call_seconds=2)
    assert [policy.counts_as_failure(True, duration) for duration in (1.0, 2.0, 2.5)] == [False, False, True]


def test_a_time_bucket_just_under_one_millisecond_is_refused() -> None:
    """10 buckets over 9.995 ms leave each bucket under 1 ms: refused, naming window_buckets."""
    with pytest.raises(pydantic.ValidationError, match="window_buckets"):
        BreakerPolicy(window_seconds=0.009995, window_buckets=10)
