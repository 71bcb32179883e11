"""The ``inprocess`` transport: a Python MCP server run inside the worker, spoken to over MCP in memory.

``mcp.Client`` accepts a server object and drives its request handlers on the same event loop
(the SDK's in-memory path), so a worker serving the bundled media servers spawns no child
process per server. The held session owns the server's lifetime exactly as it owns a stdio
child: ``open_server`` is entered when the session opens and exited when it closes or is
rebuilt, so a rebuilt session gets a freshly built server (and a fresh upstream client). An
exception inside a tool comes back as an ``is_error`` result, as it would over stdio.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mcp import Client

from orchestrator.config import InProcessTransport, ServerConfig

OPEN_SERVER = "open_server"
"""What the transport's ``module`` must define: ``open_server(env)``, an async context manager yielding the server."""

OpenServer = Callable[[Mapping[str, str]], AbstractAsyncContextManager[Any]]


def server_opener(module: str) -> OpenServer:
    """``module.open_server``; ImportError / TypeError say which module and what is missing."""
    imported = importlib.import_module(module)
    opener = getattr(imported, OPEN_SERVER, None)
    if not callable(opener):
        raise TypeError(f"module {module} defines no {OPEN_SERVER}(env) for the inprocess transport")
    return opener


@asynccontextmanager
async def inprocess_client(server: ServerConfig, transport: InProcessTransport) -> AsyncIterator[Client]:
    """An entered MCP client on a server built in this process from the worker's environment."""
    env = {**os.environ, **transport.resolved_env()}
    async with server_opener(transport.module)(env) as mcp_server, \
            Client(mcp_server, mode=server.protocol, cache=None) as client:
        yield client
