"""The Celery application shared by clients and workers: queues, routing, safety settings."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery, Signature
from celery.result import AsyncResult
from kombu.entity import Queue
from kombu.utils.uuid import uuid

from orchestrator.backoff import jittered_backoff
from orchestrator.config import ServerConfig, Settings
from orchestrator.errors import NotEnqueued
from orchestrator.redis_conn import transport_options as redis_transport_options
from orchestrator.redis_transport import transport_for
from orchestrator.unreachable import broker_unavailable, is_unreachable
from orchestrator.wire import LabelledAMQP, route_by_server

RESULT_GRACE_SECONDS = 2.0
"""Extra wait past a task's deadline for the worker's own answer (its timeout error) to arrive (seconds)."""
RABBITMQ_DELIVERY_LIMIT = 5
"""Deliveries of one message a RabbitMQ quorum queue allows before dropping it: a call whose worker
dies each time it runs it (a poison message) is not handed to the fleet forever."""
PUBLISH_RETRY_MIN_SECONDS = 0.05
"""First wait before publishing again while the broker is unreachable (seconds); doubles per attempt."""
PUBLISH_RETRY_MAX_SECONDS = 1.0
"""Longest wait between two attempts to publish (seconds)."""
CLIENT_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5}
"""How long a client's broker connection and result listener try to reconnect before giving up (Celery's
and kombu's defaults wait 6-20 s): the client's own loops, bounded by each call's deadline, retry
instead (``enqueue``, the waits for results)."""


def abandon(app: Celery, handle: AsyncResult) -> None:
    """Revoke a task its caller gave up waiting for, and stop listening for its result (a long-running
    client would otherwise keep one result subscription per abandoned call)."""
    handle.revoke()
    app.backend.remove_pending_result(handle)


def server_queue(server: ServerConfig, settings: Settings) -> Queue:
    """A server's queue; on RabbitMQ a durable quorum queue (replicated, survives a broker restart,
    redelivery counted against ``RABBITMQ_DELIVERY_LIMIT``)."""
    if not settings.broker_is_amqp:
        return Queue(server.queue)
    return Queue(server.queue, durable=True,
                 queue_arguments={"x-queue-type": "quorum", "x-delivery-limit": RABBITMQ_DELIVERY_LIMIT})


def enqueue(app: Celery, signature: Signature, *, give_up_at: float, producer: Any = None) -> AsyncResult:
    """Publish ``signature``, retrying with backoff while the broker is unreachable and ``give_up_at``
    (epoch seconds: the call's or the batch's deadline) allows; ``NotEnqueued`` when it could not.

    Every attempt reuses one task id, so that a publish that did reach Redis before its reply was
    lost is still one call to the worker (the execution marker is keyed by that id).
    """
    task_id = signature.options.get("task_id") or uuid()
    attempt = 0
    while True:
        try:
            return signature.apply_async(task_id=task_id, producer=producer, retry=False)
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            attempt += 1
            wait = jittered_backoff(attempt, PUBLISH_RETRY_MIN_SECONDS, PUBLISH_RETRY_MAX_SECONDS)
            if time.time() + wait >= give_up_at:
                kwargs = signature.kwargs
                raise broker_unavailable(exc, app.conf.broker_url, app.conf.result_backend, error=NotEnqueued,
                                         doing=f"(tried {attempt} times): not enqueued before its deadline",
                                         server=kwargs.get("server"), tool=kwargs.get("tool"),
                                         task_id=task_id) from None
            time.sleep(wait)


def make_celery(settings: Settings, *, main: str = "mcp_orchestrator", client: bool = False) -> Celery:
    """A Celery app configured for this orchestrator (no global state: tests build several).

    ``client``: the broker connection and the result listener give up reconnecting quickly
    (``CLIENT_RETRY_POLICY``); workers keep the longer defaults (a result to store, a queue to consume)."""
    app = Celery(main, broker=settings.broker, backend=settings.backend_url, set_as_current=False,
                 amqp=LabelledAMQP)  # names MCP tasks <server>.<tool> for Flower and the logs
    backend_options = {"visibility_timeout": settings.visibility_timeout, **redis_transport_options(settings)}
    # RabbitMQ redelivers when a consumer's connection drops (no visibility timeout); publishes are confirmed.
    broker_options = {"confirm_publish": True} if settings.broker_is_amqp else backend_options
    if transport := transport_for(settings.broker):
        app.conf.broker_transport = transport  # survives a lost Redis under a busy worker
    app.conf.update(
        # Invariant 2 (docs/ARCHITECTURE.md): JSON only; a pickled message is refused.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # Invariant 3 (docs/ARCHITECTURE.md): nothing lost. Ack after the call, re-deliver when a worker dies mid-call.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={**broker_options, **(CLIENT_RETRY_POLICY if client else {})},
        result_backend_transport_options={**backend_options,
                                          **({"retry_policy": CLIENT_RETRY_POLICY} if client else {})},
        broker_connection_retry_on_startup=True,
        result_expires=settings.result_expires,
        # One queue per server; nothing MCP goes to Celery's default queue.
        task_queues=[server_queue(server, settings) for server in settings.servers.values()],
        task_routes=(route_by_server,),
        task_default_queue="mcp.default",
        task_create_missing_queues=True,
        # Flower sees every task.
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    return app
