"""The rest of the seed orchestrator's surface, and what each part does on this architecture.

``SeedSurface`` is mixed into ``MCPOrchestrator``:

* ``.config`` is the seed configuration object the facade was built from, as given (the seed
  test compares it; AutoArr's code may read it). The facade never reads a secret from it again
  and never sends or logs it. ``.is_initialized`` is True until ``shutdown``.
* **Tunables as attributes.** ``o.keepalive_interval = 5`` works as in the seed when the facade
  applies the setting itself: ``keepalive_interval``, ``health_check_interval`` (the loops below),
  ``max_concurrent_requests``, ``max_parallel_calls``, ``parallel_timeout``,
  ``cancel_on_critical_failure``, ``default_tool_timeout`` (a call's deadline) and
  ``server_aliases`` (resolved by this facade before the configured aliases). The settings the
  *workers* apply (breaker thresholds, retries, health failure threshold, pool size, switching
  the breaker or reconnects off, other retryable errors) cannot change from here: setting one to
  another value raises ``SeedConfigError`` naming it (never a silent no-op). Reading any of them
  gives the value in force.
* ``get_connection_state()`` / ``restore_connection_state(state)``: the servers this facade
  uses; restoring ``connect``s each of them (a fresh check through its queue).
  ``get_pending_tasks()``, ``get_connection_pool_state()`` and ``check_for_leaks()`` read this
  facade's in-flight calls and its ``max_concurrent_requests`` slots (there is no connection pool
  here: the sessions are the workers').
* ``start_keepalive()``: a task on the running loop that, every ``keepalive_interval``, runs a
  health check through the queue of each server in use; the check reaches the worker's held MCP
  session and its upstream, which keeps both warm and makes a worker rebuild a broken session
  before a caller needs it. ``start_periodic_health_checks()``: a task that runs
  ``health_check_all()`` every ``health_check_interval`` (what the seed did), recording each
  result in the shared health records. Beat already checks every server fleet-wide; these loops
  are for a process that wants its own cadence. ``stop_*`` cancel them; ``shutdown`` stops both.
* ``connect`` retries a failing check with backoff (0.5 s, doubling, at most 2 s) up to ``max_retries``
  more times, within the server's seed ``timeout`` (read from ``.config`` at each connect, so a
  changed ``config[name].timeout`` counts); when that time runs out it raises
  ``asyncio.TimeoutError``, as the seed's did. ``health_check`` retries once when the check reached
  a worker whose MCP session failed (it re-opens it), as the seed retried a connection error; an
  unreachable upstream is not retried (a second check would only count a second failure).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.compat.config import MCPOrchestratorConfig, SeedConfigError
from orchestrator.health import ServerHealth

if TYPE_CHECKING:
    from orchestrator.compat.config import SeedMapping
    from orchestrator.config import ServerConfig as ServerSettings

__all__ = ["SeedSurface"]

log = logging.getLogger("orchestrator.compat")

CONNECT_BACKOFF = 0.5
"""Wait before ``connect``'s first retry (seconds); doubles for each further retry, as the seed's..."""
CONNECT_BACKOFF_MAX = 2.0
"""...up to this (seconds), so a worker that comes up is seen within two seconds."""
HEALTH_RETRY_DELAY = 1.0
"""Wait before ``health_check`` retries a check that found no session (seconds)."""

FACADE_TUNABLES = ("keepalive_interval", "health_check_interval", "max_concurrent_requests", "max_parallel_calls",
                   "parallel_timeout", "cancel_on_critical_failure", "default_tool_timeout", "server_aliases")
"""Seed tunables the facade applies itself: settable after construction."""
WORKER_TUNABLES = ("circuit_breaker_threshold", "circuit_breaker_timeout", "circuit_breaker_success_threshold",
                   "health_check_failure_threshold", "max_retries", "connection_pool_size", "enable_circuit_breaker",
                   "auto_reconnect", "retryable_errors")
"""Seed tunables the workers apply (through ``worker_environment``): fixed once the facade is built."""
_DEFAULTS = MCPOrchestratorConfig()


def seed_value(config: Any, name: str) -> Any:
    """A tunable from a seed config (an ``MCPOrchestratorConfig`` or a ``{server: ServerConfig}`` dict)."""
    return getattr(_DEFAULTS, name) if isinstance(config, Mapping) else getattr(config, name, getattr(_DEFAULTS, name))


def seed_server(config: Any, name: str) -> Any:
    """A server's seed ``ServerConfig`` (or None) from either form of seed config."""
    return config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)


