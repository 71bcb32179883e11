"""Every Redis key and channel the orchestrator uses, in one place (the whole footprint).

All keys share ``PREFIX`` so an operator can find (and a test can flush) them at a glance.
"""

from __future__ import annotations

PREFIX = "mcpo"


def queue_name(server: str) -> str:
    """Celery queue of one MCP server."""
    return f"mcp.{server}"


BREAKER_EVENTS_CHANNEL = f"{PREFIX}:breaker:events"
"""Pub/sub channel on which the breaker scripts publish every state transition as JSON."""


def breaker_key(server: str) -> str:
    """Hash holding one server's breaker state, counters and generation."""
    return f"{PREFIX}:breaker:{server}"


def breaker_trials_key(server: str) -> str:
    """Sorted set of half-open trial leases: member = trial id, score = lease expiry (ms)."""
    return f"{PREFIX}:breaker:{server}:trials"


def breaker_calls_key(server: str) -> str:
    """List of the last N outcomes ('1' failure, '0' success) for a count-based rate window."""
    return f"{PREFIX}:breaker:{server}:calls"


def breaker_buckets_key(server: str) -> str:
    """Hash of time-window buckets: field '<bucket>:n' = calls, '<bucket>:f' = failures."""
    return f"{PREFIX}:breaker:{server}:buckets"


def limit_key(server: str) -> str:
    """Sorted set of the calls running on one server fleet-wide: member = call id, score = lease end (ms)."""
    return f"{PREFIX}:limit:{server}"
