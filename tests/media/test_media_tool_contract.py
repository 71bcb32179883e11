"""The four bundled media servers' tool listings against AutoArr's documented tool set, in-process.

No Redis, no workers, no upstream: each server is built and asked for its tools, as the
worker's held session would see them (input schemas and annotations in MCP's wire form).
The reference is ``tests/contracts/autoarr-tools.md``, a copy of the project's shared upstream-api
``autoarr-tools.md`` (so that CI on a clean clone has it), plus what AutoArr's routers and services send
beyond it (the shared ``autoarr-call-sites.md``): the tools they call that its servers lacked, the names
they give some inputs (aliases), and the add options they pass; those are pinned in the tables below.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest
from mcp_types import Tool

from media_mcp.common.upstream import Upstream
from orchestrator.services import MEDIA_SERVICES

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "tests" / "contracts" / "autoarr-tools.md"
"""AutoArr's documented tool set, copied beside the OpenAPI specs."""
SERVERS: dict[str, ModuleType] = {
    service.name: importlib.import_module(f"{service.mcp_module}.server") for service in MEDIA_SERVICES
}
NO_UPSTREAM = cast(Upstream, object())
"""Listing tools never touches the upstream; the tools only close over it."""

SECTION = re.compile(r"^### [\d.]+ (\w+) — (\d+) tools$")
"""A tool table's heading, e.g. ``### 1.2 SABnzbd — 11 tools``."""
NAME = re.compile(r"`(\w+)`")

Inputs = tuple[set[str], set[str]]
"""(input names, required input names)."""

CALLER_TOOLS: dict[str, Inputs] = {
    "plex_get_library": ({"library_key"}, {"library_key"}),  # media: one library
    "plex_scan_library": ({"library_key"}, {"library_key"}),  # media: scan
    "plex_refresh_metadata": ({"rating_key"}, {"rating_key"}),  # media: refresh metadata
    "plex_search_media": ({"query", "library_key", "limit"}, {"query"}),  # media: search
    "plex_get_server_status": (set(), set()),  # media: server status
    "sonarr_trigger_series_search": ({"series_id"}, {"series_id"}),  # shows: search all episodes
    "sonarr_trigger_episode_search": ({"episode_id"}, {"episode_id"}),  # shows: search one episode
    "sonarr_lookup_series": ({"term"}, {"term"}),  # content integration: {"term": "tvdb:<id>"}
    "sonarr_get_quality_profiles": (set(), set()),  # content integration
    "sonarr_get_root_folders": (set(), set()),  # content integration
    "radarr_search_movies": ({"term"}, {"term"}),  # movies: search, sent as {"query": ...}
    "radarr_lookup_movie": ({"tmdb_id"}, {"tmdb_id"}),  # content integration
    "radarr_trigger_movie_search": ({"movie_id"}, {"movie_id"}),  # movies: search one
    "radarr_refresh_movie": ({"movie_id"}, {"movie_id"}),  # movies: refresh
    "radarr_get_missing_movies": (set(), set()),  # movies: missing
    "radarr_get_quality_profiles": (set(), set()),  # content integration
    "radarr_get_root_folders": (set(), set()),  # content integration
}
"""Tools AutoArr's callers call that its own servers never had, with the inputs they take."""
ALIASES: dict[str, dict[str, str]] = {
    "sonarr_search_series": {"query": "term"},  # shows: search sends {"query": ...}
    "sonarr_lookup_series": {"query": "term"},  # the same tool function as search_series
    "radarr_search_movie_lookup": {"query": "term"},  # the same tool function as search_movies
    "radarr_search_movies": {"query": "term"},
    "sonarr_get_wanted": {"pageSize": "page_size"},  # monitoring sends {"page": 1, "pageSize": 50}
    "radarr_get_wanted": {"pageSize": "page_size"},
}
"""AutoArr's name for an input -> the tool's name; either is accepted, so neither can be required in the schema."""
ADD_OPTIONS: dict[str, set[str]] = {
    "sonarr_add_series": {"search_for_missing_episodes"},  # content integration: addOptions.searchForMissingEpisodes
    "radarr_add_movie": {"search_for_movie"},  # content integration: addOptions.searchForMovie
}
"""Optional inputs content integration sends to the documented add tools."""

Triple = tuple[bool, bool, bool]
"""(readOnlyHint, destructiveHint, idempotentHint)."""

