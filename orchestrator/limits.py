"""A per-server concurrency cap that holds across every worker (a Redis lease semaphore).

A fragile upstream such as SABnzbd must never see more than K calls at once from the whole
fleet. Each slot is a lease in a sorted set (``keys.limit_key``), taken by one Lua script and
released with ZREM; a worker killed mid-call frees its slot when the lease ends.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import redis

from orchestrator.backoff import jittered_backoff
from orchestrator.errors import DeadlineExceeded
from orchestrator.keys import limit_key

_ACQUIRE = (Path(__file__).with_name("lua") / "limit_acquire.lua").read_text()
POLL_MIN_SECONDS = 0.002
"""Shortest wait between two attempts to take a busy slot (seconds); grows to the max."""
POLL_MAX_SECONDS = 0.05
"""Longest wait between two attempts to take a busy slot (seconds)."""
LEASE_MARGIN_SECONDS = 5.0
"""A slot's lease outlives the call's deadline by this much before it counts as abandoned."""


class ConcurrencyLimit:
    """Fleet-wide slots of one Redis: a call takes one (``try_acquire``, else ``wait_for_slot``) and releases it."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._acquire = client.register_script(_ACQUIRE)

    def try_acquire(self, server: str, limit: int, holder: str, lease_until: float) -> bool:
        now_ms = int(time.time() * 1000)
        return bool(self._acquire(keys=[limit_key(server)],
                                  args=[now_ms, limit, holder, int(lease_until * 1000)]))

    def release(self, server: str, holder: str) -> None:
        self.redis.zrem(limit_key(server), holder)

    async def wait_for_slot(self, server: str, limit: int, holder: str, deadline: float) -> None:
        """After a ``try_acquire`` found no free slot: take one as soon as one frees, polling until ``deadline``
        (epoch seconds). For a waiter on an event loop, which must not block on Redis: each try runs on a thread."""
        attempt = 0
        while True:
            attempt += 1
            wait = jittered_backoff(attempt, POLL_MIN_SECONDS, POLL_MAX_SECONDS)
            if time.time() + wait > deadline:
                raise DeadlineExceeded(f"no free slot on {server} (max {limit} concurrent calls) before the deadline",
                                       server=server, deadline=deadline)
            await asyncio.sleep(wait)
            if await asyncio.to_thread(self.try_acquire, server, limit, holder, deadline + LEASE_MARGIN_SECONDS):
                return
