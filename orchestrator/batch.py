"""Batches of parallel tool calls, outcomes in input order, one per call whatever dies.

Every call is validated before anything is enqueued (an error names ``calls[i].field``).
Each call keeps its own deadline; the batch may add an overall deadline (what has not
finished by then is revoked and reported as ``DeadlineExceeded``, or ``OutcomeUnknown`` when it
started), fail fast (the first
permanent failure revokes what has not started, reported as ``CallCancelled``), report
progress as results arrive, and cap the calls running at once per server across the fleet.

The calls to one server travel in chunks (``plan_batch``): one task carries several calls, each with
its own task id fixed here, and the worker stores each call's outcome under that id, so everything
above stays per call (``workers.chunks``; docs/ARCHITECTURE.md, "The path of a batch").
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import zip_longest
from typing import Any, TypeVar

import redis
from celery import Celery, Signature, states
from celery.result import AsyncResult
from kombu.utils.uuid import uuid

from orchestrator.arrivals import Arrivals
from orchestrator.backoff import jittered_backoff
from orchestrator.breaker import BreakerBoard
from orchestrator.celery_app import RESULT_GRACE_SECONDS, enqueue
from orchestrator.config import Settings
from orchestrator.errors import (
    CallCancelled,
    CircuitBreakerOpenError,
    DeadlineExceeded,
    InvalidCall,
    NotEnqueued,
    OrchestratorError,
    OutcomeUnknown,
)
from orchestrator.keys import EPOCH_KEY, execution_marker_key, text
from orchestrator.metrics import UNLISTED_TOOL, record_refusals
from orchestrator.results import ToolResult
from orchestrator.revocation import revoke_calls
from orchestrator.tracking import TrackedReads
from orchestrator.unreachable import LIBRARY_ERRORS, is_unreachable
from orchestrator.validation import PreparedCall, prepare_call, resolve_server
from orchestrator.wire import CALL_CHUNK, CALL_TOOL

Outcome = ToolResult | OrchestratorError
"""One call's outcome in a batch: its result, or the typed error it ended with."""
ProgressCallback = Callable[[int, int], Any]
"""Called with (completed, total) each time a call of the batch ends."""
OutcomeT = TypeVar("OutcomeT", bound=ToolResult | OrchestratorError)

CALL_FIELDS = ("server", "tool", "params", "timeout")


def call_fields(call: Any, index: int, *, ignore_unknown: bool = False) -> dict[str, Any]:
    """A call given as a mapping, a ``(server, tool[, params[, timeout]])`` tuple, or an object.

    A mapping with a key outside ``CALL_FIELDS`` is refused, unless ``ignore_unknown`` (the AutoArr
    facade's callers pass extra keys)."""
    if isinstance(call, Mapping):
        unknown = sorted(set(call) - set(CALL_FIELDS))
        if ignore_unknown:
            return {name: call[name] for name in CALL_FIELDS if name in call}
        if unknown:
            raise InvalidCall(f"calls[{index}].{unknown[0]}: unknown field (allowed: {', '.join(CALL_FIELDS)})",
                              field=f"calls[{index}].{unknown[0]}")
        return dict(call)
    if isinstance(call, Sequence) and not isinstance(call, str) and 2 <= len(call) <= 4:
        return dict(zip(CALL_FIELDS, call, strict=False))
    if hasattr(call, "server") and hasattr(call, "tool"):
        return {name: getattr(call, name, None) for name in CALL_FIELDS}
    raise InvalidCall(f"calls[{index}]: must be a mapping with server, tool, params, timeout "
                      f"or a (server, tool, params) tuple, got {type(call).__name__}", field=f"calls[{index}]")


def prepare_batch(settings: Settings, calls: Any) -> list[PreparedCall]:
    """Validate every call; the first bad one is refused naming its index and field."""
    return [prepare_batch_call(settings, call, index) for index, call in enumerate(batch_calls(calls))]


