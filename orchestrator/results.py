"""The one result shape of a tool call, built on the worker and read by the client."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestrator.errors import ToolReturnedError, tool_error_class


class ToolResult(BaseModel):
    """What a tool call produced: the same JSON on the wire, in the backend and in Flower.

    ``data`` is the structured content when the tool gave one, else JSON parsed from its
    text content, else the text itself; ``content`` keeps the raw MCP content blocks.
    """

    model_config = ConfigDict(frozen=True)

    server: str
    tool: str
    ok: bool
    data: Any = None
    content: list[dict[str, Any]] = []
    is_error: bool = False
    duration: float = 0.0
    attempts: int = 1
    worker: str | None = None
    task_id: str | None = None

    @property
    def error_text(self) -> str:
        """The text a tool gave with ``isError`` (its message), or ''."""
        return "\n".join(block.get("text", "") for block in self.content if block.get("type") == "text")


def tool_error(result: ToolResult) -> ToolReturnedError:
    """The typed error an ``isError`` result raises (``UpstreamUnavailable`` when its tag says so)."""
    cls = tool_error_class(result.error_text)
    return cls(result.error_text or f"{result.tool} returned an error", server=result.server, tool=result.tool,
               task_id=result.task_id, result=result.model_dump(mode="json"))


def answered_result(error: BaseException) -> ToolResult | None:
    """The ``isError`` result a tool error was raised for, else None (the call failed some other way).

    The worker raises ``tool_error(result)`` for an ``isError`` result, so the task is stored as FAILURE
    and Flower shows and counts it; a caller with ``raise_on_error=False`` gets this result back."""
    carried = error.details.get("result") if isinstance(error, ToolReturnedError) else None
    return ToolResult.model_validate(carried) if isinstance(carried, dict) else None


def extract_data(structured: Any, content: list[dict[str, Any]]) -> Any:
    """Structured content if present; else the text parsed as JSON when it is JSON; else the text."""
    if structured is not None:
        return structured
    texts = [block["text"] for block in content if block.get("type") == "text"]
    if not texts:
        return None
    text = "\n".join(texts)
    try:
        return json.loads(text)
    except ValueError:
        return text
