"""A small MCP server whose tool set changes at run time: ``grow(name)`` adds a tool ``name``
that takes ``count: int``. For the tests of the tool catalog (a stale catalog is refreshed).

Run: ``python -m tests.support.servers.growing`` (stdio).
"""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("growing", version="2.0.0")


@server.tool()
async def grow(name: str, ctx: Context, announce: bool = False) -> str:
    """Add a tool called ``name`` (taking ``count: int``); with ``announce`` tell listening clients."""

    def added(count: int) -> int:
        return count

    server.add_tool(added, name=name, description=f"Added at run time as {name}.")
    if announce:
        await ctx.notify_tools_changed()
    return f"added {name}"


if __name__ == "__main__":
    server.run("stdio")
