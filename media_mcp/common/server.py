"""``MediaServer``: an ``MCPServer`` whose tool errors always start with a stable tag."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, InputRequiredResult, ToolAnnotations
from pydantic import ValidationError

from media_mcp.common.errors import INVALID_ARGUMENTS, TaggedToolError

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
"""Reads upstream state and changes nothing."""

SET_STATE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
"""Moves the upstream to a named state (pause, resume, rescan): repeating it changes nothing more."""

OVERWRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)
"""Replaces a stored value (the old one is lost); repeating it changes nothing more."""

TRIGGER = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
"""Starts work or adds an item: each call has a new effect, nothing is lost."""

DESTROY = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)
"""Removes an item (and perhaps files); a second call finds nothing to remove."""


DISTRIBUTION = "autoarr-mcp-orchestrator"
"""The installed distribution the bundled servers ship in; its version is theirs."""


def package_version() -> str:
    """The installed version, reported in ``initialize``'s ``serverInfo`` (``0+unknown`` when not installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


class MediaServer(MCPServer):
    """Rewrites the SDK's ``Error executing tool …`` text so it starts with the tag a caller classifies by,
    and reports the package version in ``serverInfo`` (the SDK's default is ``""``)."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name=name, **{"version": package_version(), **options})

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            raise _tagged(name, exc) from exc.__cause__


def _tagged(name: str, exc: ToolError) -> ToolError:
    cause = exc.__cause__
    if isinstance(cause, TaggedToolError):
        return cause
    if isinstance(cause, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or 'arguments'}: {err['msg']}" for err in cause.errors()
        )
        return TaggedToolError(INVALID_ARGUMENTS, f"{name}: {problems}")
    return TaggedToolError(INVALID_ARGUMENTS, str(exc))
