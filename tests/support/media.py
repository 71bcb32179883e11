"""Helpers for the media-server tests: canary keys, launch parameters, and an MCP client held open in a thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import json
import sys
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any

import httpx
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult

import upstream_sim
from orchestrator.services import MEDIA_SERVICE_NAMES, media_service

REPO_ROOT = Path(__file__).resolve().parents[2]
CANARY = {name: f"CANARY-{name}-9f8e7d" for name in MEDIA_SERVICE_NAMES}
"""Keys that must never show up in anything a tool returns."""
CALL_TIMEOUT = 20.0


def autoarr_tools(service: str) -> Collection[str]:
    """AutoArr's tools of ``service`` as its own test module lists them (``tests/media/test_media_<name>.py``)."""
    return importlib.import_module(f"tests.media.test_media_{service}").TOOLS


def read_tool(service: str) -> tuple[str, dict[str, Any]]:
    """A cheap read-only call of ``service`` (``READ_TOOL`` of ``tests/media/test_media_<name>.py``)."""
    return importlib.import_module(f"tests.media.test_media_{service}").READ_TOOL


def server_env(service: str, url: str, secret: str, timeout: float | None = None) -> dict[str, str]:
    """The environment a media server reads its upstream from."""
    env = {media_service(service).url_variable: url, media_service(service).secret_variable: secret}
    if timeout is not None:
        env[f"{service.upper()}_TIMEOUT"] = str(timeout)
    return env


def stdio_params(service: str, env: dict[str, str]) -> StdioServerParameters:
    """Launch ``python -m media_mcp.<service>`` from the repository root with only ``env`` as its settings."""
    return StdioServerParameters(
        command=sys.executable, args=["-m", f"media_mcp.{service}"], env=env, cwd=str(REPO_ROOT)
    )


def text_of(result: CallToolResult) -> str:
    """All text content of a tool result, joined."""
    return "\n".join(getattr(block, "text", "") for block in result.content)


def everything_in(result: CallToolResult) -> str:
    """Every byte a caller can see in a result: text and structured content."""
    return text_of(result) + json.dumps(result.structured_content or {})


class HeldClient:
    """An ``mcp.Client`` connected once and kept open by an owner task on a private event loop.

    Tests call it synchronously; every call has a time limit.
    """

    def __init__(self, target: Any, connect_timeout: float = 30.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="held-mcp-client", daemon=True)
        self._thread.start()
        self._ready: concurrent.futures.Future[Client] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        self._owner = asyncio.run_coroutine_threadsafe(self._own(target), self._loop)
        try:
            self.client = self._ready.result(connect_timeout)
        except BaseException:
            self.close()
            raise

    async def _own(self, target: Any) -> None:
        self._stop = asyncio.Event()
        try:
            async with Client(target, read_timeout_seconds=CALL_TIMEOUT) as client:
                self._ready.set_result(client)
                await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise

    def _run(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, name: str, arguments: dict[str, Any] | None = None, timeout: float = CALL_TIMEOUT) -> CallToolResult:
        return self._run(self.client.call_tool(name, arguments or {}, read_timeout_seconds=timeout), timeout + 5)

    def list_tools(self, timeout: float = CALL_TIMEOUT) -> list[Any]:
        return self._run(self.client.list_tools(), timeout).tools

    def close(self, timeout: float = 15.0) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        with contextlib.suppress(Exception, concurrent.futures.CancelledError):
            self._owner.result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)


class Served:
    """A simulator in a thread plus its media server over stdio, for one test module."""

    def __init__(self, service: str, server_secret: str | None = None, timeout: float | None = None) -> None:
        self.service = service
        self.secret = CANARY[service]
        self.sim = upstream_sim.run_in_thread(service, self.secret)
        env = server_env(service, self.sim.url, server_secret or self.secret, timeout)
        try:
            self.client = HeldClient(stdio_params(service, env))
        except BaseException:
            self.sim.stop()
            raise

    def ok(self, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a tool that must succeed; return its structured content."""
        result = self.client.call(tool, arguments)
        assert not result.is_error, text_of(result)
        assert self.secret not in everything_in(result)
        assert result.structured_content is not None
        return result.structured_content

    def fails(self, tool: str, arguments: dict[str, Any] | None = None, *, tag: str) -> str:
        """Call a tool that must fail with ``[tag]``; return the error text."""
        result = self.client.call(tool, arguments)
        text = text_of(result)
        assert result.is_error, text
        assert text.startswith(f"[{tag}] "), text
        assert self.secret not in everything_in(result)
        return text

    def assert_lists_exactly(self, names: set[str]) -> None:
        """The server lists exactly the tools ``names``, each with an output schema and annotations."""
        tools = self.client.list_tools()
        assert {tool.name for tool in tools} == names
        assert all(tool.output_schema and tool.annotations for tool in tools)

    def close(self) -> None:
        self.client.close()
        self.sim.stop()


def arr_json(served: Served, path: str, **params: Any) -> Any:
    """What the simulated Sonarr or Radarr itself answers at ``/api/v3<path>``, to compare a tool's data with."""
    reply = httpx.get(f"{served.sim.url}/api/v3{path}", params=params, headers={"X-Api-Key": served.secret}, timeout=10)
    reply.raise_for_status()
    return reply.json()
