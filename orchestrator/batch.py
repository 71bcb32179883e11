"""Batches of parallel tool calls as one Celery group, outcomes in input order.

Every call is validated before anything is enqueued (an error names ``calls[i].field``).
Each call keeps its own deadline; the batch may add an overall deadline (what has not
finished by then is revoked and reported as ``DeadlineExceeded``), fail fast (the first
permanent failure revokes what has not started, reported as ``CallCancelled``), report
progress as results arrive, and cap the calls running at once per server across the fleet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery, Signature, group
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import GroupResult

from orchestrator.breaker import BreakerBoard
from orchestrator.celery_app import RESULT_GRACE_SECONDS
from orchestrator.config import Settings
from orchestrator.errors import (
    CallCancelled,
    CallFailed,
    CircuitBreakerOpenError,
    DeadlineExceeded,
    InvalidCall,
    OrchestratorError,
)
from orchestrator.results import ToolResult, tool_error
from orchestrator.validation import PreparedCall, prepare_call, resolve_server
from orchestrator.wire import CALL_TOOL

Outcome = ToolResult | OrchestratorError
"""One call's outcome in a batch: its result, or the typed error it ended with."""
ProgressCallback = Callable[[int, int], Any]
"""Called with (completed, total) each time a call of the batch ends."""

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
    if isinstance(calls, str | bytes | Mapping) or not isinstance(calls, Sequence):
        raise InvalidCall("calls: must be a list of calls", field="calls")
    prepared = []
    for index, call in enumerate(calls):
        fields = call_fields(call, index)
        try:
            prepared.append(prepare_call(settings, fields.get("server"), fields.get("tool"), fields.get("params"),
                                         fields.get("timeout")))
        except InvalidCall as exc:
            field = f"calls[{index}].{exc.field}"
            raise type(exc)(f"calls[{index}].{exc.message}", {**exc.details, "field": field}) from None
    return prepared


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
    """Turn a task's stored state into its outcome (a result or a typed error)."""
    status = meta.get("status")
    if status == "SUCCESS":
        result = ToolResult.model_validate(meta["result"])
        return tool_error(result) if result.is_error else result
    if status == "REVOKED":
        return DeadlineExceeded(f"call to {call.server.name} expired in the queue", server=call.server.name,
                                tool=call.tool, task_id=task_id, deadline=call.deadline)
    error = app.backend.exception_to_python(meta.get("result"))
    if isinstance(error, OrchestratorError):
        return error
    return CallFailed(f"call to {call.server.name} failed: {type(error).__name__}: {error}", server=call.server.name,
                      tool=call.tool, task_id=task_id, cause=type(error).__name__)


@dataclass
class BatchPlan:
    """A validated batch ready to enqueue: what its breakers refused, and one signature per other call."""

    deadline: float | None
    """The batch's overall deadline (epoch seconds), if it has one."""
    outcomes: list[Outcome | None]
    """One slot per call, filled already for the calls their breaker refused."""
    positions: list[int]
    """The index in the batch of each signature's call."""
    signatures: list[Signature]


def plan_batch(app: Celery, settings: Settings, prepared: list[PreparedCall], *, timeout: float | None = None,
               max_concurrency: Mapping[str, int] | None = None,
               breakers: BreakerBoard | None = None) -> BatchPlan:
    """Check the batch options, fail fast the servers whose breaker is open, sign the other calls."""
    caps = _check_caps(settings, max_concurrency)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise InvalidCall("timeout: the batch deadline must be a positive number of seconds", field="timeout")
    batch_deadline = time.time() + timeout if timeout is not None else None
    refused = _refused_servers(prepared, breakers) if prepared else {}
    signatures, positions = [], []
    for position, call in enumerate(prepared):
        if call.server.name in refused:
            continue
        positions.append(position)
        kwargs = call.task_kwargs()
        cap = caps.get(call.server.name)
        if cap is not None:
            kwargs["max_concurrency"] = cap
        expires = min(call.deadline, batch_deadline) if batch_deadline else call.deadline
        signatures.append(app.signature(CALL_TOOL, kwargs=kwargs, queue=call.server.queue,
                                        expires=datetime.fromtimestamp(expires, tz=UTC)))
    return BatchPlan(batch_deadline, [refused.get(call.server.name) for call in prepared], positions, signatures)


