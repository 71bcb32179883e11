"""Every Redis client the project makes, and Celery's and RedBeat's Redis settings, built from one
place so that one setting (``redis_sentinel``) moves all of them behind Sentinel.

Without Sentinel a client is ``Redis.from_url(settings.state_url)``. With it, a client is
``Sentinel(...).master_for(master_name)``: each new connection asks the sentinels for the current
master, and a connection to a master that was demoted is dropped, so a failover needs no restart.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis import Redis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel

from orchestrator.config import RedisSentinel, Settings

SENTINEL_SOCKET_TIMEOUT = 1.0
"""Seconds to wait on one sentinel before asking the next (a dead sentinel must not stall discovery)."""


def _sentinel_kwargs(sentinel: RedisSentinel) -> dict[str, Any]:
    """How to talk to the sentinels themselves (their password is not the master's)."""
    kwargs: dict[str, Any] = {"socket_timeout": SENTINEL_SOCKET_TIMEOUT,
                              "socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT}
    password = sentinel.resolved_sentinel_password()
    if password:
        kwargs["password"] = password
    return kwargs


def connect(settings: Settings, **options: Any) -> Redis:
    """A client of the project's shared-state Redis (``options`` go to redis-py: timeouts, retries)."""
    sentinel = settings.redis_sentinel
    if sentinel is None:
        return Redis.from_url(settings.state_url, **options)
    manager = Sentinel(sentinel.addresses(), sentinel_kwargs=_sentinel_kwargs(sentinel))
    return manager.master_for(sentinel.master_name, db=sentinel.db, password=sentinel.resolved_password(),
                              **options)


def connect_results_async(settings: Settings, **options: Any) -> aioredis.Redis:
    """An asyncio client of the result backend's Redis (the async client waits for results on it)."""
    return _connect_async(settings, settings.backend_url, **options)


def connect_broker_async(settings: Settings, **options: Any) -> aioredis.Redis:
    """An asyncio client of the broker's Redis (the async client publishes calls on it); not for RabbitMQ."""
    return _connect_async(settings, settings.broker, **options)


def _connect_async(settings: Settings, url: str, **options: Any) -> aioredis.Redis:
    """``url``'s Redis, or the sentinels' master when there are sentinels (broker and results are both on it)."""
    sentinel = settings.redis_sentinel
    if sentinel is None:
        return aioredis.Redis.from_url(url, **options)
    manager = AsyncSentinel(sentinel.addresses(), sentinel_kwargs=_sentinel_kwargs(sentinel))
    return manager.master_for(sentinel.master_name, db=sentinel.db, password=sentinel.resolved_password(),
                              **options)


def transport_options(settings: Settings) -> dict[str, Any]:
    """What Celery's broker and result backend need besides the URL (``master_name`` with Sentinel)."""
    sentinel = settings.redis_sentinel
    if sentinel is None:
        return {}
    return {"master_name": sentinel.master_name, "sentinel_kwargs": _sentinel_kwargs(sentinel)}


def redbeat_client(settings: Settings, retry_seconds: float) -> Redis:
    """RedBeat's client, set on the beat app so that RedBeat does not build its own: it follows Sentinel
    like every other client, and redis-py retries connection errors for about ``retry_seconds``, because
    RedBeat does not retry its schedule lock's commands (extend, release) and beat would stop on the
    first refused connection of a Redis restart or a failover."""
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=max(1, int(retry_seconds)))
    return connect(settings, decode_responses=True, socket_timeout=5, socket_connect_timeout=2, retry=retry,
                   retry_on_error=[RedisConnectionError, RedisTimeoutError])


def display_url(settings: Settings) -> str:
    """The shared-state Redis as one URL for banners (which parse it): the first sentinel when there are
    sentinels, never a password."""
    sentinel = settings.redis_sentinel
    if sentinel is None:
        return settings.state_url
    return f"redis-sentinel://{sentinel.sentinels[0]}/{sentinel.db}"
