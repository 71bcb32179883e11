"""FastAPI integration for AutoArr's API (optional extra ``fastapi``): lifespan, dependency, router.

::

    api = FastAPI(lifespan=orchestrator_lifespan())
    api.include_router(orchestrator_router(auth=api_key_auth(os.environ["ORCH_API_KEY"])), prefix="/mcp")

    @api.get("/queue")
    async def queue(mcp: AsyncOrchestrator = Depends(get_orchestrator)) -> Any:
        return (await mcp.call_tool("sabnzbd", "get_queue")).data

Security stance: the router lets its caller run any enabled tool (delete included), so
``orchestrator_router`` refuses to build without an ``auth`` dependency unless
``allow_unauthenticated=True`` says the app guards it some other way. Errors map to HTTP codes
as AutoArr's ``ErrorHandlerMiddleware`` does (see ``error_status``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from celery import Celery
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from orchestrator.aio.client import AsyncOrchestrator
from orchestrator.batch import Outcome
from orchestrator.config import Settings
from orchestrator.errors import (
    CircuitBreakerOpenError,
    DeadlineExceeded,
    InvalidCall,
    OrchestratorError,
    ServerUnavailable,
    ToolReturnedError,
    UpstreamUnavailable,
)

STATUS_BY_ERROR: list[tuple[type[OrchestratorError], int]] = [
    (InvalidCall, 400),
    (UpstreamUnavailable, 503),
    (ToolReturnedError, 400),
    (CircuitBreakerOpenError, 503),
    (ServerUnavailable, 503),
    (DeadlineExceeded, 504),
]
"""AutoArr's middleware: unreachable or breaker open 503, timeout 504, caller or tool error 400; first match wins."""


def error_status(error: OrchestratorError) -> int:
    """The HTTP status of an orchestrator error (500 for any other: outcome unknown, cancelled, failed)."""
    return next((status for cls, status in STATUS_BY_ERROR if isinstance(error, cls)), 500)


def error_response(error: OrchestratorError) -> JSONResponse:
    """The error as JSON (type, message, fields) with its status; ``Retry-After`` when a breaker is open."""
    headers = {}
    if isinstance(error, CircuitBreakerOpenError) and error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return JSONResponse({"error": error.to_dict()}, status_code=error_status(error), headers=headers)


def add_error_handlers(api: FastAPI) -> None:
    """Map ``OrchestratorError`` raised by any route of ``api`` to its HTTP status."""
    async def handle(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, OrchestratorError)
        return error_response(error)
    api.add_exception_handler(OrchestratorError, handle)


def orchestrator_lifespan(settings: Settings | None = None, *, app: Celery | None = None
                          ) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """A lifespan opening one ``AsyncOrchestrator`` for the app's life (``app.state.orchestrator``)."""
    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        async with AsyncOrchestrator(settings, app=app) as client:
            api.state.orchestrator = client
            try:
                yield
            finally:
                del api.state.orchestrator
    return lifespan


def get_orchestrator(request: Request) -> AsyncOrchestrator:
    """Dependency: the client the lifespan opened."""
    client = getattr(request.app.state, "orchestrator", None)
    if client is None:
        raise RuntimeError("no orchestrator on app.state: build the app with lifespan=orchestrator_lifespan()")
    return client


def api_key_auth(key: str, *, header: str = "X-API-Key") -> Callable[[Request], None]:
    """Dependency accepting requests that carry ``key`` in ``header`` or as ``Authorization: Bearer``."""
    if not key:
        raise ValueError("api_key_auth: the key must be a non-empty string")
    expected = key.encode()

    def check(request: Request) -> None:
        given = request.headers.get(header) or ""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = given or token
        if not hmac.compare_digest(given.encode(), expected):
            raise HTTPException(401, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})
    return check


class CallBody(BaseModel):
    server: str
    tool: str
    params: dict[str, Any] | None = None
    timeout: float | None = None


class BatchBody(BaseModel):
    calls: list[CallBody] = Field(max_length=10_000)
    timeout: float | None = None
    fail_fast: bool = False
    max_concurrency: dict[str, int] | None = None


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """One batch outcome as JSON: the result's fields, or ``{"ok": false, "error": {...}}``."""
    if isinstance(outcome, OrchestratorError):
        return {"ok": False, "error": outcome.to_dict()}
    return outcome.model_dump(mode="json")


