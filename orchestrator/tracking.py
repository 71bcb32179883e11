"""Reads answered from this process's memory, kept exact by Redis itself (client-side caching).

One dedicated RESP3 connection has ``CLIENT TRACKING ON``: Redis remembers each key read on it
and, when any client anywhere changes that key (a write, an expiry, an eviction, a FLUSHDB),
pushes an invalidation down that same connection, in order with the replies. Every read first
drains the pushes already on the socket (a poll that does not wait), then answers from memory
or, on a miss, reads the key on the tracked connection (which tracks it again). So an answer is
never older than the pushes still crossing the socket when the read began: whatever Redis had
changed one socket hop earlier is seen. Used for the breaker's state, the tool catalog and the
data epoch, which change rarely and are read on every call.

The connection is this object's own (never the pool's), so nothing untracked fills the cache:
every (re)connect turns tracking on and empties the cache first (invalidations sent while we
were away are lost), and any error on it empties the cache and drops the connection. After a
fork the child starts with an empty cache and its own connection.

Why not redis-py's ``cache_config``: it needs Redis >= 7.4 (this project runs 7.0), caches
neither pipelines nor scripts, and keeps one tracked connection per pooled connection.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.connection import AbstractConnection

__all__ = ["TrackedReads"]

log = logging.getLogger("orchestrator.tracking")

MAX_ENTRIES = 4096
"""Cached replies kept per process; past it the cache is emptied (Redis keeps tracking, harmlessly)."""

LIVENESS_SECONDS = 1.0
"""A read more than this long after the tracked connection last heard from Redis PINGs it first: a
Redis that vanished without closing the socket (host lost, network cut) stops answers from memory
within this plus the socket timeout, instead of never."""

Command = tuple[Any, ...]
"""A read-only command whose second item is its only key, e.g. ``("HMGET", key, "state", "gen")``."""


class TrackedReads:
    """Read-only single-key commands answered from memory until Redis says the key changed."""

    def __init__(self, client: redis.Redis, *, max_entries: int = MAX_ENTRIES,
                 liveness_seconds: float = LIVENESS_SECONDS) -> None:
        self._pool = client.connection_pool
        self._max_entries = max_entries
        self._liveness_seconds = liveness_seconds
        self._heard_at = 0.0
        self._lock = threading.Lock()
        self._cache: dict[Any, dict[Command, Any]] = {}
        self._size = 0
        self._conn: AbstractConnection | None = None
        self._pid = os.getpid()

    def read(self, command: Command) -> Any:
        """The reply to ``command``, from memory when Redis has not changed its key since it was read."""
        return self.read_many([command])[0]

    def read_many(self, commands: Sequence[Command]) -> list[Any]:
        """Replies to ``commands`` in order; the misses are read in one round trip on the tracked connection.

        A lost connection is replaced once (the cache emptied); then redis-py's ``ConnectionError`` or
        ``TimeoutError`` is raised, the cache empty and the connection dropped."""
        with self._lock:
            for retry in (True, False):
                try:
                    return self._read_many(commands)
                except redis.ConnectionError:  # e.g. Redis restarted: once more on a fresh, tracked connection
                    self._drop()
                    if not retry:
                        raise
                except Exception:
                    self._drop()
                    raise
            raise AssertionError("unreachable")

    def forget(self, key: Any) -> None:
        """Drop what is cached for ``key``: this process just changed it (its own push may still be on the way)."""
        with self._lock:
            self._size -= len(self._cache.pop(_key(key), ()))

    def close(self) -> None:
        """Close the tracked connection and empty the cache."""
        with self._lock:
            self._drop()

    # -- internals (under the lock) ------------------------------------------------------------
    def _read_many(self, commands: Sequence[Command]) -> list[Any]:
        conn = self._connection()
        while conn.can_read(0):  # pushes already here: apply them before answering
            conn.read_response(push_request=True)
        if time.monotonic() - self._heard_at > self._liveness_seconds:
            conn.send_command("PING")
            conn.read_response()  # the pushes before the reply are applied on the way
            self._heard_at = time.monotonic()
        replies: list[Any] = [None] * len(commands)
        missing = []
        for index, command in enumerate(commands):
            entries = self._cache.get(_key(command[1]))
            if entries is not None and command in entries:
                replies[index] = entries[command]
            else:
                missing.append(index)
        if not missing:
            return replies
        conn.send_packed_command(conn.pack_commands([commands[i] for i in missing]))
        for index in missing:  # pushes met on the way are applied by the handler, before these replies
            reply = conn.read_response()
            if isinstance(reply, redis.ResponseError):
                raise reply
            replies[index] = reply
            self._store(commands[index], reply)
        self._heard_at = time.monotonic()
        return replies

    def _store(self, command: Command, reply: Any) -> None:
        if self._size >= self._max_entries:
            self._cache.clear()
            self._size = 0
        entries = self._cache.setdefault(_key(command[1]), {})
        if command not in entries:
            self._size += 1
        entries[command] = reply

    def _connection(self) -> AbstractConnection:
        if self._pid != os.getpid():  # a forked child: the parent's socket is not ours to use
            self._conn, self._pid = None, os.getpid()
            self._flush()
        if self._conn is None:
            kwargs = {**self._pool.connection_kwargs, "protocol": 3}
            conn = self._pool.connection_class(**kwargs)
            conn.register_connect_callback(self._on_connect)
            self._conn = conn
            conn.connect()
        return self._conn

    def _on_connect(self, conn: AbstractConnection) -> None:
        """Every (re)connect: invalidations sent meanwhile are lost, so start empty, then track."""
        self._flush()
        conn.send_command("CLIENT", "TRACKING", "ON")
        reply = conn.read_response()
        if isinstance(reply, redis.ResponseError):
            raise reply
        conn._parser.set_invalidation_push_handler(self._on_invalidation)

    def _on_invalidation(self, push: Sequence[Any]) -> None:
        """``["invalidate", [key, ...]]``; keys None means the database was flushed."""
        changed = push[1]
        if changed is None:
            self._flush()
            return
        for key in changed:
            self._size -= len(self._cache.pop(_key(key), ()))

    def _flush(self) -> None:
        self._cache.clear()
        self._size = 0

    def _drop(self) -> None:
        self._flush()
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            try:
                conn.disconnect()
            except Exception as exc:  # already broken: nothing more to release
                log.debug("closing the tracked connection: %s", exc)


def _key(key: Any) -> bytes:
    """Keys as Redis sends them in invalidations (bytes), whatever form a command used."""
    return key if isinstance(key, bytes) else str(key).encode()
