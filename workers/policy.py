"""What a worker may do with a call: is the tool safe to repeat, how long to back off, what counts.

A tool is safe to repeat when its MCP annotations say read-only or idempotent, unless the
server's config overrides it (``[servers.X.tools.<tool>] safe_to_repeat = ...``). Only such
tools are retried, and only they run again after a redelivery
(invariant 4, docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from typing import Any

from orchestrator.backoff import jittered_backoff
from orchestrator.config import RetryPolicy, ServerConfig
from orchestrator.errors import InvalidCall, OrchestratorError


def safe_to_repeat(server: ServerConfig, tool: str, annotations: dict[str, Any] | None) -> bool:
    """Config override first, then the MCP annotations; unknown means not safe."""
    override = server.tools.get(tool)
    if override is not None and override.safe_to_repeat is not None:
        return override.safe_to_repeat
    hints = annotations or {}
    return bool(hints.get("readOnlyHint") or hints.get("idempotentHint"))


def retry_delay(policy: RetryPolicy, attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (attempt 1 just failed)."""
    return jittered_backoff(attempt, policy.backoff_seconds, policy.max_backoff_seconds)


def breaker_verdict(error: OrchestratorError | None) -> bool | None:
    """What a call's outcome tells its breaker: True (a success), False (a failure: transport failures,
    timeouts, upstream outages), None (nothing: bad input, tool errors, the server's JSON-RPC refusals)."""
    if error is None:
        return True
    return False if error.transient else None


def refuse_denied_tool(server: ServerConfig, tool: str) -> None:
    """An operator's deny-list is enforced on the worker too (the client checks it first)."""
    if tool in server.deny_tools:
        raise InvalidCall(f"tool: {tool!r} is denied on server {server.name!r} by configuration",
                          server=server.name, tool=tool, field="tool")
