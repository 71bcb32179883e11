"""Wait for Celery results on the event loop: one Redis pub/sub connection for every pending call.

Celery's Redis backend stores a task's state under ``celery-task-meta-<id>`` and publishes the
same JSON on a channel of the same name (``SET`` then ``PUBLISH`` in one pipeline). A waiter
subscribes to that channel and, once Redis confirms the subscription, reads the key: a result
stored before the subscription is found by the read, one stored after it arrives as a message.
Subscriptions and reads are batched (one ``SUBSCRIBE``/``MGET`` for all the calls that started
since the last flush), so 10,000 calls in flight cost one connection, two tasks and a dict entry each.

The two tasks also stop on a closing flag checked after every wake-up, and ``aclose`` waits for
them with a timeout: redis-py can swallow a cancellation (a cancelled ``MGET`` whose reply had
already arrived returns the reply), and a task that goes back to waiting on an event with no
timer would otherwise hold ``aclose`` forever.

When the connection drops (Redis restarted), pending calls keep waiting until their own
deadline while the waiter reconnects, subscribes to every pending channel again and re-reads
their keys: a result stored meanwhile is not lost, and nothing waits past its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from celery import states
from redis.exceptions import RedisError

from orchestrator import redis_conn
from orchestrator.config import Settings

log = logging.getLogger("orchestrator.aio")

RECONNECT_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0)
"""Seconds between attempts to re-open the pub/sub connection (the last one repeats)."""
BATCH = 2000
"""Channels per SUBSCRIBE / UNSUBSCRIBE / MGET command."""
CLOSE_SECONDS = 3.0
"""How long ``aclose`` waits for the connection owner and the key reader to stop."""

Meta = Mapping[str, Any]
"""A task's stored state as Celery decodes it: ``status``, ``result``, ``traceback``..."""


