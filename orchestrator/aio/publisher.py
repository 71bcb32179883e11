"""Publish calls from the event loop to a Redis broker, so that no other thread runs Python while calls are in flight.

Why: Celery's ``send_task`` plus kombu's Redis transport cost about 1 ms of CPU per call (message,
a new redis-py client per publish, the ``task-sent`` event) and hold the GIL meanwhile.
Done on publisher threads, that makes the loop thread wait up to the interpreter's switch interval
(5 ms) for the GIL at each of its wake-ups while a burst is being published: loop lag p99 of
15-20 ms at 1,000-10,000 calls. Here the loop writes what that code would write: the task message
``LPUSH``ed to the queue's list and Celery's ``task-sent`` event ``PUBLISH``ed on its fanout
channel, built directly (about 0.1 ms a call), one pipeline per batch of calls, a turn's budget of
building at a time (``TurnBudget``), over redis.asyncio.

Only for a Redis broker (``redis://`` or Sentinel); RabbitMQ and ``memory://`` publish through
kombu on a publisher thread. ``tests/test_async_publisher.py`` compares these messages with the
ones Celery and kombu write, field by field, so an upgrade that changes their format fails there.

Publishing retries an unreachable Redis with backoff as ``celery_app.enqueue`` does: every attempt
re-sends the same messages (same task ids; a duplicate is one call to the worker, its execution
marker is keyed by the id), the last one at the deadline; a call not sent by then is ``NotEnqueued``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.events.event import Event
from celery.utils.nodenames import anon_nodename
from celery.utils.time import utcoffset
from kombu.entity import maybe_delivery_mode
from kombu.utils.json import dumps

from orchestrator import redis_conn
from orchestrator.aio.turnstile import TurnBudget
from orchestrator.backoff import jittered_backoff
from orchestrator.celery_app import PUBLISH_RETRY_MAX_SECONDS, PUBLISH_RETRY_MIN_SECONDS
from orchestrator.config import Settings
from orchestrator.errors import NotEnqueued
from orchestrator.unreachable import broker_unavailable, is_unreachable
from orchestrator.validation import PreparedCall
from orchestrator.wire import CALL_TOOL, bounded_repr, task_label

PIPELINE_CALLS = 64
"""Calls per pipeline: small enough that packing one and parsing its replies is a short loop turn."""
NO_CALLBACKS = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
"""The embed part of a Celery protocol-2 body for a task sent on its own."""


def loop_publishing(settings: Settings) -> bool:
    """Whether calls are published from the loop: the broker is Redis (``redis://`` or Sentinel)."""
    return settings.broker.startswith(("redis://", "sentinel://"))


def _b64_json(value: Any) -> str:
    """kombu's JSON serializer, then its base64 body encoding (the Redis transport's ``body_encoding``)."""
    return base64.b64encode(dumps(value).encode()).decode()


class CallMessages:
    """The Redis commands Celery's ``send_task(mcp.call_tool, kwargs, queue, expires)`` ends in with kombu's
    Redis transport and ``orchestrator.celery_app``'s settings (JSON, priority 0, sent events on)."""

    def __init__(self, app: Celery, db: int) -> None:
        conf = app.conf
        self._app = app
        self._args_repr = bounded_repr(())
        self._delivery_mode = maybe_delivery_mode(conf.task_default_delivery_mode)
        self._events = conf.task_send_sent_event
        self._event_exchange = conf.event_exchange
        self.events_channel = f"/{db}.{conf.event_exchange}/task.sent"
        """kombu's fanout topic for ``task-sent``: ``/<db>.<exchange>/<routing key>``."""
        self._node = anon_nodename()
        self._pid = os.getpid()

    def build(self, call: PreparedCall, task_id: str) -> tuple[str, str | None]:
        """The message ``LPUSH``ed to ``call.server.queue`` and the ``task-sent`` event (None when events are off)."""
        kwargs = call.task_kwargs()
        queue = call.server.queue
        label = task_label(CALL_TOOL, kwargs)
        expires = datetime.fromtimestamp(call.deadline, tz=UTC).isoformat()
        kwargs_repr = bounded_repr(kwargs)
        headers = {
            "lang": "py", "task": CALL_TOOL, "id": task_id, "shadow": label, "eta": None, "expires": expires,
            "group": None, "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id,
            "parent_id": None, "argsrepr": self._args_repr, "kwargsrepr": kwargs_repr, "origin": self._node,
            "ignore_result": None, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
        }
        properties = {
            "correlation_id": task_id, "reply_to": self._app.thread_oid, "delivery_mode": self._delivery_mode,
            "expiration": str(int(max(call.deadline - time.time(), 0.0) * 1000)),
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0, "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        }
        message = dumps({"body": _b64_json([[], kwargs, NO_CALLBACKS]), "content-encoding": "utf-8",
                         "content-type": "application/json", "headers": headers, "properties": properties})
        if not self._events:
            return message, None
        event = Event("task-sent", hostname=self._node, utcoffset=utcoffset(), pid=self._pid,
                      clock=self._app.clock.forward(), uuid=task_id, root_id=task_id, parent_id=None, name=label,
                      args=self._args_repr, kwargs=kwargs_repr, retries=0, eta=None, expires=expires,
                      queue=queue, exchange="", routing_key=queue)
        return message, dumps({
            "body": _b64_json(event), "content-encoding": "utf-8", "content-type": "application/json",
            "headers": {"hostname": self._node},
            "properties": {"delivery_mode": 1, "delivery_info": {"exchange": self._event_exchange,
                                                                 "routing_key": "task.sent"},
                           "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())}})


@dataclass(eq=False)
class _Send:
    """One call to publish: its future (its task id, once sent), its commands once built."""

    call: PreparedCall
    future: asyncio.Future[str]
    task_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    message: str = ""
    event: str | None = None
    attempts: int = 0


class LoopPublisher:
    """Publishes calls to the Redis broker from one task on the loop, a pipeline per ``PIPELINE_CALLS`` calls."""

    def __init__(self, app: Celery, settings: Settings, revoke: Callable[[list[str]], None]) -> None:
        self._settings = settings
        self._revoke = revoke
        self._redis = redis_conn.connect_broker_async(settings, socket_timeout=5, socket_connect_timeout=2)
        self._messages = CallMessages(app, int(self._redis.connection_pool.connection_kwargs.get("db", 0)))
        self._queued: list[_Send] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, call: PreparedCall) -> asyncio.Future[str]:
        """The task id of ``call`` once it is in its queue; cancelling the future after that revokes the call."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queued.append(_Send(call, future))
        self._ready.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mcp-orch-publish")
        return future

    async def _run(self) -> None:
        """Send what is queued, a pipeline at a time; on an unreachable Redis back off and send again."""
        pending: list[_Send] = []
        while True:
            if not pending:
                await self._ready.wait()
            self._ready.clear()
            pending += self._queued
            self._queued = []
            pending = self._still_wanted(pending)
            batch, pending = pending[:PIPELINE_CALLS], pending[PIPELINE_CALLS:]
            try:
                await self._build(batch)
                await self._send(batch)
            except Exception as exc:  # boundary: redis-py or socket errors; typed per call below
                pending = self._after_failure(batch, exc) + pending
                if pending:  # the backoff, but the first deadline gets its last attempt
                    wait = jittered_backoff(max(send.attempts for send in pending), PUBLISH_RETRY_MIN_SECONDS,
                                            PUBLISH_RETRY_MAX_SECONDS)
                    await asyncio.sleep(min(wait, min(send.call.deadline for send in pending) - time.time()))
                continue
            abandoned = [send.task_id for send in batch if send.future.done()]  # the caller stopped waiting
            if abandoned:
                self._revoke(abandoned)
            for send in batch:
                if not send.future.done():
                    send.future.set_result(send.task_id)

    def _still_wanted(self, sends: list[_Send]) -> list[_Send]:
        """Drop calls whose caller stopped waiting; one that an earlier attempt may have enqueued is revoked."""
        abandoned = [send.task_id for send in sends if send.future.done() and send.attempts]
        if abandoned:
            self._revoke(abandoned)
        return [send for send in sends if not send.future.done()]

    async def _build(self, batch: list[_Send]) -> None:
        """Build the messages not built yet, a turn's budget at a time."""
        budget = TurnBudget()
        for send in batch:
            if not send.message:
                send.message, send.event = self._messages.build(send.call, send.task_id)
                await budget.pace()

    async def _send(self, batch: list[_Send]) -> None:
        if not batch:
            return
        for send in batch:
            send.attempts += 1
        async with self._redis.pipeline(transaction=False) as pipe:
            for send in batch:
                pipe.lpush(send.call.server.queue, send.message)
                if send.event is not None:
                    pipe.publish(self._messages.events_channel, send.event)
            await pipe.execute()

    def _after_failure(self, batch: list[_Send], exc: Exception) -> list[_Send]:
        """The calls to try again; the others get their error: the cause when it is not a reachability
        problem, ``NotEnqueued`` when their deadline leaves no time for another attempt."""
        retry = []
        now = time.time()
        for send in batch:
            if send.future.done():
                continue
            if not is_unreachable(exc):
                send.future.set_exception(exc)
            elif now + PUBLISH_RETRY_MIN_SECONDS >= send.call.deadline:
                send.future.set_exception(broker_unavailable(
                    exc, self._settings.broker, self._settings.backend_url, error=NotEnqueued,
                    doing=f"(tried {send.attempts} times): not enqueued before its deadline",
                    server=send.call.server.name, tool=send.call.tool, task_id=send.task_id))
            else:
                retry.append(send)
        return retry

    async def aclose(self) -> None:
        """Stop sending (calls still queued end with their caller's deadline) and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()
