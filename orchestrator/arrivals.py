"""The outcomes of a batch's calls as they arrive, on one pub/sub connection of the batch's own.

Celery's Redis result consumer subscribes one channel per call and, once that call's result has
arrived, unsubscribes it: a command, and a confirmation to read back, per call, under a lock every
waiter of the process shares. A batch knows all its calls before it sends any: ``Arrivals``
subscribes every channel in a few commands, waits until Redis confirms them (a PING answered after
them), then reads what was stored before that (a result that came first is not missed), and from
then on decodes each message as it comes. Nothing is unsubscribed call by call: the connection is
closed with the batch. A lost connection is opened again the same way, for the calls still pending.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import redis
from celery import states
from redis.client import PubSub

SUBSCRIBE_BATCH = 1000
"""Channels per SUBSCRIBE (and keys per MGET): a 10,000-call batch listens in ten commands."""
CONFIRM_SECONDS = 10.0
"""How long Redis may take to confirm the subscriptions before the connection counts as lost (seconds)."""
_CONFIRMED = "mcpo-arrivals-subscribed"


class Arrivals:
    """Ended calls of a batch, as (task id, Celery's result meta), each once, in the order they arrive."""

    def __init__(self, backend: Any, task_ids: Iterable[str]) -> None:
        self._backend = backend
        self._task_of: dict[bytes, str] = {backend.get_key_for_task(task_id): task_id for task_id in task_ids}
        self._pending = set(self._task_of)
        self._pubsub: PubSub | None = None
        self._ready: deque[tuple[str, dict[str, Any]]] = deque()

    def listen(self) -> None:
        """Subscribe the channel of every call still pending (on a new connection), wait for Redis to confirm,
        then queue what was stored already. Raises redis-py's errors when Redis cannot be reached."""
        self.close()
        pubsub = self._backend.client.pubsub(ignore_subscribe_messages=True)
        self._pubsub = pubsub
        keys = list(self._pending)
        for start in range(0, len(keys), SUBSCRIBE_BATCH):
            pubsub.subscribe(*keys[start:start + SUBSCRIBE_BATCH])
        pubsub.ping(_CONFIRMED)
        confirm_by = time.monotonic() + CONFIRM_SECONDS
        while True:
            message = pubsub.get_message(timeout=max(confirm_by - time.monotonic(), 0.0))
            if message is None:
                if time.monotonic() >= confirm_by:
                    raise redis.TimeoutError(f"Redis did not confirm {len(keys)} subscriptions in {CONFIRM_SECONDS}s")
            elif message["type"] == "pong" and message["data"] == _CONFIRMED.encode():
                break
            else:
                self._take(message["channel"], message["data"])
        for start in range(0, len(keys), SUBSCRIBE_BATCH):
            batch = keys[start:start + SUBSCRIBE_BATCH]
            for key, stored in zip(batch, self._backend.client.mget(batch), strict=True):
                if stored is not None:
                    self._take(key, stored)

    def next(self, timeout: float) -> tuple[str, dict[str, Any]] | None:
        """The next call that ended, waiting at most ``timeout`` seconds; None when none did meanwhile.
        Listens first when not listening (at the start, after ``close``)."""
        if self._ready:
            return self._ready.popleft()
        if self._pubsub is None:
            self.listen()
        assert self._pubsub is not None
        until = time.monotonic() + timeout
        while not self._ready:
            message = self._pubsub.get_message(timeout=max(until - time.monotonic(), 0.0))
            if message is not None:
                if message["type"] == "message":
                    self._take(message["channel"], message["data"])
            elif time.monotonic() >= until:
                return None
        return self._ready.popleft()

    def close(self) -> None:
        """Drop the connection (its subscriptions go with it); ``next`` listens again."""
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):  # already broken: nothing more to release
                pubsub.close()

    def _take(self, key: bytes, payload: bytes) -> None:
        if key not in self._pending:
            return
        meta = self._backend.decode_result(payload)
        if meta.get("status") in states.READY_STATES:
            self._pending.discard(key)
            self._ready.append((self._task_of[key], meta))
