"""The body of a tool call on the worker: deadline check, held session, breaker, retries, one result shape."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from mcp_types import CallToolResult, ListToolsResult

from orchestrator.breaker import CircuitBreaker
from orchestrator.config import ServerConfig, Settings
from orchestrator.errors import (
    CallFailed,
    CircuitBreakerOpenError,
    DeadlineExceeded,
    OrchestratorError,
    OutcomeUnknown,
    ServerUnavailable,
    ToolReturnedError,
    UnknownServer,
)
from orchestrator.redaction import Redactor
from orchestrator.results import ToolResult, extract_data, tool_error
from workers.policy import breaker_verdict, retry_delay, safe_to_repeat
from workers.runtime import WorkerRuntime
from workers.sessions import HeldSession, SessionManager
from workers.steps import OnLoop, Steps

log = logging.getLogger("workers.execution")

TRIAL_LEASE_MARGIN_SECONDS = 5.0
"""A half-open trial slot is held for the call's remaining deadline plus this (seconds)."""


def server_config(settings: Settings, server: str) -> ServerConfig:
    """The worker's own definition of ``server``; the message carries only the name."""
    config = settings.servers.get(server)
    if config is None or not config.enabled:
        raise UnknownServer(f"server {server!r} is not configured or not enabled on this worker",
                            server=server, field="server")
    return config


def remaining_seconds(deadline: float, server: str, tool: str | None) -> float:
    """Time left until ``deadline`` (epoch seconds); an expired call is not executed."""
    left = deadline - time.time()
    if left <= 0:
        raise DeadlineExceeded(f"deadline passed {-left:.2f}s before the call could run",
                               server=server, tool=tool, deadline=deadline)
    return left


def to_tool_result(raw: CallToolResult, *, server: str, tool: str, duration: float, attempts: int,
                   worker: str | None, task_id: str | None) -> ToolResult:
    content = [block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in raw.content]
    return ToolResult(server=server, tool=tool, ok=not raw.is_error,
                      data=extract_data(raw.structured_content, content), content=content,
                      is_error=bool(raw.is_error), duration=duration, attempts=attempts, worker=worker,
                      task_id=task_id)


@dataclass(frozen=True)
class WorkerCall:
    """One call as the worker sees it: its own server config, never a secret from the message."""

    server: ServerConfig
    tool: str
    params: dict[str, Any]
    deadline: float
    task_id: str | None
    worker: str | None


def call_steps(call: WorkerCall, manager: SessionManager, state: WorkerRuntime) -> Steps[ToolResult]:
    """The call on the held session: breaker-checked, retried while safe and worthwhile (``workers.steps``).

    The breaker counts calls (invariant 7, docs/ARCHITECTURE.md): one admission before the session
    is even awaited and one recorded outcome after the last attempt, so a server that cannot be reached
    counts too and retries happen inside the admission. With ``breaker.count = "attempts"`` each
    attempt is admitted and recorded instead. A call not safe to repeat is claimed with an
    execution marker first, so that a redelivery of it becomes ``OutcomeUnknown`` instead of a
    second execution. The attempts run as one coroutine on the session loop.
    """
    breaker = state.breakers.breaker(call.server.name)
    per_attempt = breaker.policy.count == "attempts"
    with nullcontext(CallOutcome()) if per_attempt else breaker_guard(breaker, call) as outcome:
        held = manager.session(call.server)
        safe = safe_to_repeat(call.server, call.tool, (yield from tool_annotations(held, call)))
        if not safe and not state.markers.claim(call.task_id or "", call.worker or ""):
            raise OutcomeUnknown(f"{call.tool} on {call.server.name} is not safe to repeat and may already have "
                                 "run (redelivered after a worker was lost); not running it again",
                                 server=call.server.name, tool=call.tool)
        left = remaining_seconds(call.deadline, call.server.name, call.tool)
        result: ToolResult = yield OnLoop(_attempts(call, held, safe, breaker if per_attempt else None), left)
        outcome.error, outcome.ended = tool_error(result) if result.is_error else None, True
        return result


@dataclass
class CallOutcome:
    """How a guarded call ended, for its breaker: ``ended`` once the body returned or raised one of our
    errors, with ``error`` the error it failed with (None: a success). An unexpected exception counts
    as a failure."""

    error: OrchestratorError | None = None
    ended: bool = False

    def verdict(self) -> bool | None:
        return breaker_verdict(self.error) if self.ended else False


@contextmanager
def breaker_guard(breaker: CircuitBreaker, call: WorkerCall) -> Iterator[CallOutcome]:
    """One admission before a whole call and one recorded outcome after it (the body fills ``outcome``)."""
    left = remaining_seconds(call.deadline, call.server.name, call.tool)
    admission = breaker.admit_or_raise(lease_seconds=left + TRIAL_LEASE_MARGIN_SECONDS)
    started = time.perf_counter()
    outcome = CallOutcome()
    try:
        yield outcome
    except OrchestratorError as exc:
        outcome.error, outcome.ended = exc, True
        raise
    finally:
        breaker.record(admission, success=outcome.verdict(), duration=time.perf_counter() - started)


