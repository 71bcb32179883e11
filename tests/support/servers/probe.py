"""A small MCP server for the test suite: echo, arithmetic, a failing tool, a slow tool and
``whoami``, which tells which process answered and how many sessions it has opened.

Run: ``python -m tests.support.servers.probe --transport stdio`` or ``--transport http --port N``.
The server reads ``PROBE_API_KEY`` from its environment (the canary secret of the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

_handshakes = 0
_calls = 0
_in_flight = {"now": 0, "max": 0}
_deleted: dict[str, int] = {}
_seen_sessions: set[str] = set()
_expired_sessions: set[str] = set()


class Echo(BaseModel):
    text: str
    length: int


class Who(BaseModel):
    pid: int
    handshakes: int
    calls: int
    has_api_key: bool


server = MCPServer("probe", version="1.0.0")
READ_ONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True, destructiveHint=False)


def _count() -> None:
    global _calls
    _calls += 1


@server.tool(annotations=READ_ONLY)
def echo(text: str = Field(min_length=1)) -> Echo:
    """Return the text and its length."""
    _count()
    return Echo(text=text, length=len(text))


@server.tool(annotations=READ_ONLY)
def add(a: int, b: int) -> int:
    """Add two integers."""
    _count()
    return a + b


@server.tool(annotations=READ_ONLY)
def fail(message: str) -> str:
    """Always fail with ``message`` (an MCP isError result)."""
    _count()
    raise ToolError(message)


@server.tool(annotations=READ_ONLY)
async def sleep(seconds: float) -> str:
    """Sleep, then answer: for deadlines and slow servers."""
    _count()
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool(annotations=READ_ONLY)
async def hold(seconds: float) -> dict[str, int]:
    """Stay in flight for ``seconds``; the server records how many calls were in flight at once."""
    _count()
    _in_flight["now"] += 1
    _in_flight["max"] = max(_in_flight["max"], _in_flight["now"])
    try:
        await asyncio.sleep(seconds)
    finally:
        _in_flight["now"] -= 1
    return dict(_in_flight)


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, idempotentHint=True))
def in_flight_stats(reset: bool = False) -> dict[str, int]:
    """The most ``hold`` calls seen in flight at once (and reset the mark)."""
    seen = dict(_in_flight)
    if reset:
        _in_flight["max"] = _in_flight["now"]
    return seen


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False))
def delete_thing(name: str) -> dict[str, Any]:
    """A destructive tool (not safe to repeat)."""
    _count()
    return {"deleted": name}


@server.tool(annotations=READ_ONLY)
def leak_key() -> dict[str, Any]:
    """A careless tool that echoes its API key (the worker must scrub it from the result)."""
    _count()
    return {"note": f"my key is {os.environ.get('PROBE_API_KEY', '')}"}


@server.tool(annotations=READ_ONLY)
def leak_key_error() -> str:
    """A careless tool whose error text contains its API key."""
    _count()
    raise ToolError(f"login failed with key {os.environ.get('PROBE_API_KEY', '')}")


@server.tool(annotations=READ_ONLY)
def leak_key_protocol_error() -> str:
    """A careless tool that fails at the protocol level (a JSON-RPC error, not an isError result)
    with its API key in the message: the worker raises that text as its own error."""
    _count()
    raise MCPError(code=-32603, message=f"backend refused key {os.environ.get('PROBE_API_KEY', '')}")


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False))
async def record_delete(name: str, seconds: float = 0.0) -> dict[str, int]:
    """A destructive call that takes a while; the server counts how often each name was deleted."""
    _count()
    await asyncio.sleep(seconds)
    _deleted[name] = _deleted.get(name, 0) + 1
    return {name: _deleted[name]}


@server.tool(annotations=READ_ONLY)
def deletions() -> dict[str, int]:
    """How many times each name was deleted (a destructive call must never run twice)."""
    return dict(_deleted)


_hung: set[str] = set()


@server.tool(annotations=READ_ONLY)
async def hang_once(key: str, seconds: float) -> dict[str, int]:
    """The first call with ``key`` hangs for ``seconds`` (a lost reply); later ones answer at once."""
    _count()
    if key not in _hung:
        _hung.add(key)
        await asyncio.sleep(seconds)
    return {"pid": os.getpid()}


@server.tool(annotations=READ_ONLY)
def upstream_down() -> str:
    """A read-only tool whose upstream is unavailable (the tag the bundled servers use)."""
    _count()
    raise ToolError("[upstream_unavailable] simulated outage: HTTP 503")


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False))
def unsafe_upstream_down() -> str:
    """A destructive tool whose upstream is unavailable: never retried."""
    _count()
    raise ToolError("[upstream_unavailable] simulated outage: HTTP 503")


@server.tool(annotations=READ_ONLY)
def whoami() -> Who:
    """Which process answered, and how many MCP sessions it has seen opened."""
    _count()
    return Who(pid=os.getpid(), handshakes=max(_handshakes, 1), calls=_calls,
               has_api_key=bool(os.environ.get("PROBE_API_KEY")))


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, idempotentHint=True))
def expire_sessions() -> dict[str, int]:
    """Over HTTP: forget every session seen so far, as a server whose sessions expired; their next request
    gets 404 "Session not found" (new sessions work)."""
    _expired_sessions.update(_seen_sessions)
    return {"expired": len(_expired_sessions)}


class CountHandshakes:
    """ASGI middleware counting session openings (initialize or server/discover requests) and answering
    404 for the sessions ``expire_sessions`` forgot."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        body = b""
        messages = []
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            request = json.loads(body) if body else {}
            method = request.get("method")
        except (ValueError, AttributeError):
            request, method = {}, None
        session = dict(scope.get("headers") or []).get(b"mcp-session-id", b"").decode()
        if session in _expired_sessions:
            error = {"jsonrpc": "2.0", "id": request.get("id"),
                     "error": {"code": -32600, "message": "Session not found"}}
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": json.dumps(error).encode()})
            return
        if session:
            _seen_sessions.add(session)
        if method in ("initialize", "server/discover"):
            global _handshakes
            _handshakes += 1

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def main() -> None:
    parser = argparse.ArgumentParser(prog="probe")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.transport == "stdio":
        server.run("stdio")
        return
    app = CountHandshakes(server.streamable_http_app())
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
