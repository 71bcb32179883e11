"""The broker transports keep their connection parameters after close (the 'hostname' crash of issue 13,
and of a Sentinel failover under redis-py 8)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection

from bench.brokers import MASTER_NAME, SentinelGroup
from orchestrator.celery_app import make_celery
from orchestrator.config import RedisSentinel, Settings
from orchestrator.redis_transport import SENTINEL_TRANSPORT, TRANSPORT


def late_channel_pool(url: str, transport: str | None, **options: Any) -> redis.ConnectionPool:
    """The state of the crash: celery 5.7's consumer, on a lost broker, runs ``connection.collect()``, whose
    close of the consuming channel failed (Redis down) and which then drops the transport's client
    (``Connection._do_close_transport``); the next close of that channel restores its unacknowledged
    messages through a new pool, whose parameters come from ``transport.client``."""
    connection = Connection(url, transport=transport, transport_options=options)
    channel = connection.default_channel
    channel._disconnect_pools()  # the channel's close got this far before Redis refused it
    connection._do_close_transport()  # the rest of collect()
    try:
        return channel.pool  # what the late restore (or a late ack from a task thread) builds
    finally:
        connection.release()


def test_stock_kombu_loses_the_connection_parameters_on_close(redis_url: str) -> None:
    """The root cause, pinned: kombu 5.7 sets ``transport.client = None`` on close, and a late use of an
    old channel raises AttributeError ('hostname'), which the worker's consumer does not recover from."""
    with pytest.raises(AttributeError, match="hostname"):
        late_channel_pool(redis_url, None)


def test_our_transport_keeps_them_so_a_late_use_reaches_redis_or_fails_as_a_connection_error(redis_url: str) -> None:
    """With ``orchestrator.redis_transport`` the old channel still knows where Redis is."""
    pool = late_channel_pool(redis_url, TRANSPORT)
    assert redis.Redis(connection_pool=pool).ping()
    pool.disconnect()


@pytest.fixture(scope="module")
def sentinel_url() -> Iterator[str]:
    group = SentinelGroup()
    try:
        group.start()
        yield f"sentinel://{group.sentinels[0]}/0"
    finally:
        group.cleanup()


@pytest.mark.slow
def test_stock_kombu_sentinel_loses_them_too(sentinel_url: str) -> None:
    """The same crash after a Sentinel failover (tests/test_chaos.py killed its threads-pool worker in
    most runs under redis-py 8): kombu's Sentinel channel also reads ``transport.client`` late."""
    with pytest.raises(AttributeError, match="hostname"):
        late_channel_pool(sentinel_url, None, master_name=MASTER_NAME)


@pytest.mark.slow
def test_our_sentinel_transport_keeps_the_sentinels_and_the_master_name(sentinel_url: str) -> None:
    """A late use of an old Sentinel channel still asks the same sentinels for the same master."""
    pool = late_channel_pool(sentinel_url, SENTINEL_TRANSPORT, master_name=MASTER_NAME)
    assert pool.service_name == MASTER_NAME
    assert redis.Redis(connection_pool=pool).ping()
    pool.disconnect()


def test_the_orchestrator_app_uses_them_for_redis_and_sentinel_brokers() -> None:
    """Workers and clients get ours for ``redis://`` and Sentinel; ``rediss://`` keeps kombu's own (TLS
    untested), RabbitMQ needs none."""
    assert make_celery(Settings(broker_url="redis://127.0.0.1:6379/0")).conf.broker_transport == TRANSPORT
    sentinel = RedisSentinel(sentinels=["127.0.0.1:26379"], master_name=MASTER_NAME)
    assert make_celery(Settings(redis_sentinel=sentinel)).conf.broker_transport == SENTINEL_TRANSPORT
    assert make_celery(Settings(broker_url="rediss://127.0.0.1:6379/0")).conf.broker_transport is None
    amqp = Settings(broker_url="amqp://guest:guest@127.0.0.1//", result_backend="redis://127.0.0.1:6379/0")
    assert make_celery(amqp).conf.broker_transport is None
