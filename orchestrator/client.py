"""The client library AutoArr uses: validate, enqueue on the server's queue, wait, re-raise.

``Orchestrator`` is synchronous; ``AsyncOrchestrator`` (``orchestrator.aio``) waits for results on
the caller's event loop and shares this module's validation, admission and error translation.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Any

from celery import Celery
from celery.exceptions import TaskRevokedError
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult

from orchestrator import health, redis_conn
from orchestrator.backoff import jittered_backoff
from orchestrator.batch import (
    Outcome,
    ProgressCallback,
    confirmed,
    outcome_of,
    prepare_batch,
    redis_epoch,
    run_batch,
    settle,
    stored_meta,
    withdraw_queued,
)
from orchestrator.breaker import BreakerBoard, BreakerSnapshot
from orchestrator.catalog import Catalog
from orchestrator.celery_app import RESULT_GRACE_SECONDS, abandon, enqueue, make_celery
from orchestrator.config import ServerConfig, Settings, load_settings
from orchestrator.errors import (
    CallFailed,
    CircuitBreakerOpenError,
    DeadlineExceeded,
    InvalidCall,
    OrchestratorError,
    ServerUnavailable,
    ToolReturnedError,
)
from orchestrator.metrics import UNLISTED_TOOL, record_refusals
from orchestrator.results import ToolResult, answered_result
from orchestrator.tracking import TrackedReads
from orchestrator.unreachable import LIBRARY_ERRORS, guard_public_methods, is_unreachable
from orchestrator.validation import (
    PreparedCall,
    check_timeout,
    prepare_call,
    resolve_server,
)
from orchestrator.wire import CALL_TOOL, LIST_TOOLS


def client_urls(client: Any) -> tuple[str, str]:
    """The broker and backend URLs of a client (anything with ``settings``), for ``BrokerUnavailable``."""
    return client.settings.broker, client.settings.backend_url


NO_WORKER_CHECK_SECONDS = 1.0
"""How long a single call waits for its result before asking whether any live worker consumes its queue."""
_PENDING = object()
"""``_unless_no_worker``'s answer when the call should keep waiting."""


def no_worker_error(call: PreparedCall, task_id: str) -> ServerUnavailable:
    """The error of a call withdrawn because no live worker consumes its queue."""
    return ServerUnavailable(
        f"no live worker consumes {call.server.queue} (none has sent a heartbeat in the last "
        f"{health.CONSUMER_TTL_SECONDS:g}s); the call was taken out of the queue. Start one "
        f"(mcp-orch worker --servers {call.server.name}) or call with wait_for_worker=True",
        server=call.server.name, tool=call.tool, task_id=task_id)