ANNOTATIONS: dict[str, Triple] = {
    # SABnzbd
    "sabnzbd_get_queue": (True, False, True),  # mode=queue, a read
    "sabnzbd_get_history": (True, False, True),  # mode=history, a read
    "sabnzbd_retry_download": (False, False, False),  # re-queues a failed job under a new nzo_id; a repeat differs
    "sabnzbd_pause_queue": (False, False, True),  # sets the queue paused; again changes nothing
    "sabnzbd_resume_queue": (False, False, True),  # sets the queue running; again changes nothing
    "sabnzbd_pause_download": (False, False, True),  # sets one job paused
    "sabnzbd_resume_download": (False, False, True),  # sets one job running
    "sabnzbd_delete_download": (False, True, False),  # removes the job (and maybe files); a repeat finds none
    "sabnzbd_get_status": (True, False, True),  # mode=fullstatus, a read
    "sabnzbd_get_config": (True, False, True),  # mode=get_config, a read
    "sabnzbd_set_config": (False, True, True),  # overwrites a value (the old one is lost); same value again is a no-op
    # Sonarr
    "sonarr_get_series": (True, False, True),  # GET /series
    "sonarr_get_series_by_id": (True, False, True),  # GET /series/{id}
    "sonarr_add_series": (False, False, False),  # POST /series; a repeat is rejected as already added
    "sonarr_search_series": (True, False, True),  # GET /series/lookup: a TVDB lookup, not an indexer search
    "sonarr_get_episodes": (True, False, True),  # GET /episode
    "sonarr_search_episode": (False, False, False),  # POST /command EpisodeSearch: each call queues a new search
    "sonarr_get_wanted": (True, False, True),  # GET /wanted/missing
    "sonarr_get_calendar": (True, False, True),  # GET /calendar
    "sonarr_get_queue": (True, False, True),  # GET /queue
    "sonarr_delete_series": (False, True, False),  # DELETE /series/{id}, maybe with its files
    "sonarr_trigger_series_search": (False, False, False),  # POST /command SeriesSearch: each call queues a search
    "sonarr_trigger_episode_search": (False, False, False),  # POST /command EpisodeSearch, as search_episode
    "sonarr_lookup_series": (True, False, True),  # GET /series/lookup, as search_series
    "sonarr_get_quality_profiles": (True, False, True),  # GET /qualityprofile
    "sonarr_get_root_folders": (True, False, True),  # GET /rootfolder
    # Radarr
    "radarr_get_movies": (True, False, True),  # GET /movie
    "radarr_get_movie_by_id": (True, False, True),  # GET /movie/{id}
    "radarr_add_movie": (False, False, False),  # POST /movie; a repeat is rejected as already added
    "radarr_search_movie_lookup": (True, False, True),  # GET /movie/lookup: a TMDb lookup
    "radarr_search_movie": (False, False, False),  # POST /command MoviesSearch: each call queues a new search
    "radarr_get_wanted": (True, False, True),  # GET /wanted/missing
    "radarr_get_calendar": (True, False, True),  # GET /calendar
    "radarr_get_queue": (True, False, True),  # GET /queue
    "radarr_delete_movie": (False, True, False),  # DELETE /movie/{id}, maybe with its files
    "radarr_search_movies": (True, False, True),  # GET /movie/lookup, as search_movie_lookup
    "radarr_lookup_movie": (True, False, True),  # GET /movie/lookup/tmdb
    "radarr_trigger_movie_search": (False, False, False),  # POST /command MoviesSearch, as search_movie
    "radarr_refresh_movie": (False, False, True),  # POST /command RefreshMovie: re-reads TMDb and disk; again, same
    "radarr_get_missing_movies": (True, False, True),  # GET /wanted/missing, every page
    "radarr_get_quality_profiles": (True, False, True),  # GET /qualityprofile
    "radarr_get_root_folders": (True, False, True),  # GET /rootfolder
    # Plex
    "plex_get_libraries": (True, False, True),  # GET /library/sections
    "plex_get_library_items": (True, False, True),  # GET /library/sections/{id}/all
    "plex_get_recently_added": (True, False, True),  # GET /library/recentlyAdded
    "plex_get_on_deck": (True, False, True),  # GET /library/onDeck
    "plex_get_sessions": (True, False, True),  # GET /status/sessions
    "plex_search": (True, False, True),  # GET /search
    "plex_refresh_library": (False, False, True),  # scans a section against disk; a second scan finds the same
    "plex_get_history": (True, False, True),  # GET /status/sessions/history/all
    "plex_get_library": (True, False, True),  # GET /library/sections, the one section asked for
    "plex_scan_library": (False, False, True),  # GET /library/sections/{id}/refresh, as plex_refresh_library
    "plex_refresh_metadata": (False, False, True),  # PUT /library/metadata/{id}/refresh; locked fields are kept
    "plex_search_media": (True, False, True),  # GET /hubs/search
    "plex_get_server_status": (True, False, True),  # GET /
}
"""Decided from each tool's upstream call and the doc, not copied from the servers' annotation constants."""



