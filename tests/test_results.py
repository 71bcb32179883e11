"""The one result shape: what ``data`` holds, and which typed error an ``isError`` result raises."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.errors import ToolReturnedError, UpstreamUnavailable
from orchestrator.results import ToolResult, extract_data, tool_error


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