def run_batch(app: Celery, settings: Settings, prepared: list[PreparedCall], *, timeout: float | None = None,
              fail_fast: bool = False, progress: ProgressCallback | None = None,
              max_concurrency: Mapping[str, int] | None = None,
              breakers: BreakerBoard | None = None) -> list[Outcome]:
    """Enqueue validated calls (``prepare_batch``) as one group; one outcome per call, in input order.

    A server whose breaker is open fails its own calls at once (not enqueued); the others run.
    """
    plan = plan_batch(app, settings, prepared, timeout=timeout, max_concurrency=max_concurrency, breakers=breakers)
    if not prepared:
        return []
    if not plan.signatures:
        _report_done(progress, len(prepared), len(prepared))
        return [outcome for outcome in plan.outcomes if outcome is not None]
    handle: GroupResult = group(plan.signatures, app=app).apply_async()
    return _collect(app, prepared, plan.positions, plan.outcomes, handle, plan.deadline, fail_fast, progress)


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


def _collect(app: Celery, prepared: list[PreparedCall], positions: list[int], outcomes: list[Outcome | None],
             handle: GroupResult, batch_deadline: float | None, fail_fast: bool,
             progress: ProgressCallback | None) -> list[Outcome]:
    """Fill ``outcomes`` as results arrive; what is still missing at the end is revoked."""
    task_ids = {positions[i]: result.id for i, result in enumerate(handle.results)}
    wait_until = max(prepared[p].deadline for p in positions) + RESULT_GRACE_SECONDS
    if batch_deadline is not None:
        wait_until = min(wait_until, batch_deadline)
    done = sum(outcome is not None for outcome in outcomes)
    _report_done(progress, done, len(prepared))
    done, failed_fast = _gather_arrivals(app, prepared, task_ids, outcomes, handle, wait_until, fail_fast, progress,
                                         done)
    _end_unfinished(app, prepared, task_ids, outcomes, batch_deadline, failed_fast, progress, done)
    for result in handle.results:
        app.backend.remove_pending_result(result)
    return [outcome for outcome in outcomes if outcome is not None]


def _gather_arrivals(app: Celery, prepared: list[PreparedCall], task_ids: Mapping[int, str],
                     outcomes: list[Outcome | None], handle: GroupResult, wait_until: float, fail_fast: bool,
                     progress: ProgressCallback | None, done: int) -> tuple[int, bool]:
    """Store each outcome as it arrives until all are in, the wait ends or fail-fast stops it;
    returns how many are done and whether fail-fast stopped it."""
    position = {task_id: index for index, task_id in task_ids.items()}
    try:
        for task_id, meta in handle.iter_native(timeout=max(wait_until - time.time(), 0.01), no_ack=True):
            index = position[task_id]
            outcome = outcome_of(app, prepared[index], task_id, meta)
            outcomes[index] = outcome
            done += 1
            if progress is not None:
                progress(done, len(prepared))
            if fail_fast and isinstance(outcome, OrchestratorError) and not outcome.transient:
                return done, True
    except CeleryTimeout:
        pass
    return done, False


def _end_unfinished(app: Celery, prepared: list[PreparedCall], task_ids: Mapping[int, str],
                    outcomes: list[Outcome | None], batch_deadline: float | None, failed_fast: bool,
                    progress: ProgressCallback | None, done: int) -> None:
    """Revoke the calls still without an outcome and give each its error: cancelled or past the deadline."""
    unfinished = [index for index, outcome in enumerate(outcomes) if outcome is None]
    if unfinished:
        app.control.revoke([task_ids[index] for index in unfinished])
    for index in unfinished:
        outcomes[index] = unfinished_outcome(prepared[index], task_ids[index], failed_fast=failed_fast,
                                             batch_deadline=batch_deadline)
        done += 1
        if progress is not None:
            progress(done, len(prepared))
