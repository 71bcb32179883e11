"""BreakerPolicy at its edges: the smallest legal values, the cross-field rules' exact boundaries, and
the millisecond figures the Lua scripts receive (found by ``make mutate``; see tests/mutation_survivors.md)."""

from __future__ import annotations

import json

import pydantic
import pytest

from orchestrator.breaker_policy import BreakerPolicy


def test_the_lua_scripts_get_every_time_in_milliseconds() -> None:
    """open_seconds, max_open_seconds and the bucket width (window / buckets) arrive in ms."""
    policy = BreakerPolicy(open_seconds=1.5, max_open_seconds=12, window_seconds=2, window_buckets=4)
    argument = json.loads(policy.script_argument())
    assert (argument["open_ms"], argument["max_open_ms"], argument["bucket_ms"]) == (1500, 12000, 500)


def test_a_time_window_has_ten_buckets_and_a_trial_slot_a_thirty_second_lease_by_default() -> None:
    """The resolution and lease the README's breaker section relies on when none are configured."""
    policy = BreakerPolicy()
    assert (policy.window_buckets, policy.trial_lease_seconds) == (10, 30)


@pytest.mark.parametrize("options", [
    {"failure_rate_threshold": 0.01}, {"failure_rate_threshold": 1}, {"window_size": 1}, {"window_buckets": 1},
    {"minimum_calls": 1}, {"slow_call_seconds": 0.5}, {"open_seconds": 30, "max_open_seconds": 30},
    {"mode": "rate", "window_size": 20, "minimum_calls": 20},
    {"mode": "rate", "window_type": "time", "window_size": 5, "minimum_calls": 10},
    {"mode": "consecutive", "window_size": 5, "minimum_calls": 10},
])
def test_the_smallest_legal_values_and_equal_bounds_are_accepted(options: dict[str, object]) -> None:
    """Edges that are allowed: a cap equal to the wait, a count window exactly as large as its minimum, and
    minimum_calls over window_size where no count window is used."""
    BreakerPolicy(**options)


@pytest.mark.parametrize(("field", "value"), [
    ("failure_rate_threshold", 0), ("window_size", 0), ("window_buckets", 0), ("minimum_calls", 0),
])
def test_zero_is_refused_where_a_count_or_rate_must_be_positive(field: str, value: int) -> None:
    """No empty window, no zero-bucket window, no trip on zero calls, no zero failure rate."""
    with pytest.raises(pydantic.ValidationError, match=field):
        BreakerPolicy(**{field: value})
