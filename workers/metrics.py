"""Worker side of the metrics: count every finished ``mcp.call_tool`` in Redis.

Connected to Celery's ``task_prerun`` / ``task_postrun`` signals by ``connect()`` (``workers.app`` calls it),
so the task body stays untouched. ``task_postrun`` fires after the result is stored: the caller
already has its answer when the counters are written (one pipelined round trip). A failure to
count is logged, never raised: metrics must not fail a call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from celery.signals import task_postrun, task_prerun

from orchestrator.errors import OrchestratorError
from orchestrator.metrics import UNLISTED_TOOL, CallCount, record_calls
from orchestrator.results import answered_result
from orchestrator.wire import CALL_TOOL
from workers.runtime import current
from workers.sessions import HeldSession

log = logging.getLogger("workers.metrics")

_started: dict[str, float] = {}
"""Start time (perf counter) of each running call_tool task, by task id."""


def task_outcome(retval: Any, state: str | None) -> tuple[bool, int, str | None]:
    """(ok, attempts, error type) of a finished call from what the task returned or raised.

    An ``isError`` result is raised as its tool error (UpstreamUnavailable, ToolReturnedError...) and
    labelled by that type; its attempts are the result's."""
    if isinstance(retval, BaseException):
        answered = answered_result(retval)
        attempts = answered.attempts if answered else (
            retval.details.get("attempts", 1) if isinstance(retval, OrchestratorError) else 1)
        return False, int(attempts or 1), type(retval).__name__
    if isinstance(retval, dict):
        return state != "FAILURE", int(retval.get("attempts") or 1), None if state != "FAILURE" else "unknown"
    return state != "FAILURE", 1, None if state != "FAILURE" else "unknown"


def tool_label(held: HeldSession | None, tool: Any) -> str:
    """The ``tool`` label of a call's counters: its name when the server lists it, else ``UNLISTED_TOOL``.

    Callers choose tool names; counting each misspelling under its own label would grow the metrics
    without bound. Before the session has listed its tools, the name is kept as sent.
    """
    name = str(tool)
    if held is None or held.tool_listing is None or name in held.tool_annotations:
        return name
    return UNLISTED_TOOL


def _call_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id and getattr(task, "name", None) == CALL_TOOL:
        _started[task_id] = time.perf_counter()


def _call_ended(task_id: str | None = None, task: Any = None, kwargs: dict[str, Any] | None = None,
                retval: Any = None, state: str | None = None, **_: Any) -> None:
    if getattr(task, "name", None) != CALL_TOOL or not task_id:
        return
    started = _started.pop(task_id, None)
    if state == "RETRY" or not kwargs:
        return
    duration = time.perf_counter() - started if started is not None else 0.0
    count_calls([call_count(kwargs.get("server"), kwargs.get("tool"), retval, state, duration)])


def call_count(server: Any, tool: Any, retval: Any, state: str | None, duration: float) -> CallCount | None:
    """The counters of one finished call (a ``call_tool`` task, or a call of a chunk) from what it returned
    or raised; None for a server this worker does not serve (not counted)."""
    runtime = current()
    if server not in runtime.settings.servers:
        return None
    ok, attempts, error = task_outcome(retval, state)
    return CallCount(str(server), tool_label(runtime.sessions().held(str(server)), tool), ok, duration, attempts,
                     error)


def count_calls(counts: Iterable[CallCount | None]) -> None:
    """Write the counters of finished calls in one round trip. Never raises."""
    try:
        record_calls(current().redis, [count for count in counts if count is not None])
    except Exception as exc:  # counting must never fail a call
        log.warning("could not record call metrics: %s", type(exc).__name__)


def connect() -> None:
    """Count every finished call from Celery's task signals."""
    task_prerun.connect(_call_started)
    task_postrun.connect(_call_ended)
