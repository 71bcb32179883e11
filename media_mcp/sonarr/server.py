"""The ``sonarr`` MCP server over ``/api/v3``: AutoArr's 10 Sonarr tools, plus the 5 its routers and services call
(``trigger_series_search``, ``trigger_episode_search``, ``lookup_series``, ``get_quality_profiles``,
``get_root_folders``). Where AutoArr's callers send a parameter under another name, that name is an alias."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from media_mcp.common import arr
from media_mcp.common.inputs import Id, Limit, Page, PageSize, Text
from media_mcp.common.models import Item, Items
from media_mcp.common.runner import ServiceSpec
from media_mcp.common.server import DESTROY, READ, TRIGGER, MediaServer
from media_mcp.common.upstream import Upstream

SeasonNumber = Annotated[int | None, Field(ge=0, description="Season number; 0 holds specials.")]


def build(upstream: Upstream) -> MediaServer:
    """Create the server with its tools bound to ``upstream``."""
    server = MediaServer(name="sonarr", log_level="WARNING")

    @server.tool(name="sonarr_get_series", annotations=READ)
    async def get_series(limit: Limit = None, page: Page = None) -> Items:
        """All series in the library (limit and page are passed through; Sonarr ignores them)."""
        return await arr.get_items(upstream, "/series", limit=limit, page=page)

    @server.tool(name="sonarr_get_series_by_id", annotations=READ)
    async def get_series_by_id(series_id: Id) -> Item:
        """One series with its seasons and statistics."""
        return await arr.get_item(upstream, f"/series/{series_id}")

    @server.tool(name="sonarr_add_series", annotations=TRIGGER)
    async def add_series(
        tvdb_id: Id,
        quality_profile_id: Id,
        root_folder_path: Text,
        title: str | None = None,
        monitored: bool = True,
        season_folder: bool = True,
        search_for_missing_episodes: bool | None = None,
    ) -> Item:
        """Add a series by TVDB id to the library; search_for_missing_episodes starts an indexer search too."""
        body = arr.supplied(
            title=title,
            tvdbId=tvdb_id,
            qualityProfileId=quality_profile_id,
            rootFolderPath=root_folder_path,
            monitored=monitored,
            seasonFolder=season_folder,
            addOptions=arr.supplied(searchForMissingEpisodes=search_for_missing_episodes) or None,
        )
        return await arr.post(upstream, "/series", body)

    async def lookup_series(term: arr.Term = None, query: arr.QueryAlias = None) -> Items:
        """Look a series up on TVDB by title (or ``tvdb:<id>``); ``query`` is AutoArr's name for ``term``."""
        return await arr.get_items(upstream, "/series/lookup", term=arr.required_either("term", term, "query", query))

    for name in ("sonarr_search_series", "sonarr_lookup_series"):
        server.add_tool(lookup_series, name=name, annotations=READ)

    @server.tool(name="sonarr_get_episodes", annotations=READ)
    async def get_episodes(series_id: Id, season_number: SeasonNumber = None) -> Items:
        """Episodes of a series, optionally of one season."""
        return await arr.get_items(upstream, "/episode", seriesId=series_id, seasonNumber=season_number)

    async def search_episode(episode_id: Id) -> Item:
        """Start an indexer search for one episode; returns the queued command."""
        return await arr.command(upstream, "EpisodeSearch", episodeIds=[episode_id])

    for name in ("sonarr_search_episode", "sonarr_trigger_episode_search"):
        server.add_tool(search_episode, name=name, annotations=TRIGGER)

    @server.tool(name="sonarr_trigger_series_search", annotations=TRIGGER)
    async def trigger_series_search(series_id: Id) -> Item:
        """Start an indexer search for every monitored missing episode of a series; returns the queued command."""
        return await arr.command(upstream, "SeriesSearch", seriesId=series_id)

    @server.tool(name="sonarr_get_wanted", annotations=READ)
    async def get_wanted(
        page: Page = None,
        page_size: PageSize = None,
        include_series: bool | None = None,
        pageSize: arr.PageSizeAlias = None,  # the name AutoArr's monitoring sends
    ) -> Item:
        """Monitored episodes that have aired but have no file, as a paging envelope (``records``)."""
        size = arr.either("page_size", page_size, "pageSize", pageSize)
        return await arr.get_item(
            upstream, "/wanted/missing", **arr.paging(page, size), includeSeries=arr.flag(include_series)
        )

    arr.add_shared_tools(server, upstream, "sonarr", "episodes")

    @server.tool(name="sonarr_delete_series", annotations=DESTROY)
    async def delete_series(
        series_id: Id, delete_files: bool = False, add_import_exclusion: bool | None = None
    ) -> Item:
        """Remove a series from Sonarr, and its files if asked."""
        return await arr.delete(
            upstream,
            f"/series/{series_id}",
            deleteFiles=arr.flag(delete_files or None),
            addImportListExclusion=arr.flag(add_import_exclusion),
        )

    return server


SPEC = ServiceSpec(name="sonarr", secret_var="SONARR_API_KEY", auth=arr.auth, build=build)
