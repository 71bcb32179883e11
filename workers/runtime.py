"""What one worker process owns, in one object: settings, redactor, Redis, breakers, concurrency
limits, execution markers, health store, catalog and the held MCP sessions.

``workers.app`` installs it once from the loaded settings (``install``); tasks and hooks reach it
through ``current()``. The Redis connections and the session manager are built lazily and per
process: a prefork child that inherited the parent's runtime builds its own after the fork.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import cached_property

from redis import Redis

from orchestrator import redis_conn
from orchestrator.breaker import BreakerBoard
from orchestrator.catalog import Catalog
from orchestrator.config import Settings
from orchestrator.health import HealthStore
from orchestrator.keys import execution_marker_key
from orchestrator.limits import ConcurrencyLimit
from orchestrator.redaction import Redactor
from orchestrator.tracking import TrackedReads
from workers.sessions import SessionHook, SessionManager


class ExecutionMarkers:
    """Marks a call not safe to repeat as started, once; a second claim means it may have run."""

    def __init__(self, client: Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl = ttl_seconds

    def claim(self, task_id: str, worker: str) -> bool:
        """True for the first execution of ``task_id``; False when an earlier one may have run."""
        return bool(self.redis.set(execution_marker_key(task_id), worker, nx=True, ex=self.ttl))


CALLS_IN_FLIGHT = 256
"""Calls of chunks one worker process keeps in flight at once (each chunk at most
``workers.chunks.CHUNK_WIDTH``). Past the point where the session loop and the MCP servers are busy,
more in flight only makes every call slower: they share the loop and the servers, so under overload
all of them would end late together. A bound keeps them first come, first served: the calls opened
first end first, inside their deadlines, and the others wait unstarted."""


class WorkerRuntime:
    """One worker process's handles; every Redis or session handle is built on first use."""

    def __init__(self, settings: Settings, redactor: Redactor | None = None,
                 session_hooks: Sequence[SessionHook] = ()) -> None:
        self.pid = os.getpid()
        self.settings = settings
        self.redactor = redactor or Redactor(settings.secret_values())
        self.session_hooks = tuple(session_hooks)
        self._sessions: SessionManager | None = None
        self._sessions_lock = threading.Lock()

    @cached_property
    def redis(self) -> Redis:
        """The call path's connection: breakers, slots, markers, call counters."""
        return redis_conn.connect(self.settings, health_check_interval=30, socket_timeout=5,
                                  socket_connect_timeout=5, retry_on_timeout=True)

    @cached_property
    def breakers(self) -> BreakerBoard:
        """Closed-path admissions and no-op successes served from memory, kept exact by Redis (``TrackedReads``)."""
        return BreakerBoard(self.redis, {name: server.breaker for name, server in self.settings.servers.items()},
                            tracked=TrackedReads(self.redis))

    @cached_property
    def limits(self) -> ConcurrencyLimit:
        return ConcurrencyLimit(self.redis)

    @cached_property
    def markers(self) -> ExecutionMarkers:
        return ExecutionMarkers(self.redis, self.settings.visibility_timeout + int(self.settings.max_timeout))

    @cached_property
    def call_slots(self) -> threading.BoundedSemaphore:
        """One per call of a chunk in flight in this process (``CALLS_IN_FLIGHT``; built after a fork)."""
        return threading.BoundedSemaphore(CALLS_IN_FLIGHT)

    @cached_property
    def _health_redis(self) -> Redis:
        """Health and catalog writes get their own connection, with a longer socket timeout."""
        return redis_conn.connect(self.settings, health_check_interval=30, socket_timeout=10,
                                  socket_connect_timeout=5)

    @cached_property
    def health(self) -> HealthStore:
        return HealthStore(self._health_redis)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self._health_redis)

    def sessions(self) -> SessionManager:
        """This process's session manager, created on first use (never during process start-up)."""
        with self._sessions_lock:
            if self._sessions is None:
                self._sessions = SessionManager(self.session_hooks)
            return self._sessions

    def close_sessions(self) -> None:
        """Close this process's held sessions, if it opened any."""
        with self._sessions_lock:
            manager, self._sessions = self._sessions, None
        if manager is not None and manager.pid == os.getpid():
            manager.close()


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def install(runtime: WorkerRuntime) -> WorkerRuntime:
    """Make ``runtime`` this process's runtime (``workers.app`` calls it once at import)."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime
    return runtime


def current() -> WorkerRuntime:
    """This process's runtime; after a fork, a fresh one with the same settings, hooks and redactor."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            raise RuntimeError("no worker runtime installed: import workers.app first")
        if _runtime.pid != os.getpid():
            _runtime = WorkerRuntime(_runtime.settings, _runtime.redactor, _runtime.session_hooks)
        return _runtime
