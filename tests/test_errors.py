"""The error hierarchy crosses the queue as JSON and comes back as the same type."""

from __future__ import annotations

import json

import pytest

import orchestrator.errors as errors
from orchestrator.celery_app import make_celery
from orchestrator.config import Settings


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
    backend = make_celery(Settings(broker_url="memory://", result_backend="cache+memory://")).backend
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
