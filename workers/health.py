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

from orchestrator.breaker import CircuitBreaker
from orchestrator.config import ServerConfig
from orchestrator.errors import DeadlineExceeded, OrchestratorError, ServerUnavailable, ToolReturnedError
from orchestrator.health import (
    CONSUMER_HEARTBEAT_SECONDS,
    PROBE_TOOLS_LIST,
    HealthStore,
    breaker_snapshot,
    probe_failure,
    probe_timeout,
)
from orchestrator.wire import HEALTH_CHECK
from workers.execution import errors_for_caller, remaining_seconds, server_config, wire_tools
from workers.reclaim import reclaim_expired
from workers.runtime import current
from workers.sessions import HeldSession, SessionManager

log = logging.getLogger("workers.health")


def run_health_check(manager: SessionManager, server: ServerConfig, deadline: float, *,
                     worker: str | None) -> dict[str, Any]:
    """Probe the whole path: ``tools/list`` on the held session (and refresh the catalog), then the
    server's ``health_tool``, which reaches the upstream with its credentials. Record the outcome,
    and let it move the breaker (``recover_on_health``, ``count_failed_health_checks``)."""
    runtime = current()
    health, catalog, redactor = runtime.health, runtime.catalog, runtime.redactor
    breaker = runtime.breakers.breaker(server.name)
    seen = breaker_snapshot(health.redis, server)  # before the probe: a recovery is checked against it
    probe = f"tool {server.health_tool}" if server.health_tool else PROBE_TOOLS_LIST
    started = time.perf_counter()
    try:
        left = remaining_seconds(deadline, server.name, "tools/list")
        held = manager.session(server)
        listing = manager.run(held.list_tools(left), left)
    except Exception as exc:  # any failure to list is the session's failed check
        return _failed(health, breaker, server, seen, exc, started, worker=worker, probe=probe)
    tools = wire_tools(listing, redactor)
    catalog.replace(server.name, tools, source="health_check")
    if server.health_tool:
        try:
            left = remaining_seconds(deadline, server.name, server.health_tool)
            raw = manager.run(held.call_tool(server.health_tool, server.health_params, left), left)
        except ServerUnavailable as exc:
            return _failed(health, breaker, server, seen, exc, started, worker=worker, probe=probe)
        except (DeadlineExceeded, ToolReturnedError) as exc:
            kind = "upstream_timeout" if isinstance(exc, DeadlineExceeded) else "health_tool_failed"
            reason = f"{'upstream timing out' if kind == 'upstream_timeout' else 'health tool refused'}: {exc.message}"
            return _failed(health, breaker, server, seen, exc, started, worker=worker, probe=probe,
                           upstream=(kind, reason))
        if raw.is_error:
            text = "\n".join(getattr(block, "text", "") for block in raw.content)
            return _failed(health, breaker, server, seen, None, started, worker=worker, probe=probe,
                           upstream=probe_failure(server.health_tool, text))
    latency = time.perf_counter() - started
    if seen and seen["state"] == "open" and server.breaker.recover_on_health:
        after = breaker.recover(seen["generation"])
        log.info("health probe of %s reached its upstream: breaker %s -> %s", server.name, seen["state"], after)
    status, _ = health.record(server, ok=True, latency=latency, worker=worker, server_info=held.server_info,
                              tool_count=len(tools), breaker=breaker_snapshot(health.redis, server), probe=probe)
    return {"server": server.name, "ok": True, "status": status.value, "reason": None, "probe": probe,
            "latency_ms": latency * 1000, "tool_count": len(tools)}


def _failed(health: HealthStore, breaker: CircuitBreaker, server: ServerConfig, seen: dict[str, Any] | None,
            exc: Exception | None, started: float, *, worker: str | None, probe: str,
            upstream: tuple[str, str] | None = None) -> dict[str, Any]:
    """Record a failed check: no session (``exc``), or an upstream failure (``upstream``: kind, reason)."""
    redactor = current().redactor
    latency = time.perf_counter() - started
    if upstream is not None:
        kind, error = upstream[0], redactor.scrub(upstream[1])
    else:
        text = exc.message if isinstance(exc, OrchestratorError) else str(exc)
        kind, error = "no_session", redactor.scrub(f"no MCP session: {type(exc).__name__}: {text}")
    if seen and seen["state"] == "closed" and server.breaker.count_failed_health_checks:
        breaker.record(breaker.admit(), success=False, duration=latency)
    status, failures = health.record(server, ok=False, latency=latency, error=error, worker=worker,
                                     breaker=breaker_snapshot(health.redis, server),
                                     upstream_failed=upstream is not None, failure_kind=kind, probe=probe)
    log.warning("health check of %s failed (%d in a row, %s): %s", server.name, failures, status, error)
    return {"server": server.name, "ok": False, "status": status.value, "reason": error, "probe": probe,
            "failure_kind": kind, "consecutive_failures": failures}


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
                reclaim_expired(current().health.redis)  # what dead workers left behind
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
