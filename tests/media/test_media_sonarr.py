"""The sonarr MCP server over stdio against the simulated Sonarr: every tool, real processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.media import Served, arr_json

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
    "sonarr_trigger_series_search",
    "sonarr_trigger_episode_search",
    "sonarr_lookup_series",
    "sonarr_get_quality_profiles",
    "sonarr_get_root_folders",
}
ID_TOOLS = [
    ("sonarr_get_series_by_id", "series_id"),
    ("sonarr_get_episodes", "series_id"),
    ("sonarr_search_episode", "episode_id"),
    ("sonarr_trigger_episode_search", "episode_id"),
    ("sonarr_trigger_series_search", "series_id"),
    ("sonarr_delete_series", "series_id"),
]
"""Every tool with an id that goes into a URL path or a command."""
BAD_IDS = [0, -1, "1", "1/../../system/status", True, 1.5]


def titles(sonarr: Served) -> set[str]:
    return {series["title"] for series in sonarr.ok("sonarr_get_series")["data"]}


def test_server_lists_exactly_autoarrs_sonarr_tools_with_output_schemas(sonarr: Served) -> None:
    """The server offers AutoArr's 10 Sonarr tools and the 5 its callers add, each with an output schema and
    annotations."""
    sonarr.assert_lists_exactly(TOOLS)


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


def test_a_series_search_queues_a_series_search_command(sonarr: Served) -> None:
    """trigger_series_search posts a SeriesSearch command, which Sonarr then lists among its commands."""
    command = sonarr.ok("sonarr_trigger_series_search", {"series_id": 1})["data"]
    assert command["name"] == "SeriesSearch" and command["status"] == "queued"
    posted = {queued["id"]: queued["name"] for queued in arr_json(sonarr, "/command")}
    assert posted[command["id"]] == "SeriesSearch"


def test_trigger_episode_search_queues_an_episode_search_command(sonarr: Served) -> None:
    """trigger_episode_search, AutoArr's router name for search_episode, posts an EpisodeSearch command."""
    command = sonarr.ok("sonarr_trigger_episode_search", {"episode_id": 2})["data"]
    assert command["name"] == "EpisodeSearch" and command["status"] == "queued"


def test_lookup_series_finds_a_series_by_tvdb_id(sonarr: Served) -> None:
    """lookup_series with content integration's ``tvdb:<id>`` term returns that series from the lookup."""
    found = sonarr.ok("sonarr_lookup_series", {"term": "tvdb:393189"})["data"]
    assert [series["title"] for series in found] == ["Andor"]
    assert found == arr_json(sonarr, "/series/lookup", term="tvdb:393189")


def test_series_search_accepts_autoarrs_query_name_for_term(sonarr: Served) -> None:
    """search_series takes the router's ``query`` as well as ``term``, with the same result."""
    by_query = sonarr.ok("sonarr_search_series", {"query": "expanse"})["data"]
    assert [series["tvdbId"] for series in by_query] == [280619]
    assert by_query == sonarr.ok("sonarr_search_series", {"term": "expanse", "query": "expanse"})["data"]


def test_a_lookup_needs_one_term_and_refuses_two_different_ones(sonarr: Served) -> None:
    """Neither term nor query, or two different values, is refused before any upstream call, naming both."""
    missing = sonarr.fails("sonarr_search_series", {}, tag="invalid_arguments")
    assert "term" in missing and "query" in missing
    clash = sonarr.fails("sonarr_lookup_series", {"term": "andor", "query": "bear"}, tag="invalid_arguments")
    assert "term" in clash and "query" in clash


def test_quality_profiles_and_root_folders_are_sonarrs_own(sonarr: Served) -> None:
    """get_quality_profiles and get_root_folders return what Sonarr answers at /qualityprofile and /rootfolder."""
    profiles = sonarr.ok("sonarr_get_quality_profiles")["data"]
    assert profiles == arr_json(sonarr, "/qualityprofile") and {"Any", "HD-1080p"} <= {p["name"] for p in profiles}
    folders = sonarr.ok("sonarr_get_root_folders")["data"]
    assert folders == arr_json(sonarr, "/rootfolder") and [folder["path"] for folder in folders] == ["/tv"]


def test_wanted_accepts_autoarrs_page_size_name(sonarr: Served) -> None:
    """get_wanted with monitoring's ``pageSize`` pages like page_size, and its records are Sonarr's."""
    wanted = sonarr.ok("sonarr_get_wanted", {"page": 1, "pageSize": 3})["data"]
    assert wanted["pageSize"] == 3 and len(wanted["records"]) == 3
    assert wanted == arr_json(sonarr, "/wanted/missing", page=1, pageSize=3)


def test_a_series_added_with_a_search_carries_the_add_option(sonarr: Served) -> None:
    """add_series passes content integration's search_for_missing_episodes to Sonarr as addOptions."""
    arguments = {"tvdb_id": 403245, "quality_profile_id": 4, "root_folder_path": "/tv"}
    arguments["search_for_missing_episodes"] = True
    added = sonarr.ok("sonarr_add_series", arguments)["data"]
    assert added["addOptions"] == {"searchForMissingEpisodes": True} and added["qualityProfileId"] == 4


def test_an_unknown_quality_profile_is_refused_by_sonarr(sonarr: Served) -> None:
    """Adding with a quality profile Sonarr does not have is Sonarr's bad request, naming the property."""
    arguments = {"tvdb_id": 393189, "quality_profile_id": 99, "root_folder_path": "/tv"}
    assert "QualityProfileId" in sonarr.fails("sonarr_add_series", arguments, tag="upstream_bad_request")


@pytest.mark.parametrize(("tool", "field"), ID_TOOLS)
def test_ids_must_be_positive_integers(sonarr: Served, tool: str, field: str) -> None:
    """Zero, negatives, strings (a path included), booleans and fractions are refused naming the field."""
    for bad in BAD_IDS:
        assert field in sonarr.fails(tool, {field: bad}, tag="invalid_arguments"), bad
