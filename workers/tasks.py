"""Celery tasks: the checks a delivered call needs (deny-list, redelivery, deadline, concurrency slot)
around the call body, which lives in ``workers.execution``; a call comes alone (``call_tool``) or in
a chunk of a batch (``call_chunk``, run by ``workers.chunks``), through the same guards either way.

The task functions do not know the app: ``register(app)`` (called by ``workers.app``) binds them.
The order of the guards is written down in docs/ARCHITECTURE.md ("Guards around a task body")."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery, Task, states

from orchestrator.errors import OrchestratorError
from orchestrator.limits import LEASE_MARGIN_SECONDS
from orchestrator.results import ToolResult, answered_result, tool_error
from orchestrator.wire import CALL_CHUNK, CALL_TOOL, LIST_TOOLS
from workers.chunks import ChunkCall, EndedCall, chunk_width, run_chunk
from workers.execution import (
    WorkerCall,
    call_steps,
    concurrency_cap,
    errors_for_caller,
    list_server_tools,
    remaining_seconds,
    scrub_json,
    server_config,
)
from workers.metrics import call_count
from workers.outcomes import Ended, OutcomeWriter
from workers.policy import refuse_denied_tool
from workers.runtime import current
from workers.steps import OnLoop, Steps, drive


def call_tool(self: Task, server: str, tool: str, params: dict[str, Any], deadline: float,
              max_concurrency: int | None = None) -> dict[str, Any]:
    """Run one MCP tool call on this worker's held session for ``server``."""
    steps = guarded_steps(self.backend, server, {"id": self.request.id, "tool": tool, "params": params,
                                                 "deadline": deadline},
                          worker=self.request.hostname, redelivered=was_redelivered(self),
                          max_concurrency=max_concurrency)
    result = drive(steps, current().sessions())
    assert result is not None  # only a chunk's call can be revoked after delivery
    return result


def was_redelivered(task: Task) -> bool:
    """Whether the broker delivered this message before (its worker was lost before acking it)."""
    info = task.request.delivery_info
    return bool(info and info.get("redelivered"))


def guarded_steps(backend: Any, server: str, call: dict[str, Any], *, worker: str | None, redelivered: bool,
                  max_concurrency: int | None, revoked: bool = False) -> Steps[dict[str, Any] | None]:
    """One delivered call (``id``, ``tool``, ``params``, ``deadline``) through the guards, in order: its
    result (JSON), or its error raised; None when it was ``revoked`` before it started (a chunk's call).
    Its waits on the session loop are yielded (``workers.steps``).

    A redelivered call whose result is already stored gives that outcome again instead of running."""
    runtime = current()
    settings, redactor = runtime.settings, runtime.redactor
    task_id, tool, deadline = call["id"], call["tool"], call["deadline"]
    with errors_for_caller(redactor, server=server, tool=tool, task_id=task_id):
        config = server_config(settings, server)
        refuse_denied_tool(config, tool)
        if redelivered:
            stored = backend.get_task_meta(task_id)
            if stored.get("status") == "SUCCESS":
                return stored["result"]  # it finished before the worker was lost
            if stored.get("status") == "FAILURE":  # ...with an isError result: the same tool error again
                error = backend.exception_to_python(stored["result"])
                if answered_result(error) is not None:
                    raise error
        if revoked:
            return None
        remaining_seconds(deadline, server, tool)  # an expired message is not executed
        cap = concurrency_cap(config, max_concurrency)
        worker_call = WorkerCall(server=config, tool=tool, params=call["params"], deadline=deadline,
                                 task_id=task_id, worker=worker)
        if cap and not runtime.limits.try_acquire(server, cap, task_id, deadline + LEASE_MARGIN_SECONDS):
            yield OnLoop(runtime.limits.wait_for_slot(server, cap, task_id, deadline), max(deadline - time.time(), 0.0))
        try:
            result = yield from call_steps(worker_call, runtime.sessions(), runtime)
        finally:
            if cap:
                runtime.limits.release(server, task_id)
        stored = scrub_json(result.model_dump(mode="json"), redactor)
        if result.is_error:  # FAILURE, so Flower shows and counts it; clients turn it back (answered_result)
            raise tool_error(ToolResult.model_validate(stored))
        return stored


def call_chunk(self: Task, server: str, calls: list[dict[str, Any]], start_by: float | None = None,
               max_concurrency: int | None = None) -> None:
    """Run a chunk of a batch: its calls to ``server`` concurrently on the held session, each through the
    guards of ``guarded_steps``, each outcome stored under the call's own task id (``workers.chunks``)."""
    redelivered = was_redelivered(self)
    worker, backend = self.request.hostname, self.backend  # the request is the task thread's own
    outcomes = OutcomeWriter(backend)

    def steps(call: ChunkCall, revoked: bool) -> Steps[dict[str, Any] | None]:
        return guarded_steps(backend, server, call, worker=worker, redelivered=redelivered,
                             max_concurrency=max_concurrency, revoked=revoked)

    def ended(done: list[EndedCall]) -> None:
        outcomes.write([_ended(server, call) for call in done])

    runtime = current()
    config = runtime.settings.servers.get(server)
    cap = concurrency_cap(config, max_concurrency) if config is not None else max_concurrency
    run_chunk(runtime, calls, steps, ended, width=chunk_width(cap), start_by=start_by, now=time.time)


def _ended(server: str, done: EndedCall) -> Ended:
    """A chunk's call as its outcome is stored: result, error or revoked, and its counters if it ran."""
    value: Any
    if done.settled.error is not None:
        value, state = done.settled.error, states.FAILURE
    elif done.settled.value is None:
        value, state = None, states.REVOKED
    else:
        value, state = done.settled.value, states.SUCCESS
    count = None if state == states.REVOKED else call_count(server, done.call["tool"], value, state, done.duration)
    return Ended(done.call["id"], value, state, count)


def list_tools(self: Task, server: str, deadline: float) -> list[dict[str, Any]]:
    """List ``server``'s tools (input schemas and annotations included)."""
    runtime = current()
    with errors_for_caller(runtime.redactor, server=server, tool=None, task_id=self.request.id):
        return list_server_tools(runtime.sessions(), server_config(runtime.settings, server), deadline,
                                 runtime.redactor)


def register(app: Celery) -> None:
    """Bind the call tasks to ``app`` under their wire names."""
    app.task(name=CALL_TOOL, bind=True, throws=(OrchestratorError,))(call_tool)
    app.task(name=CALL_CHUNK, bind=True, ignore_result=True)(call_chunk)
    app.task(name=LIST_TOOLS, bind=True, throws=(OrchestratorError,))(list_tools)
