"""MCP sessions held by a worker process and reused by every call (invariant 6, docs/ARCHITECTURE.md).

The MCP SDK wants a session entered and exited by the same task, and a dying HTTP transport
cancels that task. So each process runs one asyncio loop in a daemon thread; each server's
session lives in an *owner* coroutine on it that opens the session, probes it as keepalive,
re-opens it with exponential backoff and jitter when it breaks, and closes it at shutdown.
Task threads (prefork or threads pool) submit calls as separate coroutines with
``run_coroutine_threadsafe`` and wait at most the call's remaining deadline, so a slow or
dead server never blocks start-up and concurrent calls share one session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import anyio
from mcp import Client
from mcp.client.subscriptions import ListenNotSupportedError
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INTERNAL_ERROR, REQUEST_TIMEOUT, CallToolResult, ListToolsResult

from orchestrator.backoff import jittered_backoff
from orchestrator.config import ServerConfig, StdioTransport
from orchestrator.errors import DeadlineExceeded, OrchestratorError, ServerUnavailable, ToolReturnedError
from workers.transports import HttpClients, StderrRelay, build_client

log = logging.getLogger("workers.sessions")

T = TypeVar("T")

BACKOFF_BASE_SECONDS = 0.2
"""First wait before re-opening a broken session (seconds); doubles per failed attempt."""
BACKOFF_MAX_SECONDS = 10.0
"""Longest wait between two attempts to open a session (seconds)."""
CLOSE_TIMEOUT_SECONDS = 5.0
"""How long shutdown waits for the sessions to close cleanly (seconds)."""
RUN_GRACE_SECONDS = 1.0
"""How long a coroutine on the session loop may outlive its own timeout before its waiter cancels it: its
own deadline inside (``anyio.fail_after``) normally ends it first."""

_SESSION_GONE = ("session terminated", "session not found")

SessionHook = Callable[["HeldSession", Client], Coroutine[Any, Any, None]]
"""A coroutine function run, as its own task on the session loop, every time a session opens or
re-opens, and when the server announces that its tool list changed, with ``tool_listing`` already
read (``workers.health`` stores it in the catalog); a failing hook is only logged. Hooks are given
to ``SessionManager`` explicitly (``workers.runtime`` does)."""


def _is_session_gone(exc: MCPError) -> bool:
    return any(marker in exc.message.lower() for marker in _SESSION_GONE)


def own_timeout(exc: MCPError) -> bool:
    """Our own read timeout: the SDK raises -32001 while handling the ``TimeoutError`` of its request
    clock. A server may send -32001 too (FastMCP does, for an unknown tool): that is its answer."""
    return exc.code == REQUEST_TIMEOUT and isinstance(exc.__context__, TimeoutError)


_TRANSPORT_FAILURES = {(CONNECTION_CLOSED, "Connection closed"), (INTERNAL_ERROR, "Server returned an error response")}
"""What the SDK itself raises when the transport ended under a request, or when an HTTP server answered
with an error status instead of JSON-RPC (401, 403, 5xx from the server or a proxy in front of it)."""


def transport_failed(exc: MCPError) -> bool:
    """An error the SDK made up for a failed transport, not one the server sent. A server's own -32000 or
    -32603 carries its own message and is its answer."""
    return (exc.code, exc.message) in _TRANSPORT_FAILURES and exc.data is None


def describe_failure(exc: BaseException) -> str:
    """``Type: message`` of what really failed: exception groups (the SDK's task groups) are unwrapped
    to their innermost errors, so a refused token reads as the refusal, not as "unhandled errors"."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = [describe_failure(inner) for inner in exc.exceptions
                  if not isinstance(inner, asyncio.CancelledError)]
        return "; ".join(dict.fromkeys(leaves)) or f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    text = f"{type(exc).__name__}: {exc}"
    return f"{text} (caused by {describe_failure(cause)})" if cause is not None and str(cause) not in text else text


