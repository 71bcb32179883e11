"""Every tool of the four bundled media servers, called through the orchestrator.

Path of each call: ``Orchestrator.call_tool`` -> Redis -> a real Celery worker (threads pool)
-> its held stdio MCP session (``python -m media_mcp.<svc>``) -> the simulator.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.client import Orchestrator
from orchestrator.config import DEFAULTS_FILE, load_settings
from orchestrator.errors import InvalidCall, ToolReturnedError
from orchestrator.results import ToolResult, answered_result
from orchestrator.wire import CALL_TOOL
from tests.support.media import CANARY, autoarr_tools
from tests.support.media_stack import MEDIA_SERVICES, MediaStack, leaked, running_media_stack
from tests.support.redis_proc import RedisServer

pytestmark = pytest.mark.slow

BROKER_DB = 7
"""A Redis database of the session's server kept for this module (flushed when the stack starts)."""
TOOLS = {service: set(autoarr_tools(service)) for service in MEDIA_SERVICES}
COVERED: dict[str, set[str]] = {service: set() for service in MEDIA_SERVICES}
"""Which tools the tests below call through the queue, filled in by ``covers`` at import time."""


def covers(*tools: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Record that the decorated test calls ``tools`` (their server is the name's prefix)."""

    def mark(test: Callable[..., None]) -> Callable[..., None]:
        for tool in tools:
            COVERED[tool.split("_", 1)[0]].add(tool)
        return test

    return mark


@pytest.fixture(scope="module")
def media_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaStack]:
    """Four simulators with canary keys, the default four servers, one threads-pool worker on their queues."""
    root = tmp_path_factory.mktemp("media-stack")
    with running_media_stack(f"{redis_server.url}/{BROKER_DB}", root) as stack:
        yield stack


@pytest.fixture(scope="module")
def client(media_stack: MediaStack) -> Orchestrator:
    return media_stack.client()


@pytest.fixture
def no_faults(media_stack: MediaStack) -> Iterator[MediaStack]:
    """Every simulator without faults before and after the test."""
    for sim in media_stack.sims.values():
        sim.faults = {}
    yield media_stack
    for sim in media_stack.sims.values():
        sim.faults = {}


def call(client: Orchestrator, server: str, tool: str, params: dict[str, Any] | None = None) -> Any:
    """A call that must succeed through the queue and carry no key; returns its data."""
    result = client.call_tool(server, tool, params or {})
    assert isinstance(result, ToolResult)
    assert result.ok and not result.is_error, result.error_text
    assert result.tool == tool and result.worker == "media@test" and result.task_id
    assert not leaked(result.model_dump_json())
    return result.data


def fails(client: Orchestrator, server: str, tool: str, params: dict[str, Any] | None = None, *,
          tag: str) -> ToolReturnedError:
    """A call that must come back as ``ToolReturnedError`` tagged ``[tag]``, with no key anywhere in it."""
    with pytest.raises(ToolReturnedError) as caught:
        client.call_tool(server, tool, params or {})
    error = caught.value
    assert str(error).startswith(f"[{tag}] "), str(error)
    assert error.tool == tool and error.result["is_error"] is True
    assert not leaked(str(error)) and not leaked(json.dumps(error.details))
    return error


# --- listing --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("server", "count"), [("sabnzbd", 11), ("sonarr", 15), ("radarr", 16), ("plex", 13)])
def test_each_server_lists_autoarrs_tools_with_annotations_through_the_queue(
        client: Orchestrator, server: str, count: int) -> None:
    """list_tools through the worker gives each server's AutoArr tools, each with annotations and schemas."""
    tools = client.list_tools(server)
    assert len(tools) == count
    assert {tool["name"] for tool in tools} == TOOLS[server]
    for tool in tools:
        assert tool["annotations"] and "readOnlyHint" in tool["annotations"], tool["name"]
        assert tool["inputSchema"]["type"] == "object" and tool["outputSchema"], tool["name"]
    assert not leaked(json.dumps(tools))


def test_read_and_write_tools_are_annotated_as_such(client: Orchestrator) -> None:
    """A listing tool is marked read-only and a delete tool destructive, as the client sees them."""
    tools = {tool["name"]: tool["annotations"] for tool in client.list_tools("tv")}
    assert tools["sonarr_get_series"]["readOnlyHint"] is True
    assert tools["sonarr_delete_series"].get("destructiveHint") is True
    assert tools["sonarr_delete_series"].get("readOnlyHint") is not True


@pytest.mark.parametrize("server", MEDIA_SERVICES)
def test_the_tests_here_call_every_listed_tool(client: Orchestrator, server: str) -> None:
    """The tests of this module together call every tool each server lists (none is left out)."""
    assert {tool["name"] for tool in client.list_tools(server)} == COVERED[server]


@pytest.mark.parametrize(("alias", "server", "tool"), [
    ("sab", "sabnzbd", "sabnzbd_get_status"),
    ("NZB", "sabnzbd", "sabnzbd_get_status"),
    ("tv", "sonarr", "sonarr_get_series"),
    ("series", "sonarr", "sonarr_get_series"),
    ("movies", "radarr", "radarr_get_movies"),
    ("films", "radarr", "radarr_get_movies"),
    ("library", "plex", "plex_get_libraries"),
])
def test_aliases_reach_the_canonical_media_server(client: Orchestrator, alias: str, server: str, tool: str) -> None:
    """A call addressed to an alias (any case) is answered by the server the alias names."""
    result = client.call_tool(alias, tool)
    assert result.ok and result.server == server


# --- SABnzbd --------------------------------------------------------------------------------------------------


def sab_slots(client: Orchestrator) -> dict[str, dict[str, Any]]:
    return {slot["nzo_id"]: slot for slot in call(client, "sabnzbd", "sabnzbd_get_queue")["queue"]["slots"]}


@covers("sabnzbd_get_queue")
def test_sabnzbd_queue_lists_the_simulators_jobs_by_nzo_id(media_stack: MediaStack, client: Orchestrator) -> None:
    """get_queue through the queue shows the jobs the simulator holds, by nzo_id and filename."""
    state = media_stack.sims["sabnzbd"].state
    with state.lock:
        before = {job.nzo_id: job.filename for job in state.jobs}
    slots = sab_slots(client)
    assert slots and set(slots) <= set(before)
    assert all(slot["filename"] == before[nzo_id] for nzo_id, slot in slots.items())
    window = call(client, "sab", "sabnzbd_get_queue", {"start": 1, "limit": 1})["queue"]["slots"]
    assert [slot["index"] for slot in window] == [1]


@covers("sabnzbd_get_history", "sabnzbd_retry_download")
def test_sabnzbd_failed_job_is_retried_into_the_queue_under_a_new_id(client: Orchestrator) -> None:
    """A Failed history entry, retried through the queue, reappears in the download queue with a new nzo_id."""
    failed = call(client, "sabnzbd", "sabnzbd_get_history", {"failed_only": True})["history"]["slots"]
    assert failed and {slot["status"] for slot in failed} == {"Failed"}
    reply = call(client, "sabnzbd", "sabnzbd_retry_download", {"nzo_id": failed[0]["nzo_id"]})
    assert reply["status"] is True and reply["nzo_id"] != failed[0]["nzo_id"]
    assert sab_slots(client)[reply["nzo_id"]]["filename"] == failed[0]["name"]
    remaining = call(client, "sabnzbd", "sabnzbd_get_history", {"failed_only": True})["history"]["slots"]
    assert failed[0]["nzo_id"] not in {slot["nzo_id"] for slot in remaining}


@covers("sabnzbd_pause_queue", "sabnzbd_resume_queue")
def test_sabnzbd_pausing_the_queue_pauses_the_simulator_until_resumed(
        media_stack: MediaStack, client: Orchestrator) -> None:
    """pause_queue sets the simulator paused and the queue shows Paused; resume_queue clears it."""
    state = media_stack.sims["sabnzbd"].state
    try:
        assert call(client, "sabnzbd", "sabnzbd_pause_queue") == {"status": True}
        assert state.paused_all is True
        assert call(client, "sabnzbd", "sabnzbd_get_queue")["queue"]["status"] == "Paused"
    finally:
        assert call(client, "sabnzbd", "sabnzbd_resume_queue") == {"status": True}
    assert state.paused_all is False
    assert call(client, "sabnzbd", "sabnzbd_get_queue")["queue"]["paused"] is False


@covers("sabnzbd_pause_download", "sabnzbd_resume_download")
def test_sabnzbd_pausing_one_job_pauses_only_that_job(media_stack: MediaStack, client: Orchestrator) -> None:
    """pause_download marks one job paused in the simulator; resume_download starts it again."""
    state = media_stack.sims["sabnzbd"].state
    nzo_id = next(iter(sab_slots(client)))
    reply = call(client, "sabnzbd", "sabnzbd_pause_download", {"nzo_id": nzo_id})
    assert reply == {"status": True, "nzo_ids": [nzo_id]}
    with state.lock:
        assert [job.paused for job in state.jobs if job.nzo_id == nzo_id] == [True]
    assert sab_slots(client)[nzo_id]["status"] == "Paused"
    assert call(client, "sabnzbd", "sabnzbd_resume_download", {"nzo_id": nzo_id})["nzo_ids"] == [nzo_id]
    assert sab_slots(client)[nzo_id]["status"] == "Downloading"


@covers("sabnzbd_delete_download")
def test_sabnzbd_deleting_a_job_removes_it_from_the_simulator(media_stack: MediaStack, client: Orchestrator) -> None:
    """delete_download removes the job from the simulator's queue; a second delete is not found."""
    nzo_id = list(sab_slots(client))[-1]
    reply = call(client, "sabnzbd", "sabnzbd_delete_download", {"nzo_id": nzo_id, "delete_files": True})
    assert reply["nzo_ids"] == [nzo_id]
    state = media_stack.sims["sabnzbd"].state
    with state.lock:
        assert nzo_id not in {job.nzo_id for job in state.jobs}
    fails(client, "sabnzbd", "sabnzbd_delete_download", {"nzo_id": nzo_id}, tag="upstream_not_found")


@covers("sabnzbd_get_status")
def test_sabnzbd_status_arrives_with_its_api_key_masked(client: Orchestrator) -> None:
    """fullstatus, which echoes the API key upstream, arrives through the queue with the key masked."""
    status = call(client, "sabnzbd", "sabnzbd_get_status")["status"]
    assert status["version"] == "5.0.1" and status["apikey"] == "***"


@covers("sabnzbd_get_config", "sabnzbd_set_config")
def test_sabnzbd_config_is_masked_and_a_set_value_is_stored(media_stack: MediaStack, client: Orchestrator) -> None:
    """get_config masks keys and passwords; set_config stores a typed value the simulator then holds."""
    config = call(client, "sabnzbd", "sabnzbd_get_config")["config"]
    assert config["misc"]["api_key"] == "***" and config["servers"][0]["password"] == "***"
    reply = call(client, "sabnzbd", "sabnzbd_set_config", {"section": "misc", "keyword": "refresh_rate",
                                                           "value": "3"})
    assert reply == {"config": {"misc": {"refresh_rate": 3}}}
    assert media_stack.sims["sabnzbd"].state.config["misc"]["refresh_rate"] == 3
    assert call(client, "sabnzbd", "sabnzbd_get_config", {"section": "misc"})["config"]["misc"]["refresh_rate"] == 3


# --- Sonarr ---------------------------------------------------------------------------------------------------


def library_titles(media_stack: MediaStack, service: str) -> set[str]:
    library = media_stack.sims[service].state.library
    with library.lock:
        return {item["title"] for item in library.items.values()}


@covers("sonarr_get_series", "sonarr_get_series_by_id")
def test_sonarr_series_are_the_simulators_library(media_stack: MediaStack, client: Orchestrator) -> None:
    """get_series lists exactly the simulator's series titles; get_series_by_id returns one with seasons."""
    reply = call(client, "sonarr", "sonarr_get_series")
    assert reply["success"] is True
    assert {series["title"] for series in reply["data"]} == library_titles(media_stack, "sonarr")
    assert {"Breaking Bad", "Severance"} <= library_titles(media_stack, "sonarr")
    series = call(client, "tv", "sonarr_get_series_by_id", {"series_id": 2})["data"]
    assert series["title"] == "Severance" and [s["seasonNumber"] for s in series["seasons"]] == [1, 2]


@covers("sonarr_search_series", "sonarr_add_series", "sonarr_delete_series")
def test_sonarr_a_looked_up_series_is_added_listed_and_deleted(media_stack: MediaStack, client: Orchestrator) -> None:
    """Lookup finds Shogun, adding it puts it in the simulator's library, deleting it removes it again."""
    found = call(client, "sonarr", "sonarr_search_series", {"term": "shogun"})["data"]
    assert [series["tvdbId"] for series in found] == [392573]
    added = call(client, "sonarr", "sonarr_add_series", {"tvdb_id": 392573, "quality_profile_id": 1,
                                                         "root_folder_path": "/tv", "season_folder": False})["data"]
    assert added["title"] == "Shogun" and added["path"] == "/tv/Shogun"
    assert "Shogun" in {s["title"] for s in call(client, "sonarr", "sonarr_get_series")["data"]}
    reply = call(client, "sonarr", "sonarr_delete_series", {"series_id": added["id"], "delete_files": True,
                                                            "add_import_exclusion": False})
    assert reply["data"] == {"deleted": True}
    assert "Shogun" not in library_titles(media_stack, "sonarr")
    fails(client, "sonarr", "sonarr_get_series_by_id", {"series_id": added["id"]}, tag="upstream_not_found")


@covers("sonarr_get_episodes", "sonarr_search_episode")
def test_sonarr_episodes_of_one_season_and_an_episode_search(client: Orchestrator) -> None:
    """get_episodes narrows to one season; search_episode queues an EpisodeSearch command for an episode."""
    episodes = call(client, "sonarr", "sonarr_get_episodes", {"series_id": 2, "season_number": 2})["data"]
    assert len(episodes) == 10 and {episode["seasonNumber"] for episode in episodes} == {2}
    command = call(client, "sonarr", "sonarr_search_episode", {"episode_id": episodes[0]["id"]})["data"]
    assert command["name"] == "EpisodeSearch" and command["status"] == "queued"


@covers("sonarr_get_wanted", "sonarr_get_calendar", "sonarr_get_queue")
def test_sonarr_wanted_calendar_and_queue_describe_missing_episodes(client: Orchestrator) -> None:
    """Wanted pages missing episodes with their series; the calendar stays in its window; the queue has sizes."""
    wanted = call(client, "sonarr", "sonarr_get_wanted", {"page": 1, "page_size": 2, "include_series": True})["data"]
    assert wanted["pageSize"] == 2 and len(wanted["records"]) == 2
    assert all(not record["hasFile"] and record["series"]["title"] for record in wanted["records"])
    today = datetime.now(UTC).date()
    window = {"start_date": str(today), "end_date": str(today + timedelta(days=14))}
    episodes = call(client, "sonarr", "sonarr_get_calendar", window)["data"]
    assert episodes and all(window["start_date"] <= e["airDate"] <= window["end_date"] for e in episodes)
    queue = call(client, "sonarr", "sonarr_get_queue", {"page": 1, "page_size": 10})["data"]
    assert queue["totalRecords"] >= 1
    assert all(record["episodeId"] and record["sizeleft"] <= record["size"] for record in queue["records"])


@covers("sonarr_lookup_series", "sonarr_trigger_series_search", "sonarr_trigger_episode_search",
        "sonarr_get_quality_profiles", "sonarr_get_root_folders")
def test_sonarr_tools_autoarrs_callers_use_take_their_names(client: Orchestrator) -> None:
    """The tools and parameter names AutoArr's shows router, content integration and monitoring send work through
    the queue: query for term, pageSize for page_size, tvdb:<id> lookups, series and episode searches, settings."""
    assert [s["tvdbId"] for s in call(client, "sonarr", "sonarr_search_series", {"query": "shogun"})["data"]] \
        == [392573]
    assert [s["title"] for s in call(client, "sonarr", "sonarr_lookup_series", {"term": "tvdb:81189"})["data"]] \
        == ["Breaking Bad"]
    assert len(call(client, "sonarr", "sonarr_get_wanted", {"page": 1, "pageSize": 50})["data"]["records"]) > 2
    series_search = call(client, "sonarr", "sonarr_trigger_series_search", {"series_id": 1})["data"]
    episode_search = call(client, "sonarr", "sonarr_trigger_episode_search", {"episode_id": 1})["data"]
    assert (series_search["name"], episode_search["name"]) == ("SeriesSearch", "EpisodeSearch")
    assert 1 in {profile["id"] for profile in call(client, "sonarr", "sonarr_get_quality_profiles")["data"]}
    assert [folder["path"] for folder in call(client, "sonarr", "sonarr_get_root_folders")["data"]] == ["/tv"]


# --- Radarr ---------------------------------------------------------------------------------------------------


@covers("radarr_get_movies", "radarr_get_movie_by_id")
def test_radarr_movies_are_the_simulators_library(media_stack: MediaStack, client: Orchestrator) -> None:
    """get_movies lists exactly the simulator's movie titles; get_movie_by_id returns one with its file state."""
    reply = call(client, "radarr", "radarr_get_movies")
    assert reply["success"] is True
    assert {movie["title"] for movie in reply["data"]} == library_titles(media_stack, "radarr")
    movie = call(client, "movies", "radarr_get_movie_by_id", {"movie_id": 1})["data"]
    assert movie["title"] == "Dune: Part Two" and movie["hasFile"] is True and movie["sizeOnDisk"] > 0


@covers("radarr_search_movie_lookup", "radarr_add_movie", "radarr_delete_movie")
def test_radarr_a_looked_up_movie_is_added_listed_and_deleted(media_stack: MediaStack, client: Orchestrator) -> None:
    """Lookup finds Arrival, adding it puts it in the simulator's library, deleting it removes it again."""
    found = call(client, "radarr", "radarr_search_movie_lookup", {"term": "arrival"})["data"]
    assert [movie["tmdbId"] for movie in found] == [329865]
    added = call(client, "radarr", "radarr_add_movie", {"tmdb_id": 329865, "quality_profile_id": 1,
                                                        "root_folder_path": "/movies",
                                                        "minimum_availability": "released"})["data"]
    assert added["title"] == "Arrival" and added["hasFile"] is False
    assert "Arrival" in {movie["title"] for movie in call(client, "radarr", "radarr_get_movies")["data"]}
    reply = call(client, "radarr", "radarr_delete_movie", {"movie_id": added["id"], "add_import_exclusion": False})
    assert reply["data"] == {"deleted": True}
    assert "Arrival" not in library_titles(media_stack, "radarr")


@covers("radarr_search_movie", "radarr_get_wanted", "radarr_get_calendar", "radarr_get_queue")
def test_radarr_search_wanted_calendar_and_queue(client: Orchestrator) -> None:
    """A movie search queues a command; wanted, calendar and queue describe the simulator's missing movies."""
    command = call(client, "radarr", "radarr_search_movie", {"movie_id": 3})["data"]
    assert command["name"] == "MoviesSearch" and command["status"] == "queued"
    wanted = call(client, "radarr", "radarr_get_wanted", {"page": 1, "page_size": 5})["data"]
    assert "The Batman" in {movie["title"] for movie in wanted["records"]}
    assert all(movie["isAvailable"] and not movie["hasFile"] for movie in wanted["records"])
    today = datetime.now(UTC).date()
    window = {"start_date": str(today), "end_date": str(today + timedelta(days=7))}
    assert [movie["title"] for movie in call(client, "radarr", "radarr_get_calendar", window)["data"]] \
        == ["Project Hail Mary"]
    queue = call(client, "radarr", "radarr_get_queue")["data"]
    assert queue["totalRecords"] >= 1 and all(record["movieId"] for record in queue["records"])


@covers("radarr_search_movies", "radarr_lookup_movie", "radarr_trigger_movie_search", "radarr_refresh_movie",
        "radarr_get_missing_movies", "radarr_get_quality_profiles", "radarr_get_root_folders")
def test_radarr_tools_autoarrs_callers_use_take_their_names(client: Orchestrator) -> None:
    """The tools and parameter names AutoArr's movies router, content integration and monitoring send work through
    the queue: search by query, lookup by TMDb id, search and refresh commands, the missing list, settings."""
    assert [m["tmdbId"] for m in call(client, "radarr", "radarr_search_movies", {"query": "blade"})["data"]] == [335984]
    assert call(client, "radarr", "radarr_lookup_movie", {"tmdb_id": 157336})["data"]["title"] == "Interstellar"
    search = call(client, "radarr", "radarr_trigger_movie_search", {"movie_id": 3})["data"]
    refresh = call(client, "radarr", "radarr_refresh_movie", {"movie_id": 1})["data"]
    assert (search["name"], refresh["name"]) == ("MoviesSearch", "RefreshMovie")
    missing = call(client, "radarr", "radarr_get_missing_movies")["data"]
    assert "The Batman" in {movie["title"] for movie in missing}
    assert call(client, "radarr", "radarr_get_wanted", {"page": 1, "pageSize": 50})["data"]["records"] == missing
    assert 1 in {profile["id"] for profile in call(client, "radarr", "radarr_get_quality_profiles")["data"]}
    assert [folder["path"] for folder in call(client, "radarr", "radarr_get_root_folders")["data"]] == ["/movies"]


# --- Plex -----------------------------------------------------------------------------------------------------


@covers("plex_get_libraries", "plex_get_library_items", "plex_refresh_library")
def test_plex_libraries_items_and_a_refresh(media_stack: MediaStack, client: Orchestrator) -> None:
    """Libraries are the simulator's sections, items page by limit and offset, a refresh marks the section."""
    libraries = call(client, "plex", "plex_get_libraries")["data"]
    assert [(library["key"], library["type"]) for library in libraries] == [("1", "movie"), ("2", "show")]
    items = call(client, "plex", "plex_get_library_items", {"library_id": "2", "limit": 1, "offset": 1})["data"]
    assert [item["title"] for item in items] == [media_stack.sims["plex"].state.items["2"][1]["title"]]
    assert call(client, "library", "plex_refresh_library", {"library_id": "1"}) == {"success": True,
                                                                                  "library_id": "1"}
    assert media_stack.sims["plex"].state.sections["1"]["refreshing"] is True
    assert call(client, "plex", "plex_get_libraries")["data"][0]["refreshing"] is True


@covers("plex_get_recently_added", "plex_get_on_deck", "plex_get_history")
def test_plex_recently_added_on_deck_and_history(client: Orchestrator) -> None:
    """Recently added is newest first and limited; on-deck items are part watched; history entries were viewed."""
    recent = call(client, "plex", "plex_get_recently_added", {"limit": 3})["data"]
    assert len(recent) == 3 and [i["addedAt"] for i in recent] == sorted((i["addedAt"] for i in recent), reverse=True)
    deck = call(client, "plex", "plex_get_on_deck", {"limit": 12})["data"]
    assert deck and all(0 < item["viewOffset"] < item["duration"] for item in deck)
    history = call(client, "plex", "plex_get_history", {"limit": 2, "offset": 0})["data"]
    assert len(history) == 2 and all(entry["viewedAt"] for entry in history)


@covers("plex_get_sessions", "plex_search")
def test_plex_sessions_advance_with_time_and_search_finds_titles(media_stack: MediaStack, client: Orchestrator) -> None:
    """The playing session's position advances with simulated time; search matches titles within a section."""
    before = call(client, "plex", "plex_get_sessions")["data"][0]
    assert before["User"]["title"] == "alice" and before["Player"]["state"] == "playing"
    media_stack.sims["plex"].state.clock.advance(30)
    assert call(client, "plex", "plex_get_sessions")["data"][0]["viewOffset"] > before["viewOffset"]
    assert [item["title"] for item in call(client, "plex", "plex_search", {"query": "the"})["data"]] \
        == ["The Expanse"]
    assert call(client, "plex", "plex_search", {"query": "the", "section_id": "1"})["data"] == []


@covers("plex_get_library", "plex_scan_library", "plex_refresh_metadata", "plex_search_media",
        "plex_get_server_status")
def test_plex_tools_autoarrs_media_router_calls(media_stack: MediaStack, client: Orchestrator) -> None:
    """The tools AutoArr's media router calls answer through the queue with the parameter names it sends."""
    sim = media_stack.sims["plex"].state
    assert call(client, "plex", "plex_get_library", {"library_key": "2"})["data"]["title"] == "TV Shows"
    assert call(client, "plex", "plex_scan_library", {"library_key": "2"})["library_key"] == "2"
    assert sim.sections["2"]["refreshing"] is True
    rating_key = sim.items["1"][0]["ratingKey"]
    assert call(client, "plex", "plex_refresh_metadata", {"rating_key": rating_key})["rating_key"] == rating_key
    found = call(client, "plex", "plex_search_media", {"query": "expanse"})["data"]
    assert [item["title"] for item in found] == ["The Expanse"]
    assert call(client, "plex", "plex_get_server_status")["data"]["platform"] == "Linux"


# --- errors through the queue ---------------------------------------------------------------------------------


READ_TOOL = {
    "sabnzbd": ("sabnzbd_get_queue", {}),
    "sonarr": ("sonarr_get_series", {}),
    "radarr": ("radarr_get_movies", {}),
    "plex": ("plex_get_libraries", {}),
}
MISSING = {
    "sabnzbd": ("sabnzbd_retry_download", {"nzo_id": "SABnzbd_nzo_missing"}),
    "sonarr": ("sonarr_get_series_by_id", {"series_id": 999}),
    "radarr": ("radarr_get_movie_by_id", {"movie_id": 999}),
    "plex": ("plex_get_library_items", {"library_id": "99"}),
}


@pytest.mark.parametrize("server", MEDIA_SERVICES)
def test_a_down_upstream_is_an_unavailable_tool_error_and_the_session_recovers(
        no_faults: MediaStack, client: Orchestrator, server: str) -> None:
    """With the simulator down the call raises ToolReturnedError [upstream_unavailable]; cleared, it succeeds."""
    tool, params = READ_TOOL[server]
    no_faults.sims[server].faults = {"down": True}
    error = fails(client, server, tool, params, tag="upstream_unavailable")
    assert "HTTP 503" in str(error) and error.server == server
    no_faults.sims[server].faults = {}
    assert call(client, server, tool, params)


@pytest.mark.parametrize("server", MEDIA_SERVICES)
def test_an_unknown_id_is_a_not_found_tool_error(no_faults: MediaStack, client: Orchestrator, server: str) -> None:
    """An id the simulator does not know comes back as ToolReturnedError [upstream_not_found]."""
    tool, params = MISSING[server]
    assert fails(client, server, tool, params, tag="upstream_not_found").server == server


def test_bad_arguments_are_refused_before_enqueue_by_the_cached_schema(client: Orchestrator) -> None:
    """Once the catalog holds the tools, params breaking a tool's input schema never reach a queue."""
    client.list_tools("sonarr", refresh=True)
    client.list_tools("sabnzbd", refresh=True)
    with pytest.raises(InvalidCall) as calendar:
        client.call_tool("sonarr", "sonarr_get_calendar", {"start_date": "next week"})
    assert calendar.value.field == "params.start_date"
    with pytest.raises(InvalidCall) as queue:
        client.call_tool("sabnzbd", "sabnzbd_get_queue", {"limit": 0})
    assert queue.value.field == "params.limit"


def test_bad_arguments_that_reach_the_server_are_an_invalid_arguments_tool_error(client: Orchestrator) -> None:
    """Sent around the client's schema check, the media server itself refuses them as [invalid_arguments]."""
    deadline = time.time() + 20
    handle = client.app.send_task(CALL_TOOL, kwargs={"server": "sonarr", "tool": "sonarr_get_calendar",
                                                     "params": {"start_date": "next week"}, "deadline": deadline},
                                  queue="mcp.sonarr")
    with pytest.raises(ToolReturnedError) as raised:
        handle.get(timeout=20)
    result = answered_result(raised.value)
    assert result is not None and result.is_error and result.error_text.startswith("[invalid_arguments] ")


def test_errors_are_returned_with_ok_false_when_asked(no_faults: MediaStack, client: Orchestrator) -> None:
    """raise_on_error=False returns the tagged error as a result with ok=False and no key in it."""
    result = client.call_tool("radarr", "radarr_get_movie_by_id", {"movie_id": 404}, raise_on_error=False)
    assert not result.ok and result.is_error and result.error_text.startswith("[upstream_not_found] ")
    assert not leaked(result.model_dump_json())


# --- no key anywhere ------------------------------------------------------------------------------------------


def test_a_key_sent_as_an_argument_is_masked_in_the_error(no_faults: MediaStack, client: Orchestrator) -> None:
    """Even when a caller passes a canary key in as an argument, the error that comes back has it masked."""
    for faults, tag in [({}, "upstream_not_found"), ({"down": True}, "upstream_unavailable")]:
        no_faults.sims["sabnzbd"].faults = faults
        fails(client, "sabnzbd", "sabnzbd_retry_download", {"nzo_id": CANARY["sabnzbd"]}, tag=tag)


def test_no_key_is_stored_in_any_result_in_redis(media_stack: MediaStack, client: Orchestrator) -> None:
    """The raw results the worker stored (celery-task-meta-*) for successes and errors hold no canary key."""
    ok = client.call_tool("sabnzbd", "sabnzbd_get_config")
    with pytest.raises(ToolReturnedError) as caught:
        client.call_tool("sabnzbd", "sabnzbd_retry_download", {"nzo_id": "SABnzbd_nzo_missing"})
    stored = media_stack.stored_results()
    assert f"celery-task-meta-{ok.task_id}".encode() in stored
    assert f"celery-task-meta-{caught.value.task_id}".encode() in stored
    assert {key: leaked(value) for key, value in stored.items() if leaked(value)} == {}


def test_no_key_appears_in_the_worker_log(media_stack: MediaStack, client: Orchestrator) -> None:
    """The worker's log, which records every task and the servers' stderr, holds no canary key."""
    result = client.call_tool("sabnzbd", "sabnzbd_get_status")
    log = media_stack.worker.output()
    assert result.task_id in log, "the worker logs each task it runs"
    assert leaked(log) == []


@pytest.mark.parametrize("service", MEDIA_SERVICES)
def test_each_bundled_server_passes_its_default_health_probe(media_stack: MediaStack, client: Orchestrator,
                                                            service: str) -> None:
    """The health_tool the bundled configuration names reaches the simulator with the key and passes."""
    bundled = load_settings(DEFAULTS_FILE).servers[service]
    configured = media_stack.settings.servers[service]
    assert (configured.health_tool, configured.health_params) == (bundled.health_tool, bundled.health_params)
    health = client.health_check(service, timeout=20)
    assert health.status.value == "healthy", health.model_dump()
    assert health.probe == f"tool {bundled.health_tool}"
