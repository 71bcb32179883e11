"""AutoArr's API in miniature for the tests: the orchestrator's lifespan, router and a route of its own.

Run by uvicorn in its own process; reads ``MCP_ORCH_CONFIG`` and ``ORCH_API_KEY`` from its environment.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import Depends, FastAPI

from orchestrator.aio.client import AsyncOrchestrator
from orchestrator.fastapi import (
    add_error_handlers,
    api_key_auth,
    get_orchestrator,
    orchestrator_lifespan,
    orchestrator_router,
)

api = FastAPI(lifespan=orchestrator_lifespan())
api.include_router(orchestrator_router(auth=api_key_auth(os.environ["ORCH_API_KEY"])), prefix="/mcp")
add_error_handlers(api)


@api.get("/echo/{text}")
async def echo(text: str, mcp: AsyncOrchestrator = Depends(get_orchestrator)) -> Any:  # noqa: B008
    """An app route of AutoArr's kind: the client from the dependency, errors mapped by the handlers."""
    return (await mcp.call_tool("probe", "echo", {"text": text}, timeout=5)).data
