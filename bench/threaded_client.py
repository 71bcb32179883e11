"""The async client this project had before ``orchestrator.aio``: the sync client on a thread pool.

The benchmark runs it beside the native ``AsyncOrchestrator`` (one thread blocked per call in flight,
up to ``ASYNC_THREADS``); nothing in the library uses it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from celery import Celery

from orchestrator import health
from orchestrator.batch import Outcome
from orchestrator.breaker import BreakerSnapshot
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

    @property
    def settings(self) -> Settings:
        return self.sync.settings

    def _off_loop(self, method: Any) -> Any:
        return sync_to_async(method, thread_sensitive=False, executor=self._executor)

    async def call_tool(self, server: str, tool: str, params: dict[str, Any] | None = None,
                        timeout: float | None = None, *, raise_on_error: bool = True) -> ToolResult:
        return await self._off_loop(self.sync.call_tool)(server, tool, params, timeout, raise_on_error=raise_on_error)

    async def call_tools_parallel(self, calls: Sequence[Any], *, timeout: float | None = None,
                                  fail_fast: bool = False, progress: Callable[[int, int], Any] | None = None,
                                  max_concurrency: Mapping[str, int] | None = None) -> list[Outcome]:
        """As ``Orchestrator.call_tools_parallel``; ``progress`` may be a coroutine function."""
        report = async_to_sync(progress) if inspect.iscoroutinefunction(progress) else progress
        return await self._off_loop(self.sync.call_tools_parallel)(
            calls, timeout=timeout, fail_fast=fail_fast, progress=report, max_concurrency=max_concurrency)

    async def list_tools(self, server: str, timeout: float | None = None, *,
                         refresh: bool = False) -> list[dict[str, Any]]:
        return await self._off_loop(self.sync.list_tools)(server, timeout, refresh=refresh)

    async def health_check(self, server: str, timeout: float | None = None) -> health.ServerHealth:
        return await self._off_loop(self.sync.health_check)(server, timeout)

    async def health_check_all(self, timeout: float | None = None) -> dict[str, health.ServerHealth]:
        return await self._off_loop(self.sync.health_check_all)(timeout)

    async def health_status(self) -> dict[str, str]:
        return await self._off_loop(self.sync.health_status)()

    async def health_detail(self, server: str) -> health.ServerHealth:
        return await self._off_loop(self.sync.health_detail)(server)

    async def breaker_states(self) -> dict[str, BreakerSnapshot]:
        return await self._off_loop(self.sync.breaker_states)()

    async def reset_breaker(self, server: str) -> BreakerSnapshot:
        return await self._off_loop(self.sync.reset_breaker)(server)

    async def force_breaker(self, server: str, state: str) -> BreakerSnapshot:
        return await self._off_loop(self.sync.force_breaker)(server, state)

    async def list_all_tools(self, timeout: float | None = None, *,
                             refresh: bool = False) -> dict[str, list[dict[str, Any]]]:
        return await self._off_loop(self.sync.list_all_tools)(timeout, refresh=refresh)

    async def aclose(self) -> None:
        await self._off_loop(self.sync.close)()
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> ThreadedAsyncOrchestrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