def _session_failed(health: ServerHealth) -> bool:
    """The check reached a worker whose MCP session failed (``failure_kind`` ``no_session``): the worker
    re-opens it, so a second check may pass."""
    return health.consumers > 0 and health.failure_kind == "no_session"


class SeedSurface:
    """The seed's attributes, connection state and background loops (see the module docstring)."""

    config: Any
    mapping: SeedMapping
    _attached: set[str]
    _closed: bool
    _semaphore: asyncio.Semaphore
    _in_flight: set[asyncio.Task[Any]]

    @property
    def servers(self) -> tuple[str, ...]:
        """The servers this facade serves (enabled in the seed config)."""
        return self.mapping.servers

    if TYPE_CHECKING:  # provided by MCPOrchestrator
        async def connect(self, server: str) -> bool: ...
        async def health_check(self, server: str) -> bool: ...
        async def health_check_all(self) -> dict[str, bool]: ...
        async def _fresh_check(self, config: ServerSettings) -> ServerHealth: ...
        @staticmethod
        def _is_up(health: ServerHealth) -> bool: ...

    def _init_surface(self, config: Any) -> None:
        """Keep the seed config and the tunables in force; no loop runs yet."""
        object.__setattr__(self, "config", config)
        object.__setattr__(self, "_tunables", {name: seed_value(config, name)
                                               for name in (*FACADE_TUNABLES, *WORKER_TUNABLES)})
        object.__setattr__(self, "_loops", {})

    # -- tunables ----------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        tunables = self.__dict__.get("_tunables", {})
        if name in tunables:
            return tunables[name]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in WORKER_TUNABLES:
            if value != self._tunables[name]:
                raise SeedConfigError(
                    f"{name}: the workers apply it, so it cannot change after MCPOrchestrator is built; set it in "
                    "the config given to MCPOrchestrator and give the workers worker_environment(config)")
            return
        if name in FACADE_TUNABLES:
            self._apply_tunable(name, value)
            return
        object.__setattr__(self, name, value)

    def _apply_tunable(self, name: str, value: Any) -> None:
        if name == "server_aliases":
            value = self._checked_aliases(value)
        elif name in ("keepalive_interval", "health_check_interval", "default_tool_timeout",
                      "max_concurrent_requests", "max_parallel_calls") and not (
                isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
            raise SeedConfigError(f"{name}: must be a positive number, got {value!r}")
        elif name == "parallel_timeout" and value is not None and not (
                isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
            raise SeedConfigError(f"parallel_timeout: must be None or a positive number, got {value!r}")
        elif name == "cancel_on_critical_failure" and not isinstance(value, bool):
            raise SeedConfigError(f"cancel_on_critical_failure: must be True or False, got {value!r}")
        self._tunables[name] = value
        if name == "max_concurrent_requests":
            object.__setattr__(self, "_semaphore", asyncio.Semaphore(int(value)))
        if name in ("max_parallel_calls", "parallel_timeout", "cancel_on_critical_failure", "max_concurrent_requests"):
            options = dataclasses.replace(self.mapping.options, **{name: value})
            object.__setattr__(self, "mapping", dataclasses.replace(self.mapping, options=options))

    def _checked_aliases(self, aliases: Any) -> dict[str, str]:
        if not isinstance(aliases, Mapping):
            raise SeedConfigError(f"server_aliases: must be a dict of alias -> server, got {type(aliases).__name__}")
        for alias, target in aliases.items():
            if target not in self.servers:
                raise SeedConfigError(f"server_aliases.{alias}: {target!r} is not a served server "
                                      f"(serves: {', '.join(self.servers)})")
        return dict(aliases)

    def _facade_alias(self, server: Any) -> Any:
        """``server`` through the aliases set on this facade (``o.server_aliases = {...}``)."""
        return self._tunables["server_aliases"].get(server, server) if isinstance(server, str) else server

    @property
    def is_initialized(self) -> bool:
        """True from construction until ``shutdown``."""
        return not self._closed

    # -- connection state --------------------------------------------------------------------------
    def get_connection_state(self) -> dict[str, Any]:
        """The servers this facade uses, for ``restore_connection_state`` (the seed's shape)."""
        return {"connected_servers": sorted(self._attached), "timestamp": time.time()}

    async def restore_connection_state(self, state: Mapping[str, Any]) -> dict[str, bool]:
        """``connect`` each server of a saved state; ``{server: connected}`` (a failure is logged)."""
        results: dict[str, bool] = {}
        for server in state.get("connected_servers", []):
            try:
                results[server] = await self.connect(server)
            except Exception as exc:  # the seed went on with the others
                log.warning("restore_connection_state: %s: %s", server, exc)
                results[server] = False
        return results

    # -- resources ---------------------------------------------------------------------------------
    def get_pending_tasks(self) -> list[asyncio.Task[Any]]:
        """The calls started through this facade that have not ended (``shutdown`` waits for them)."""
        return [task for task in self._in_flight if not task.done()]

    def get_connection_pool_state(self) -> dict[str, int]:
        """The ``max_concurrent_requests`` call slots: how many are free now, and how many there are."""
        return {"available_connections": self._semaphore._value,
                "max_connections": int(self._tunables["max_concurrent_requests"])}

    def check_for_leaks(self) -> dict[str, int]:
        """``leaked_tasks``: finished calls still tracked; ``leaked_connections``: call slots taken
        beyond the calls running. Both 0 unless a call's cleanup went wrong."""
        running = len(self.get_pending_tasks())
        taken = int(self._tunables["max_concurrent_requests"]) - self._semaphore._value
        return {"leaked_tasks": len(self._in_flight) - running, "leaked_connections": max(taken - running, 0)}

    # -- background loops --------------------------------------------------------------------------
    def start_keepalive(self) -> None:
        """Every ``keepalive_interval``, a health check through each in-use server's queue."""
        self._start_loop("keepalive", "keepalive_interval", self._keepalive_round)

    def stop_keepalive(self) -> None:
        """Stop the keepalive loop (no-op when not running)."""
        self._stop_loop("keepalive")

    def start_periodic_health_checks(self) -> None:
        """Every ``health_check_interval``, ``health_check_all()``."""
        self._start_loop("health", "health_check_interval", self.health_check_all)

    def stop_periodic_health_checks(self) -> None:
        """Stop the periodic health checks (no-op when not running)."""
        self._stop_loop("health")

    async def _keepalive_round(self) -> None:
        await asyncio.gather(*(self.health_check(name) for name in sorted(self._attached)))

    def _start_loop(self, name: str, interval: str, work: Callable[[], Any]) -> None:
        self._stop_loop(name)

        async def loop() -> None:
            while True:
                try:
                    await work()
                except Exception as exc:  # one failed round must not end the loop
                    log.warning("%s round failed: %s", name, exc)
                await asyncio.sleep(self._tunables[interval])

        self._loops[name] = asyncio.get_running_loop().create_task(loop(), name=f"compat-{name}")

    def _stop_loop(self, name: str) -> None:
        task = self._loops.pop(name, None)
        if task is not None:
            task.cancel()

    # -- connect and health, retried ---------------------------------------------------------------
    def _connect_timeout(self, config: ServerSettings) -> float:
        """The server's seed ``timeout`` as ``.config`` holds it now, else its connect timeout."""
        seed = seed_server(self.config, config.name)
        timeout = getattr(seed, "timeout", None)
        return float(timeout) if isinstance(timeout, int | float) and timeout > 0 else config.connect_timeout

    async def _connect_with_backoff(self, config: ServerSettings) -> bool:
        """Fresh checks until one passes (True), ``max_retries`` retries fail (False), or the
        server's timeout runs out (``asyncio.TimeoutError``)."""
        timeout = self._connect_timeout(config)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        attempts = int(self._tunables["max_retries"]) + 1
        for attempt in range(attempts):
            try:
                health = await asyncio.wait_for(self._fresh_check(config), max(deadline - loop.time(), 0))
            except TimeoutError:
                break
            if self._is_up(health):
                return True
            log.info("connect(%s): attempt %d of %d failed: %s", config.name, attempt + 1, attempts,
                     health.reason or health.last_error)
            if attempt + 1 == attempts:
                return False
            delay = min(CONNECT_BACKOFF * 2 ** attempt, CONNECT_BACKOFF_MAX)
            if loop.time() + delay >= deadline:
                await asyncio.sleep(max(deadline - loop.time(), 0))
                break
            await asyncio.sleep(delay)
        raise TimeoutError(f"connect({config.name!r}): no passing health check within its timeout of {timeout:g}s")

    async def _checked_health(self, config: ServerSettings) -> bool:
        """A fresh check, retried once after ``HEALTH_RETRY_DELAY`` when the worker's session failed."""
        health = await self._fresh_check(config)
        if not self._is_up(health) and _session_failed(health):
            await asyncio.sleep(HEALTH_RETRY_DELAY)
            health = await self._fresh_check(config)
        return self._is_up(health)