def batch_calls(calls: Any) -> Sequence[Any]:
    """``calls``, refused unless it is a list of calls (a sequence, not a string or a mapping)."""
    if isinstance(calls, str | bytes | Mapping) or not isinstance(calls, Sequence):
        raise InvalidCall("calls: must be a list of calls", field="calls")
    return calls


def prepare_batch_call(settings: Settings, call: Any, index: int) -> PreparedCall:
    """Validate ``calls[index]``; a refusal names that index and the field."""
    fields = call_fields(call, index)
    try:
        return prepare_call(settings, fields.get("server"), fields.get("tool"), fields.get("params"),
                            fields.get("timeout"))
    except InvalidCall as exc:
        field = f"calls[{index}].{exc.field}"
        raise type(exc)(f"calls[{index}].{exc.message}", {**exc.details, "field": field}) from None


def _check_caps(settings: Settings, caps: Mapping[str, int] | None) -> dict[str, int]:
    """``{server name or alias: cap}`` as ``{server name: cap}``, each cap a positive integer."""
    checked = {}
    for name, cap in (caps or {}).items():
        try:
            server = resolve_server(settings, name).name
        except InvalidCall as exc:
            raise InvalidCall(f"max_concurrency.{name}: {exc.message.removeprefix('server: ')}",
                              field="max_concurrency") from None
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise InvalidCall(f"max_concurrency.{name}: must be a positive integer", field="max_concurrency")
        checked[server] = cap
    return checked


def outcome_of(app: Celery, call: PreparedCall, task_id: str, meta: Mapping[str, Any]) -> Outcome:
    """Turn a task's stored state into its outcome (a result or a typed error).

    A failure that is not one of ours happened outside the tool's body, after it may have run (the
    worker could not store the result while Redis restarted, its pool process was lost): it is
    ``OutcomeUnknown`` (its execution marker may have been lost with Redis's data, so not asked)."""
    status = meta.get("status")
    if status == "SUCCESS":  # an isError result is stored as FAILURE with its tool error (workers.tasks)
        return ToolResult.model_validate(meta["result"])
    if status == "REVOKED":
        return DeadlineExceeded(f"call to {call.server.name} expired in the queue", server=call.server.name,
                                tool=call.tool, task_id=task_id, deadline=call.deadline)
    error = app.backend.exception_to_python(meta.get("result"))
    if isinstance(error, OrchestratorError):
        return error
    return OutcomeUnknown(f"call to {call.server.name} failed outside the tool ({type(error).__name__}: {error}): "
                          "it may have run", server=call.server.name, tool=call.tool, task_id=task_id,
                          cause=type(error).__name__)


@dataclass
class BatchPlan:
    """A validated batch ready to enqueue: what its breakers refused, and the signatures of the other calls.

    A signature is one call's task, or a chunk: several calls to one server in one task, each with its own
    task id, fixed here, under which the worker stores its own result (``task_ids``)."""

    deadline: float | None
    """The batch's overall deadline (epoch seconds), if it has one."""
    outcomes: list[Outcome | None]
    """One slot per call, filled already for the calls their breaker refused."""
    positions: list[tuple[int, ...]]
    """The indexes in the batch of the calls each signature carries."""
    signatures: list[Signature]
    task_ids: dict[int, str]
    """Each call's own task id, by its index in the batch."""


ADAPTIVE_FIRST_CHUNK = 4
"""Calls in a server's first chunk when ``batch_chunk_size`` is 0 (adaptive): its results come back at once."""
ADAPTIVE_MAX_CHUNK = 64
"""Largest adaptive chunk (each chunk doubles the one before): a big batch is still shared by every worker
that consumes the server's queue."""


