"""The async client this project had before ``orchestrator.aio``: the sync client on a thread pool.

The benchmark runs it beside the native ``AsyncOrchestrator`` (one thread blocked per call in flight,
up to ``ASYNC_THREADS``); nothing in the library uses it. Only what the benchmark calls is kept
(``call_tool`` and closing): the admin methods were the same thread-pool wrappers the native client has.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from celery import Celery

from orchestrator.client import Orchestrator
from orchestrator.config import Settings
from orchestrator.results import ToolResult

ASYNC_THREADS = 64
"""Threads the old async client could block in at once while waiting for results."""


class ThreadedAsyncOrchestrator:
    """The former ``AsyncOrchestrator``: the sync client on a thread pool, one thread per call in flight.

    Kept here so ``bench/bench_async.py`` measures the native client against it side by side.
    """

    def __init__(self, settings: Settings | None = None, *, app: Celery | None = None) -> None:
        self.sync = Orchestrator(settings, app=app)
        self._executor = ThreadPoolExecutor(max_workers=ASYNC_THREADS, thread_name_prefix="mcp-orch-wait")

    def _off_loop(self, method: Any) -> Any:
        return sync_to_async(method, thread_sensitive=False, executor=self._executor)

    async def call_tool(self, server: str, tool: str, params: dict[str, Any] | None = None,
                        timeout: float | None = None, *, raise_on_error: bool = True) -> ToolResult:
        return await self._off_loop(self.sync.call_tool)(server, tool, params, timeout, raise_on_error=raise_on_error)

    async def aclose(self) -> None:
        await self._off_loop(self.sync.close)()
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> ThreadedAsyncOrchestrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
