"""Worker side of health: the ``health_check`` task, the catalog refresh on session open, and
the heartbeat announcing which queues this worker consumes.

``register(app)`` (called by ``workers.app``) binds the task and connects the heartbeat signals;
``refresh_catalog_on_open`` is given to the session manager as a session hook by ``workers.app``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from celery import Celery, Task
from celery.signals import worker_ready, worker_shutdown

from orchestrator.config import ServerConfig
from orchestrator.errors import OrchestratorError
from orchestrator.health import (
    CONSUMER_HEARTBEAT_SECONDS,
    breaker_snapshot,
    probe_timeout,
)
from orchestrator.wire import HEALTH_CHECK
from workers.execution import errors_for_caller, remaining_seconds, server_config, wire_tools
from workers.runtime import current
from workers.sessions import HeldSession, SessionManager

log = logging.getLogger("workers.health")


def run_health_check(manager: SessionManager, server: ServerConfig, deadline: float, *,
                     worker: str | None) -> dict[str, Any]:
    """Probe the held session with ``tools/list``; record the outcome and refresh the catalog."""
    runtime = current()
    health, catalog, redactor = runtime.health, runtime.catalog, runtime.redactor
    started = time.perf_counter()
    held: HeldSession | None = None
    try:
        left = remaining_seconds(deadline, server.name, "tools/list")
        held = manager.session(server)
        listing = manager.run(held.list_tools(left), left)
    except Exception as exc:  # any failure of the probe is the server's failed check
        latency = time.perf_counter() - started
        text = exc.message if isinstance(exc, OrchestratorError) else str(exc)
        error = redactor.scrub(f"{type(exc).__name__}: {text}")
        status, failures = health.record(server, ok=False, latency=latency, error=error, worker=worker,
                                         breaker=breaker_snapshot(health.redis, server))
        log.warning("health check of %s failed (%d in a row, %s): %s", server.name, failures, status, error)
        return {"server": server.name, "ok": False, "status": status.value, "error": error,
                "consecutive_failures": failures}
    latency = time.perf_counter() - started
    tools = wire_tools(listing, redactor)
    catalog.replace(server.name, tools, source="health_check")
    status, _ = health.record(server, ok=True, latency=latency, worker=worker, server_info=held.server_info,
                              tool_count=len(tools), breaker=breaker_snapshot(health.redis, server))
    return {"server": server.name, "ok": True, "status": status.value, "latency_ms": latency * 1000,
            "tool_count": len(tools)}


def health_check(self: Task, server: str, deadline: float | None = None) -> dict[str, Any]:
    """Check ``server`` through this worker's held session and record its health in Redis."""
    runtime = current()
    with errors_for_caller(runtime.redactor, server=server, tool=None, task_id=self.request.id):
        config = server_config(runtime.settings, server)
        deadline = deadline or time.time() + probe_timeout(config)
        return run_health_check(runtime.sessions(), config, deadline, worker=self.request.hostname)


# -- the catalog is refreshed every time a session opens (first open and every reconnect) ------

async def refresh_catalog_on_open(held: HeldSession, client: Any) -> None:
    """Store the tools the session just listed in the catalog (runs beside the owner)."""
    listing = held.tool_listing
    if listing is None:
        return
    runtime = current()
    await asyncio.to_thread(runtime.catalog.replace, held.server.name, wire_tools(listing, runtime.redactor),
                            source="session_open")


# -- heartbeat: which worker consumes which queue ------------------------------------------------

class ConsumerHeartbeat:
    """A daemon thread in the worker's main process that announces its queues every few seconds."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.hostname = consumer.hostname
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mcp-consumer-heartbeat", daemon=True)

    def queues(self) -> list[str]:
        task_consumer = getattr(self.consumer, "task_consumer", None)
        if task_consumer is not None:
            return sorted(queue.name for queue in task_consumer.queues)
        return sorted(self.consumer.app.amqp.queues.consume_from)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                current().health.beat(self.hostname, self.queues())
            except Exception as exc:  # Redis away for a moment: try again at the next beat
                log.warning("consumer heartbeat failed: %s", exc)
            self._stop.wait(CONSUMER_HEARTBEAT_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        try:
            current().health.leave(self.hostname, self.queues())
        except Exception as exc:  # shutdown goes on; the entries lapse by themselves
            log.debug("consumer heartbeat could not leave: %s", exc)


_heartbeat: ConsumerHeartbeat | None = None


def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    global _heartbeat
    if sender is not None and _heartbeat is None:
        _heartbeat = ConsumerHeartbeat(sender)
        _heartbeat.start()


def _stop_heartbeat(**_: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()


def register(app: Celery) -> None:
    """Bind ``health_check`` to ``app`` and start/stop the consumer heartbeat with the worker."""
    app.task(name=HEALTH_CHECK, bind=True, throws=(OrchestratorError,))(health_check)
    worker_ready.connect(_start_heartbeat)
    worker_shutdown.connect(_stop_heartbeat)
