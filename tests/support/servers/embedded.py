"""A small MCP server for the ``inprocess`` transport's tests: built by ``open_server(env)``, with a
tool that crashes and counters of how often it was built and torn down (read by the tests, which
run in the same process as the server)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False)
KEY_VAR = "EMBEDDED_API_KEY"
"""The secret the server reads from the environment it is built from."""

lifecycle = {"opened": 0, "closed": 0}
"""Servers built and torn down in this process so far."""


@asynccontextmanager
async def open_server(env: Mapping[str, str]) -> AsyncIterator[MCPServer]:
    """A fresh server that knows whether ``env`` held its key; counted open until exit."""
    has_key = bool(env.get(KEY_VAR))
    server = MCPServer("embedded", version="1.0.0")

    @server.tool(annotations=READ_ONLY)
    def whoami() -> dict[str, object]:
        """The process that answered, and whether the server was given its key."""
        return {"pid": os.getpid(), "has_key": has_key, "build": lifecycle["opened"]}

    @server.tool(annotations=READ_ONLY)
    def crash(message: str) -> str:
        """Raise an unexpected exception inside the tool (a bug in a server's code)."""
        raise RuntimeError(message)

    lifecycle["opened"] += 1
    try:
        yield server
    finally:
        lifecycle["closed"] += 1