def chunk_positions(prepared: list[PreparedCall], positions: list[int], size: int) -> list[tuple[int, ...]]:
    """``positions`` grouped into chunks of calls to one server: of ``size`` calls (1: one call each, in
    input order), or adaptive (0: ``ADAPTIVE_FIRST_CHUNK``, doubling to ``ADAPTIVE_MAX_CHUNK``); the chunks
    of the servers taken in turn, so that every server's first chunk is sent first."""
    if size == 1:
        return [(position,) for position in positions]
    by_server: dict[str, list[int]] = {}
    for position in positions:
        by_server.setdefault(prepared[position].server.name, []).append(position)
    per_server = [_split(server_positions, size) for server_positions in by_server.values()]
    return [chunk for turn in zip_longest(*per_server) for chunk in turn if chunk]


def _split(positions: list[int], size: int) -> list[tuple[int, ...]]:
    chunks, start, step = [], 0, size or ADAPTIVE_FIRST_CHUNK
    while start < len(positions):
        chunks.append(tuple(positions[start:start + step]))
        start += step
        if not size:
            step = min(step * 2, ADAPTIVE_MAX_CHUNK)
    return chunks


def plan_batch(app: Celery, settings: Settings, prepared: list[PreparedCall], *, timeout: float | None = None,
               max_concurrency: Mapping[str, int] | None = None,
               breakers: BreakerBoard | None = None, listed: Sequence[bool] | None = None,
               counts: redis.Redis | None = None, chunk_size: int | None = None) -> BatchPlan:
    """Check the batch options, fail fast the servers whose breaker is open, sign the other calls, grouped
    by server into chunks of ``chunk_size`` (default ``settings.batch_chunk_size``; see ``chunk_positions``).

    The calls refused are counted in ``counts`` (the call metrics), under their tool name when the
    catalog lists it (``listed``, one flag per call), else ``UNLISTED_TOOL``."""
    caps = _check_caps(settings, max_concurrency)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or not math.isfinite(timeout) or timeout <= 0):
        raise InvalidCall("timeout: the batch deadline must be a positive, finite number of seconds", field="timeout")
    size = settings.batch_chunk_size if chunk_size is None else chunk_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidCall("chunk_size: must be 0 (adaptive), 1 (a task per call) or a chunk size", field="chunk_size")
    batch_deadline = time.time() + timeout if timeout is not None else None
    refused = _refused_servers(prepared, breakers) if prepared else {}
    if refused and counts is not None:
        known = listed if listed is not None else [True] * len(prepared)
        record_refusals(counts, [(call.server.name, call.tool if tool_listed else UNLISTED_TOOL)
                                 for call, tool_listed in zip(prepared, known, strict=True)
                                 if call.server.name in refused])
    sendable = [position for position, call in enumerate(prepared) if call.server.name not in refused]
    plan = BatchPlan(batch_deadline, [refused.get(call.server.name) for call in prepared], [], [], {})
    for chunk in chunk_positions(prepared, sendable, size):
        calls = [prepared[position] for position in chunk]
        ids = [uuid() for _ in chunk]
        plan.task_ids.update(zip(chunk, ids, strict=True))
        plan.positions.append(chunk)
        plan.signatures.append(_signature(app, calls, ids, caps.get(calls[0].server.name), batch_deadline))
    return plan


def last_deadline(calls: Sequence[PreparedCall], batch_deadline: float | None) -> float:
    """When the last of ``calls`` stops being worth running: each call's deadline, cut at the batch's."""
    return max(min(call.deadline, batch_deadline) if batch_deadline else call.deadline for call in calls)