def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def documented_tools(doc: str) -> dict[str, dict[str, tuple[set[str], set[str]]]]:
    """``{service: {tool: (input names, required input names)}}`` from the doc's per-server tool tables.

    An inputs cell is ``;``-separated groups such as `` `tvdb_id` int **req** `` or
    `` `section`, `keyword`, `value` str, all **req** ``; every name in a group marked **req** is required.
    """
    tables: dict[str, dict[str, tuple[set[str], set[str]]]] = {}
    counts: dict[str, int] = {}
    service: str | None = None
    for line in doc.splitlines():
        if line.startswith("#"):
            service = None
            if heading := SECTION.match(line):
                service = heading.group(1).lower()
                counts[service] = int(heading.group(2))
                tables[service] = {}
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if service is None or len(cells) < 3 or not (tool := NAME.fullmatch(cells[0])):
            continue
        names: set[str] = set()
        required: set[str] = set()
        for group in cells[2].split(";"):
            found = set(NAME.findall(group))
            names |= found
            if "**req**" in group:
                required |= found
        tables[service][tool.group(1)] = (names, required)
    assert {service: len(tools) for service, tools in tables.items()} == counts, "doc parsed badly"
    return tables


def expected_tools(service: str, documented: dict[str, Inputs]) -> dict[str, Inputs]:
    """The doc's tools of ``service`` plus its caller tools, widened by the aliases and add options above."""
    tools = {**documented, **{name: inputs for name, inputs in CALLER_TOOLS.items() if name.startswith(f"{service}_")}}
    expected = {}
    for name, (names, required) in tools.items():
        aliases = ALIASES.get(name, {})
        expected[name] = (names | set(aliases) | ADD_OPTIONS.get(name, set()), required - set(aliases.values()))
    return expected


def served_tools(service: str) -> dict[str, Tool]:
    """The server's tools by name, as ``list_tools`` returns them."""
    tools = asyncio.run(SERVERS[service].build(NO_UPSTREAM).list_tools())
    return {tool.name: tool for tool in tools}


@pytest.mark.parametrize("service", SERVERS)
def test_every_tool_takes_exactly_the_inputs_autoarr_documents_or_sends(service: str) -> None:
    """Each server lists exactly the doc's tools and the tools AutoArr's callers call; each tool's input properties
    are exactly the documented parameters plus AutoArr's aliases and add options, and exactly the ones the doc marks
    **req** (less those with an alias) are required in the input schema."""
    documented = documented_tools(doc_text())
    assert set(documented) == set(SERVERS)
    expected = expected_tools(service, documented[service])
    tools = served_tools(service)
    assert set(tools) == set(expected)
    served = {
        name: (set(tool.input_schema.get("properties", {})), set(tool.input_schema.get("required", [])))
        for name, tool in tools.items()
    }
    assert served == expected


def test_annotations_tell_the_truth_about_every_tool() -> None:
    """Every tool's (readOnly, destructive, idempotent) hints, in wire form, are the ones pinned above; reads are
    read-only and idempotent, deletes destructive and not repeated, and all of them reach an upstream (open world)."""
    assert len(ANNOTATIONS) == 55
    served: dict[str, Triple] = {}
    open_world: dict[str, Any] = {}
    for service in SERVERS:
        for name, tool in served_tools(service).items():
            hints = tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else {}
            served[name] = (hints.get("readOnlyHint"), hints.get("destructiveHint"), hints.get("idempotentHint"))
            open_world[name] = hints.get("openWorldHint")
    assert served == ANNOTATIONS
    assert open_world == dict.fromkeys(ANNOTATIONS, True)


@pytest.mark.parametrize("service", SERVERS)
def test_every_bundled_server_reports_the_package_version(service: str) -> None:
    """serverInfo.version is the installed package's version (the SDK's default is an empty string)."""
    assert SERVERS[service].build(NO_UPSTREAM).version == metadata.version("autoarr-mcp-orchestrator")
