"""One error hierarchy for the whole orchestrator, raised the same on both sides of the queue.

::

    * OrchestratorError           .server .tool .task_id .cause .transient
      x InvalidCall               refused before enqueue; .field names what was wrong
        + UnknownServer
      x CallFailed                the call was enqueued (or about to be) and did not succeed
        + CircuitBreakerOpenError .retry_after: seconds until the next trial call
        + DeadlineExceeded        .deadline: epoch seconds the call had to finish by
        + ServerUnavailable       no MCP session: transport failure, server gone (transient)
          + BrokerUnavailable     Redis (broker or result backend) unreachable; .unreachable names it
            + NotEnqueued         ...before the call could be enqueued in time: it did not run
        + ToolReturnedError       the tool answered with isError; .result holds the ToolResult
          + UpstreamUnavailable   ...because its upstream is down, 5xx or timed out (transient)
        + OutcomeUnknown          a call not safe to repeat may already have run
        + CallCancelled           a batch gave up on the call before it ran (fail-fast)

Every error keeps its fields in one JSON-able dict and passes ``(message, details)`` as its
``args``: Celery's JSON result backend stores ``args`` and rebuilds the exception with
``cls(*args)``, so the client re-raises exactly the type the worker raised. ``transient``
says whether trying the same call again could succeed (retries, breaker accounting).

The seed orchestrator's exception names (AutoArr's ``autoarr.shared.core.exceptions``) are
aliases of these classes, not copies, so ``except MCPTimeoutError`` catches a ``DeadlineExceeded``
raised anywhere, also one rebuilt from the queue::

    MCPOrchestratorError = OrchestratorError    .message .context (= details)
    MCPConnectionError   = ServerUnavailable    .server .original_error (text: exceptions do not cross JSON)
    MCPToolError         = ToolReturnedError    .server .tool
    MCPTimeoutError      = DeadlineExceeded     .server .tool .timeout (seconds the call was given)
    CircuitBreakerOpenError (the same name)     .server .retry_after

``InvalidCall`` is also a ``ValueError``, as the seed's input checks were.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

__all__ = [
    "BrokerUnavailable",
    "CallCancelled",
    "CallFailed",
    "CircuitBreakerOpenError",
    "DeadlineExceeded",
    "InvalidCall",
    "NotEnqueued",
    "OrchestratorError",
    "OutcomeUnknown",
    "ServerUnavailable",
    "ToolReturnedError",
    "UnknownServer",
    "UpstreamUnavailable",
    "tool_error_class",
]


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises; fields live in ``details``."""

    transient: ClassVar[bool] = False

    def __init__(self, message: str, details: dict[str, Any] | None = None, /, **fields: Any) -> None:
        merged = {**(details or {}), **{k: _jsonable(v) for k, v in fields.items() if v is not None}}
        super().__init__(message, merged)
        self.message = message
        self.details = merged

    def __str__(self) -> str:
        return self.message

    @property
    def context(self) -> dict[str, Any]:
        """The seed's name for ``details`` (``MCPOrchestratorError.context``)."""
        return self.details

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not set normally: expose detail fields (server, tool...).
        details = self.__dict__.get("details", {})
        if name in details:
            return details[name]
        if name in _COMMON_FIELDS:
            return None
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for logs, CLI output and batch outcomes."""
        return {"type": type(self).__name__, "message": self.message, "transient": self.transient,
                **self.details}


_COMMON_FIELDS = frozenset({"server", "tool", "task_id", "cause", "field", "retry_after", "deadline",
                            "result", "timeout", "unreachable"})


def _jsonable(value: Any) -> Any:
    """An exception given as a field (the seed's ``original_error=exc``) is kept as its text."""
    return f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else value


class InvalidCall(OrchestratorError, ValueError):
    """Refused before anything was enqueued: the message names the bad field."""


class UnknownServer(InvalidCall):
    """The server name (or alias) is not configured or not enabled."""


class CallFailed(OrchestratorError):
    """The call did not produce a successful result."""


class CircuitBreakerOpenError(CallFailed):
    """The server's breaker refuses calls for now; ``retry_after`` says for how long."""

    transient = True


class DeadlineExceeded(CallFailed):
    """The call's deadline passed, in the queue or during the MCP call; ``timeout`` is the seconds it had."""

    transient = True


class ServerUnavailable(CallFailed):
    """The MCP session or its upstream could not serve the call (connection, transport, 5xx)."""

    transient = True

    @property
    def original_error(self) -> str | None:
        """The seed's ``MCPConnectionError.original_error``: the underlying error, as text."""
        return self.details.get("original_error", self.details.get("cause"))


class BrokerUnavailable(ServerUnavailable):
    """The client could not reach Redis: ``unreachable`` says which role (broker, result backend) at
    which address. A call may or may not have been enqueued; ``NotEnqueued`` says it was not."""


class NotEnqueued(BrokerUnavailable):
    """The call could not be enqueued before its deadline (the broker stayed unreachable): it did not run."""


class ToolReturnedError(CallFailed):
    """The tool ran and answered with ``isError``; ``result`` is the full ToolResult dict."""


class UpstreamUnavailable(ToolReturnedError):
    """The tool could not reach its upstream service (connection refused, timeout, 5xx)."""

    transient = True


_UPSTREAM_UNAVAILABLE = re.compile(r"^\s*(Error executing tool \S+: )?\[upstream_unavailable\]")
"""The tag the bundled MCP servers put first in an upstream-availability error (after the
SDK's own "Error executing tool X: " prefix, when a server keeps it)."""


def tool_error_class(text: str) -> type[ToolReturnedError]:
    """Which error an ``isError`` result is, from the tag its text starts with."""
    return UpstreamUnavailable if _UPSTREAM_UNAVAILABLE.match(text) else ToolReturnedError


class OutcomeUnknown(CallFailed):
    """A call that is not safe to repeat may already have run; it is not run again."""


class CallCancelled(CallFailed):
    """A batch stopped waiting for this call and revoked it (fail-fast after another failed)."""


# The seed orchestrator's names for the same classes (see the module docstring). Not in
# ``__all__``: they are other names of the classes above, not classes of their own.
MCPOrchestratorError = OrchestratorError
MCPConnectionError = ServerUnavailable
MCPToolError = ToolReturnedError
MCPTimeoutError = DeadlineExceeded
