"""The one result shape: what ``data`` holds, and which typed error an ``isError`` result raises."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.errors import DeadlineExceeded, ToolReturnedError, UpstreamUnavailable
from orchestrator.results import ToolResult, answered_result, extract_data, tool_error


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


IMAGE = {"type": "image", "data": "aGk=", "mimeType": "image/png"}


@pytest.mark.parametrize(("structured", "content", "data"), [
    ({"a": 1}, [text('{"b": 2}')], {"a": 1}),
    ({}, [text("ignored")], {}),
    (None, [text('{"b": 2}')], {"b": 2}),
    (None, [text("[1,"), text("2]")], [1, 2]),
    (None, [text("plain words")], "plain words"),
    (None, [IMAGE, text("7")], 7),
    (None, [IMAGE], None),
    (None, [], None),
])
def test_data_is_the_structured_content_else_the_text_as_json_else_the_text(structured: Any,
                                                                            content: list[dict[str, Any]],
                                                                            data: Any) -> None:
    """Structured content wins even when empty; text blocks are joined by newlines; no text means None."""
    assert extract_data(structured, content) == data


def result(*content: dict[str, Any]) -> ToolResult:
    return ToolResult(server="sonarr", tool="sonarr_get_series", ok=False, content=list(content), is_error=True,
                      task_id="t-1")


def test_an_error_result_raises_its_text_with_the_call_named() -> None:
    """The error's message is the tool's text blocks (other blocks skipped), and it carries the result."""
    error = tool_error(result(text("first"), IMAGE, text("second")))
    assert type(error) is ToolReturnedError
    assert error.message == "first\nsecond"
    assert (error.server, error.tool, error.task_id) == ("sonarr", "sonarr_get_series", "t-1")
    assert error.result["content"][1] == IMAGE


def test_an_upstream_unavailable_tag_makes_the_error_transient() -> None:
    """``[upstream_unavailable]`` at the start of the text is an UpstreamUnavailable (retried, counted)."""
    error = tool_error(result(text("[upstream_unavailable] HTTP 503")))
    assert type(error) is UpstreamUnavailable and error.transient
    assert type(tool_error(result(text("not [upstream_unavailable]")))) is ToolReturnedError


def test_an_error_result_without_text_still_says_which_tool_failed() -> None:
    """No text at all: the message names the tool."""
    assert tool_error(result(IMAGE)).message == "sonarr_get_series returned an error"


def test_a_result_read_back_from_the_backends_json_keeps_its_text_and_data() -> None:
    """Blocks parsed from JSON (new string objects, as the client reads them) still count as text."""
    stored = json.loads(result(text('{"id": 1}'), IMAGE).model_dump_json())
    assert tool_error(ToolResult.model_validate(stored)).message == '{"id": 1}'
    assert extract_data(None, stored["content"]) == {"id": 1}


def test_a_result_is_immutable_and_its_defaults_say_one_clean_attempt() -> None:
    """Only server, tool and ok given: no data, no error, one attempt of no measured duration; no field may change."""
    minimal = ToolResult(server="plex", tool="plex_get_sessions", ok=True)
    assert minimal.model_dump() == {"server": "plex", "tool": "plex_get_sessions", "ok": True, "data": None,
                                    "content": [], "is_error": False, "duration": 0.0, "attempts": 1,
                                    "worker": None, "task_id": None}
    with pytest.raises(ValidationError):
        minimal.ok = False  # type: ignore[misc]


def test_the_result_a_tool_error_carries_comes_back_after_crossing_the_queue() -> None:
    """The worker raises the tool error of an ``isError`` result (FAILURE, for Flower); rebuilt from its JSON
    args as Celery does, it gives back the very result, for ``raise_on_error=False``. A tool error without a
    result (the server refused the request) or another error gives none."""
    original = result(text("[upstream_not_found] no series 9"), IMAGE)
    error = tool_error(original)
    rebuilt = type(error)(*json.loads(json.dumps(error.args)))
    assert answered_result(rebuilt) == original
    assert answered_result(ToolReturnedError("Unknown tool: nope", server="sonarr", tool="nope")) is None
    assert answered_result(DeadlineExceeded("late", result={"not": "a tool error"})) is None