@guard_public_methods(client_urls)
class Orchestrator:
    """Synchronous client: one tool call in, one ``ToolResult`` (or typed error) out.

    Every public method raises only this project's errors: an unreachable Redis is ``BrokerUnavailable``."""

    def __init__(self, settings: Settings | None = None, *, app: Celery | None = None) -> None:
        self.settings = settings or load_settings()
        self.app = app or make_celery(self.settings, main="mcp_orchestrator_client", client=True)
        self.redis = redis_conn.connect(self.settings, socket_timeout=5, socket_connect_timeout=5)
        self.tracked = TrackedReads(self.redis)  # catalog, breakers, epoch: read from memory, kept exact by Redis
        self.breakers = BreakerBoard(self.redis, {name: s.breaker for name, s in self.settings.servers.items()},
                                     tracked=self.tracked)

    def call_tool(self, server: str, tool: str, params: dict[str, Any] | None = None,
                  timeout: float | None = None, *, raise_on_error: bool = True,
                  wait_for_worker: bool = False) -> ToolResult:
        """Call ``tool`` on ``server`` (name or alias) and wait for its result.

        Raises a subclass of ``OrchestratorError``: ``InvalidCall`` before anything is
        enqueued, ``ToolReturnedError`` when the tool answered with ``isError`` (unless
        ``raise_on_error`` is False, then the result comes back with ``ok=False``).

        An unprefixed tool name resolves to the server's prefixed one when the catalog lists it
        (``get_queue`` on ``sabnzbd`` -> ``sabnzbd_get_queue``). A name the catalog does not list
        is still sent (a stale catalog must not refuse a new tool): the server judges, and its
        error comes back naming the close matches from the catalogs.

        A call still unanswered after ``NO_WORKER_CHECK_SECONDS`` on a queue no live worker consumes
        (no heartbeat) fails at once with ``ServerUnavailable`` and is taken out of the queue, unless
        ``wait_for_worker`` asks to wait for one until the deadline.
        """
        call, listed = self._admit(prepare_call(self.settings, server, tool, params, timeout))
        try:
            result = ToolResult.model_validate(self._run(call, CALL_TOOL, call.task_kwargs(),
                                                         check_worker=not wait_for_worker))
        except DeadlineExceeded as exc:
            exc.details.setdefault("timeout", call.timeout)  # the seed's MCPTimeoutError.timeout
            raise
        except ToolReturnedError as exc:  # an isError result, or the server refused the request (JSON-RPC error)
            answered = answered_result(exc)
            if answered is not None and not raise_on_error:
                return answered
            raise exc if listed else self._with_close_matches(exc, call) from None
        return result

    def call_tools_parallel(self, calls: Sequence[Any], *, timeout: float | None = None, fail_fast: bool = False,
                            progress: ProgressCallback | None = None,
                            max_concurrency: Mapping[str, int] | None = None) -> list[Outcome]:
        """Run ``calls`` in parallel; one outcome (result or typed error) per call, in order, whatever dies.

        ``timeout`` is an overall deadline: what has not ended by then is revoked and reported
        as ``DeadlineExceeded`` while finished results are kept. ``fail_fast`` revokes the rest
        after the first permanent failure (``CallCancelled``). ``progress(completed, total)``
        is called as results arrive. ``max_concurrency={"sabnzbd": 2}`` caps the calls
        running at once on a server across every worker.
        """
        resolved, listed = self._resolve(prepare_batch(self.settings, calls), prefixed=True)
        outcomes = run_batch(self.app, self.settings, resolved, timeout=timeout, fail_fast=fail_fast,
                             progress=progress, max_concurrency=max_concurrency, breakers=self.breakers,
                             markers=self.redis, listed=listed)
        return self._hinted(outcomes, resolved, listed)

    def _admit(self, call: PreparedCall) -> tuple[PreparedCall, bool]:
        """Resolve the tool name, check params against the cached schema, fail fast on an open breaker.

        Nothing is enqueued; returns the call and whether the catalog lists its tool. A refusal is
        counted in the call metrics (no worker sees it).
        """
        (call,), (listed,) = self._resolve([call], prefixed=False)
        self._check_breaker(call, listed)
        return call, listed

    def _check_breaker(self, call: PreparedCall, listed: bool) -> None:
        """Fail fast when ``call``'s breaker refuses, counting the refusal in the call metrics."""
        try:
            self.breakers.breaker(call.server.name).check_or_raise()
        except CircuitBreakerOpenError:
            record_refusals(self.redis, [(call.server.name, call.tool if listed else UNLISTED_TOOL)])
            raise

    def _hinted(self, outcomes: list[Outcome], calls: list[PreparedCall], listed: list[bool]) -> list[Outcome]:
        """A batch's outcomes, the tool errors of names no catalog lists naming the close matches."""
        return [self._with_close_matches(outcome, call)
                if isinstance(outcome, ToolReturnedError) and not known else outcome
                for outcome, call, known in zip(outcomes, calls, listed, strict=True)]

    def _resolve(self, calls: list[PreparedCall], *, prefixed: bool) -> tuple[list[PreparedCall], list[bool]]:
        """Tool names resolved and params checked against the cached schemas, nothing enqueued; with Redis
        down there is no catalog to ask: the calls go as given (publishing then waits for Redis)."""
        try:
            return self.catalog.resolve_batch(calls, prefixed=prefixed)
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            return calls, [True] * len(calls)

    def _with_close_matches(self, error: ToolReturnedError, call: PreparedCall) -> ToolReturnedError:
        """The tool error of a name no catalog lists, its message naming the close matches.

        A server with no catalog yet (its first session opened with this call, and the worker's catalog
        write runs beside the call, so it may land after the error) is listed through a worker first:
        the hint must not depend on which of the two finished first."""
        if self.catalog.tools(call.server.name) is None:
            with contextlib.suppress(OrchestratorError):  # no listing: the error goes without a hint
                self.list_tools(call.server.name, call.timeout)
        hint = self.catalog.close_matches(call.server.name, call.tool, list(self.settings.enabled_servers()))
        if not hint:
            return error
        return type(error)(f"{error.message} ({hint})", {**error.details, "close_matches": hint})

    @cached_property
    def catalog(self) -> Catalog:
        """The tool catalog in Redis: ``list_tools`` without a worker, schemas to check params."""
        return Catalog(self.redis, tracked=self.tracked)

    @cached_property
    def health_store(self) -> health.HealthStore:
        """Health records in Redis, written by the workers' health checks."""
        return health.HealthStore(self.redis)

    def list_tools(self, server: str, timeout: float | None = None, *, refresh: bool = False) -> list[dict[str, Any]]:
        """The tools of ``server`` (wire form): from the catalog, or with ``refresh`` (or none cached)
        from a worker's held session, which also refreshes the catalog."""
        config = resolve_server(self.settings, server)
        call = self._listing_call(config, timeout)
        cached = None if refresh else self.catalog.tools(config.name)
        if cached is not None:
            return cached
        tools = self._run(call, LIST_TOOLS, {"server": config.name, "deadline": call.deadline})
        self.catalog.replace(config.name, tools, source="list_tools")
        return tools

    def list_all_tools(self, timeout: float | None = None, *,
                       refresh: bool = False) -> dict[str, list[dict[str, Any]]]:
        """Tools of every enabled server: cached ones from the catalog, the others (or all, with
        ``refresh``) listed by workers in parallel; the first failing server raises."""
        listing: dict[str, list[dict[str, Any]]] = {}
        pending = {}
        for name, config in self.settings.enabled_servers().items():
            call = self._listing_call(config, timeout)
            cached = None if refresh else self.catalog.tools(name)
            if cached is not None:
                listing[name] = cached
                continue
            pending[name] = (call, self._send(call, LIST_TOOLS, {"server": name, "deadline": call.deadline}))
        for name, (call, handle) in pending.items():
            listing[name] = self._wait(call, handle)
            self.catalog.replace(name, listing[name], source="list_tools")
        return {name: listing[name] for name in self.settings.enabled_servers()}

    def _listing_call(self, config: ServerConfig, timeout: float | None) -> PreparedCall:
        """A ``tools/list`` through ``config``'s queue, its timeout checked and its deadline fixed."""
        seconds = check_timeout(timeout, config, self.settings, "tools/list")
        return PreparedCall(server=config, tool="tools/list", params={}, timeout=seconds,
                            deadline=time.time() + seconds)

    def health_check(self, server: str, timeout: float | None = None) -> health.ServerHealth:
        """A fresh health check through ``server``'s queue; a check no worker ran in time counts as failed."""
        return health.check_server(self.app, self.health_store, self.settings, server, timeout)

    def health_check_all(self, timeout: float | None = None) -> dict[str, health.ServerHealth]:
        """Fresh health checks of every enabled server, in parallel."""
        return health.check_all_servers(self.app, self.health_store, self.settings, timeout)

    def health_status(self) -> dict[str, str]:
        """``{server: healthy|degraded|down|unknown}`` from Redis, instantly (no worker involved)."""
        return health.health_status(self.health_store, self.settings)

    def health_detail(self, server: str) -> health.ServerHealth:
        """One server's health with its diagnostics (errors, times, latency, versions, breaker, queue)."""
        return health.health_detail(self.health_store, self.settings, server)

    def _run(self, call: PreparedCall, task: str, kwargs: dict[str, Any], *, check_worker: bool = False) -> Any:
        if task != CALL_TOOL:
            return self._wait(call, self._send(call, task, kwargs))
        epoch = redis_epoch(self.redis, self.tracked)  # before enqueueing: did Redis lose the call's marker meanwhile?
        handle = self._send(call, task, kwargs)
        if check_worker:
            early = self._unless_no_worker(call, handle)
            if early is not _PENDING:
                return early
        return self._wait(call, handle, epoch, tool_call=True)

    def _unless_no_worker(self, call: PreparedCall, handle: AsyncResult) -> Any:
        """The result if it comes within ``NO_WORKER_CHECK_SECONDS``; else ``_PENDING`` while a live worker
        consumes the queue (or that cannot be told); else the call is withdrawn and ``ServerUnavailable``."""
        if call.deadline - time.time() <= NO_WORKER_CHECK_SECONDS:
            return _PENDING
        try:
            return handle.get(timeout=NO_WORKER_CHECK_SECONDS, propagate=True, disable_sync_subtasks=False)
        except OrchestratorError:
            raise
        except CeleryTimeout:
            pass
        except Exception:  # Redis trouble under the listener: the full wait handles it
            return _PENDING
        if not self.withdrawn_for_no_worker(call, handle.id, partial(abandon, self.app, handle)):
            return _PENDING
        raise no_worker_error(call, handle.id)

    def withdrawn_for_no_worker(self, call: PreparedCall, task_id: str, revoke: Callable[[], None]) -> bool:
        """True when no live worker consumes the call's queue and the call was revoked and taken out of it;
        False while one does, when a worker took the call meanwhile, or when Redis cannot tell (then the
        caller waits its deadline out). Shared by the sync and the async client."""
        try:
            if self.health_store.has_consumer(call.server.queue):
                return False
            revoke()
            return withdraw_queued(self.redis, call.server.queue, {task_id}) > 0
        except LIBRARY_ERRORS:
            return False

    def _send(self, call: PreparedCall, task: str, kwargs: dict[str, Any]) -> AsyncResult:
        signature = self.app.signature(task, kwargs=kwargs, queue=call.server.queue,
                                       expires=datetime.fromtimestamp(call.deadline, tz=UTC))
        return enqueue(self.app, signature, give_up_at=call.deadline)

    def _wait(self, call: PreparedCall, handle: AsyncResult, epoch: str | None = None, *,
              tool_call: bool = False) -> Any:
        """Wait for the task until its deadline (plus grace), through Redis restarts; translate Celery's outcomes.

        A tool call with no result in time: ``settle`` decides from its execution marker (and Redis's
        ``epoch`` when it was enqueued) between ``OutcomeUnknown`` and ``DeadlineExceeded``."""
        wait_until = call.deadline + RESULT_GRACE_SECONDS
        attempt = 0
        try:
            while True:
                try:
                    return handle.get(timeout=max(wait_until - time.time(), 0.01), propagate=True,
                                      disable_sync_subtasks=False)
                except (OrchestratorError, CeleryTimeout, TaskRevokedError):
                    raise
                except Exception as exc:
                    meta = stored_meta(self.app, handle.id)
                    if meta is not None:  # the task's own failure (outside the tool), not the listener's
                        return self._stored(call, handle, meta)
                    if not is_unreachable(exc):
                        raise
                    attempt += 1  # Redis restarting under the result listener: keep waiting
                    if time.time() >= wait_until:
                        raise CeleryTimeout() from None
                    time.sleep(min(jittered_backoff(attempt, 0.05, 1.0), max(wait_until - time.time(), 0)))
        except DeadlineExceeded as exc:
            raise (confirmed(exc, self.redis, call, handle.id, epoch) if tool_call else exc) from None
        except OrchestratorError:
            raise
        except KeyboardInterrupt:  # the caller gave up: the call must not run later on some worker
            with contextlib.suppress(*LIBRARY_ERRORS):
                abandon(self.app, handle)
                withdraw_queued(self.redis, call.server.queue, {handle.id})
            raise
        except CeleryTimeout:
            with contextlib.suppress(*LIBRARY_ERRORS):
                abandon(self.app, handle)
            meta = stored_meta(self.app, handle.id)
            if meta is None and not tool_call:
                raise DeadlineExceeded(f"no result from {call.server.name} within {call.timeout:g}s",
                                       server=call.server.name, tool=call.tool, task_id=handle.id,
                                       deadline=call.deadline, timeout=call.timeout) from None
            if meta is None:
                raise settle(self.redis, call, handle.id, epoch) from None
            return self._stored(call, handle, meta)
        except TaskRevokedError:
            expired = DeadlineExceeded(f"call to {call.server.name} expired in the queue after {call.timeout:g}s",
                                       server=call.server.name, tool=call.tool, task_id=handle.id,
                                       deadline=call.deadline, timeout=call.timeout)
            raise (confirmed(expired, self.redis, call, handle.id, epoch) if tool_call else expired) from None
        except Exception as exc:  # boundary: anything else from Celery or the backend
            raise CallFailed(f"call to {call.server.name} failed: {type(exc).__name__}: {exc}",
                             server=call.server.name, tool=call.tool, task_id=handle.id,
                             cause=type(exc).__name__) from None

    def _stored(self, call: PreparedCall, handle: AsyncResult, meta: dict[str, Any]) -> Any:
        """The stored result of a finished task, or its typed error raised (``outcome_of``)."""
        if meta["status"] == "SUCCESS":
            return meta["result"]
        outcome = outcome_of(self.app, call, handle.id, meta)
        assert isinstance(outcome, OrchestratorError)
        raise outcome

    def breaker_states(self) -> dict[str, BreakerSnapshot]:
        """Every configured server's breaker: state, counters, time until the next trial."""
        return self.breakers.snapshots()

    def reset_breaker(self, server: str) -> BreakerSnapshot:
        """Close ``server``'s breaker with fresh counters (also ends a forced state)."""
        breaker = self.breakers.breaker(resolve_server(self.settings, server).name)
        breaker.reset()
        return breaker.snapshot()

    def force_breaker(self, server: str, state: str) -> BreakerSnapshot:
        """Set ``server``'s breaker by hand: ``open`` (refuse every call until reset), ``closed`` (closed
        with fresh counters, as ``reset_breaker``) or ``disabled`` (admit every call, count nothing)."""
        breaker = self.breakers.breaker(resolve_server(self.settings, server).name)
        actions = {"open": breaker.force_open, "closed": breaker.reset, "disabled": breaker.force_closed}
        if state not in actions:
            raise InvalidCall(f"state: must be one of {', '.join(map(repr, actions))}, got {state!r}", field="state")
        actions[state]()
        return breaker.snapshot()

    def close(self) -> None:
        """Release the broker, backend and Redis connections."""
        self.tracked.close()
        self.redis.close()
        self.app.close()

    def __enter__(self) -> Orchestrator:
        """``with Orchestrator() as client:`` closes it on the way out, as ``async with AsyncOrchestrator()`` does."""
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
