"""The radarr MCP server over stdio against the simulated Radarr: every tool, real processes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from mcp import Client

from media_mcp.common import arr
from media_mcp.common.settings import Settings
from media_mcp.common.upstream import Upstream
from media_mcp.radarr import server
from tests.support.media import Served, arr_json

READ_TOOL = ("radarr_get_movies", {})
"""A cheap read-only call (tests/media/test_media_errors.py calls it with a wrong key)."""
TOOLS = {
    "radarr_get_movies",
    "radarr_get_movie_by_id",
    "radarr_add_movie",
    "radarr_search_movie_lookup",
    "radarr_search_movie",
    "radarr_get_wanted",
    "radarr_get_calendar",
    "radarr_get_queue",
    "radarr_delete_movie",
    "radarr_search_movies",
    "radarr_lookup_movie",
    "radarr_trigger_movie_search",
    "radarr_refresh_movie",
    "radarr_get_missing_movies",
    "radarr_get_quality_profiles",
    "radarr_get_root_folders",
}
ID_TOOLS = [
    ("radarr_get_movie_by_id", "movie_id"),
    ("radarr_search_movie", "movie_id"),
    ("radarr_trigger_movie_search", "movie_id"),
    ("radarr_refresh_movie", "movie_id"),
    ("radarr_lookup_movie", "tmdb_id"),
    ("radarr_delete_movie", "movie_id"),
]
"""Every tool with an id that goes into a URL path, a query or a command."""
BAD_IDS = [0, -1, "1", "1/../../system/status", True, 1.5]


def test_server_lists_exactly_autoarrs_radarr_tools_with_output_schemas(radarr: Served) -> None:
    """The server offers AutoArr's 9 Radarr tools and the 7 its callers add, each with an output schema and
    annotations."""
    radarr.assert_lists_exactly(TOOLS)


def test_movies_list_is_wrapped_as_success_data(radarr: Served) -> None:
    """get_movies returns AutoArr's {success, data} envelope around the library's movies."""
    reply = radarr.ok("radarr_get_movies")
    assert reply["success"] is True
    assert {"Dune: Part Two", "Oppenheimer", "The Batman"} <= {movie["title"] for movie in reply["data"]}


def test_one_movie_comes_with_its_file_state(radarr: Served) -> None:
    """get_movie_by_id returns the movie with hasFile and its size on disk."""
    movie = radarr.ok("radarr_get_movie_by_id", {"movie_id": 1})["data"]
    assert movie["title"] == "Dune: Part Two" and movie["hasFile"] is True and movie["sizeOnDisk"] > 0


def test_an_unknown_movie_is_a_not_found_error(radarr: Served) -> None:
    """A 404 from Radarr becomes an upstream_not_found tool error."""
    radarr.fails("radarr_get_movie_by_id", {"movie_id": 999}, tag="upstream_not_found")


def test_a_looked_up_movie_can_be_added_once(radarr: Served) -> None:
    """Lookup finds a TMDb movie, adding it makes it visible, and adding it again is a bad request."""
    found = radarr.ok("radarr_search_movie_lookup", {"term": "arrival"})["data"]
    assert [movie["tmdbId"] for movie in found] == [329865]
    arguments = {
        "tmdb_id": 329865,
        "quality_profile_id": 1,
        "root_folder_path": "/movies",
        "minimum_availability": "released",
    }
    added = radarr.ok("radarr_add_movie", arguments)["data"]
    assert added["path"] == "/movies/Arrival" and added["hasFile"] is False
    assert "Arrival" in {movie["title"] for movie in radarr.ok("radarr_get_movies")["data"]}
    radarr.fails("radarr_add_movie", arguments, tag="upstream_bad_request")


def test_minimum_availability_must_be_a_radarr_status(radarr: Served) -> None:
    """An unknown minimum_availability is refused before any upstream call."""
    arguments = {"tmdb_id": 1, "quality_profile_id": 1, "root_folder_path": "/m", "minimum_availability": "soon"}
    radarr.fails("radarr_add_movie", arguments, tag="invalid_arguments")


def test_a_movie_search_queues_a_command(radarr: Served) -> None:
    """search_movie posts a MoviesSearch command and returns it queued."""
    command = radarr.ok("radarr_search_movie", {"movie_id": 3})["data"]
    assert command["name"] == "MoviesSearch" and command["status"] == "queued"


def test_wanted_pages_missing_available_movies(radarr: Served) -> None:
    """get_wanted returns monitored, available movies without a file."""
    wanted = radarr.ok("radarr_get_wanted", {"page": 1, "page_size": 5})["data"]
    assert "The Batman" in {movie["title"] for movie in wanted["records"]}
    assert all(movie["isAvailable"] and not movie["hasFile"] for movie in wanted["records"])


def test_calendar_lists_releases_in_the_window(radarr: Served) -> None:
    """get_calendar returns the movies released between start and end."""
    today = datetime.now(UTC).date()
    window = {"start_date": str(today), "end_date": str(today + timedelta(days=7))}
    assert [movie["title"] for movie in radarr.ok("radarr_get_calendar", window)["data"]] == ["Project Hail Mary"]


def test_queue_lists_downloads_of_missing_movies(radarr: Served) -> None:
    """get_queue returns a paging envelope whose records point at movies."""
    queue = radarr.ok("radarr_get_queue")["data"]
    assert queue["totalRecords"] >= 1 and all(record["movieId"] for record in queue["records"])


def test_deleting_a_movie_removes_it(radarr: Served) -> None:
    """delete_movie reports {deleted: true} and the movie is gone afterwards."""
    assert radarr.ok("radarr_delete_movie", {"movie_id": 2, "add_import_exclusion": True})["data"] == {"deleted": True}
    radarr.fails("radarr_get_movie_by_id", {"movie_id": 2}, tag="upstream_not_found")


def test_search_movies_looks_up_by_autoarrs_query(radarr: Served) -> None:
    """search_movies, called by the movies router with ``query``, returns Radarr's lookup results."""
    found = radarr.ok("radarr_search_movies", {"query": "blade"})["data"]
    assert [movie["tmdbId"] for movie in found] == [335984]
    assert found == arr_json(radarr, "/movie/lookup", term="blade")


