"""Per-process handles on the shared Redis state (breakers, slots, execution markers).

Created lazily, so that a prefork child builds its own connections after the fork.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import redis

from orchestrator.breaker import BreakerBoard
from orchestrator.keys import execution_marker_key
from orchestrator.limits import ConcurrencyLimit
from workers.app import settings


class ExecutionMarkers:
    """Marks a call not safe to repeat as started, once; a second claim means it may have run."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl = ttl_seconds

    def claim(self, task_id: str, worker: str) -> bool:
        """True for the first execution of ``task_id``; False when an earlier one may have run."""
        return bool(self.redis.set(execution_marker_key(task_id), worker, nx=True, ex=self.ttl))


@dataclass(frozen=True)
class WorkerState:
    redis: redis.Redis
    breakers: BreakerBoard
    limits: ConcurrencyLimit
    markers: ExecutionMarkers


@cache
def _for_pid(pid: int) -> WorkerState:
    client = redis.Redis.from_url(settings.broker_url, health_check_interval=30, socket_timeout=5,
                                  socket_connect_timeout=5, retry_on_timeout=True)
    policies = {name: server.breaker for name, server in settings.servers.items()}
    return WorkerState(redis=client, breakers=BreakerBoard(client, policies), limits=ConcurrencyLimit(client),
                       markers=ExecutionMarkers(client, settings.visibility_timeout + int(settings.max_timeout)))


def worker_state() -> WorkerState:
    """This process's handles (built on first use in each process)."""
    return _for_pid(os.getpid())