def _signature(app: Celery, calls: list[PreparedCall], ids: list[str], cap: int | None,
               batch_deadline: float | None) -> Signature:
    """One call's task, or the chunk task of several calls to one server (each with its own id and deadline;
    ``start_by``: the batch deadline, after which the worker starts none of them)."""
    expires = last_deadline(calls, batch_deadline)
    server = calls[0].server
    options: dict[str, Any]
    if len(calls) == 1:
        kwargs = calls[0].task_kwargs()
        name, options = CALL_TOOL, {"task_id": ids[0]}
    else:
        kwargs = {"server": server.name, "start_by": batch_deadline,
                  "calls": [{"id": task_id, "tool": call.tool, "params": call.params, "deadline": call.deadline}
                            for task_id, call in zip(ids, calls, strict=True)]}
        name, options = CALL_CHUNK, {"task_id": uuid(), "ignore_result": True}  # each call stores its own result
    if cap is not None:
        kwargs["max_concurrency"] = cap
    return app.signature(name, kwargs=kwargs, queue=server.queue, expires=datetime.fromtimestamp(expires, tz=UTC),
                         **options)


def run_batch(app: Celery, settings: Settings, prepared: list[PreparedCall], *, timeout: float | None = None,
              fail_fast: bool = False, progress: ProgressCallback | None = None,
              max_concurrency: Mapping[str, int] | None = None,
              breakers: BreakerBoard | None = None, markers: redis.Redis | None = None,
              listed: Sequence[bool] | None = None, chunk_size: int | None = None) -> list[Outcome]:
    """Enqueue validated calls (``prepare_batch``); one outcome per call, in input order, whatever dies.

    A server whose breaker is open fails its own calls at once (not enqueued); the others run, grouped
    into chunks (``plan_batch``). Outcomes are collected while the chunks are still being published (a
    publisher thread), so the first results come back before the last chunk is sent.
    ``markers`` is the Redis holding the workers' execution markers: a call that ends without a
    result is ``OutcomeUnknown`` when it started, ``DeadlineExceeded`` when it did not; the call counters
    there count the calls a breaker refused (``plan_batch``).
    """
    plan = plan_batch(app, settings, prepared, timeout=timeout, max_concurrency=max_concurrency, breakers=breakers,
                      listed=listed, counts=markers, chunk_size=chunk_size)
    if not prepared:
        return []
    if not plan.signatures:
        _report_done(progress, len(prepared), len(prepared))
        return [outcome for outcome in plan.outcomes if outcome is not None]
    epoch = redis_epoch(markers)
    enqueued = {position: AsyncResult(task_id, app=app) for position, task_id in plan.task_ids.items()}
    arrivals = Arrivals(app.backend, plan.task_ids.values())
    with contextlib.suppress(*LIBRARY_ERRORS):  # Redis unreachable: publishing meets it too, or the wait listens again
        arrivals.listen()  # before the first call is sent
    publisher = Publisher(app, prepared, plan)
    try:
        return _collect(app, prepared, enqueued, plan.outcomes, plan.deadline, fail_fast, progress, markers, epoch,
                        publisher, arrivals)
    except KeyboardInterrupt:
        publisher.stop()
        raise _interrupted(app, prepared, enqueued, plan, markers) from None
    finally:
        arrivals.close()


class Publisher:
    """Publishes a plan's signatures on a thread of its own (``enqueue_all``) while the caller collects
    outcomes; ``stop`` ends it early (fail fast, Ctrl-C) and re-raises what it failed with."""

    def __init__(self, app: Celery, prepared: list[PreparedCall], plan: BatchPlan) -> None:
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(app, prepared, plan), name="batch-publisher",
                                        daemon=True)
        self._thread.start()

    def _run(self, app: Celery, prepared: list[PreparedCall], plan: BatchPlan) -> None:
        leave_results_to_caller(app)  # the collecting thread listens for every call (``Arrivals``)
        try:
            enqueue_all(app, prepared, plan.positions, plan.signatures, plan.outcomes, plan.deadline, None,
                        stopped=self._stopped, subscribe=False)
        except BaseException as exc:  # handed to the collecting thread by ``stop``
            self._error = exc

    def stop(self) -> None:
        """Publish nothing more, wait for the thread, raise what it failed with."""
        self._stopped.set()
        self._thread.join()
        if self._error is not None:
            raise self._error


