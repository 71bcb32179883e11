"""The ``radarr`` MCP server over ``/api/v3``: AutoArr's 9 Radarr tools, plus the 7 its routers and services call
(``search_movies``, ``lookup_movie``, ``trigger_movie_search``, ``refresh_movie``, ``get_missing_movies``,
``get_quality_profiles``, ``get_root_folders``). Where AutoArr's callers send a parameter under another name,
that name is an alias."""

from __future__ import annotations

from typing import Literal

from media_mcp.common import arr
from media_mcp.common.inputs import Id, Limit, Page, PageSize, Text
from media_mcp.common.models import Item, Items
from media_mcp.common.runner import ServiceSpec
from media_mcp.common.server import DESTROY, READ, SET_STATE, TRIGGER, MediaServer
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
        search_for_movie: bool | None = None,
    ) -> Item:
        """Add a movie by TMDb id to the library; search_for_movie starts an indexer search too."""
        body = arr.supplied(
            title=title,
            tmdbId=tmdb_id,
            qualityProfileId=quality_profile_id,
            rootFolderPath=root_folder_path,
            monitored=monitored,
            minimumAvailability=minimum_availability,
            addOptions=arr.supplied(searchForMovie=search_for_movie) or None,
        )
        return await arr.post(upstream, "/movie", body)

    async def search_movies(term: arr.Term = None, query: arr.QueryAlias = None) -> Items:
        """Look movies up on TMDb by title (or ``tmdb:<id>``); ``query`` is AutoArr's name for ``term``."""
        return await arr.get_items(upstream, "/movie/lookup", term=arr.required_either("term", term, "query", query))

    for name in ("radarr_search_movie_lookup", "radarr_search_movies"):
        server.add_tool(search_movies, name=name, annotations=READ)

    @server.tool(name="radarr_lookup_movie", annotations=READ)
    async def lookup_movie(tmdb_id: Id) -> Item:
        """One movie from TMDb by its TMDb id, whether or not it is in the library (``id`` 0 if not)."""
        return await arr.get_item(upstream, "/movie/lookup/tmdb", tmdbId=tmdb_id)

    async def search_movie(movie_id: Id) -> Item:
        """Start an indexer search for one movie; returns the queued command."""
        return await arr.command(upstream, "MoviesSearch", movieIds=[movie_id])

    for name in ("radarr_search_movie", "radarr_trigger_movie_search"):
        server.add_tool(search_movie, name=name, annotations=TRIGGER)

    @server.tool(name="radarr_refresh_movie", annotations=SET_STATE)
    async def refresh_movie(movie_id: Id) -> Item:
        """Re-read one movie's metadata from TMDb and rescan its folder; returns the queued command."""
        return await arr.command(upstream, "RefreshMovie", movieIds=[movie_id])

    @server.tool(name="radarr_get_wanted", annotations=READ)
    async def get_wanted(
        page: Page = None,
        page_size: PageSize = None,
        pageSize: arr.PageSizeAlias = None,  # the name AutoArr's monitoring sends
    ) -> Item:
        """Monitored, available movies that have no file, as a paging envelope (``records``)."""
        size = arr.either("page_size", page_size, "pageSize", pageSize)
        return await arr.get_item(upstream, "/wanted/missing", **arr.paging(page, size))

    @server.tool(name="radarr_get_missing_movies", annotations=READ)
    async def get_missing_movies() -> Items:
        """Every monitored, available movie without a file, as a plain list (all pages of ``/wanted/missing``)."""
        return await arr.all_records(upstream, "/wanted/missing")

    arr.add_shared_tools(server, upstream, "radarr", "movies")

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
