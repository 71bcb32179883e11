"""AutoArr's ``autoarr.shared.core.exceptions``, as this project's classes.

AutoArr points its imports here (``from orchestrator.compat.exceptions import ...`` in place
of ``from autoarr.shared.core.exceptions import ...``) and its error middleware, unchanged,
answers with the HTTP codes it was written for::

    seed name                 class here                             AutoArr's middleware
    MCPConnectionError        ServerUnavailable                      503 server unreachable
                              + UpstreamConnectionError              503 upstream unreachable
    MCPTimeoutError           DeadlineExceeded                       504
    CircuitBreakerOpenError   CircuitBreakerOpenError                503
    MCPToolError              ToolReturnedError                      400 the tool refused the call
                              + RefusedInput (InvalidCall)           400 bad input, refused before enqueue
    MCPOrchestratorError      OrchestratorError                      500 anything else

The middleware tests ``MCPConnectionError`` before ``MCPToolError``: an upstream that stays
down is a ``ToolReturnedError`` here (the tool ran and said so) *and*, through
``UpstreamConnectionError``, the seed's ``MCPConnectionError``, so it maps to 503 as the seed's
did, and ``except UpstreamUnavailable`` / ``except MCPToolError`` in this project still catch it.

``for_caller`` is the one place where the facade turns a core error into what a seed caller
reads: ``.tool`` is the name the caller passed (the resolved one stays in ``resolved_tool``),
and input refused before enqueue is a ``RefusedInput``: still an ``InvalidCall`` (a ValueError),
and an ``MCPToolError`` so that the middleware answers 400 as it did for the seed's ValueError
(``InvalidCall`` alone is an ``MCPOrchestratorError``, which it would answer with 500).
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import (
    CircuitBreakerOpenError,
    DeadlineExceeded,
    InvalidCall,
    OrchestratorError,
    ServerUnavailable,
    ToolReturnedError,
    UnknownServer,
    UpstreamUnavailable,
)

__all__ = [
    "CircuitBreakerOpenError",
    "InvalidCall",
    "MCPConnectionError",
    "MCPOrchestratorError",
    "MCPTimeoutError",
    "MCPToolError",
    "ParamsNotADict",
    "RefusedInput",
    "RefusedServer",
    "UpstreamConnectionError",
    "for_caller",
]

MCPOrchestratorError = OrchestratorError
MCPConnectionError = ServerUnavailable
MCPToolError = ToolReturnedError
MCPTimeoutError = DeadlineExceeded


class UpstreamConnectionError(UpstreamUnavailable, ServerUnavailable):
    """The tool could not reach its upstream: an ``UpstreamUnavailable`` that is also the seed's
    ``MCPConnectionError`` (what the seed raised for an unreachable service)."""


class RefusedInput(InvalidCall, ToolReturnedError):
    """Bad input refused before enqueue, as a seed caller sees it: ``InvalidCall`` and ``MCPToolError``."""


class RefusedServer(RefusedInput, UnknownServer):
    """An unknown server name, as a seed caller sees it (the seed's "Invalid server" ValueError)."""


class ParamsNotADict(RefusedInput, TypeError):
    """``params`` is not a dict: refused before enqueue, a ``TypeError`` as the seed's was."""


def check_params(params: Any, tool: str | None) -> None:
    """Refuse non-dict ``params`` the seed's way (``TypeError``, "params must be a dict")."""
    if params is not None and not isinstance(params, dict):
        raise ParamsNotADict(f"params must be a dict, got {type(params).__name__}", field="params", tool=tool)


def for_caller(error: OrchestratorError, tool: str | None) -> OrchestratorError:
    """``error`` as a seed caller reads it: ``.tool`` is ``tool`` as passed; an unreachable upstream
    is also an ``MCPConnectionError``. Returns the error to raise (the same object when no class change)."""
    if tool is not None:
        resolved = error.details.get("tool")
        if resolved and resolved != tool:
            error.details.setdefault("resolved_tool", resolved)
        error.details["tool"] = tool
    if isinstance(error, UpstreamUnavailable) and not isinstance(error, ServerUnavailable):
        return _as(UpstreamConnectionError, error)
    if isinstance(error, InvalidCall) and not isinstance(error, RefusedInput):
        return _as(RefusedServer if isinstance(error, UnknownServer) else RefusedInput, error)
    return error


def _as(cls: type[OrchestratorError], error: OrchestratorError) -> OrchestratorError:
    converted = cls(error.message, error.details)
    converted.__cause__ = error.__cause__
    return converted
