"""The radarr MCP server over stdio against the simulated Radarr: every tool, real processes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.media import Served

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
}


@pytest.fixture(scope="module")
def radarr() -> Iterator[Served]:
    served = Served("radarr")
    yield served
    served.close()


def test_server_lists_exactly_autoarrs_radarr_tools_with_output_schemas(radarr: Served) -> None:
    """The server offers AutoArr's 9 Radarr tools, each with an output schema and annotations."""
    tools = radarr.client.list_tools()
    assert {tool.name for tool in tools} == TOOLS
    assert all(tool.output_schema and tool.annotations for tool in tools)


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
