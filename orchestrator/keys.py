"""Every Redis key and channel the orchestrator uses, in one place (the whole footprint).

All keys share ``PREFIX`` so an operator can find (and a test can flush) them at a glance.
"""

from __future__ import annotations

from typing import Any

PREFIX = "mcpo"


def text(value: Any) -> str:
    """A value read from these keys as text (redis-py returns bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


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


def execution_marker_key(task_id: str) -> str:
    """Set (NX) before a call that is not safe to repeat runs; a redelivery finding it does not run again."""
    return f"{PREFIX}:exec:{task_id}"


def revoked_key(task_id: str) -> str:
    """Set by a client that gave up on a call of a batch (fail fast, batch deadline, Ctrl-C); a chunk's
    worker checks it just before starting the call, and does not start it when it is set."""
    return f"{PREFIX}:revoked:{task_id}"


UNACKED_KEY = "unacked"
"""kombu's hash of delivered, not yet acknowledged messages: field = delivery tag, value = the message
(kombu's name, unprefixed). A worker killed with messages in hand leaves them here."""
UNACKED_INDEX_KEY = "unacked_index"
"""kombu's sorted set of the same delivery tags, score = delivery time (epoch seconds)."""

EPOCH_KEY = f"{PREFIX}:epoch"
"""A random value clients set once (NX, no expiry): when it changes, Redis lost its data (restarted without
persistence), and with it the execution markers of calls enqueued before."""


def health_key(server: str) -> str:
    """Hash of one server's last health checks: status, consecutive failures, times, latency, versions."""
    return f"{PREFIX}:health:{server}"


def tools_key(server: str) -> str:
    """Hash of one server's tool catalog: field = tool name, value = the tool's wire JSON (schema, annotations)."""
    return f"{PREFIX}:tools:{server}"


def tools_meta_key(server: str) -> str:
    """Hash describing the catalog of one server: ``updated_at``, ``digest``, ``count``, ``source``."""
    return f"{PREFIX}:tools:{server}:meta"


def consumers_key(queue: str) -> str:
    """Sorted set of the workers consuming ``queue``: member = worker hostname, score = heartbeat expiry (s)."""
    return f"{PREFIX}:consumers:{queue}"


REDBEAT_PREFIX = f"{PREFIX}:redbeat:"
"""RedBeat's keys: ``mcpo:redbeat::schedule`` (zset), ``::statics``, ``::lock``, one hash per entry."""
REDBEAT_LOCK_KEY = f"{REDBEAT_PREFIX}:lock"
"""The lock that lets one beat schedule; a second beat waits on it (failover after its timeout)."""


def call_stats_key(server: str) -> str:
    """Hash of one server's call counters, written by workers: field = ``<tool>|<counter>`` (calls,
    failures, retries, duration sum, histogram bucket ``b<i>``, ``error:<type>``)."""
    return f"{PREFIX}:stats:{server}"
