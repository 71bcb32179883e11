"""The error hierarchy crosses the queue as JSON and comes back as the same type."""

from __future__ import annotations

import json

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INTERNAL_ERROR, REQUEST_TIMEOUT

import orchestrator.errors as errors
from orchestrator.celery_app import make_celery
from orchestrator.config import Settings
from workers.sessions import describe_failure, own_timeout, transport_failed


def all_error_types() -> list[type[errors.OrchestratorError]]:
    """The tree of ``orchestrator.errors`` (subclasses made elsewhere, e.g. by the compat facade, excluded)."""
    found, todo = [], [errors.OrchestratorError]
    while todo:
        cls = todo.pop()
        if cls.__module__ == errors.__name__ and cls not in found:
            found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("cls", all_error_types(), ids=lambda cls: cls.__name__)
def test_every_error_type_round_trips_through_celerys_json_backend(cls: type[errors.OrchestratorError]) -> None:
    """Celery's JSON result backend rebuilds each error as the same class with the same fields."""
    backend = make_celery(Settings(broker_url="redis://127.0.0.1:1/0")).backend  # built, never connected
    original = cls("something broke", server="sonarr", tool="sonarr_get_series", task_id="t-1", cause="X",
                   retry_after=1.5)
    stored = json.loads(json.dumps(backend.prepare_exception(original, "json")))
    rebuilt = backend.exception_to_python(stored)
    assert type(rebuilt) is cls
    assert str(rebuilt) == "something broke"
    assert rebuilt.details == original.details
    assert (rebuilt.server, rebuilt.tool, rebuilt.task_id, rebuilt.retry_after) == ("sonarr", "sonarr_get_series",
                                                                                     "t-1", 1.5)


def test_every_public_error_is_exported() -> None:
    """The module's __all__ lists every class of the tree."""
    exported_classes = {name for name in errors.__all__ if isinstance(getattr(errors, name), type)}
    assert {cls.__name__ for cls in all_error_types()} == exported_classes


def test_transient_errors_are_marked() -> None:
    """Timeouts and unavailable servers are transient; bad input and tool errors are not."""
    assert errors.ServerUnavailable.transient and errors.DeadlineExceeded.transient
    assert not errors.InvalidCall.transient and not errors.ToolReturnedError.transient


def test_unset_fields_read_as_none() -> None:
    """A field the error was not given reads as None instead of raising AttributeError."""
    error = errors.InvalidCall("tool: must be a non-empty string", field="tool")
    assert error.field == "tool" and error.server is None
    with pytest.raises(AttributeError):
        _ = error.no_such_attribute


def test_our_read_timeout_is_told_apart_from_a_servers_own_minus_32001() -> None:
    """The SDK raises -32001 while handling its request clock's TimeoutError; the same code sent by a server
    (FastMCP's "Not found") is the server's answer. Only the SDK's own "Connection closed" and "Server returned
    an error response" are transport failures, not a server's -32000 or -32603."""
    try:
        try:
            raise TimeoutError
        except TimeoutError:
            raise MCPError(code=REQUEST_TIMEOUT, message="Request 'tools/call' timed out") from None
    except MCPError as raised:
        ours = raised
    assert own_timeout(ours)
    assert not own_timeout(MCPError(code=REQUEST_TIMEOUT, message="Not found: Unknown tool: 'x'"))
    assert transport_failed(MCPError(code=CONNECTION_CLOSED, message="Connection closed"))
    assert transport_failed(MCPError(code=INTERNAL_ERROR, message="Server returned an error response"))
    assert not transport_failed(MCPError(code=CONNECTION_CLOSED, message="Permission denied: no"))
    assert not transport_failed(MCPError(code=INTERNAL_ERROR, message="Internal error: boom"))


def test_an_exception_group_is_described_by_its_innermost_errors() -> None:
    """A session-open failure wrapped in task groups reads as what really failed."""
    inner = ExceptionGroup("inner", [PermissionError("access denied")])
    group = ExceptionGroup("unhandled errors in a TaskGroup", [inner])
    assert describe_failure(group) == "PermissionError: access denied"
