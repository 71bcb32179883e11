"""The asyncio client: calls in flight wait on the event loop, not in a thread each.

Validation runs on the loop (it is pure), a loop turn's share of calls at a time (``Turnstile``).
Admission (catalog, breaker) is short blocking Redis work, run on a small fixed pool of publisher
threads. Publishing to a Redis broker runs on the loop (``LoopPublisher``: no other thread runs
Python while calls are in flight, so the loop never waits for the GIL); to RabbitMQ it goes
through kombu on the publisher threads. The wait for the result is a future resolved by one
shared pub/sub connection (``ResultWaiter``). So the client's thread count is the same with 10 or
10,000 calls in flight.

Cancelling the task that awaits a call revokes the call (a worker drops a revoked message it
has not started) and drops its subscription; a call whose result cannot be had and whose
execution marker says it may have run is ``OutcomeUnknown``, as everywhere in the orchestrator.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Any, Generic, TypeVar

from celery import Celery
from celery.result import AsyncResult
from redis.exceptions import RedisError

from orchestrator import health, keys
from orchestrator.aio.publisher import LoopPublisher, loop_publishing
from orchestrator.aio.turnstile import TurnBudget, Turnstile
from orchestrator.aio.waiter import Meta, ResultWaiter
from orchestrator.batch import (
    Outcome,
    batch_calls,
    enqueue_all,
    leave_results_to_caller,
    outcome_of,
    plan_batch,
    prepare_batch_call,
    unfinished_outcome,
)
from orchestrator.breaker import BreakerSnapshot
from orchestrator.celery_app import RESULT_GRACE_SECONDS
from orchestrator.client import NO_WORKER_CHECK_SECONDS, Orchestrator, client_urls, no_worker_error
from orchestrator.config import Settings
from orchestrator.errors import CallFailed, DeadlineExceeded, OrchestratorError, OutcomeUnknown, ToolReturnedError
from orchestrator.results import ToolResult, answered_result
from orchestrator.revocation import revoke_calls
from orchestrator.unreachable import LIBRARY_ERRORS, guard_public_methods
from orchestrator.validation import PreparedCall, prepare_call
from orchestrator.wire import CALL_TOOL

log = logging.getLogger("orchestrator.aio")

PUBLISH_THREADS = 2
"""Threads that admit calls (and enqueue them, on RabbitMQ): a few Redis round trips, never a wait for a result."""
BLOCKING_THREADS = 4
"""Threads for the operations that stay synchronous (health checks, tool listings, breaker admin)."""

MARKER_CHECK_SECONDS = 1.0
"""At most this long past a deadline is spent reading execution markers (Redis may be the thing that is down)."""

CLOSE_TIMEOUT_SECONDS = 5.0
"""How long ``aclose`` waits for the broker/backend connections to close before it leaves them."""
OUTBOX_CHUNK = 32
"""Sends per publisher-thread job: small enough that both publisher threads share a burst."""

T = TypeVar("T")
P = TypeVar("P")
Admitted = tuple[PreparedCall, bool]
"""An admitted call: resolved, whether the catalog lists its tool."""
Sent = tuple[PreparedCall, bool, str]
"""A published call: resolved, whether the catalog lists its tool, its task id."""
BatchSent = tuple[list[PreparedCall], list[bool], Any, dict[int, str]]
"""A published batch: resolved calls, listed flags, its plan, the task id of each enqueued position."""
AsyncProgress = Callable[[int, int], Any]
"""``progress(completed, total)``; a coroutine function is awaited on the loop."""


class Outbox(Generic[P, T]):
    """Work handed over by the loop, run in chunks on the publisher threads: one thread hand-off (and one
    loop wake-up) per chunk instead of per call, and ``run`` sees the whole chunk, so it can admit the
    calls of a burst together (one catalog read, one breaker look per server)."""

    def __init__(self, executor: ThreadPoolExecutor, run: Callable[[list[P]], list[tuple[bool, Any]]],
                 sent_ids: Callable[[T], list[str]], revoke: Callable[[list[str]], None]) -> None:
        self._executor = executor
        self._run = run
        self._sent_ids = sent_ids
        self._revoke = revoke
        self._queued: list[tuple[P, asyncio.Future[T]]] = []

    def submit(self, payload: P) -> asyncio.Future[T]:
        """``payload``'s outcome, later; if the future is cancelled once it was sent, its ids are revoked."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush, loop)
        self._queued.append((payload, future))
        return future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = [job for job in self._queued if not job[1].cancelled()]  # cancelled before sending: nothing to do
        self._queued = []
        for start in range(0, len(jobs), OUTBOX_CHUNK):
            chunk = jobs[start:start + OUTBOX_CHUNK]
            done = self._executor.submit(self._run, [payload for payload, _ in chunk])
            done.add_done_callback(partial(self._hand_back, loop, chunk))

    def _hand_back(self, loop: asyncio.AbstractEventLoop, chunk: list[tuple[P, asyncio.Future[T]]],
                   done: Future[list[tuple[bool, Any]]]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(self._deliver, chunk, done.result())

    def _deliver(self, chunk: list[tuple[P, asyncio.Future[T]]], outcomes: list[tuple[bool, Any]]) -> None:
        for (_payload, future), (ok, value) in zip(chunk, outcomes, strict=True):
            if future.cancelled():
                if ok:
                    self._revoke(self._sent_ids(value))
            elif ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def _run_each(sends: list[Callable[[], Any]]) -> list[tuple[bool, Any]]:
    """(publisher thread) Every send of a chunk, each one's result or exception."""
    outcomes: list[tuple[bool, Any]] = []
    for send in sends:
        try:
            outcomes.append((True, send()))
        except Exception as exc:  # boundary: handed back to the caller, who types it
            outcomes.append((False, exc))
    return outcomes


@guard_public_methods(client_urls)
class AsyncOrchestrator:
    """The same API as ``Orchestrator``, awaitable; a call in flight costs a future, not a thread."""

    def __init__(self, settings: Settings | None = None, *, app: Celery | None = None) -> None:
        self.sync = Orchestrator(settings, app=app)
        self.app = self.sync.app
        self._publisher = ThreadPoolExecutor(PUBLISH_THREADS, "mcp-orch-publish",
                                             initializer=leave_results_to_caller, initargs=(self.app,))
        started = threading.Barrier(PUBLISH_THREADS)
        for _ in range(PUBLISH_THREADS):  # every publisher thread now, so the thread count is flat from the start
            self._publisher.submit(started.wait, 10)
        self._blocking = ThreadPoolExecutor(BLOCKING_THREADS, "mcp-orch-sync")
        self._admissions: Outbox[PreparedCall, Admitted] = Outbox(self._publisher, self._admit_each,
                                                                  lambda admitted: [], self._revoke)
        self._calls: Outbox[PreparedCall, Sent] = Outbox(self._publisher, self._admit_and_send_each,
                                                         lambda sent: [sent[2]], self._revoke)
        self._batches: Outbox[Callable[[], BatchSent], BatchSent] = Outbox(self._publisher, _run_each,
                                                                           lambda sent: list(sent[3].values()),
                                                                           self._revoke)
        self._waiter: ResultWaiter | None = None
        self._loop_publisher: LoopPublisher | None = None
        self._turnstile = Turnstile()
        self._worker_looks: dict[str, tuple[float, asyncio.Future[bool]]] = {}

    @property
    def settings(self) -> Settings:
        return self.sync.settings

    @property
    def results(self) -> ResultWaiter:
        """The one pub/sub connection this client waits on (opened on first use, on the running loop)."""
        if self._waiter is None:
            backend = self.app.backend
            self._waiter = ResultWaiter(self.settings, backend.get_key_for_task, backend.decode_result)
        return self._waiter

    def _publisher_on_loop(self) -> LoopPublisher:
        """The publisher to the Redis broker (opened on first use, on the running loop)."""
        if self._loop_publisher is None:
            self._loop_publisher = LoopPublisher(self.app, self.settings, self._revoke)
        return self._loop_publisher

    def _off_loop(self, method: Callable[..., T]) -> Callable[..., Any]:
        """``method`` run on the fixed pool of blocking threads, awaitable."""
        async def run(*args: Any, **kwargs: Any) -> T:
            return await asyncio.get_running_loop().run_in_executor(self._blocking, partial(method, *args, **kwargs))
        return run

    async def call_tool(self, server: str, tool: str, params: dict[str, Any] | None = None,
                        timeout: float | None = None, *, raise_on_error: bool = True,
                        wait_for_worker: bool = False) -> ToolResult:
        """As ``Orchestrator.call_tool``: validated before enqueue, one typed outcome, by its deadline; a call
        no live worker can take fails with ``ServerUnavailable`` after ``NO_WORKER_CHECK_SECONDS`` unless
        ``wait_for_worker``."""
        asked = time.time()
        waited = await self._turnstile.enter()  # a big gather starts its calls over several loop turns
        call = prepare_call(self.settings, server, tool, params, timeout)
        if waited:  # the deadline counts from the ask (invariant 5, docs/ARCHITECTURE.md)
            call = replace(call, deadline=asked + call.timeout)
        call, listed, task_id = await self._enqueue(call)
        try:
            meta = await self._wait_unless_no_worker(call, task_id, check=not wait_for_worker)
        except TimeoutError:
            self._revoke([task_id])
            raise (await self._unknown_if_started([call], [task_id], [None]))[0] from None
        except asyncio.CancelledError:
            self._revoke([task_id])
            raise
        except OrchestratorError:  # no live worker: already withdrawn
            raise
        except Exception as exc:  # boundary: an undecodable stored result
            raise self._failed(call, task_id, exc) from None
        if meta.get("status") != "SUCCESS":
            error = self._outcome(call, task_id, meta)
            if not isinstance(error, OrchestratorError):  # a non-SUCCESS status always maps to an error
                raise self._failed(call, task_id, TypeError(f"status {meta.get('status')} without an error"))
            if isinstance(error, DeadlineExceeded):
                error.details.setdefault("timeout", call.timeout)
            answered = answered_result(error)
            if answered is not None and not raise_on_error:  # an isError result, stored as FAILURE
                return answered
            if isinstance(error, ToolReturnedError) and not listed:  # a tool error for an unlisted tool
                raise await self._off_loop(self.sync._with_close_matches)(error, call)
            raise error
        return ToolResult.model_validate(meta["result"])

    async def _wait_unless_no_worker(self, call: PreparedCall, task_id: str, *, check: bool) -> Meta:
        """The call's stored state by its deadline (plus grace); with ``check``, a call still unanswered after
        ``NO_WORKER_CHECK_SECONDS`` on a queue no live worker consumes is withdrawn: ``ServerUnavailable``."""
        if check and call.deadline - time.time() > NO_WORKER_CHECK_SECONDS:
            with contextlib.suppress(TimeoutError):  # a timed-out wait drops its subscription; the next re-reads
                return await self.results.wait(task_id, NO_WORKER_CHECK_SECONDS)
            if not await self._live_worker(call.server.queue) and await asyncio.wrap_future(self._publisher.submit(
                    self.sync.withdrawn_for_no_worker, call, task_id, partial(self._revoke_now, [task_id]))):
                raise no_worker_error(call, task_id)
        return await self.results.wait(task_id, max(call.deadline - time.time(), 0.0) + RESULT_GRACE_SECONDS)

    async def _live_worker(self, queue: str) -> bool:
        """Whether a live worker consumes ``queue``: one look per queue per ``NO_WORKER_CHECK_SECONDS``, shared by
        every call pending on it, on a publisher thread (2,000 pending calls ask Redis once, and no thread is
        added)."""
        now = time.monotonic()
        look = self._worker_looks.get(queue)
        if look is None or now - look[0] > NO_WORKER_CHECK_SECONDS:
            look = now, asyncio.wrap_future(self._publisher.submit(self._has_consumer, queue))
            self._worker_looks[queue] = look
        return await asyncio.shield(look[1])

    def _has_consumer(self, queue: str) -> bool:
        """(publisher thread) A live worker consumes ``queue``, or Redis cannot tell (then the call waits)."""
        try:
            return self.sync.health_store.has_consumer(queue)
        except LIBRARY_ERRORS:
            return True

    async def _enqueue(self, call: PreparedCall) -> Sent:
        """Admit ``call`` on a publisher thread, then enqueue it: from the loop on a Redis broker, else
        through kombu on that thread (the same hand-off)."""
        if not loop_publishing(self.settings):
            return await self._publish(call, call.deadline, self._calls.submit(call))
        call, listed = await self._publish(call, call.deadline, self._admissions.submit(call))
        return call, listed, await self._publish(call, call.deadline, self._publisher_on_loop().submit(call))

    def _admit_each(self, calls: list[PreparedCall]) -> list[tuple[bool, Any]]:
        """(publisher thread) A chunk of calls admitted together; each call's own outcome.

        One catalog read for the chunk and one breaker look per server instead of one each per call.
        A server whose breaker refuses is asked again for each of its calls, so each gets its own error.
        """
        try:
            resolved, listed = self.sync._resolve(calls, prefixed=False)
        except Exception:  # boundary: a call with bad params; admitted one by one, only that call fails
            return _run_each([partial(self.sync._admit, call) for call in calls])
        admitted: set[str] = set()
        outcomes: list[tuple[bool, Any]] = []
        for call, known in zip(resolved, listed, strict=True):
            try:
                if call.server.name not in admitted:
                    self.sync._check_breaker(call, known)
                    admitted.add(call.server.name)
                outcomes.append((True, (call, known)))
            except Exception as exc:  # boundary: handed back to the caller, who types it
                outcomes.append((False, exc))
        return outcomes

    def _admit_and_send_each(self, calls: list[PreparedCall]) -> list[tuple[bool, Any]]:
        """(publisher thread) ``_admit_each``, then each admitted call enqueued through kombu (RabbitMQ)."""
        outcomes: list[tuple[bool, Any]] = []
        for ok, admitted in self._admit_each(calls):
            if ok:
                call, listed = admitted
                try:
                    admitted = call, listed, _task_id(self.sync._send(call, CALL_TOOL, call.task_kwargs()))
                except Exception as exc:  # boundary: handed back to the caller, who types it
                    ok, admitted = False, exc
            outcomes.append((ok, admitted))
        return outcomes

    async def _publish(self, call: PreparedCall, deadline: float, future: asyncio.Future[T]) -> T:
        """The outcome of an admission or a send (publisher threads or ``LoopPublisher``); typed errors only.

        Publishing retries an unreachable broker until ``deadline`` and then raises ``NotEnqueued``;
        the wait here ends ``RESULT_GRACE_SECONDS`` later (a send stuck in a socket). If the caller
        stops waiting (cancelled, or that time passed) while the message is being sent, whatever it
        enqueued is revoked once the send ends.
        """
        try:
            async with asyncio.timeout(max(deadline - time.time(), 0.0) + RESULT_GRACE_SECONDS):
                return await future
        except TimeoutError:
            raise DeadlineExceeded(f"could not enqueue the call to {call.server.name} within {call.timeout:g}s",
                                   server=call.server.name, tool=call.tool, deadline=call.deadline,
                                   timeout=call.timeout) from None
        except OrchestratorError:
            raise
        except Exception as exc:  # boundary: kombu/redis errors while admitting or publishing; nothing enqueued
            raise CallFailed(f"could not enqueue the call to {call.server.name}: {type(exc).__name__}: {exc}",
                             server=call.server.name, tool=call.tool, cause=type(exc).__name__) from None

    def _revoke(self, task_ids: list[str]) -> None:
        """Revoke calls nobody waits for any more, from a publisher thread (never blocks the loop)."""
        if task_ids:
            self._publisher.submit(self._revoke_now, task_ids)

    def _revoke_now(self, task_ids: list[str]) -> None:
        try:  # marked in Redis too: a chunk's worker does not start them (orchestrator.revocation)
            revoke_calls(self.app, self.sync.redis, task_ids, time.time() + self.settings.max_timeout)
        except Exception as exc:  # boundary: a revoke is best effort; the calls also expire at their deadline
            log.warning("could not revoke %d abandoned calls: %s: %s", len(task_ids), type(exc).__name__, exc)

    def _outcome(self, call: PreparedCall, task_id: str, meta: Meta) -> Outcome:
        try:
            return outcome_of(self.app, call, task_id, meta)
        except Exception as exc:  # boundary: a stored result that is not a ToolResult nor an error
            return self._failed(call, task_id, exc)

    @staticmethod
    def _failed(call: PreparedCall, task_id: str, exc: Exception) -> CallFailed:
        return CallFailed(f"call to {call.server.name} failed: {type(exc).__name__}: {exc}", server=call.server.name,
                          tool=call.tool, task_id=task_id, cause=type(exc).__name__)

    async def _unknown_if_started(self, calls: list[PreparedCall], task_ids: list[str],
                                  fallbacks: Sequence[OrchestratorError | None]) -> list[OrchestratorError]:
        """The outcome of calls whose result cannot be had: ``OutcomeUnknown`` where the execution marker
        says a call not safe to repeat started, else the fallback (``DeadlineExceeded`` when None)."""
        try:
            pipe = self.results.reader.pipeline(transaction=False)
            for task_id in task_ids:
                pipe.exists(keys.execution_marker_key(task_id))
            async with asyncio.timeout(MARKER_CHECK_SECONDS):
                started = [bool(n) for n in await pipe.execute()]
        except (RedisError, OSError, TimeoutError):
            started = [False] * len(task_ids)  # Redis is gone and its markers with it (no persistence)
        outcomes: list[OrchestratorError] = []
        for call, task_id, claimed, fallback in zip(calls, task_ids, started, fallbacks, strict=True):
            if claimed:
                outcomes.append(OutcomeUnknown(
                    f"{call.tool} on {call.server.name} is not safe to repeat, started, and its result could "
                    f"not be had within {call.timeout:g}s: it may have run", server=call.server.name,
                    tool=call.tool, task_id=task_id, deadline=call.deadline))
            else:
                outcomes.append(fallback or DeadlineExceeded(
                    f"no result from {call.server.name} within {call.timeout:g}s", server=call.server.name,
                    tool=call.tool, task_id=task_id, deadline=call.deadline, timeout=call.timeout))
        return outcomes

    async def call_tools_parallel(self, calls: Sequence[Any], *, timeout: float | None = None,
                                  fail_fast: bool = False, progress: AsyncProgress | None = None,
                                  max_concurrency: Mapping[str, int] | None = None) -> list[Outcome]:
        """As ``Orchestrator.call_tools_parallel``; ``progress`` may be a coroutine function (awaited).

        Cancelling the awaiting task revokes every call of the batch that has not ended. The calls are
        validated, and their results watched, a loop turn's budget at a time (``TurnBudget``).
        """
        prepared = await self._prepare_batch(calls)
        if not prepared:
            plan_batch(self.app, self.settings, [], timeout=timeout, max_concurrency=max_concurrency)
            return []
        last = max(prepared, key=lambda call: call.deadline)
        resolved, listed, plan, ids = await self._publish(
            last, last.deadline, self._batches.submit(partial(self._plan_and_send, prepared, timeout, max_concurrency)))
        outcomes = plan.outcomes
        total, done = len(outcomes), 0
        for _refused in range(sum(outcome is not None for outcome in outcomes)):
            done += 1
            await _report(progress, done, total)
        if not ids:  # every call refused by its breaker or not enqueued by its deadline
            return [outcome for outcome in outcomes if outcome is not None]
        wait_until = max(resolved[p].deadline for p in ids) + RESULT_GRACE_SECONDS
        if plan.deadline is not None:
            wait_until = min(wait_until, plan.deadline)
        arrivals: asyncio.Queue[tuple[int, Meta]] = asyncio.Queue()
        watched: set[int] = set()
        failed_fast = False
        try:
            budget = TurnBudget()
            for index, task_id in ids.items():
                self.results.watch(task_id).add_done_callback(partial(_arrived, arrivals, index))
                watched.add(index)
                await budget.pace()
            for _ in ids:
                try:
                    async with asyncio.timeout(max(wait_until - time.time(), 0.0)):
                        index, meta = await arrivals.get()
                except TimeoutError:
                    break  # what has not ended by the deadline is reported below
                self.results.unwatch(ids[index])
                outcome = outcomes[index] = self._outcome(resolved[index], ids[index], meta)
                done += 1
                await _report(progress, done, total)
                if fail_fast and isinstance(outcome, OrchestratorError) and not outcome.transient:
                    failed_fast = True
                    break
                await budget.pace()
        finally:
            unfinished = [index for index in ids if outcomes[index] is None]
            for index in unfinished:
                if index in watched:
                    self.results.unwatch(ids[index])
            self._revoke([ids[index] for index in unfinished])
        fallbacks = [unfinished_outcome(resolved[index], ids[index], failed_fast=failed_fast,
                                        batch_deadline=plan.deadline) for index in unfinished]
        if not failed_fast:
            fallbacks = await self._unknown_if_started([resolved[i] for i in unfinished],
                                                       [ids[i] for i in unfinished], fallbacks)
        for index, outcome in zip(unfinished, fallbacks, strict=True):
            outcomes[index] = outcome
            done += 1
            await _report(progress, done, total)
        final = [outcome for outcome in outcomes if outcome is not None]
        if all(known for known in listed):
            return final
        return await self._off_loop(self.sync._hinted)(final, resolved, listed)

    def _plan_and_send(self, prepared: list[PreparedCall], timeout: float | None,
                       max_concurrency: Mapping[str, int] | None) -> BatchSent:
        """(publisher thread) Resolve and check the batch, fail fast open breakers, enqueue the rest (each
        retried while the broker is unreachable; one not enqueued by its deadline gets ``NotEnqueued``)."""
        resolved, listed = self.sync._resolve(prepared, prefixed=True)  # Redis down: the calls go as given
        plan = plan_batch(self.app, self.settings, resolved, timeout=timeout, max_concurrency=max_concurrency,
                          breakers=self.sync.breakers, listed=listed, counts=self.sync.redis)
        enqueued: dict[int, AsyncResult] = {}
        enqueue_all(self.app, resolved, plan.positions, plan.signatures, plan.outcomes, plan.deadline, enqueued,
                    subscribe=False)  # the loop's waiter listens
        return resolved, listed, plan, {position: _task_id(handle) for position, handle in enqueued.items()}

    async def _prepare_batch(self, calls: Sequence[Any]) -> list[PreparedCall]:
        """``prepare_batch`` a turn's budget at a time (10,000 calls take about 0.2 s); when that took more than
        one turn, every deadline counts from when the batch was asked (invariant 5, docs/ARCHITECTURE.md)."""
        asked = time.time()
        budget = TurnBudget()
        prepared = []
        for index, call in enumerate(batch_calls(calls)):
            prepared.append(prepare_batch_call(self.settings, call, index))
            await budget.pace()
        if budget.yielded:
            prepared = [replace(call, deadline=asked + call.timeout) for call in prepared]
        return prepared

    async def list_tools(self, server: str, timeout: float | None = None, *,
                         refresh: bool = False) -> list[dict[str, Any]]:
        return await self._off_loop(self.sync.list_tools)(server, timeout, refresh=refresh)

    async def list_all_tools(self, timeout: float | None = None, *,
                             refresh: bool = False) -> dict[str, list[dict[str, Any]]]:
        return await self._off_loop(self.sync.list_all_tools)(timeout, refresh=refresh)

    async def health_check(self, server: str, timeout: float | None = None) -> health.ServerHealth:
        return await self._off_loop(self.sync.health_check)(server, timeout)

    async def health_check_all(self, timeout: float | None = None) -> dict[str, health.ServerHealth]:
        return await self._off_loop(self.sync.health_check_all)(timeout)

    async def health_status(self) -> dict[str, str]:
        return await self._off_loop(self.sync.health_status)()

    async def health_detail(self, server: str) -> health.ServerHealth:
        return await self._off_loop(self.sync.health_detail)(server)

    async def breaker_states(self) -> dict[str, BreakerSnapshot]:
        return await self._off_loop(self.sync.breaker_states)()

    async def reset_breaker(self, server: str) -> BreakerSnapshot:
        return await self._off_loop(self.sync.reset_breaker)(server)

    async def force_breaker(self, server: str, state: str) -> BreakerSnapshot:
        return await self._off_loop(self.sync.force_breaker)(server, state)

    async def aclose(self) -> None:
        """Close the loop's publisher and result connections, then the broker/backend connections and both pools."""
        if self._loop_publisher is not None:
            await self._loop_publisher.aclose()
            self._loop_publisher = None
        if self._waiter is not None:
            await self._waiter.aclose()
            self._waiter = None
        closing = asyncio.get_running_loop().run_in_executor(self._publisher, self.sync.close)
        try:  # a close stuck on an unreachable Redis must not hold the caller's shutdown
            await asyncio.wait_for(closing, CLOSE_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("closing the broker/backend connections took over %gs; left to finish", CLOSE_TIMEOUT_SECONDS)
        self._publisher.shutdown(wait=False)
        self._blocking.shutdown(wait=False)

    async def __aenter__(self) -> AsyncOrchestrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _arrived(arrivals: asyncio.Queue[tuple[int, Meta]], index: int, result: asyncio.Future[Meta]) -> None:
    """(done callback of a watched call of a batch) Queue its index and stored state."""
    arrivals.put_nowait((index, result.result()))


def _task_id(handle: AsyncResult) -> str:
    """The id of a task sent from a publisher thread, its handle detached from the result backend: the
    loop waits for it, so the handle's ``__del__`` must not talk to Redis (during an outage that blocks the
    publisher thread in Celery's reconnect loop)."""
    handle.backend = None
    return str(handle.id)


async def _report(progress: AsyncProgress | None, done: int, total: int) -> None:
    """Call ``progress(done, total)``; await what it returns when that is awaitable."""
    if progress is not None:
        answer = progress(done, total)
        if inspect.isawaitable(answer):
            await answer