async def _attempts(call: WorkerCall, held: HeldSession, safe: bool, breaker: CircuitBreaker | None) -> ToolResult:
    """Attempt the call until it succeeds, fails for good, or retrying is not allowed or worthwhile.

    An ``isError`` result is returned (the caller raises it), a transport failure raised.
    """
    attempt = 0
    result: ToolResult | None = None
    error: OrchestratorError | None = None
    while True:
        attempt += 1
        try:
            result, error = await _attempt(call, held, attempt, safe, breaker)
        except CircuitBreakerOpenError:
            if attempt == 1:
                raise
            break  # the breaker opened during the retries (attempts counted): the last real outcome stands
        if error is None or not error.transient:
            break
        delay = retry_delay(call.server.retry, attempt)
        if not safe or attempt >= call.server.retry.max_attempts or time.time() + delay >= call.deadline:
            break
        log.info("retrying %s on %s in %.2fs after attempt %d: %s", call.tool, call.server.name, delay, attempt,
                 type(error).__name__)
        await asyncio.sleep(delay)
    if result is not None:
        return result
    assert error is not None
    error.details["attempts"] = attempt  # the worker's retries show in the metrics (``mcp-orch stats``)
    if not safe and isinstance(error, DeadlineExceeded):  # the deadline passed during the MCP call itself
        raise OutcomeUnknown(f"{call.tool} on {call.server.name} is not safe to repeat and the call's deadline "
                             f"passed while it was running: it may have run ({error.message})",
                             server=call.server.name, tool=call.tool, deadline=call.deadline, attempts=attempt)
    raise error


async def _attempt(call: WorkerCall, held: HeldSession, attempt: int, safe: bool,
                   breaker: CircuitBreaker | None) -> tuple[ToolResult | None, OrchestratorError | None]:
    """One attempt: a result (maybe isError) or the error it failed with; admitted by ``breaker`` if given
    (its Redis round trips go to a thread: the session loop never blocks on Redis).

    A safe tool's attempt may be cut short by ``retry.attempt_timeout_seconds`` (its timeout is then
    retried while the deadline allows); any other attempt gets all the time left.
    """
    left = remaining_seconds(call.deadline, call.server.name, call.tool)
    cap = call.server.retry.attempt_timeout_seconds
    if safe and cap is not None:
        left = min(left, cap)
    admission = (await asyncio.to_thread(breaker.admit_or_raise, lease_seconds=left + TRIAL_LEASE_MARGIN_SECONDS)
                 if breaker else None)
    outcome = CallOutcome()
    started = time.perf_counter()
    result: ToolResult | None = None
    try:
        raw = await held.call_tool(call.tool, call.params, left)
        result = to_tool_result(raw, server=call.server.name, tool=call.tool,
                                duration=time.perf_counter() - started, attempts=attempt, worker=call.worker,
                                task_id=call.task_id)
        outcome.error, outcome.ended = tool_error(result) if result.is_error else None, True
    except DeadlineExceeded as exc:
        exc.details.setdefault("deadline", call.deadline)  # the caller's deadline, as the client would name it
        outcome.error, outcome.ended = exc, True
    except (ServerUnavailable, ToolReturnedError) as exc:  # ToolReturnedError: the server's JSON-RPC error
        outcome.error, outcome.ended = exc, True
    finally:
        if breaker is not None and admission is not None:
            await asyncio.to_thread(breaker.record, admission, success=outcome.verdict(),
                                    duration=time.perf_counter() - started)
    return result, outcome.error


def tool_annotations(held: HeldSession, call: WorkerCall) -> Steps[dict[str, Any] | None]:
    """The tool's MCP annotations from the held session (waiting for it to open if needed)."""
    if not held.connected:
        left = remaining_seconds(call.deadline, call.server.name, call.tool)
        yield OnLoop(held.wait_connected(left), left)
    return held.tool_annotations.get(call.tool)


def concurrency_cap(server: ServerConfig, requested: int | None) -> int | None:
    """The tighter of the server's configured cap and the one the batch asked for."""
    caps = [cap for cap in (server.max_concurrency, requested) if cap is not None]
    return min(caps) if caps else None


def list_server_tools(manager: SessionManager, server: ServerConfig, deadline: float,
                      redactor: Redactor) -> list[dict[str, Any]]:
    """The server's tools with input schemas and annotations, in MCP's wire form, scrubbed of secrets."""
    left = remaining_seconds(deadline, server.name, None)
    held = manager.session(server)
    return wire_tools(manager.run(held.list_tools(left), left), redactor)


def wire_tools(listing: ListToolsResult, redactor: Redactor) -> list[dict[str, Any]]:
    """A ``ListToolsResult`` in MCP's wire form, scrubbed of secrets (the ``list_tools`` answer and the catalog)."""
    tools = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in listing.tools]
    return scrub_json(tools, redactor)


@contextmanager
def errors_for_caller(redactor: Redactor, *, server: str, tool: str | None,
                      task_id: str | None) -> Iterator[None]:
    """Everything that leaves the task is one of our errors, with context and no secret in it."""
    try:
        yield
    except OrchestratorError as exc:
        raise scrubbed(exc, redactor, server=server, tool=tool, task_id=task_id) from None
    except Exception as exc:  # boundary: an unexpected failure still crosses as our type
        error = CallFailed(f"unexpected {type(exc).__name__}: {exc}", cause=type(exc).__name__)
        raise scrubbed(error, redactor, server=server, tool=tool, task_id=task_id) from None


def scrubbed(exc: OrchestratorError, redactor: Redactor, **context: Any) -> OrchestratorError:
    """The same error type with context added and every text field scrubbed of secrets."""
    details = {**{k: v for k, v in context.items() if v is not None}, **exc.details}
    clean = {k: redactor.scrub(v) if isinstance(v, str) else v for k, v in details.items()}
    return type(exc)(redactor.scrub(exc.message), clean)


def scrub_json(value: Any, redactor: Redactor) -> Any:
    """Scrub secrets from a JSON value (a result must carry none); it stays valid JSON."""
    return redactor.scrub_json(value)
