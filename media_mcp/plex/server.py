"""The ``plex`` MCP server: AutoArr's 8 Plex tools and the 5 its routers call, JSON via ``Accept: application/json``.

Every id that goes into a URL path is digits only (``SectionKey``, ``RatingKey``), checked against
the input schema before any request, so no argument can steer a request to another Plex path.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from media_mcp.common.errors import NOT_FOUND, TaggedToolError
from media_mcp.common.inputs import Limit, Offset, Text
from media_mcp.common.models import Item, Items, as_list
from media_mcp.common.runner import ServiceSpec
from media_mcp.common.server import READ, SET_STATE, MediaServer
from media_mcp.common.upstream import Auth, Upstream

DIGITS = r"^[0-9]+$"
SectionKey = Annotated[str, Field(pattern=DIGITS, description="Library section key (digits), e.g. '1'.")]
RatingKey = Annotated[str, Field(pattern=DIGITS, description="Rating key of a library item (digits), e.g. '101'.")]
ITEM_KEYS = ("Metadata", "Video", "Directory", "Track")
"""Where Plex puts a section's items, depending on its type; the first non-empty one wins."""


class Refresh(BaseModel):
    """AutoArr's fixed reply to a library refresh."""

    success: bool = True
    library_id: str


class ScanStarted(BaseModel):
    """A section scan Plex accepted; it runs in the background (Plex answers an empty 200)."""

    success: bool = True
    message: str = "Library scan started"
    library_key: str


class RefreshStarted(BaseModel):
    """An item's metadata refresh Plex accepted; it runs in the background (Plex answers an empty 200)."""

    success: bool = True
    message: str = "Metadata refresh started"
    rating_key: str


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


async def scan(upstream: Upstream, section: str) -> None:
    """``GET /library/sections/{key}/refresh``: Plex scans the section's folders for new or changed files."""
    await upstream.request("GET", f"/library/sections/{section}/refresh")


def build(upstream: Upstream) -> MediaServer:
    """Create the server with its tools bound to ``upstream``."""
    server = MediaServer(name="plex", log_level="WARNING")

    @server.tool(name="plex_get_libraries", annotations=READ)
    async def get_libraries() -> Items:
        """Library sections (movies, shows, music …) with their keys and locations."""
        return await items(upstream, "/library/sections", key="Directory")

    @server.tool(name="plex_get_library", annotations=READ)
    async def get_library(library_key: SectionKey) -> Item:
        """One library section (key, title, type, agent, locations), as listed by ``GET /library/sections``."""
        sections = as_list((await container(upstream, "/library/sections")).get("Directory"))
        found = next((section for section in sections if str(section.get("key")) == library_key), None)
        if found is None:
            raise TaggedToolError(NOT_FOUND, f"plex GET /library/sections: no library section {library_key!r}")
        return Item(data=found)

    @server.tool(name="plex_get_library_items", annotations=READ)
    async def get_library_items(library_id: SectionKey, limit: Limit = None, offset: Offset = None) -> Items:
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
    async def search(query: Text, limit: Limit = None, section_id: SectionKey | None = None) -> Items:
        """Search titles across libraries, or within one section."""
        return await items(upstream, "/search", query=query, limit=limit, sectionId=section_id)

    @server.tool(name="plex_search_media", annotations=READ)
    async def search_media(query: Text, library_key: SectionKey | None = None, limit: Limit = None) -> Items:
        """Search titles with Plex's hub search (``GET /hubs/search``), across libraries or within one section;
        the hubs' items come back as one list."""
        found = await container(upstream, "/hubs/search", query=query, sectionId=library_key, limit=limit)
        return Items(data=[item for hub in as_list(found.get("Hub")) for item in as_list(hub.get("Metadata"))])

    @server.tool(name="plex_refresh_library", annotations=SET_STATE)
    async def refresh_library(library_id: SectionKey) -> Refresh:
        """Start a scan of one library section for new or changed files."""
        await scan(upstream, library_id)
        return Refresh(library_id=library_id)

    @server.tool(name="plex_scan_library", annotations=SET_STATE)
    async def scan_library(library_key: SectionKey) -> ScanStarted:
        """Start a scan of one library section for new or changed files (the call AutoArr's media router makes)."""
        await scan(upstream, library_key)
        return ScanStarted(library_key=library_key)

    @server.tool(name="plex_refresh_metadata", annotations=SET_STATE)
    async def refresh_metadata(rating_key: RatingKey) -> RefreshStarted:
        """Refresh one item's metadata from its agent (``PUT /library/metadata/{key}/refresh``); fields locked
        in Plex keep their edits."""
        await upstream.request("PUT", f"/library/metadata/{rating_key}/refresh")
        return RefreshStarted(rating_key=rating_key)

    @server.tool(name="plex_get_history", annotations=READ)
    async def get_history(limit: Limit = None, offset: Offset = None) -> Items:
        """Watch history, newest first."""
        return await items(upstream, "/status/sessions/history/all", **window(limit, offset))

    @server.tool(name="plex_get_server_status", annotations=READ)
    async def get_server_status() -> Item:
        """Server identity and state from ``GET /``: version, platform, friendly name, sign-in state, active
        transcodes."""
        return Item(data=await container(upstream, "/"))

    return server


SPEC = ServiceSpec(name="plex", secret_var="PLEX_TOKEN", auth=auth, build=build)
