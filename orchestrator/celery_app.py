"""The Celery application shared by clients and workers: queues, routing, safety settings."""

from __future__ import annotations

from celery import Celery
from celery.result import AsyncResult
from kombu.entity import Queue

from orchestrator.config import ServerConfig, Settings
from orchestrator.redis_conn import transport_options as redis_transport_options
from orchestrator.wire import LabelledAMQP, route_by_server

RESULT_GRACE_SECONDS = 2.0
"""Extra wait past a task's deadline for the worker's own answer (its timeout error) to arrive (seconds)."""
RABBITMQ_DELIVERY_LIMIT = 5
"""Deliveries of one message a RabbitMQ quorum queue allows before dropping it: a call whose worker
dies each time it runs it (a poison message) is not handed to the fleet forever."""


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


def make_celery(settings: Settings, *, main: str = "mcp_orchestrator") -> Celery:
    """A Celery app configured for this orchestrator (no global state: tests build several)."""
    app = Celery(main, broker=settings.broker, backend=settings.backend_url, set_as_current=False,
                 amqp=LabelledAMQP)  # names MCP tasks <server>.<tool> for Flower and the logs
    backend_options = {"visibility_timeout": settings.visibility_timeout, **redis_transport_options(settings)}
    # RabbitMQ redelivers when a consumer's connection drops (no visibility timeout); publishes are confirmed.
    broker_options = {"confirm_publish": True} if settings.broker_is_amqp else backend_options
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
        broker_transport_options=broker_options,
        result_backend_transport_options=backend_options,
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
