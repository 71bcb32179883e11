"""The broker transport keeps its connection parameters after close (the 'hostname' crash of issue 13)."""

from __future__ import annotations

import pytest
from kombu import Connection

from orchestrator.celery_app import make_celery
from orchestrator.config import Settings
from orchestrator.redis_transport import TRANSPORT


def late_channel_connparams(url: str, transport: str | None) -> dict[str, object]:
    """The state of the crash: celery 5.7's consumer, on a lost broker, runs ``connection.collect()``, whose
    close of the consuming channel failed (Redis down) and which then drops the transport's client
    (``Connection._do_close_transport``); the next close of that channel restores its unacknowledged
    messages through a new pool, whose parameters come from ``transport.client``."""
    connection = Connection(url, transport=transport)
    channel = connection.default_channel
    channel._disconnect_pools()  # the channel's close got this far before Redis refused it
    connection._do_close_transport()  # the rest of collect()
    try:
        return channel._connparams()
    finally:
        connection.release()


def test_stock_kombu_loses_the_connection_parameters_on_close(redis_url: str) -> None:
    """The root cause, pinned: kombu 5.7 sets ``transport.client = None`` on close, and a late use of an
    old channel raises AttributeError ('hostname'), which the worker's consumer does not recover from."""
    with pytest.raises(AttributeError, match="hostname"):
        late_channel_connparams(redis_url, None)


def test_our_transport_keeps_them_so_a_late_use_reaches_redis_or_fails_as_a_connection_error(redis_url: str) -> None:
    """With ``orchestrator.redis_transport`` the old channel still knows where Redis is."""
    params = late_channel_connparams(redis_url, TRANSPORT)
    assert params["host"] == "127.0.0.1" and params["port"] == int(redis_url.rsplit(":", 1)[1].split("/")[0])


def test_the_orchestrator_app_uses_it_for_a_plain_redis_broker() -> None:
    """Workers and clients get the transport for ``redis://``; ``rediss://`` keeps kombu's own (TLS untested)."""
    assert make_celery(Settings(broker_url="redis://127.0.0.1:6379/0")).conf.broker_transport == TRANSPORT
    assert make_celery(Settings(broker_url="rediss://127.0.0.1:6379/0")).conf.broker_transport is None
