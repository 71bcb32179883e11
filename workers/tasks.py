"""Celery tasks: the checks a delivered message needs (deny-list, redelivery, deadline, concurrency
slot) around the call body, which lives in ``workers.execution``.

The task functions do not know the app: ``register(app)`` (called by ``workers.app``) binds them.
The order of the guards is written down in docs/ARCHITECTURE.md ("Guards around a task body")."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from celery import Celery, Task

from orchestrator.errors import OrchestratorError
from orchestrator.results import ToolResult, answered_result, tool_error
from orchestrator.wire import CALL_TOOL, LIST_TOOLS
from workers.execution import (
    WorkerCall,
    concurrency_cap,
    errors_for_caller,
    list_server_tools,
    remaining_seconds,
    run_call,
    scrub_json,
    server_config,
)
from workers.policy import refuse_denied_tool
from workers.runtime import current


def call_tool(self: Task, server: str, tool: str, params: dict[str, Any], deadline: float,
              max_concurrency: int | None = None) -> dict[str, Any]:
    """Run one MCP tool call on this worker's held session for ``server``."""
    runtime = current()
    settings, redactor = runtime.settings, runtime.redactor
    with errors_for_caller(redactor, server=server, tool=tool, task_id=self.request.id):
        config = server_config(settings, server)
        refuse_denied_tool(config, tool)
        if self.request.delivery_info and self.request.delivery_info.get("redelivered"):
            stored = self.backend.get_task_meta(self.request.id)
            if stored.get("status") == "SUCCESS":
                return stored["result"]  # it finished before the worker was lost: same outcome again
            if stored.get("status") == "FAILURE":  # ...with an isError result: the same tool error again
                error = self.backend.exception_to_python(stored["result"])
                if answered_result(error) is not None:
                    raise error
        remaining_seconds(deadline, server, tool)  # an expired message is not executed
        cap = concurrency_cap(config, max_concurrency)
        slot = runtime.limits.slot(server, cap, self.request.id, deadline) if cap else nullcontext()
        call = WorkerCall(server=config, tool=tool, params=params, deadline=deadline, task_id=self.request.id,
                          worker=self.request.hostname)
        with slot:
            result = run_call(call, runtime.sessions(), runtime)
        stored = scrub_json(result.model_dump(mode="json"), redactor)
        if result.is_error:  # FAILURE, so Flower shows and counts it; clients turn it back (answered_result)
            raise tool_error(ToolResult.model_validate(stored))
        return stored


def list_tools(self: Task, server: str, deadline: float) -> list[dict[str, Any]]:
    """List ``server``'s tools (input schemas and annotations included)."""
    runtime = current()
    with errors_for_caller(runtime.redactor, server=server, tool=None, task_id=self.request.id):
        return list_server_tools(runtime.sessions(), server_config(runtime.settings, server), deadline,
                                 runtime.redactor)


def register(app: Celery) -> None:
    """Bind the call tasks to ``app`` under their wire names."""
    app.task(name=CALL_TOOL, bind=True, throws=(OrchestratorError,))(call_tool)
    app.task(name=LIST_TOOLS, bind=True, throws=(OrchestratorError,))(list_tools)