class ResultWaiter:
    """Multiplexes the result channels of every pending call over one pub/sub connection."""

    def __init__(self, settings: Settings, key_for: Callable[[str], bytes], decode: Callable[[bytes], Meta]) -> None:
        self._key_for = key_for
        self._decode = decode
        self._pool = redis_conn.connect_results_async(settings, protocol=2, socket_connect_timeout=2,
                                                      socket_keepalive=True).connection_pool  # RESP2: replies
        self.reader = redis_conn.connect_results_async(settings, socket_timeout=5, socket_connect_timeout=2)
        """Plain commands (MGET of result keys, EXISTS of markers); not the pub/sub connection."""
        self._waiting: dict[bytes, asyncio.Future[Meta]] = {}
        self._subscribe: set[bytes] = set()
        self._unsubscribe: set[bytes] = set()
        self._fetch: set[bytes] = set()
        self._write_ready = asyncio.Event()
        self._fetch_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._connection: Any = None
        self._closing = False
        self.connected = asyncio.Event()

    @property
    def pending(self) -> int:
        """Calls waiting for their result now."""
        return len(self._waiting)

    def start(self) -> None:
        """Start the connection owner and the key reader on the running loop (idempotent)."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._own_connection(), name="mcp-orch-results"),
                           asyncio.create_task(self._fetch_keys(), name="mcp-orch-result-keys")]

    async def wait(self, task_id: str, timeout: float) -> Meta:
        """The ready state of ``task_id`` (SUCCESS, FAILURE, REVOKED...) within ``timeout`` seconds.

        Raises ``TimeoutError`` when none came in time. Cancelling the waiting task (or the
        timeout) drops the subscription and every reference to the call.
        """
        future = self.watch(task_id)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self.unwatch(task_id)

    def watch(self, task_id: str) -> asyncio.Future[Meta]:
        """A future set to the ready state of ``task_id`` when it comes, until ``unwatch``: a batch watches
        its calls with one callback each, not one task each."""
        self.start()
        channel = self._key_for(task_id)
        future: asyncio.Future[Meta] = asyncio.get_running_loop().create_future()
        self._waiting[channel] = future
        if channel in self._unsubscribe:
            self._unsubscribe.discard(channel)
        else:
            self._subscribe.add(channel)
        self._write_ready.set()
        return future

    def unwatch(self, task_id: str) -> None:
        """Drop the subscription of ``task_id`` and every reference to it."""
        channel = self._key_for(task_id)
        del self._waiting[channel]
        if channel in self._subscribe:
            self._subscribe.discard(channel)
        else:
            self._unsubscribe.add(channel)
            self._write_ready.set()
        self._fetch.discard(channel)

    async def _own_connection(self) -> None:
        """Keep one pub/sub connection open: (re)subscribe every pending channel, dispatch messages."""
        attempt = 0
        while not self._closing:
            connection = self._pool.make_connection()
            writer: asyncio.Task[None] | None = None
            try:
                await connection.connect()
                attempt = 0
                self._subscribe |= set(self._waiting)  # a new connection has no subscriptions
                self._unsubscribe.clear()
                self._write_ready.set()
                self._connection = connection
                writer = asyncio.create_task(self._write(connection))
                self.connected.set()
                while not self._closing:
                    self._dispatch(await connection.read_response(timeout=math.inf))
            except Exception as exc:  # boundary: any failure of the connection (redis-py, socket) means reconnect
                self.connected.clear()
                if self._closing:
                    return
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                attempt += 1
                log.warning("result channel lost (%s: %s); %d calls pending; reconnecting in %.2fs",
                            type(exc).__name__, exc, len(self._waiting), delay)
                await asyncio.sleep(delay)
            finally:
                self._connection = None
                if writer is not None:
                    # redis-py may swallow a cancel inside send_command; the writer also stops on its own
                    # at its next wake-up (its connection is no longer the current one), so never wait long.
                    writer.cancel()
                    self._write_ready.set()
                    await asyncio.wait({writer}, timeout=1)
                with contextlib.suppress(RedisError, OSError):
                    await connection.disconnect()

    async def _write(self, connection: Any) -> None:
        """Send the subscriptions and unsubscriptions queued since the last flush, in batches."""
        while True:
            await self._write_ready.wait()
            if connection is not self._connection or self._closing:
                return
            self._write_ready.clear()
            leave, self._unsubscribe = list(self._unsubscribe), set()
            join, self._subscribe = list(self._subscribe), set()
            try:
                for start in range(0, len(leave), BATCH):
                    await connection.send_command("UNSUBSCRIBE", *leave[start:start + BATCH])
                for start in range(0, len(join), BATCH):
                    await connection.send_command("SUBSCRIBE", *join[start:start + BATCH])
            except Exception:  # boundary: redis-py also raises AttributeError on a closed connection
                # The reader sees the same broken connection and reconnects, resubscribing all pending.
                with contextlib.suppress(RedisError, OSError):
                    await connection.disconnect()
                return

    def _dispatch(self, response: Any) -> None:
        """A pub/sub push: a confirmed subscription (now read the key) or a published state."""
        kind, channel = response[0], response[1]
        if kind == b"subscribe":
            if channel in self._waiting:
                self._fetch.add(channel)
                self._fetch_ready.set()
        elif kind == b"message":
            self._resolve(channel, response[2])

    def _resolve(self, channel: bytes, payload: bytes | str | None) -> None:
        future = self._waiting.get(channel)
        if payload is None or future is None or future.done():
            return
        try:
            meta = self._decode(payload if isinstance(payload, bytes) else payload.encode())
        except Exception as exc:  # boundary: a value we cannot decode ends the call, typed by the client
            meta = {"status": states.FAILURE, "result": None, "undecodable": f"{type(exc).__name__}: {exc}"}
        if meta.get("status") in states.READY_STATES:
            future.set_result(meta)

    async def _fetch_keys(self) -> None:
        """Read the stored result of every newly subscribed channel: one MGET per batch."""
        while not self._closing:
            await self._fetch_ready.wait()
            if self._closing:
                return
            self._fetch_ready.clear()
            channels, self._fetch = list(self._fetch), set()
            for start in range(0, len(channels), BATCH):
                chunk = channels[start:start + BATCH]
                try:
                    values = await self.reader.mget(chunk)
                except (RedisError, OSError):
                    break  # the reconnect resubscribes and re-reads every pending channel
                for channel, value in zip(chunk, values, strict=True):
                    self._resolve(channel, value)

    async def aclose(self) -> None:
        """Stop the tasks and close both connections; pending waits end with their timeout or cancel.

        Each task is woken and cancelled; one that does not stop within ``CLOSE_SECONDS`` is left."""
        self._closing = True
        self._write_ready.set()
        self._fetch_ready.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, left = await asyncio.wait(self._tasks, timeout=CLOSE_SECONDS)
            if left:
                log.warning("result waiter tasks still running %gs after close: %s", CLOSE_SECONDS,
                            ", ".join(task.get_name() for task in left))
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.warning("result waiter task %s ended with %r", task.get_name(), task.exception())
        self._tasks = []
        with contextlib.suppress(RedisError, OSError):
            await self.reader.aclose()
        with contextlib.suppress(RedisError, OSError):
            await self._pool.disconnect()
