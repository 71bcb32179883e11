"""A small MCP server built on FastMCP 4 (the ``fastmcp`` package from PyPI), for the error-class tests.

With FastMCP's ``ErrorHandlingMiddleware`` (as many FastMCP servers install it) an unknown tool is
answered with a JSON-RPC error of code -32001 ("Not found"): the number the MCP SDK also uses for a
client-side timeout. Run with the interpreter of ``.venv-fastmcp`` (``make thirdparty``):
``.venv-fastmcp/bin/python -m tests.support.servers.fastmcp_tools``.
"""

from __future__ import annotations

from fastmcp import FastMCP
from fastmcp.server.middleware.error_handling import ErrorHandlingMiddleware

server = FastMCP("fastmcp-tools")
server.add_middleware(ErrorHandlingMiddleware())


@server.tool(annotations={"readOnlyHint": True})
def get_weather(city: str) -> str:
    """The weather in ``city`` (always fine here)."""
    return f"sunny in {city}"


if __name__ == "__main__":
    server.run(show_banner=False)
