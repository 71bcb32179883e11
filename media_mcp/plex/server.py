"""The ``plex`` MCP server: AutoArr's 8 Plex tools, JSON via ``Accept: application/json``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from media_mcp.common.inputs import Limit, Offset, Text
from media_mcp.common.models import Items, as_list
from media_mcp.common.runner import ServiceSpec
from media_mcp.common.server import READ, SET_STATE, MediaServer
from media_mcp.common.upstream import Auth, Upstream

LibraryId = Annotated[Text, Field(description="Library section key, e.g. '1'.")]
ITEM_KEYS = ("Metadata", "Video", "Directory", "Track")
"""Where Plex puts a section's items, depending on its type; the first non-empty one wins."""


class Refresh(BaseModel):
    """AutoArr's fixed reply to a library refresh."""

    success: bool = True
    library_id: str


def auth(token: str) -> Auth:
    """Plex takes its token in ``X-Plex-Token`` and answers JSON when asked."""
    return Auth(headers={"X-Plex-Token": token, "Accept": "application/json"})


def window(limit: int | None, offset: int | None = None) -> dict[str, Any]:
    """Plex pages with container parameters."""
    return {"X-Plex-Container-Size": limit, "X-Plex-Container-Start": offset}


async def container(upstream: Upstream, path: str, **params: Any) -> dict[str, Any]:
    """The ``MediaContainer`` object every Plex reply wraps its content in."""
    payload = await upstream.request("GET", path, params=params)
    return payload.get("MediaContainer", {}) if isinstance(payload, dict) else {}


async def items(upstream: Upstream, path: str, key: str = "Metadata", **params: Any) -> Items:
    return Items(data=as_list((await container(upstream, path, **params)).get(key)))


def build(upstream: Upstream) -> MediaServer:
    """Create the server with its tools bound to ``upstream``."""
    server = MediaServer(name="plex", log_level="WARNING")

    @server.tool(name="plex_get_libraries", annotations=READ)
    async def get_libraries() -> Items:
        """Library sections (movies, shows, music …) with their keys and locations."""
        return await items(upstream, "/library/sections", key="Directory")

    @server.tool(name="plex_get_library_items", annotations=READ)
    async def get_library_items(library_id: LibraryId, limit: Limit = None, offset: Offset = None) -> Items:
        """Items of one library section."""
        found = await container(upstream, f"/library/sections/{library_id}/all", **window(limit, offset))
        return Items(data=next((as_list(found[key]) for key in ITEM_KEYS if found.get(key)), []))

    @server.tool(name="plex_get_recently_added", annotations=READ)
    async def get_recently_added(limit: Limit = None) -> Items:
        """Items most recently added to any library."""
        return await items(upstream, "/library/recentlyAdded", **window(limit))

    @server.tool(name="plex_get_on_deck", annotations=READ)
    async def get_on_deck(limit: Limit = None) -> Items:
        """Continue-watching items."""
        return await items(upstream, "/library/onDeck", **window(limit))

    @server.tool(name="plex_get_sessions", annotations=READ)
    async def get_sessions() -> Items:
        """Streams playing now, with user, player and progress."""
        return await items(upstream, "/status/sessions")

    @server.tool(name="plex_search", annotations=READ)
    async def search(query: Text, limit: Limit = None, section_id: str | None = None) -> Items:
        """Search titles across libraries, or within one section."""
        return await items(upstream, "/search", query=query, limit=limit, sectionId=section_id)

    @server.tool(name="plex_refresh_library", annotations=SET_STATE)
    async def refresh_library(library_id: LibraryId) -> Refresh:
        """Start a scan of one library section for new or changed files."""
        await upstream.request("GET", f"/library/sections/{library_id}/refresh")
        return Refresh(library_id=library_id)

    @server.tool(name="plex_get_history", annotations=READ)
    async def get_history(limit: Limit = None, offset: Offset = None) -> Items:
        """Watch history, newest first."""
        return await items(upstream, "/status/sessions/history/all", **window(limit, offset))

    return server


SPEC = ServiceSpec(name="plex", secret_var="PLEX_TOKEN", auth=auth, build=build)
