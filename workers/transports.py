"""Build a fresh ``mcp.Client`` for one server from its configuration (a Client is single-use)."""

from __future__ import annotations

import logging
import os
import sys
import threading
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import TextIO

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from orchestrator.config import HttpTransport, InProcessTransport, ServerConfig, StdioTransport
from workers.inprocess import inprocess_client


class StderrRelay:
    """A pipe that stdio MCP servers write their stderr to; each line is re-logged by the worker.

    The child's own log lines then go through the worker's logging (and its secret
    redaction, with the server's name) instead of straight onto the worker's stderr.
    """

    def __init__(self, server: str) -> None:
        read_fd, write_fd = os.pipe()
        self.writer: TextIO = os.fdopen(write_fd, "w", buffering=1)
        self._reader = os.fdopen(read_fd, "r", errors="replace")
        self._log = logging.getLogger(f"workers.mcp_stderr.{server}")
        self._last: str | None = None
        threading.Thread(target=self._relay, name=f"mcp-stderr-{server}", daemon=True).start()

    def _relay(self) -> None:
        for line in self._reader:
            text = line.rstrip()
            self._log.info("%s", text)
            if text.strip():
                self._last = text[:STDERR_QUOTE_CHARS]

    def take_last_line(self) -> str | None:
        """The server's last non-blank stderr line since the previous take (and forget it): a server that
        exits at start-up says why there (``... is not a valid Git repository``), not over MCP."""
        line, self._last = self._last, None
        return line


STDERR_QUOTE_CHARS = 300
"""How much of a stdio server's last stderr line a session error quotes."""


REFUSAL_BODY_CHARS = 200
"""How much of a refusing server's answer a session error quotes."""


class HttpClients:
    """One ``httpx2.AsyncClient`` per HTTP server per process, reused across reconnects.

    The SDK turns an HTTP error status into a JSON-RPC error without the status ("Server returned
    an error response"); each client notes the last refusal it saw, so that an error can name it.
    """

    def __init__(self) -> None:
        self._clients: dict[str, httpx2.AsyncClient] = {}
        self._refusals: dict[str, str] = {}

    def get(self, server: ServerConfig, transport: HttpTransport) -> httpx2.AsyncClient:
        client = self._clients.get(server.name)
        if client is None or client.is_closed:
            client = create_mcp_http_client(headers=transport.resolved_headers())
            client.event_hooks = {"response": [partial(self._note_refusal, server.name)]}
            self._clients[server.name] = client
        return client

    async def _note_refusal(self, server: str, response: httpx2.Response) -> None:
        if response.status_code >= 400 and response.status_code not in (404, 405):  # 404/405: the SDK says them
            body = (await response.aread())[:REFUSAL_BODY_CHARS].decode(errors="replace").strip()
            self._refusals[server] = f"HTTP {response.status_code} {response.reason_phrase}: {body}".rstrip(": ")

    def take_refusal(self, server: str) -> str | None:
        """The last HTTP error status ``server`` answered (and forget it); None if there was none."""
        return self._refusals.pop(server, None)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def build_client(server: ServerConfig, http_clients: HttpClients,
                 stderr: StderrRelay | None) -> AbstractAsyncContextManager[Client]:
    """A new, un-entered MCP client for ``server`` (secrets are read here, in the worker)."""
    transport = server.transport
    if isinstance(transport, InProcessTransport):
        return inprocess_client(server, transport)
    if isinstance(transport, StdioTransport):
        params = StdioServerParameters(command=transport.resolved_command(), args=transport.resolved_args(),
                                       env=transport.resolved_env(), cwd=transport.cwd)
        errlog = stderr.writer if stderr is not None else sys.stderr
        return Client(stdio_client(params, errlog=errlog), mode=server.protocol, cache=None)
    http = streamable_http_client(transport.resolved_url(), http_client=http_clients.get(server, transport),
                                  terminate_on_close=True)
    return Client(http, mode=server.protocol, cache=None)
