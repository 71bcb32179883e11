"""Per-process handles on the shared Redis state (concurrency slots), created on first use.

Lazily, so that a prefork child builds its own connections after the fork.
"""

from __future__ import annotations

import os
from functools import cache

import redis

from orchestrator.limits import ConcurrencyLimit
from workers.app import settings


@cache
def _for_pid(pid: int) -> tuple[redis.Redis, ConcurrencyLimit]:
    client = redis.Redis.from_url(settings.broker_url, health_check_interval=30)
    return client, ConcurrencyLimit(client)


def limits() -> ConcurrencyLimit:
    """This process's fleet-wide concurrency slots."""
    return _for_pid(os.getpid())[1]
