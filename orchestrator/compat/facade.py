"""``MCPOrchestrator``: the seed orchestrator's API, every call through the queue path.

AutoArr swaps its in-process orchestrator for this one by changing an import (and giving the
workers the environment ``worker_environment(config)`` lists). Methods keep the seed's names,
arguments and return shapes; the work is done by ``AsyncOrchestrator`` (validation, catalog,
breaker, Celery queue per server, held MCP sessions on the workers).

"Connected" cannot mean a session held by this process any more: sessions live on the workers.
Here a server is *connected* when it is enabled, this facade was told to use it (``connect`` /
``connect_all``, undone by ``disconnect``), a live worker consumes its queue, and its last
health check passed (``orchestrator.health`` records, shared by every client and beat).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from celery import Celery

from orchestrator import keys
from orchestrator.aio.client import AsyncOrchestrator
from orchestrator.batch import CALL_FIELDS, call_fields
from orchestrator.compat.config import SeedConfigWarning, SeedMapping, check_worker_secrets, map_seed_config
from orchestrator.compat.exceptions import check_params, for_caller
from orchestrator.compat.shapes import caller_data, tool_names
from orchestrator.compat.surface import SeedSurface
from orchestrator.config import ServerConfig as ServerSettings
from orchestrator.config import Settings
from orchestrator.errors import (
    CallCancelled,
    CallFailed,
    DeadlineExceeded,
    InvalidCall,
    OrchestratorError,
    ServerUnavailable,
    UnknownServer,
)
from orchestrator.health import HealthStatus, ServerHealth
from orchestrator.unreachable import guard_public_methods
from orchestrator.validation import resolve_server

__all__ = ["MCPOrchestrator", "MCPToolCall"]

log = logging.getLogger("orchestrator.compat")

WORKERS_SEEN_TTL = 2.0
"""How long a seen live worker counts without asking Redis again (seconds), for the call path."""


class MCPToolCall:
    """One call of ``call_tools_parallel`` (the seed's shape): server, tool, params, timeout."""

    __slots__ = ("params", "server", "timeout", "tool")

    def __init__(self, server: str, tool: str, params: dict[str, Any] | None = None,
                 timeout: float | None = None) -> None:
        self.server, self.tool, self.params, self.timeout = server, tool, params or {}, timeout

    def __repr__(self) -> str:
        return f"MCPToolCall({self.server!r}, {self.tool!r})"


class _ServerList(list):  # type: ignore[type-arg]
    """A list that may also be awaited, for callers that ``await get_connected_servers()``."""

    def __await__(self) -> Any:
        if False:  # pragma: no cover - makes this a generator
            yield
        return list(self)


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat() if epoch else None


def _urls(facade: MCPOrchestrator) -> tuple[str, str]:
    return facade.settings.broker, facade.settings.backend_url


@guard_public_methods(_urls)
class MCPOrchestrator(SeedSurface):
    """The seed orchestrator's public surface on top of the distributed orchestrator.

    ``config`` is the seed's ``MCPOrchestratorConfig`` or ``{name: ServerConfig}`` (see
    ``orchestrator.compat.config`` for what each setting becomes); ``settings`` is the base
    configuration that says how each server is reached (default: ``load_settings()``).
    ``on_error`` (attribute, sync or async) receives ``{server, tool, error, attempt}`` for every
    failed call (after the workers' retries): bad input, connection, timeout, open breaker, tool error.
    Results reach the caller shaped by ``orchestrator.compat.shapes``; errors by
    ``orchestrator.compat.exceptions.for_caller``; the seed's other attributes and loops are in
    ``orchestrator.compat.surface``.
    """

    def __init__(self, config: Any, *, settings: Settings | None = None, app: Celery | None = None,
                 on_secrets: Literal["warn", "error"] = "warn") -> None:
        mapping = map_seed_config(config, settings)
        check_worker_secrets(mapping, on_secrets)
        self._init_surface(config)
        self.mapping: SeedMapping = mapping.without_secrets()
        self.settings = mapping.settings
        self.on_error: Callable[[dict[str, Any]], Any] | None = None
        self._app = app
        self._core = AsyncOrchestrator(self.settings, app=app)
        self._attached: set[str] = set()
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._semaphore = asyncio.Semaphore(self.mapping.options.max_concurrent_requests)
        self._closed = False
        self._cancelled = False
        self._workers_seen: dict[str, float] = {}
        self._stats: dict[str, Any] = {"total_calls": 0, "total_health_checks": 0, "calls_per_server": {},
                                       "failed_calls": 0}

    # -- servers ---------------------------------------------------------------------------------
    def _served(self, server: Any) -> ServerSettings:
        """The served server called ``server`` or one of its aliases (else ``InvalidCall``, a ValueError)."""
        server = self._facade_alias(server)
        try:
            config = resolve_server(self.settings, server)
        except UnknownServer as exc:
            raise UnknownServer(f"server: Invalid server: {server!r} (serves: {', '.join(self.servers)})",
                                exc.details) from None
        if config.name not in self.servers:
            raise UnknownServer(f"server: Invalid server: {server!r} (serves: {', '.join(self.servers)})",
                                server=config.name, field="server")
        return config

    def _off_loop(self, method: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        return self._core._off_loop(method)

    def _consumers(self, config: ServerSettings) -> int:
        return int(self._core.sync.redis.zcount(keys.consumers_key(config.queue), time.time(), "+inf"))

    async def _has_workers(self, config: ServerSettings) -> bool:
        seen = self._workers_seen.get(config.name)
        if seen is not None and time.monotonic() - seen < WORKERS_SEEN_TTL:
            return True
        if await self._off_loop(self._consumers)(config):
            self._workers_seen[config.name] = time.monotonic()
            return True
        self._workers_seen.pop(config.name, None)
        return False

    @staticmethod
    def _is_up(health: ServerHealth) -> bool:
        return health.consumers > 0 and health.recorded_status == HealthStatus.HEALTHY

    # -- connection --------------------------------------------------------------------------------
    async def connect_all(self) -> dict[str, bool]:
        """``connect`` every served server; ``{server: connected}`` (a connect that raised reads False)."""
        names = list(self.servers)
        outcomes = await asyncio.gather(*(self.connect(name) for name in names), return_exceptions=True)
        for name, outcome in zip(names, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("connect_all: %s: %s", name, outcome)
        return {name: outcome is True for name, outcome in zip(names, outcomes, strict=True)}

    async def connect(self, server: str) -> bool:
        """Use ``server`` from now on and check it through its queue now, retried with backoff.

        True when it is connected: enabled, a live worker consumes its queue, and a fresh health
        check passed; False when ``max_retries`` retries failed; ``asyncio.TimeoutError`` when the
        server's seed ``timeout`` ran out first (see ``orchestrator.compat.surface``). The server
        stays in use either way: ``is_connected`` turns True once a check passes.
        """
        config = self._served(server)
        self._check_open()
        self._attached.add(config.name)
        if not self.mapping.options.enable_circuit_breaker:
            warnings.warn(f"enable_circuit_breaker=False: forcing the breaker of {config.name} to 'disabled' for "
                          "every client of this Redis", SeedConfigWarning, stacklevel=2)
            await self._core.force_breaker(config.name, "disabled")
        return await self._connect_with_backoff(config)

    async def disconnect(self, server: str) -> None:
        """Stop using ``server``: its calls raise ``MCPConnectionError`` until ``connect``. The
        workers' sessions stay open: other clients share them."""
        self._attached.discard(self._served(server).name)

    async def disconnect_all(self) -> None:
        """``disconnect`` every server."""
        self._attached.clear()

    async def reconnect(self, server: str) -> bool:
        """``disconnect`` then ``connect``: a fresh check through the queue. Workers rebuild broken
        sessions themselves; there is no session here to rebuild."""
        await self.disconnect(server)
        return await self.connect(server)

    async def is_connected(self, server: str) -> bool:
        """Connected: enabled, in use by this facade, a live worker consumes its queue, and its last
        health check (by anyone: beat, a client) passed. Read from Redis, no check is run."""
        config = self._served(server)
        if config.name not in self._attached:
            return False
        return self._is_up(await self._core.health_detail(config.name))

    def get_connected_servers(self) -> list[str]:
        """The servers ``is_connected`` holds for (one Redis round trip); may also be awaited."""
        attached = [self.settings.servers[name] for name in self.servers if name in self._attached]
        records = self._core.sync.health_store.read_many(attached) if attached else {}
        return _ServerList(name for name, health in records.items() if self._is_up(health))

    # -- calls -------------------------------------------------------------------------------------
    async def call_tool(self, server: str, tool: str, params: dict[str, Any] | None = None,
                        timeout: float | None = None, include_metadata: bool = False, *,
                        arguments: dict[str, Any] | None = None) -> Any:
        """Call ``tool`` on ``server`` (name or alias; an unprefixed tool name resolves to the server's
        prefixed one) through its queue; the tool's data as ``orchestrator.compat.shapes`` gives it,
        or ``{data, metadata: {server, tool, duration}}`` with ``include_metadata`` (``data`` then is
        the tool's whole JSON object, see ``shapes``). ``arguments``
        is another name for ``params`` (AutoArr's recovery service passes it).

        Raises ``InvalidCall`` (a ValueError; ``ParamsNotADict`` is also a TypeError) for bad input,
        ``MCPConnectionError`` when the server is not in use, no worker consumes its queue or its
        upstream is unreachable, ``MCPTimeoutError`` (``.timeout``), ``CircuitBreakerOpenError``,
        ``MCPToolError`` when the tool refused the call. ``.tool`` is ``tool`` as passed.
        """
        try:
            if arguments is not None and params is not None:
                raise InvalidCall("arguments: pass params or arguments, not both", field="arguments", tool=tool)
            params = arguments if params is None else params
            check_params(params, tool)
            config = self._served(server)
            if timeout is None:
                timeout = self._tunables["default_tool_timeout"]
            return await self._tracked(self._call(config, tool, params, timeout, include_metadata))
        except OrchestratorError as exc:
            error = for_caller(exc, tool)
            await self._failed(error, None, tool, timeout,
                               server=exc.details.get("server") or (server if isinstance(server, str) else None))
            raise error from exc.__cause__

    async def _call(self, config: ServerSettings, tool: str, params: Any, timeout: float,
                    include_metadata: bool) -> Any:
        await self._ready(config, tool)
        async with self._semaphore:
            started = time.perf_counter()
            result = await self._core.call_tool(config.name, tool, params, timeout)  # our errors only
            duration = time.perf_counter() - started
        self._count_success(config.name)
        if not include_metadata:
            return caller_data(result.data)
        return {"data": result.data,
                "metadata": {"server": result.server, "tool": tool, "resolved_tool": result.tool, "duration": duration,
                             "worker_duration": result.duration, "attempts": result.attempts,
                             "worker": result.worker, "task_id": result.task_id}}

    async def _ready(self, config: ServerSettings, tool: str) -> None:
        if config.name not in self._attached:
            raise ServerUnavailable(f"server {config.name!r} is not connected: call connect() or connect_all() first",
                                    server=config.name, tool=tool)
        if not await self._has_workers(config):
            raise ServerUnavailable(f"server {config.name!r} is not connected: no worker consumes {config.queue}",
                                    server=config.name, tool=tool)

    async def call_tools_parallel(self, calls: Sequence[Any], return_partial: bool = False,
                                  progress_callback: Callable[[int, int], Any] | None = None) -> list[dict[str, Any]]:
        """Run ``calls`` (``MCPToolCall``s, dicts or tuples) as one batch; ``{success, data, error}``
        per call, in input order. A bad or unconnected call fails alone.

        ``parallel_timeout`` (config) bounds the batch: unfinished calls become ``{"error":
        "Timeout"}`` with ``return_partial``, else ``asyncio.TimeoutError`` is raised.
        ``cancel_on_critical_failure``: the first permanent failure cancels the calls not yet run
        and raises ``MCPOrchestratorError``. ``progress_callback(done, total)`` (sync or async)
        follows the calls as they end. ``max_parallel_calls`` caps each server's calls at once.
        """
        return await self._tracked(self._parallel(list(calls), return_partial, progress_callback))

    async def _parallel(self, calls: list[Any], return_partial: bool,
                        progress: Callable[[int, int], Any] | None) -> list[dict[str, Any]]:
        total = len(calls)
        outcomes, runnable = await self._admit(calls)
        done = total - len(runnable)
        for finished in range(1, done + 1):
            await _maybe_await(progress, finished, total)
        options = self.mapping.options
        started = time.monotonic()
        await self._run_admitted(runnable, outcomes, done, progress)
        timed_out = (options.parallel_timeout is not None and time.monotonic() - started >= options.parallel_timeout
                     and any(isinstance(o, DeadlineExceeded) for o in outcomes))
        if timed_out and not return_partial:
            unfinished = sum(isinstance(o, DeadlineExceeded) for o in outcomes)
            raise TimeoutError(f"{unfinished} of {total} calls did not finish within parallel_timeout="
                               f"{options.parallel_timeout:g}s")
        entries = [await self._entry(outcome, runnable.get(index, {}), timed_out)
                   for index, outcome in enumerate(outcomes)]
        if options.cancel_on_critical_failure:
            _raise_critical(outcomes)
        return entries

    async def _admit(self, calls: list[Any]) -> tuple[list[Any], dict[int, dict[str, Any]]]:
        """Parse each call and check its server is served and ready: an outcome slot per call (the
        error of a call refused here) and the runnable calls by index."""
        outcomes: list[Any] = [None] * len(calls)
        runnable: dict[int, dict[str, Any]] = {}
        for index, call in enumerate(calls):
            try:
                fields = _call_fields(call, index)
                config = self._served(fields["server"])
                await self._ready(config, fields["tool"])
                runnable[index] = {**fields, "server": config.name}
            except OrchestratorError as exc:
                outcomes[index] = exc
        return outcomes, runnable

    async def _run_admitted(self, admitted: dict[int, dict[str, Any]], outcomes: list[Any], done: int,
                            progress: Callable[[int, int], Any] | None) -> None:
        """Run the admitted calls as one core batch; a call failing its schema fails alone and the rest
        run again without it."""
        runnable = dict(admitted)
        total = len(outcomes)
        options = self.mapping.options
        while runnable:
            order = list(runnable)
            caps = {runnable[i]["server"]: options.max_parallel_calls for i in order}
            report = _offset_progress(progress, done, total)
            try:
                results = await self._core.call_tools_parallel(
                    [runnable[i] for i in order], timeout=options.parallel_timeout,
                    fail_fast=options.cancel_on_critical_failure, progress=report, max_concurrency=caps)
            except InvalidCall as exc:  # one call failed its schema: it fails alone, the rest run
                bad = _bad_index(exc, order)
                if bad is None:
                    raise
                outcomes[bad] = type(exc)(exc.message.split(".", 1)[-1] if exc.field else exc.message, exc.details)
                del runnable[bad]
                done += 1
                await _maybe_await(progress, done, total)
                continue
            for i, outcome in zip(order, results, strict=True):
                outcomes[i] = outcome
            return

    async def _entry(self, outcome: Any, call: dict[str, Any], timed_out: bool) -> dict[str, Any]:
        """One call's ``{success, data, error}``, counted in the facade's stats."""
        if isinstance(outcome, OrchestratorError):
            if not isinstance(outcome, InvalidCall):
                await self._failed(outcome, None, call.get("tool"), call.get("timeout"), server=call.get("server"))
            error = "Timeout" if timed_out and isinstance(outcome, DeadlineExceeded) else str(outcome)
            return {"success": False, "data": {}, "error": error}
        self._count_success(outcome.server)
        return {"success": True, "data": outcome.data, "error": None}

    # -- tools ---------------------------------------------------------------------------------------
    async def list_tools(self, server: str) -> list[str]:
        """``server``'s tool names as AutoArr calls them (``orchestrator.compat.shapes.tool_names``),
        from the catalog or a worker."""
        config = self._served(server)
        await self._ready(config, "tools/list")
        return tool_names(config.name, await self._tracked(self._core.list_tools(config.name)))

    async def list_all_tools(self) -> dict[str, list[str]]:
        """Tool names of every connected server; a server that cannot list them gets ``[]`` (logged)."""
        names = [name for name in self.servers if name in self._attached]
        listed = await asyncio.gather(*(self.list_tools(name) for name in names), return_exceptions=True)
        result = {}
        for name, tools in zip(names, listed, strict=True):
            if isinstance(tools, BaseException):
                log.warning("list_all_tools: %s: %s", name, tools)
                tools = []
            result[name] = tools
        return result

    # -- health --------------------------------------------------------------------------------------
    async def _fresh_check(self, config: ServerSettings) -> ServerHealth:
        """A health check through the queue now; with no live worker, a failed check is recorded at
        once instead of waiting for a check nobody will run."""
        if not await self._off_loop(self._consumers)(config):
            store = self._core.sync.health_store
            await self._off_loop(lambda: store.record(config, ok=False, error=f"no worker consumes {config.queue}"))()
            return await self._core.health_detail(config.name)
        return await self._core.health_check(config.name)

    async def health_check(self, server: str) -> bool:
        """A fresh health check of ``server`` through its queue, retried once when a worker has no
        session; False when not connected.

        ``health_check_failure_threshold`` failed checks in a row mark it ``down`` in
        ``get_server_status``; one passing check brings it back up."""
        config = self._served(server)
        self._stats["total_health_checks"] += 1
        if config.name not in self._attached:
            return False
        return await self._checked_health(config)

    async def health_check_all(self) -> dict[str, bool]:
        """``health_check`` of every served server, in parallel."""
        names = list(self.servers)
        return dict(zip(names, await asyncio.gather(*(self.health_check(name) for name in names)), strict=True))

    async def health_check_detailed(self, server: str) -> dict[str, Any]:
        """``{server, healthy, response_time (s), last_check_time (ISO), status, error, ...}`` after a fresh check."""
        config = self._served(server)
        started = time.perf_counter()
        healthy = await self.health_check(config.name)
        elapsed = time.perf_counter() - started
        health = await self._core.health_detail(config.name)
        return {"server": config.name, "healthy": healthy, "response_time": elapsed,
                "last_check_time": _iso(health.last_check_at) or datetime.now(UTC).isoformat(),
                "status": health.status.value, "error": None if healthy else (health.reason or health.last_error),
                "consecutive_failures": health.consecutive_failures, "latency_ms": health.latency_ms,
                "consumers": health.consumers, "probe": health.probe, "failure_kind": health.failure_kind}

    def get_server_status(self, server: str) -> dict[str, Any]:
        """``{status: healthy|degraded|down|unknown, connected, ...}`` from Redis; ``{"status": "unknown"}``
        for a name this facade does not serve."""
        try:
            config = self._served(server)
        except InvalidCall:
            return {"status": "unknown"}
        health = self._core.sync.health_detail(config.name)
        return {"status": health.status.value, "connected": config.name in self._attached and self._is_up(health),
                "reason": health.reason, "consecutive_failures": health.consecutive_failures,
                "down_after": health.down_after, "last_check_time": _iso(health.last_check_at),
                "last_error": health.last_error, "consumers": health.consumers, "probe": health.probe,
                "failure_kind": health.failure_kind}

    def get_circuit_breaker_state(self, server: str) -> dict[str, Any]:
        """The seed's breaker dict from the shared breaker in Redis. ``last_failure_time`` is when
        the breaker last opened (epoch seconds; None while closed): failures are not timestamped.
        An open breaker whose open time has passed reads ``half_open`` (its next call is a trial),
        as the seed's did; ``failure_count`` keeps the failures that opened it."""
        config = self._served(server)
        snapshot = self._core.sync.breakers.breaker(config.name).snapshot()
        policy = config.breaker
        state = snapshot.state
        if state == "open" and snapshot.next_trial_at is not None and snapshot.next_trial_at <= time.time():
            state = "half_open"
        failures = snapshot.failures
        if state in ("open", "half_open"):
            failures = max(failures, snapshot.window_failures, policy.failure_threshold)
        return {"state": state, "failure_count": failures, "success_count": snapshot.successes,
                "last_failure_time": snapshot.opened_at if snapshot.state != "closed" else None,
                "threshold": policy.failure_threshold, "timeout": policy.open_seconds,
                "success_threshold": policy.success_threshold, "retry_after": snapshot.retry_after,
                "trips": snapshot.trips}

    # -- lifecycle -----------------------------------------------------------------------------------
    def get_stats(self) -> dict[str, Any]:
        """This facade's counters: ``total_calls`` and ``calls_per_server`` (successful calls),
        ``total_health_checks``, ``failed_calls``, ``in_flight_calls``. Fleet-wide counters are in
        the workers' metrics."""
        return {**self._stats, "calls_per_server": dict(self._stats["calls_per_server"]),
                "in_flight_calls": len(self._in_flight), "connected_servers": sorted(self._attached)}

    async def shutdown(self, graceful: bool = True, timeout: float | None = None, force: bool = False) -> None:
        """Stop taking calls; ``graceful`` waits for the calls started through this facade (up to
        ``timeout`` seconds), then cancels what is left; ``force`` or not ``graceful`` cancels at once.
        A cancelled caller gets ``MCPConnectionError``; a call already on a worker may still run there."""
        if self._closed:
            return
        self._closed = True
        self.stop_keepalive()
        self.stop_periodic_health_checks()
        pending = set(self._in_flight)
        if pending and graceful and not force:
            await asyncio.wait(pending, timeout=timeout)
        left = [task for task in self._in_flight if not task.done()]
        if left:
            self._cancelled = True
            for task in left:
                task.cancel()
            await asyncio.wait(left, timeout=5)
        self._attached.clear()
        await self._core.aclose()

    async def restart(self) -> None:
        """``shutdown`` (graceful, if still running) and start again with ``connect_all``."""
        await self.shutdown(graceful=True)
        self._core = AsyncOrchestrator(self.settings, app=self._app)
        self._closed = self._cancelled = False
        self._workers_seen.clear()
        await self.connect_all()

    async def __aenter__(self) -> MCPOrchestrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown(graceful=True)

    # -- internals -----------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ServerUnavailable("the orchestrator is shut down")

    async def _tracked(self, work: Coroutine[Any, Any, Any]) -> Any:
        """Run ``work`` as a task shutdown can wait for (or cancel)."""
        if self._closed:
            work.close()
            self._check_open()
        task = asyncio.ensure_future(work)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        try:
            return await task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if self._cancelled and task.cancelled() and not (me and me.cancelling()):
                raise ServerUnavailable("call cancelled: the orchestrator shut down") from None
            raise

    def _count_success(self, server: str) -> None:
        self._stats["total_calls"] += 1
        per_server = self._stats["calls_per_server"]
        per_server[server] = per_server.get(server, 0) + 1

    async def _failed(self, error: OrchestratorError, config: ServerSettings | None, tool: str | None,
                      timeout: float | None, *, server: str | None = None) -> None:
        """Fill the seed's fields, count, and tell ``on_error`` about the failure (any kind)."""
        name = config.name if config else server
        error.details.setdefault("server", name)
        error.details.setdefault("tool", tool)
        if isinstance(error, DeadlineExceeded) and name in self.settings.servers:
            error.details.setdefault("timeout", timeout or self.settings.servers[name].timeout)
        self._stats["failed_calls"] += 1
        if self.on_error is None:
            return
        payload = {"server": name, "tool": tool, "error": error, "attempt": error.details.get("attempts", 1)}
        try:
            await _maybe_await(self.on_error, payload)
        except Exception:  # a broken callback must not change the call's outcome
            log.exception("on_error callback failed")


def _call_fields(call: Any, index: int) -> dict[str, Any]:
    """The batch's call parsing (extra keys ignored, as AutoArr passes them), with a tool name required."""
    fields = call_fields(call, index, ignore_unknown=True)
    if not isinstance(fields.get("tool"), str) or not fields["tool"].strip():
        raise InvalidCall("tool: must be a non-empty string", field="tool")
    return {name: fields.get(name) for name in CALL_FIELDS}


def _raise_critical(outcomes: list[Any]) -> None:
    """With ``cancel_on_critical_failure``, the first permanent failure is raised for the whole batch."""
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, CallFailed) and not outcome.transient and not isinstance(outcome, CallCancelled):
            raise OrchestratorError(f"critical failure in calls[{index}]: {outcome}; the calls not yet run "
                                    "were cancelled", server=outcome.server, tool=outcome.tool,
                                    cause=type(outcome).__name__)


def _bad_index(error: InvalidCall, order: list[int]) -> int | None:
    field = error.field or ""
    if not field.startswith("calls["):
        return None
    position = int(field[len("calls["):field.index("]")])
    return order[position] if position < len(order) else None


async def _maybe_await(callback: Callable[..., Any] | None, *args: Any) -> None:
    if callback is None:
        return
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


def _offset_progress(progress: Callable[[int, int], Any] | None, offset: int,
                     total: int) -> Callable[[int, int], Any] | None:
    """The core's ``progress(done, batch_total)`` as the facade's ``(offset + done, total)``."""
    if progress is None:
        return None
    if inspect.iscoroutinefunction(progress):
        async def report_async(done: int, _: int) -> None:
            await progress(offset + done, total)
        return report_async

    def report(done: int, _: int) -> None:
        progress(offset + done, total)
    return report
