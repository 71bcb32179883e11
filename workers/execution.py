"""The body of a tool call on the worker: deadline check, held session, one result shape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp_types import CallToolResult

from orchestrator.config import ServerConfig, Settings
from orchestrator.errors import CallFailed, DeadlineExceeded, OrchestratorError, UnknownServer
from orchestrator.redaction import Redactor
from orchestrator.results import ToolResult, extract_data
from workers.sessions import SessionManager


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


def run_call(manager: SessionManager, server: ServerConfig, tool: str, params: dict[str, Any],
             deadline: float, *, worker: str | None, task_id: str | None, attempts: int = 1) -> ToolResult:
    """Run ``tools/call`` on the held session within what is left of the deadline."""
    left = remaining_seconds(deadline, server.name, tool)
    started = time.perf_counter()
    held = manager.session(server)
    raw = manager.run(held.call_tool(tool, params, left), left)
    return to_tool_result(raw, server=server.name, tool=tool, duration=time.perf_counter() - started,
                          attempts=attempts, worker=worker, task_id=task_id)


def concurrency_cap(server: ServerConfig, requested: int | None) -> int | None:
    """The tighter of the server's configured cap and the one the batch asked for."""
    caps = [cap for cap in (server.max_concurrency, requested) if cap is not None]
    return min(caps) if caps else None


def list_server_tools(manager: SessionManager, server: ServerConfig, deadline: float) -> list[dict[str, Any]]:
    """The server's tools with input schemas and annotations, in MCP's wire form."""
    left = remaining_seconds(deadline, server.name, None)
    held = manager.session(server)
    listing = manager.run(held.list_tools(left), left)
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in listing.tools]


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
    """Scrub secrets from every string inside a JSON value (a result must carry none)."""
    if isinstance(value, str):
        return redactor.scrub(value)
    if isinstance(value, list):
        return [scrub_json(item, redactor) for item in value]
    if isinstance(value, dict):
        return {key: scrub_json(item, redactor) for key, item in value.items()}
    return value