class HeldSession:
    """One server's long-lived MCP session, owned by one coroutine on the session loop."""

    def __init__(self, server: ServerConfig, http_clients: HttpClients, on_open: Sequence[SessionHook] = ()) -> None:
        self.server = server
        self._http_clients = http_clients
        self._on_open = tuple(on_open)
        self._stderr = StderrRelay(server.name) if isinstance(server.transport, StdioTransport) else None
        self._client: Client | None = None
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._closing = False
        self._owner: asyncio.Task[None] | None = None
        self.opens = 0
        self.failed_attempts = 0
        self.last_error: str | None = None
        self._opened_this_attempt = False
        self.server_info: dict[str, Any] | None = None
        self.tool_listing: ListToolsResult | None = None
        self.tool_annotations: dict[str, dict[str, Any]] = {}
        self._hook_tasks: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return self._client is not None

    def start(self) -> None:
        """Start the owner coroutine (on the session loop); it connects in the background."""
        loop = asyncio.get_running_loop()
        self._owner = loop.create_task(self._own(), name=f"mcp-owner-{self.server.name}")

    async def _own(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                await self._hold_one_session()
                attempt = 0
            except asyncio.CancelledError:
                if self._closing:
                    raise
                # A dying HTTP transport cancels the task that entered the Client: reconnect.
                self._uncancel()
                self._note_failure("transport cancelled the session")
            except Exception as exc:  # boundary: any failure to open or keep the session
                self._note_failure(self._with_stderr(self._with_refusal(describe_failure(exc))))
            if self._closing:
                break
            attempt += 1
            async with self._changed:
                self._changed.notify_all()
            delay = jittered_backoff(attempt, BACKOFF_BASE_SECONDS, BACKOFF_MAX_SECONDS)
            log.warning("MCP session to %s broke (%s); reconnecting in %.2fs", self.server.name,
                        self.last_error, delay)
            await self._sleep_unless_closing(delay)

    async def _hold_one_session(self) -> None:
        # The connect timeout is a cancel scope around the whole session whose deadline is
        # lifted once the handshake is done: scopes must nest with the SDK's task groups.
        self._http_clients.take_refusal(self.server.name)  # an old refusal is not this attempt's cause
        if self._stderr is not None:
            self._stderr.take_last_line()  # nor an old stderr line
        self._opened_this_attempt = False
        with anyio.CancelScope(deadline=anyio.current_time() + self.server.connect_timeout) as scope:
            async with build_client(self.server, self._http_clients, self._stderr) as client:
                await self._learn_tools(client)
                scope.deadline = math.inf
                try:
                    await self._serve(client)
                finally:
                    self._client = None
                    self._wake.clear()
        if scope.cancelled_caught:
            raise TimeoutError(f"no MCP handshake within {self.server.connect_timeout}s")

    async def _learn_tools(self, client: Client) -> None:
        """Read the tools once per session (and on each announced change): retries depend on their
        annotations (safe to repeat?) and the open hooks publish the listing to the catalog."""
        listing = await client.list_tools(cache_mode="bypass")
        self.tool_listing = listing
        self.tool_annotations = {
            tool.name: tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else {}
            for tool in listing.tools}

    async def _serve(self, client: Client) -> None:
        self._client = client
        self._opened_this_attempt = True
        self.opens += 1
        info = client.server_info
        self.server_info = info.model_dump(mode="json", exclude_none=True) if info else None
        log.info("MCP session to %s open (pid %s, open #%d)", self.server.name, os.getpid(), self.opens)
        async with self._changed:
            self._changed.notify_all()
        self._run_open_hooks(client)
        follower = asyncio.get_running_loop().create_task(self._follow_tool_changes(client))
        try:
            await self._watch(client)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await follower

    async def _follow_tool_changes(self, client: Client) -> None:
        """Re-read the tools (and run the open hooks: catalog refresh) when the server says they changed.

        Uses a ``subscriptions/listen`` stream (2026 protocol). A legacy-handshake server, or
        one that refuses to listen, is not followed: health checks still refresh its catalog.
        """
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    await self._learn_tools(client)
                    log.info("tool list of %s changed: %d tools", self.server.name, len(self.tool_annotations))
                    self._run_open_hooks(client)
        except ListenNotSupportedError:
            log.debug("%s speaks a protocol without subscriptions; tool changes are not followed", self.server.name)
        except Exception as exc:  # a lost stream ends the following, not the session
            log.debug("following tool changes of %s ended: %r", self.server.name, exc)

    def _run_open_hooks(self, client: Client) -> None:
        for hook in self._on_open:
            task = asyncio.get_running_loop().create_task(hook(self, client))
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_done)

    def _hook_done(self, task: asyncio.Task[None]) -> None:
        self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("session-open hook for %s failed: %r", self.server.name, task.exception())

    async def _watch(self, client: Client) -> None:
        """Probe the idle session every keepalive interval until it breaks or we close."""
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), self.server.keepalive_seconds)
                return
            except TimeoutError:
                with anyio.fail_after(self.server.connect_timeout):
                    await client.list_tools(cache_mode="bypass")

    def _with_refusal(self, message: str) -> str:
        """``message`` with the HTTP error status the server answered, if it answered one."""
        refusal = self._http_clients.take_refusal(self.server.name)
        return f"{message} ({refusal})" if refusal else message

    def _with_stderr(self, message: str) -> str:
        """``message`` with the last line a stdio server wrote to stderr before a session could be opened
        (once open, its stderr is ordinary logging, not the cause); the caller's error is scrubbed of
        secrets at the task boundary, as the relayed log line is."""
        line = self._stderr.take_last_line() if self._stderr is not None else None
        return f"{message}; its stderr said: {line}" if line and not self._opened_this_attempt else message

    def _note_failure(self, message: str) -> None:
        self.failed_attempts += 1
        self.last_error = message

    def _uncancel(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            while task.cancelling():
                task.uncancel()

    async def _sleep_unless_closing(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        self._wake.clear()

    async def _connected_client(self, timeout: float) -> Client:
        """The open session; waits for it, but at most through one failed connect attempt."""
        if self._client is not None:
            return self._client
        failures_before = self.failed_attempts
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(
                    lambda: self._client is not None or self.failed_attempts > failures_before
                    or self._closing), timeout)
            except TimeoutError:
                why = f"last error: {self.last_error}" if self.last_error else "its first handshake had not ended"
                raise DeadlineExceeded(f"no MCP session to {self.server.name} within {timeout:.2f}s ({why})",
                                       server=self.server.name) from None
        if self._client is None:
            raise ServerUnavailable(f"cannot open MCP session to {self.server.name}: {self.last_error}",
                                    server=self.server.name, cause=self.last_error)
        return self._client

    async def wait_connected(self, timeout: float) -> None:
        """Return once the session is open (at most one failed attempt is waited through)."""
        await self._connected_client(timeout)

    def _mark_broken(self, client: Client, reason: str) -> None:
        if self._client is client:
            self.last_error = reason
            self._client = None
            self._wake.set()

    async def _run(self, operation: Callable[[Client, float], Awaitable[T]], timeout: float, what: str) -> T:
        """Run one request on the session, translating MCP/transport failures to our errors."""
        deadline = time.monotonic() + timeout
        for attempt in (1, 2):
            client = await self._connected_client(max(deadline - time.monotonic(), 0.0))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(f"{what} on {self.server.name}: deadline passed while connecting",
                                       server=self.server.name)
            try:
                with anyio.fail_after(remaining):
                    return await operation(client, remaining)
            except TimeoutError:
                raise DeadlineExceeded(f"{what} on {self.server.name} timed out after {timeout:.2f}s",
                                       server=self.server.name) from None
            except MCPError as exc:
                if own_timeout(exc):
                    raise DeadlineExceeded(f"{what} on {self.server.name} timed out after {timeout:.2f}s",
                                           server=self.server.name) from None
                if _is_session_gone(exc) and attempt == 1:
                    # The server dropped the session before running anything: rebuild, retry once.
                    self._mark_broken(client, exc.message)
                    continue
                if transport_failed(exc) or _is_session_gone(exc):
                    reason = self._with_refusal(exc.message)
                    self._mark_broken(client, reason)
                    raise ServerUnavailable(f"{what} on {self.server.name} failed: {reason}",
                                            server=self.server.name, cause=f"MCPError {exc.code}") from None
                raise ToolReturnedError(f"{what} on {self.server.name} refused by the server: {exc.message} "
                                        f"(JSON-RPC error {exc.code})", server=self.server.name,
                                        cause=f"MCPError {exc.code}", code=exc.code) from None
            except OrchestratorError:
                raise
            except Exception as exc:  # transport-level failure: the session is unusable
                reason = describe_failure(exc)
                self._mark_broken(client, reason)
                raise ServerUnavailable(f"{what} on {self.server.name} failed: {reason}",
                                        server=self.server.name, cause=type(exc).__name__) from None
        raise AssertionError("unreachable")

    async def call_tool(self, tool: str, params: dict[str, Any], timeout: float) -> CallToolResult:
        return await self._run(
            lambda client, left: client.call_tool(tool, params, read_timeout_seconds=left), timeout,
            f"tools/call {tool}")

    async def list_tools(self, timeout: float) -> ListToolsResult:
        return await self._run(lambda client, left: client.list_tools(cache_mode="bypass"), timeout,
                               "tools/list")

    async def aclose(self) -> None:
        self._closing = True
        self._wake.set()
        async with self._changed:
            self._changed.notify_all()
        if self._owner is not None:
            try:
                await asyncio.wait_for(self._owner, CLOSE_TIMEOUT_SECONDS)
            except (TimeoutError, asyncio.CancelledError, Exception) as exc:
                log.debug("owner of %s ended with %r", self.server.name, exc)


class SessionManager:
    """The process's session loop thread and its held sessions, one per server."""

    def __init__(self, on_open: Sequence[SessionHook] = ()) -> None:
        self.pid = os.getpid()
        self._on_open = tuple(on_open)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-sessions", daemon=True)
        self._thread.start()
        self._http_clients = HttpClients()
        self._sessions: dict[str, HeldSession] = {}
        self._lock = threading.Lock()
        self._closed = False

    def session(self, server: ServerConfig) -> HeldSession:
        """The held session of ``server``, created (and connecting in the background) on first use."""
        with self._lock:
            if self._closed:
                raise ServerUnavailable("worker is shutting down", server=server.name)
            held = self._sessions.get(server.name)
            if held is None:
                held = self._submit(self._create(server)).result(timeout=CLOSE_TIMEOUT_SECONDS)
                self._sessions[server.name] = held
            return held

    def held(self, name: str) -> HeldSession | None:
        """The held session of server ``name`` if this process opened one (never creates it)."""
        with self._lock:
            return self._sessions.get(name)

    async def _create(self, server: ServerConfig) -> HeldSession:
        held = HeldSession(server, self._http_clients, self._on_open)
        held.start()
        return held

    def _submit(self, coro: Awaitable[T]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the session loop, soon (a chunk hands it a turn's waits at once)."""
        self._loop.call_soon_threadsafe(callback, *args)

    def run(self, coro: Awaitable[T], timeout: float) -> T:
        """Run ``coro`` on the session loop and wait for it from this (task) thread."""
        future = self._submit(coro)
        try:
            return future.result(timeout=timeout + RUN_GRACE_SECONDS)
        except FutureTimeout:
            future.cancel()
            raise self.overran(timeout) from None

    @staticmethod
    def overran(timeout: float) -> DeadlineExceeded:
        """The error of a coroutine still running ``RUN_GRACE_SECONDS`` after its ``timeout`` (it is cancelled)."""
        return DeadlineExceeded(f"call did not finish within {timeout:.2f}s")

    def close(self) -> None:
        """Close every session cleanly, then stop the loop; safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if os.getpid() != self.pid:
            return  # a forked child inherited this object but not its thread
        try:
            self._submit(self._close_all()).result(timeout=CLOSE_TIMEOUT_SECONDS * 2)
        except Exception as exc:  # shutdown must go on
            log.warning("closing MCP sessions: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CLOSE_TIMEOUT_SECONDS)

    async def _close_all(self) -> None:
        await asyncio.gather(*(held.aclose() for held in self._sessions.values()), return_exceptions=True)
        await self._http_clients.aclose()