def orchestrator_router(*, auth: Callable[..., Any] | None, allow_unauthenticated: bool = False) -> APIRouter:
    """Routes to call tools, run and stream batches, list tools and read health.

    ``auth`` is a dependency that raises (``HTTPException(401)``) on a request it refuses, e.g.
    ``api_key_auth(key)``. Without one the router is refused, unless ``allow_unauthenticated``.
    """
    if auth is None and not allow_unauthenticated:
        raise ValueError("orchestrator_router exposes tool calls: pass auth=... (e.g. api_key_auth(key)), "
                         "or allow_unauthenticated=True if the app authenticates these routes itself")
    router = APIRouter(dependencies=[Depends(auth)] if auth is not None else [])
    Client = Depends(get_orchestrator)

    async def answer(work: Awaitable[Any]) -> Any:
        try:
            return await work
        except OrchestratorError as error:
            return error_response(error)

    @router.post("/call")
    async def call(body: CallBody, mcp: AsyncOrchestrator = Client) -> Any:
        async def run() -> dict[str, Any]:
            return (await mcp.call_tool(body.server, body.tool, body.params, body.timeout)).model_dump(mode="json")
        return await answer(run())

    @router.post("/batch")
    async def batch(body: BatchBody, mcp: AsyncOrchestrator = Client) -> Any:
        async def run() -> dict[str, Any]:
            outcomes = await mcp.call_tools_parallel([c.model_dump() for c in body.calls], timeout=body.timeout,
                                                     fail_fast=body.fail_fast, max_concurrency=body.max_concurrency)
            return {"outcomes": [outcome_json(o) for o in outcomes]}
        return await answer(run())

    @router.post("/batch/stream")
    async def batch_stream(body: BatchBody, mcp: AsyncOrchestrator = Client) -> StreamingResponse:
        """Server-Sent Events: ``progress`` per ended call, then one ``outcome`` per call in order, then ``done``
        (or one ``error`` if the batch was refused). A client that disconnects cancels (revokes) the batch."""
        return StreamingResponse(_batch_events(mcp, body), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @router.get("/tools")
    async def tools(mcp: AsyncOrchestrator = Client) -> Any:
        async def run() -> dict[str, list[str]]:
            listing = await mcp.list_all_tools()
            return {server: [tool["name"] for tool in items] for server, items in listing.items()}
        return await answer(run())

    @router.get("/tools/{server}")
    async def server_tools(server: str, mcp: AsyncOrchestrator = Client) -> Any:
        async def run() -> list[str]:
            return [tool["name"] for tool in await mcp.list_tools(server)]
        return await answer(run())

    @router.get("/health")
    async def health_status(mcp: AsyncOrchestrator = Client) -> Any:
        return await answer(mcp.health_status())

    @router.get("/health/{server}")
    async def health_detail(server: str, mcp: AsyncOrchestrator = Client) -> Any:
        async def run() -> dict[str, Any]:
            return (await mcp.health_detail(server)).model_dump(mode="json")
        return await answer(run())

    return router


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def _batch_events(mcp: AsyncOrchestrator, body: BatchBody) -> AsyncIterator[str]:
    """Run the batch as a task; relay its progress as it comes, then its outcomes."""
    events: asyncio.Queue[str] = asyncio.Queue()

    def progress(done: int, total: int) -> None:
        events.put_nowait(_event("progress", {"done": done, "total": total}))

    batch = asyncio.create_task(mcp.call_tools_parallel(
        [c.model_dump() for c in body.calls], timeout=body.timeout, fail_fast=body.fail_fast,
        max_concurrency=body.max_concurrency, progress=progress))
    try:
        while not batch.done() or not events.empty():
            getter = asyncio.ensure_future(events.get())
            await asyncio.wait({getter, batch}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
        try:
            outcomes = batch.result()
        except OrchestratorError as error:
            yield _event("error", {"status": error_status(error), **error.to_dict()})
            return
        for index, outcome in enumerate(outcomes):
            yield _event("outcome", {"index": index, **outcome_json(outcome)})
        yield _event("done", {"total": len(outcomes)})
    finally:
        if not batch.done():
            batch.cancel()  # the client went away: revoke what has not ended
            with contextlib.suppress(asyncio.CancelledError, OrchestratorError):
                await batch
