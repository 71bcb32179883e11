"""The sonarr MCP server over stdio against the simulated Sonarr: every tool, real processes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.media import Served

READ_TOOL = ("sonarr_get_series", {})
"""A cheap read-only call (tests/media/test_media_errors.py calls it with a wrong key)."""
TOOLS = {
    "sonarr_get_series",
    "sonarr_get_series_by_id",
    "sonarr_add_series",
    "sonarr_search_series",
    "sonarr_get_episodes",
    "sonarr_search_episode",
    "sonarr_get_wanted",
    "sonarr_get_calendar",
    "sonarr_get_queue",
    "sonarr_delete_series",
}


@pytest.fixture(scope="module")
def sonarr() -> Iterator[Served]:
    served = Served("sonarr")
    yield served
    served.close()


def titles(sonarr: Served) -> set[str]:
    return {series["title"] for series in sonarr.ok("sonarr_get_series")["data"]}


def test_server_lists_exactly_autoarrs_sonarr_tools_with_output_schemas(sonarr: Served) -> None:
    """The server offers AutoArr's 10 Sonarr tools, each with an output schema and annotations."""
    tools = sonarr.client.list_tools()
    assert {tool.name for tool in tools} == TOOLS
    assert all(tool.output_schema and tool.annotations for tool in tools)


def test_series_list_is_wrapped_as_success_data(sonarr: Served) -> None:
    """get_series returns AutoArr's {success, data} envelope around the library's series."""
    reply = sonarr.ok("sonarr_get_series", {"limit": 10, "page": 1})
    assert reply["success"] is True
    assert {"Breaking Bad", "Severance", "The Expanse"} <= {series["title"] for series in reply["data"]}


def test_one_series_comes_with_seasons_and_statistics(sonarr: Served) -> None:
    """get_series_by_id returns the series with per-season statistics."""
    series = sonarr.ok("sonarr_get_series_by_id", {"series_id": 2})["data"]
    assert series["title"] == "Severance"
    assert [season["seasonNumber"] for season in series["seasons"]] == [1, 2]
    assert series["seasons"][0]["statistics"]["episodeFileCount"] == 9


def test_an_unknown_series_is_a_not_found_error(sonarr: Served) -> None:
    """A 404 from Sonarr becomes an upstream_not_found tool error."""
    sonarr.fails("sonarr_get_series_by_id", {"series_id": 999}, tag="upstream_not_found")


def test_a_looked_up_series_can_be_added_once(sonarr: Served) -> None:
    """Lookup finds a TVDB series, adding it makes it visible, and adding it again is a bad request."""
    found = sonarr.ok("sonarr_search_series", {"term": "shogun"})["data"]
    assert [series["tvdbId"] for series in found] == [392573]
    arguments = {"tvdb_id": 392573, "quality_profile_id": 1, "root_folder_path": "/tv", "season_folder": False}
    added = sonarr.ok("sonarr_add_series", arguments)["data"]
    assert added["path"] == "/tv/Shogun" and added["seasonFolder"] is False
    assert "Shogun" in titles(sonarr)
    sonarr.fails("sonarr_add_series", arguments, tag="upstream_bad_request")


def test_episodes_can_be_narrowed_to_one_season(sonarr: Served) -> None:
    """get_episodes with season_number returns only that season's episodes."""
    episodes = sonarr.ok("sonarr_get_episodes", {"series_id": 2, "season_number": 2})["data"]
    assert len(episodes) == 10 and {episode["seasonNumber"] for episode in episodes} == {2}


def test_an_episode_search_queues_a_command(sonarr: Served) -> None:
    """search_episode posts an EpisodeSearch command and returns it queued."""
    command = sonarr.ok("sonarr_search_episode", {"episode_id": 1})["data"]
    assert command["name"] == "EpisodeSearch" and command["status"] == "queued"


def test_wanted_pages_missing_episodes_with_their_series(sonarr: Served) -> None:
    """get_wanted returns a paging envelope of aired episodes without files, series embedded if asked."""
    wanted = sonarr.ok("sonarr_get_wanted", {"page": 1, "page_size": 2, "include_series": True})["data"]
    assert wanted["pageSize"] == 2 and wanted["totalRecords"] >= 2 and len(wanted["records"]) == 2
    assert all(not record["hasFile"] and record["series"]["title"] for record in wanted["records"])


def test_calendar_lists_episodes_airing_in_the_window(sonarr: Served) -> None:
    """get_calendar returns the episodes whose air date falls between start and end."""
    today = datetime.now(UTC).date()
    window = {"start_date": str(today), "end_date": str(today + timedelta(days=14))}
    episodes = sonarr.ok("sonarr_get_calendar", window)["data"]
    assert episodes and all(str(today) <= episode["airDate"] <= window["end_date"] for episode in episodes)


def test_calendar_dates_must_be_iso_days(sonarr: Served) -> None:
    """A date not in YYYY-MM-DD form is refused before any upstream call."""
    sonarr.fails("sonarr_get_calendar", {"start_date": "next week"}, tag="invalid_arguments")


def test_queue_lists_downloads_of_missing_episodes(sonarr: Served) -> None:
    """get_queue returns a paging envelope whose records point at episodes."""
    queue = sonarr.ok("sonarr_get_queue", {"page": 1, "page_size": 10})["data"]
    assert queue["totalRecords"] >= 1
    assert all(record["episodeId"] and record["sizeleft"] <= record["size"] for record in queue["records"])


def test_deleting_a_series_removes_it(sonarr: Served) -> None:
    """delete_series reports {deleted: true} and the series is gone afterwards."""
    reply = sonarr.ok("sonarr_delete_series", {"series_id": 3, "delete_files": True, "add_import_exclusion": False})
    assert reply["data"] == {"deleted": True}
    sonarr.fails("sonarr_get_series_by_id", {"series_id": 3}, tag="upstream_not_found")