def leave_results_to_caller(app: Celery) -> None:
    """Make this thread's Celery backend (thread-local) subscribe nothing when it sends a task: Celery's
    ``send_task`` would subscribe the backend's own pub/sub connection to the task's channel, a second
    subscription per call that nobody on this (publishing) thread reads or releases."""
    app.backend.on_task_call = _subscribe_nothing


def _subscribe_nothing(producer: Any, task_id: str) -> None:
    """``Backend.on_task_call`` of a publishing thread whose results another listener waits for."""


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C while a batch ran: the calls without an outcome were revoked, and those still waiting in
    their queue were taken out of it (so they never run, even on a worker started later)."""

    def __init__(self, total: int, ended: int, withdrawn: int, revoked: int) -> None:
        super().__init__(f"interrupted: {ended} of {total} calls had ended; {withdrawn} were taken out of their "
                         f"queue before running; {revoked - withdrawn} had been picked up by a worker and were "
                         f"revoked (one already running finishes there)")
        self.total, self.ended, self.withdrawn, self.revoked = total, ended, withdrawn, revoked


def _interrupted(app: Celery, prepared: list[PreparedCall], enqueued: Mapping[int, AsyncResult],
                 plan: BatchPlan, queues: redis.Redis | None) -> BatchInterrupted:
    """Revoke what has no outcome yet and withdraw the messages (a call's, or a chunk's) that still wait in
    a queue; say how many calls of each."""
    outcomes = plan.outcomes
    unfinished = {index: handle.id for index, handle in enqueued.items() if outcomes[index] is None}
    withdrawn = 0
    with contextlib.suppress(*LIBRARY_ERRORS):
        revoke_calls(app, queues, list(unfinished.values()), max((prepared[i].deadline for i in unfinished),
                                                                 default=time.time()))
        if queues is not None:
            by_queue: dict[str, dict[str, int]] = {}  # queue -> message id -> calls it carries
            for chunk, signature in zip(plan.positions, plan.signatures, strict=True):
                if any(index in unfinished for index in chunk):
                    by_queue.setdefault(prepared[chunk[0]].server.queue, {})[signature.options["task_id"]] = len(chunk)
            withdrawn = sum(calls[message_id] for queue, calls in by_queue.items()
                            for message_id in withdraw_queued_ids(queues, queue, set(calls)))
    ended = sum(outcome is not None for outcome in outcomes)
    return BatchInterrupted(len(prepared), ended, withdrawn, len(unfinished))


def withdraw_queued(client: redis.Redis, queue: str, task_ids: set[str]) -> int:
    """Remove the messages of ``task_ids`` still waiting in ``queue`` (kombu's Redis list); how many."""
    return len(withdraw_queued_ids(client, queue, task_ids))


def withdraw_queued_ids(client: redis.Redis, queue: str, task_ids: set[str]) -> set[str]:
    """Remove the messages of ``task_ids`` still waiting in ``queue`` (kombu's Redis list); the ids removed."""
    removed = set()
    for raw in client.lrange(queue, 0, -1):
        try:
            task_id = json.loads(raw)["headers"]["id"]
        except (ValueError, KeyError, TypeError):
            continue
        if task_id in task_ids and client.lrem(queue, 1, raw):  # type: ignore[arg-type]  # bytes work; the stub says str
            removed.add(task_id)
    return removed


def enqueue_all(app: Celery, prepared: list[PreparedCall], positions: list[tuple[int, ...]],
                signatures: list[Signature], outcomes: list[Outcome | None], batch_deadline: float | None,
                enqueued: dict[int, AsyncResult] | None, *, stopped: threading.Event | None = None,
                subscribe: bool = True) -> None:
    """Publish each signature, its calls' handles into ``enqueued`` unless None (retrying while the broker is
    unreachable and the calls' deadlines allow); the calls of one that could not be enqueued get ``NotEnqueued``.

    ``subscribe``: listen for the results of a chunk's calls (a single call's task is listened for by
    ``apply_async``); ``stopped``: publish nothing more once it is set."""
    with app.producer_or_acquire() as producer:  # lazy: connects on the first publish
        for chunk, signature in zip(positions, signatures, strict=True):
            if stopped is not None and stopped.is_set():
                return
            ids = call_ids(signature)
            give_up_at = last_deadline([prepared[p] for p in chunk], batch_deadline)
            if subscribe and signature.task == CALL_CHUNK:
                for task_id in ids:
                    app.backend.on_task_call(producer, task_id)
            try:
                sent = enqueue(app, signature, give_up_at=give_up_at, producer=producer)
            except NotEnqueued as exc:
                for position, task_id in zip(chunk, ids, strict=True):
                    outcomes[position] = type(exc)(exc.message, {**exc.details, "tool": prepared[position].tool,
                                                                 "task_id": task_id})
                continue
            sent.backend = None  # dropped here: its __del__ must not stop the listening for the call
            if enqueued is not None:
                for position, task_id in zip(chunk, ids, strict=True):
                    enqueued[position] = AsyncResult(task_id, app=app)


def call_ids(signature: Signature) -> list[str]:
    """The task ids of the calls a planned signature carries (a chunk's calls, or the one call)."""
    if signature.task == CALL_CHUNK:
        return [call["id"] for call in signature.kwargs["calls"]]
    return [signature.options["task_id"]]


def unfinished_outcome(call: PreparedCall, task_id: str, *, failed_fast: bool,
                       batch_deadline: float | None) -> OrchestratorError:
    """What a call of a batch that had not ended when the batch stopped waiting (and revoked it) reports."""
    if failed_fast:
        return CallCancelled("cancelled: another call of the batch failed (fail_fast)",
                             server=call.server.name, tool=call.tool, task_id=task_id)
    return DeadlineExceeded(f"batch deadline passed before the call to {call.server.name} ended",
                            server=call.server.name, tool=call.tool, task_id=task_id,
                            deadline=batch_deadline or call.deadline)


def _refused_servers(prepared: list[PreparedCall], breakers: BreakerBoard | None) -> dict[str, OrchestratorError]:
    """One breaker check per server of the batch: the servers whose calls fail fast."""
    refused: dict[str, OrchestratorError] = {}
    if breakers is None:
        return refused
    for name in dict.fromkeys(call.server.name for call in prepared):
        try:
            breakers.breaker(name).check_or_raise()
        except CircuitBreakerOpenError as exc:
            refused[name] = exc
    return refused


def _report_done(progress: ProgressCallback | None, done: int, total: int) -> None:
    """Report the ``done`` calls that ended before any result arrived (refused by their breaker)."""
    if progress is not None:
        for finished in range(1, done + 1):
            progress(finished, total)


def _collect(app: Celery, prepared: list[PreparedCall], enqueued: dict[int, AsyncResult],
             outcomes: list[Outcome | None], batch_deadline: float | None, fail_fast: bool,
             progress: ProgressCallback | None, markers: redis.Redis | None, epoch: str | None,
             publisher: Publisher, arrivals: Arrivals) -> list[Outcome]:
    """Fill ``outcomes`` as results arrive, through Redis restarts, while ``publisher`` still sends; what is
    still missing at the end is revoked and settled from the stored result and the execution marker
    (``settle``)."""
    wait_until = max((prepared[p].deadline for p in enqueued), default=time.time()) + RESULT_GRACE_SECONDS
    if batch_deadline is not None:
        wait_until = min(wait_until, batch_deadline)
    done = sum(outcome is not None for outcome in outcomes)
    _report_done(progress, done, len(prepared))
    done, failed_fast = _gather_arrivals(app, prepared, enqueued, outcomes, wait_until, fail_fast, progress, done,
                                         markers, epoch, arrivals)
    publisher.stop()
    not_enqueued = sum(outcome is not None for outcome in outcomes) - done  # by the publisher, meanwhile
    for _ in range(not_enqueued):
        done += 1
        if progress is not None:
            progress(done, len(prepared))
    _end_unfinished(app, prepared, enqueued, outcomes, batch_deadline, failed_fast, progress, done, markers, epoch)
    return [outcome for outcome in outcomes if outcome is not None]


ARRIVAL_POLL_SECONDS = 0.5
"""Longest wait for one arrival before the batch looks again at what is still pending (seconds): a call the
publisher could not enqueue meanwhile has its outcome already and never arrives."""


def _gather_arrivals(app: Celery, prepared: list[PreparedCall], enqueued: Mapping[int, AsyncResult],
                     outcomes: list[Outcome | None], wait_until: float, fail_fast: bool,
                     progress: ProgressCallback | None, done: int, markers: redis.Redis | None,
                     epoch: str | None, arrivals: Arrivals) -> tuple[int, bool]:
    """Store each outcome as it arrives until all are in, the wait ends or fail-fast stops it, listening
    again after Redis restarts; returns how many are done and whether fail-fast stopped it."""
    position = {handle.id: index for index, handle in enqueued.items()}
    attempt = 0
    while time.time() < wait_until:
        if all(outcomes[index] is not None for index in enqueued):
            break
        try:
            arrived = arrivals.next(min(max(wait_until - time.time(), 0.01), ARRIVAL_POLL_SECONDS))
            while arrived is not None:
                task_id, meta = arrived
                index = position[task_id]
                if outcomes[index] is None:
                    outcome = confirmed(outcome_of(app, prepared[index], task_id, meta), markers, prepared[index],
                                        task_id, epoch)
                    outcomes[index] = outcome
                    done += 1
                    if progress is not None:
                        progress(done, len(prepared))
                    if fail_fast and isinstance(outcome, OrchestratorError) and not outcome.transient:
                        return done, True
                arrived = arrivals.next(0)
            attempt = 0
        except Exception as exc:  # Redis restarting under the listener: listen again, keep collecting
            if not is_unreachable(exc):
                raise
            arrivals.close()
            attempt += 1
            time.sleep(min(jittered_backoff(attempt, 0.05, 1.0), max(wait_until - time.time(), 0)))
    return done, False


def _end_unfinished(app: Celery, prepared: list[PreparedCall], enqueued: Mapping[int, AsyncResult],
                    outcomes: list[Outcome | None], batch_deadline: float | None, failed_fast: bool,
                    progress: ProgressCallback | None, done: int, markers: redis.Redis | None,
                    epoch: str | None) -> None:
    """Revoke the calls still without an outcome and give each its own: cancelled, its result stored after
    all, ``OutcomeUnknown`` when it may have run, else past the deadline (``settle``)."""
    unfinished = [index for index in enqueued if outcomes[index] is None]
    if unfinished:
        with contextlib.suppress(*LIBRARY_ERRORS):
            revoke_calls(app, markers, [enqueued[index].id for index in unfinished],
                         max(prepared[index].deadline for index in unfinished))
    for index in unfinished:
        call, task_id = prepared[index], enqueued[index].id
        if failed_fast:
            outcomes[index] = CallCancelled("cancelled: another call of the batch failed (fail_fast)",
                                            server=call.server.name, tool=call.tool, task_id=task_id)
        else:
            by_batch = batch_deadline is not None and batch_deadline < call.deadline
            meta = stored_meta(app, task_id)
            outcomes[index] = (confirmed(outcome_of(app, call, task_id, meta), markers, call, task_id, epoch)
                               if meta is not None
                               else settle(markers, call, task_id, epoch, batch_deadline if by_batch else None))
        done += 1
        if progress is not None:
            progress(done, len(prepared))


def stored_meta(app: Celery, task_id: str) -> dict[str, Any] | None:
    """A result the worker stored though it never reached the listener (Redis restarted meanwhile), or None."""
    with contextlib.suppress(*LIBRARY_ERRORS):
        meta = app.backend.get_task_meta(task_id)
        if meta.get("status") in states.READY_STATES:
            return meta
    return None


def redis_epoch(markers: redis.Redis | None, tracked: TrackedReads | None = None) -> str | None:
    """Redis's data epoch (``keys.EPOCH_KEY``, set here if missing); None when Redis cannot be asked.

    ``tracked`` answers from memory while Redis has not changed the key (a restart drops the tracked
    connection and with it the cache, a flush invalidates it): no round trip on the common path."""
    if markers is None:
        return None
    if tracked is not None:
        try:
            epoch = tracked.read(("GET", EPOCH_KEY))
            if epoch is None:
                markers.set(EPOCH_KEY, uuid(), nx=True)
                tracked.forget(EPOCH_KEY)
                epoch = tracked.read(("GET", EPOCH_KEY))
        except LIBRARY_ERRORS:
            return None
        return text(epoch) if epoch is not None else None
    token = uuid()
    try:
        pipe = markers.pipeline(transaction=False)
        pipe.set(EPOCH_KEY, token, nx=True)
        pipe.get(EPOCH_KEY)
        _, epoch = pipe.execute()
    except LIBRARY_ERRORS:
        return None
    return text(epoch) if epoch is not None else None


def confirmed(outcome: OutcomeT, markers: redis.Redis | None, call: PreparedCall, task_id: str,
              epoch: str | None) -> OutcomeT | OutcomeUnknown:
    """``outcome``, unless it says "did not run" (``DeadlineExceeded``, an expired message) while the
    call's marker is claimed or Redis lost its data since: a duplicate copy of the message (a publish
    retried after its reply was lost) can expire after the first copy ran. Then ``OutcomeUnknown``."""
    if not isinstance(outcome, DeadlineExceeded):
        return outcome
    checked = settle(markers, call, task_id, epoch)
    return checked if isinstance(checked, OutcomeUnknown) else outcome


def settle(markers: redis.Redis | None, call: PreparedCall, task_id: str, epoch: str | None,
           batch_deadline: float | None = None) -> OrchestratorError:
    """The outcome of a call that ended with no result: ``OutcomeUnknown`` when its execution marker is
    claimed (it may have run), else ``DeadlineExceeded`` naming the deadline that passed (the batch's
    when given, else the call's). ``epoch`` is ``redis_epoch`` when the call was enqueued: when Redis
    lost its data since (or cannot be asked), a missing marker proves nothing, and the call is
    ``OutcomeUnknown``: "may have run" is never reported as "did not run"."""
    fields = {"server": call.server.name, "tool": call.tool, "task_id": task_id,
              "deadline": batch_deadline or call.deadline}
    which = "the batch deadline" if batch_deadline is not None else f"the call's deadline ({call.timeout:g}s)"
    try:
        claimed = markers is not None and bool(markers.exists(execution_marker_key(task_id)))
    except LIBRARY_ERRORS as exc:
        return OutcomeUnknown(f"{which} passed with no result from {call.server.name}, and Redis could not be asked "
                              f"whether the call started ({type(exc).__name__}): it may have run",
                              cause=type(exc).__name__, **fields)
    if not claimed and (epoch is None or redis_epoch(markers) != epoch):
        return OutcomeUnknown(f"{which} passed with no result from {call.server.name}, and Redis lost its data "
                              "since the call was enqueued (restarted without persistence): it may have run", **fields)
    if claimed:
        return OutcomeUnknown(f"{which} passed with no result from {call.server.name} after the call started "
                              "(its worker was lost, or its result with Redis): it may have run", **fields)
    return DeadlineExceeded(f"{which} passed before the call to {call.server.name} ended; it did not start",
                            timeout=call.timeout, **fields)
