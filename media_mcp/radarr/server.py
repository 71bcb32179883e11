"""The ``radarr`` MCP server: AutoArr's 9 Radarr tools over ``/api/v3``."""

from __future__ import annotations

from typing import Literal

from media_mcp.common import arr
from media_mcp.common.inputs import Id, Limit, Page, PageSize, Text
from media_mcp.common.models import Item, Items
from media_mcp.common.runner import ServiceSpec
from media_mcp.common.server import DESTROY, READ, TRIGGER, MediaServer
from media_mcp.common.upstream import Upstream

Availability = Literal["tba", "announced", "inCinemas", "released"]


def build(upstream: Upstream) -> MediaServer:
    """Create the server with its tools bound to ``upstream``."""
    server = MediaServer(name="radarr", log_level="WARNING")

    @server.tool(name="radarr_get_movies", annotations=READ)
    async def get_movies(limit: Limit = None, page: Page = None) -> Items:
        """All movies in the library (limit and page are passed through; Radarr ignores them)."""
        return await arr.get_items(upstream, "/movie", limit=limit, page=page)

    @server.tool(name="radarr_get_movie_by_id", annotations=READ)
    async def get_movie_by_id(movie_id: Id) -> Item:
        """One movie with its file and status."""
        return await arr.get_item(upstream, f"/movie/{movie_id}")

    @server.tool(name="radarr_add_movie", annotations=TRIGGER)
    async def add_movie(
        tmdb_id: Id,
        quality_profile_id: Id,
        root_folder_path: Text,
        title: str | None = None,
        monitored: bool = True,
        minimum_availability: Availability | None = None,
    ) -> Item:
        """Add a movie by TMDb id to the library."""
        body = arr.supplied(
            title=title,
            tmdbId=tmdb_id,
            qualityProfileId=quality_profile_id,
            rootFolderPath=root_folder_path,
            monitored=monitored,
            minimumAvailability=minimum_availability,
        )
        return await arr.post(upstream, "/movie", body)

    @server.tool(name="radarr_search_movie_lookup", annotations=READ)
    async def search_movie_lookup(term: Text) -> Items:
        """Look a movie up on TMDb by title (or ``tmdb:<id>``)."""
        return await arr.get_items(upstream, "/movie/lookup", term=term)

    @server.tool(name="radarr_search_movie", annotations=TRIGGER)
    async def search_movie(movie_id: Id) -> Item:
        """Start an indexer search for one movie; returns the queued command."""
        return await arr.post(upstream, "/command", {"name": "MoviesSearch", "movieIds": [movie_id]})

    @server.tool(name="radarr_get_wanted", annotations=READ)
    async def get_wanted(page: Page = None, page_size: PageSize = None) -> Item:
        """Monitored, available movies that have no file, as a paging envelope."""
        return await arr.get_item(upstream, "/wanted/missing", **arr.paging(page, page_size))

    arr.add_queue_and_calendar(server, upstream, "radarr", "movies")

    @server.tool(name="radarr_delete_movie", annotations=DESTROY)
    async def delete_movie(movie_id: Id, delete_files: bool = False, add_import_exclusion: bool | None = None) -> Item:
        """Remove a movie from Radarr, and its files if asked."""
        return await arr.delete(
            upstream,
            f"/movie/{movie_id}",
            deleteFiles=arr.flag(delete_files or None),
            addImportExclusion=arr.flag(add_import_exclusion),
        )

    return server


SPEC = ServiceSpec(name="radarr", secret_var="RADARR_API_KEY", auth=arr.auth, build=build)