def test_a_lookup_needs_one_term(radarr: Served) -> None:
    """search_movies with neither term nor query is refused before any upstream call, naming both."""
    text = radarr.fails("radarr_search_movies", {}, tag="invalid_arguments")
    assert "term" in text and "query" in text


def test_lookup_movie_finds_one_movie_by_tmdb_id(radarr: Served) -> None:
    """lookup_movie returns TMDb's movie (id 0 outside the library, the library's id inside it)."""
    outside = radarr.ok("radarr_lookup_movie", {"tmdb_id": 157336})["data"]
    assert outside["title"] == "Interstellar" and outside["id"] == 0
    assert outside == arr_json(radarr, "/movie/lookup/tmdb", tmdbId=157336)
    assert radarr.ok("radarr_lookup_movie", {"tmdb_id": 693134})["data"]["id"] == 1


def test_lookup_of_a_tmdb_id_tmdb_lacks_is_not_found(radarr: Served) -> None:
    """A TMDb id with no movie is Radarr's 404, an upstream_not_found error."""
    radarr.fails("radarr_lookup_movie", {"tmdb_id": 1}, tag="upstream_not_found")


def test_trigger_movie_search_and_refresh_queue_their_commands(radarr: Served) -> None:
    """trigger_movie_search posts MoviesSearch and refresh_movie posts RefreshMovie; Radarr lists both."""
    search = radarr.ok("radarr_trigger_movie_search", {"movie_id": 3})["data"]
    refresh = radarr.ok("radarr_refresh_movie", {"movie_id": 1})["data"]
    assert (search["name"], refresh["name"]) == ("MoviesSearch", "RefreshMovie")
    posted = {queued["id"]: queued["name"] for queued in arr_json(radarr, "/command")}
    assert posted[search["id"]] == "MoviesSearch" and posted[refresh["id"]] == "RefreshMovie"


def test_missing_movies_is_the_plain_list_of_every_wanted_record(radarr: Served) -> None:
    """get_missing_movies returns a list (what the movies router reads) of all of Radarr's wanted records."""
    missing = radarr.ok("radarr_get_missing_movies")["data"]
    assert "The Batman" in {movie["title"] for movie in missing}
    assert missing == arr_json(radarr, "/wanted/missing", pageSize=1000)["records"]


def test_wanted_accepts_autoarrs_page_size_name(radarr: Served) -> None:
    """get_wanted with monitoring's ``pageSize`` pages like page_size."""
    wanted = radarr.ok("radarr_get_wanted", {"page": 1, "pageSize": 1})["data"]
    assert wanted["pageSize"] == 1 and len(wanted["records"]) == 1 and wanted["totalRecords"] >= 1


def test_quality_profiles_and_root_folders_are_radarrs_own(radarr: Served) -> None:
    """get_quality_profiles and get_root_folders return what Radarr answers at /qualityprofile and /rootfolder."""
    profiles = radarr.ok("radarr_get_quality_profiles")["data"]
    assert profiles == arr_json(radarr, "/qualityprofile") and {"Any", "HD-1080p"} <= {p["name"] for p in profiles}
    folders = radarr.ok("radarr_get_root_folders")["data"]
    assert folders == arr_json(radarr, "/rootfolder") and [folder["path"] for folder in folders] == ["/movies"]


def test_a_movie_added_with_a_search_carries_the_add_option(radarr: Served) -> None:
    """add_movie passes content integration's search_for_movie to Radarr as addOptions."""
    arguments = {"tmdb_id": 157336, "quality_profile_id": 1, "root_folder_path": "/movies", "search_for_movie": True}
    assert radarr.ok("radarr_add_movie", arguments)["data"]["addOptions"] == {"searchForMovie": True}


@pytest.mark.parametrize(("tool", "field"), ID_TOOLS)
def test_ids_must_be_positive_integers(radarr: Served, tool: str, field: str) -> None:
    """Zero, negatives, strings (a path included), booleans and fractions are refused naming the field."""
    for bad in BAD_IDS:
        assert field in radarr.fails(tool, {field: bad}, tag="invalid_arguments"), bad


def test_missing_movies_follows_every_page_of_wanted(radarr: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """With one record a page, get_missing_movies asks Radarr for each page in turn and still returns them all
    (the server runs in-process here, so the page size can be made small)."""
    monkeypatch.setattr(arr, "RECORDS_PAGE", 1)
    expected = arr_json(radarr, "/wanted/missing", pageSize=1000)["records"]
    assert len(expected) >= 2

    def pages_asked() -> int:
        return httpx.get(f"{radarr.sim.url}/__sim__/stats", timeout=10).json()["requests"]["/api/v3/wanted/missing"]

    async def missing_movies() -> Any:
        settings = Settings(service="radarr", url=radarr.sim.url, secret=radarr.secret, timeout=10)
        async with Upstream(settings, arr.auth(radarr.secret)) as upstream, Client(server.build(upstream)) as client:
            result = await client.call_tool("radarr_get_missing_movies", {})
        assert not result.is_error and result.structured_content
        return result.structured_content["data"]

    before = pages_asked()
    assert asyncio.run(missing_movies()) == expected
    assert pages_asked() - before == len(expected)
