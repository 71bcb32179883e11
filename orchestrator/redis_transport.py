"""kombu's Redis and Sentinel transports, made to survive a lost Redis under a busy worker (``broker_transport``).

Root cause of ``Unrecoverable error: AttributeError("'NoneType' object has no attribute
'hostname'")`` (kombu 5.7, celery 5.7): on a lost broker connection the worker's consumer calls
``connection.collect()`` and then ``connection.close()``. ``collect()`` closes the default channel,
whose ``restore_unacked_once`` fails while Redis is still down (so the messages count as not
restored yet), and then sets ``transport.client = None``. ``close()`` closes the channel again:
the second restore builds a new connection pool from ``transport.client.hostname`` and raises
AttributeError, which is not a connection error, so the worker exits. It needs unacknowledged
messages (acks_late, a call in flight) and Redis still down when the consumer notices: a busy
worker during a restart. Same family as kombu issues #582 and #970. A Sentinel failover is the same
event for the Sentinel transport (the killed master refuses the restore); with redis-py 8, whose
connections retry before raising, the old channel's second close comes often enough to kill a
threads-pool worker in most failovers (tests/test_chaos.py, Sentinel scenario).

These transports keep the connection parameters after close, so that late use of an old channel
(that second restore, a late ack from a task thread) gets a connection error, which the consumer
handles, or reaches the restarted Redis.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

TRANSPORT = "orchestrator.redis_transport:Transport"
"""The ``broker_transport`` setting that selects the Redis transport for ``redis://`` URLs."""
SENTINEL_TRANSPORT = "orchestrator.redis_transport:SentinelTransport"
"""The same for ``sentinel://`` URLs."""


class KeptClient:
    """A transport whose ``client`` (the connection parameters) survives ``Connection.close``."""

    _kept_client: Any = None

    @property
    def client(self) -> Any:
        return self._kept_client

    @client.setter
    def client(self, value: Any) -> None:
        # kombu sets None on close only to break a reference cycle; old channels still read it.
        if value is not None:
            self._kept_client = value


class Transport(KeptClient, kombu_redis.Transport):
    """kombu's Redis transport, its connection parameters kept after close."""


class SentinelTransport(KeptClient, kombu_redis.SentinelTransport):
    """kombu's Sentinel transport, its connection parameters (the sentinels, the master's name) kept after close."""


def transport_for(broker_url: str) -> str | None:
    """The ``broker_transport`` for a broker URL: ours for plain Redis and Sentinel, kombu's own otherwise
    (``rediss://`` is untested with it, RabbitMQ and ``memory://`` have no such channel)."""
    if broker_url.startswith("redis://"):
        return TRANSPORT
    if broker_url.startswith("sentinel://"):
        return SENTINEL_TRANSPORT
    return None
