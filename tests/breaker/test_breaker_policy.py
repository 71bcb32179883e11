"""BreakerPolicy: documented defaults, validation that names the field, frozen values."""

from __future__ import annotations

import pydantic
import pytest

from orchestrator.breaker.policy import BreakerPolicy


def test_the_defaults_are_the_seed_model():
    """5 consecutive failures, 60 s open, 3 trial successes, 1 trial at a time, fail open."""
    policy = BreakerPolicy()
    assert (policy.mode, policy.failure_threshold, policy.open_seconds, policy.success_threshold,
            policy.half_open_max_calls, policy.on_redis_error) == ("consecutive", 5, 60, 3, 1, "fail_open")


@pytest.mark.parametrize(("field", "value"), [
    ("failure_threshold", 0), ("open_seconds", -1), ("failure_rate_threshold", 1.5),
    ("half_open_max_calls", 0), ("open_backoff_multiplier", 0.5), ("on_redis_error", "ignore"),
    ("mode", "sometimes"), ("slow_call_seconds", 0),
])
def test_a_bad_value_is_refused_with_the_field_name(field, value):
    """The validation error names the offending field."""
    with pytest.raises(pydantic.ValidationError, match=field):
        BreakerPolicy(**{field: value})


def test_a_misspelt_option_is_refused():
    """Unknown option names are errors, not silently ignored."""
    with pytest.raises(pydantic.ValidationError, match="failure_treshold"):
        BreakerPolicy(failure_treshold=3)


@pytest.mark.parametrize(("options", "field"), [
    ({"open_seconds": 120, "max_open_seconds": 60}, "max_open_seconds"),
    ({"mode": "rate", "window_size": 5, "minimum_calls": 10}, "minimum_calls"),
    ({"window_seconds": 0.005, "window_buckets": 10}, "window_buckets"),
])
def test_inconsistent_options_are_refused_naming_the_field(options, field):
    """Cross-field rules start their message with the field to fix."""
    with pytest.raises(pydantic.ValidationError, match=field):
        BreakerPolicy(**options)


def test_a_policy_is_frozen():
    """Policies are shared values: they cannot be changed after they are built."""
    with pytest.raises(pydantic.ValidationError):
        BreakerPolicy().failure_threshold = 1


def test_the_open_wait_grows_by_the_multiplier_up_to_the_cap():
    """60, 120, 240, 480, then the 600 s cap."""
    policy = BreakerPolicy()
    assert [policy.open_wait_seconds(level) for level in range(1, 7)] == [60, 120, 240, 480, 600, 600]


def test_only_failures_and_slow_successes_count_against_the_server():
    """The caller decides success; slow_call_seconds turns a slow success into a failure."""
    policy = BreakerPolicy(slow_call_seconds=2)
    assert policy.counts_as_failure(False, 0.1)
    assert policy.counts_as_failure(True, 2.5)
    assert not policy.counts_as_failure(True, 2.0)
    assert not BreakerPolicy().counts_as_failure(True, 1e6)
