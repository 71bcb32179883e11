"""kombu's Redis transport, made to survive a Redis restart under a busy worker (``broker_transport``).

Root cause of ``Unrecoverable error: AttributeError("'NoneType' object has no attribute
'hostname'")`` (kombu 5.7, celery 5.7): on a lost broker connection the worker's consumer calls
``connection.collect()`` and then ``connection.close()``. ``collect()`` closes the default channel,
whose ``restore_unacked_once`` fails while Redis is still down (so the messages count as not
restored yet), and then sets ``transport.client = None``. ``close()`` closes the channel again:
the second restore builds a new connection pool from ``transport.client.hostname`` and raises
AttributeError, which is not a connection error, so the worker exits. It needs unacknowledged
messages (acks_late, a call in flight) and Redis still down when the consumer notices: a busy
worker during a restart. Same family as kombu issues #582 and #970.

This transport keeps the connection parameters after close, so that late use of an old channel
(that second restore, a late ack from a task thread) gets a connection error, which the consumer
handles, or reaches the restarted Redis.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

TRANSPORT = "orchestrator.redis_transport:Transport"
"""The ``broker_transport`` setting that selects this transport for ``redis://`` URLs."""


class Transport(kombu_redis.Transport):
    """The Redis transport whose ``client`` (the connection parameters) survives ``Connection.close``."""

    _kept_client: Any = None

    @property
    def client(self) -> Any:
        return self._kept_client

    @client.setter
    def client(self, value: Any) -> None:
        # kombu sets None on close only to break a reference cycle; old channels still read it.
        if value is not None:
            self._kept_client = value
