"""When a server's circuit breaker trips, how long it stays open and how it closes again.

Every default is a named constant below, with its meaning and unit (like rq's ``defaults.py``).
A ``BreakerPolicy`` is a frozen value object: it validates when built, refuses unknown
options, and its errors name the bad field.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_MODE: Literal["consecutive", "rate"] = "consecutive"
"""How failures trip the breaker: a run of consecutive failures, or a failure rate over a window."""

DEFAULT_FAILURE_THRESHOLD = 5
"""consecutive mode: this many failures in a row (in closed state) open the breaker."""

DEFAULT_OPEN_SECONDS = 60.0
"""Seconds the breaker stays open after its first trip before admitting half-open trials."""

DEFAULT_SUCCESS_THRESHOLD = 3
"""Trial successes in half-open needed to close the breaker again."""

DEFAULT_FAILURE_RATE_THRESHOLD = 0.5
"""rate mode: the breaker opens when failures / calls in the window reach this fraction."""

DEFAULT_WINDOW_TYPE: Literal["count", "time"] = "count"
"""rate mode: the window is the last ``window_size`` calls, or the last ``window_seconds``."""

DEFAULT_WINDOW_SIZE = 100
"""rate mode, count window: number of most recent calls considered."""

DEFAULT_WINDOW_SECONDS = 60.0
"""rate mode, time window: seconds of history considered."""

DEFAULT_WINDOW_BUCKETS = 10
"""rate mode, time window: buckets the window is split into (its time resolution)."""

DEFAULT_MINIMUM_CALLS = 10
"""rate mode: no trip until the window holds at least this many calls."""

DEFAULT_SLOW_CALL_SECONDS: float | None = None
"""A successful call slower than this (seconds) counts as a failure; None disables it."""

DEFAULT_OPEN_BACKOFF_MULTIPLIER = 2.0
"""Each trip in a row (without closing in between) multiplies the open wait by this."""

DEFAULT_MAX_OPEN_SECONDS = 600.0
"""Cap on the grown open wait, in seconds."""

DEFAULT_HALF_OPEN_MAX_CALLS = 1
"""Trial calls admitted at once in half-open, across all workers."""

DEFAULT_TRIAL_LEASE_SECONDS = 30.0
"""A trial slot not released by a recorded outcome within this many seconds is reclaimed."""

DEFAULT_ON_REDIS_ERROR: Literal["fail_open", "fail_closed"] = "fail_open"
"""When Redis is unreachable: admit every call (fail_open) or refuse every call (fail_closed)."""

DEFAULT_RECOVER_ON_HEALTH = True
"""A health probe that reaches the upstream moves an open breaker to half-open at once."""

DEFAULT_COUNT_FAILED_HEALTH_CHECKS = False
"""A failed health probe while the breaker is closed counts as one failed call."""

DEFAULT_COUNT: Literal["calls", "attempts"] = "calls"
"""What one admission and one recorded outcome stand for: a whole call with its retries inside
(``calls``, the unit a user sees), or each attempt of it (``attempts``)."""


class BreakerPolicy(BaseModel):
    """Trip, wait and close rules of one server's breaker (see the module constants for units)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["consecutive", "rate"] = DEFAULT_MODE
    failure_threshold: int = Field(DEFAULT_FAILURE_THRESHOLD, ge=1)
    open_seconds: float = Field(DEFAULT_OPEN_SECONDS, gt=0)
    success_threshold: int = Field(DEFAULT_SUCCESS_THRESHOLD, ge=1)
    failure_rate_threshold: float = Field(DEFAULT_FAILURE_RATE_THRESHOLD, gt=0, le=1)
    window_type: Literal["count", "time"] = DEFAULT_WINDOW_TYPE
    window_size: int = Field(DEFAULT_WINDOW_SIZE, ge=1)
    window_seconds: float = Field(DEFAULT_WINDOW_SECONDS, gt=0)
    window_buckets: int = Field(DEFAULT_WINDOW_BUCKETS, ge=1)
    minimum_calls: int = Field(DEFAULT_MINIMUM_CALLS, ge=1)
    slow_call_seconds: float | None = Field(DEFAULT_SLOW_CALL_SECONDS, gt=0)
    open_backoff_multiplier: float = Field(DEFAULT_OPEN_BACKOFF_MULTIPLIER, ge=1)
    max_open_seconds: float = Field(DEFAULT_MAX_OPEN_SECONDS, gt=0)
    half_open_max_calls: int = Field(DEFAULT_HALF_OPEN_MAX_CALLS, ge=1)
    trial_lease_seconds: float = Field(DEFAULT_TRIAL_LEASE_SECONDS, gt=0)
    on_redis_error: Literal["fail_open", "fail_closed"] = DEFAULT_ON_REDIS_ERROR
    count: Literal["calls", "attempts"] = DEFAULT_COUNT
    recover_on_health: bool = DEFAULT_RECOVER_ON_HEALTH
    count_failed_health_checks: bool = DEFAULT_COUNT_FAILED_HEALTH_CHECKS

    @model_validator(mode="after")
    def _check_consistency(self) -> BreakerPolicy:
        if self.max_open_seconds < self.open_seconds:
            raise ValueError("max_open_seconds must be >= open_seconds")
        if self.window_seconds * 1000 < self.window_buckets:
            raise ValueError("window_buckets must leave each bucket at least 1 ms of window_seconds")
        if self.mode == "rate" and self.window_type == "count" and self.minimum_calls > self.window_size:
            raise ValueError("minimum_calls must be <= window_size, or a count window can never trip")
        return self

    def open_wait_seconds(self, level: int) -> float:
        """Open wait after the ``level``-th trip in a row (1 = first trip)."""
        return min(self.open_seconds * self.open_backoff_multiplier ** (level - 1), self.max_open_seconds)

    def counts_as_failure(self, success: bool, duration: float) -> bool:
        """A failed call, or a successful one slower than ``slow_call_seconds``."""
        slow = self.slow_call_seconds is not None and duration > self.slow_call_seconds
        return not success or slow

    def script_argument(self) -> str:
        """The policy as the JSON argument ``breaker/lua/record.lua`` reads (times in ms)."""
        return json.dumps({
            "mode": self.mode,
            "failure_threshold": self.failure_threshold,
            "success_threshold": self.success_threshold,
            "open_ms": round(self.open_seconds * 1000),
            "backoff": self.open_backoff_multiplier,
            "max_open_ms": round(self.max_open_seconds * 1000),
            "rate": self.failure_rate_threshold,
            "window_type": self.window_type,
            "window_size": self.window_size,
            "bucket_ms": round(self.window_seconds * 1000) // self.window_buckets,
            "buckets": self.window_buckets,
            "minimum_calls": self.minimum_calls,
        })
