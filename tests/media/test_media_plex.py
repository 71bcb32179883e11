"""The plex MCP server over stdio against the simulated Plex: every tool, real processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.media import Served

READ_TOOL = ("plex_get_libraries", {})
"""A cheap read-only call (tests/media/test_media_errors.py calls it with a wrong key)."""
TOOLS = {
    "plex_get_libraries",
    "plex_get_library_items",
    "plex_get_recently_added",
    "plex_get_on_deck",
    "plex_get_sessions",
    "plex_search",
    "plex_refresh_library",
    "plex_get_history",
}


@pytest.fixture(scope="module")
def plex() -> Iterator[Served]:
    served = Served("plex")
    yield served
    served.close()


def test_server_lists_exactly_autoarrs_plex_tools_with_output_schemas(plex: Served) -> None:
    """The server offers AutoArr's 8 Plex tools, each with an output schema and annotations."""
    tools = plex.client.list_tools()
    assert {tool.name for tool in tools} == TOOLS
    assert all(tool.output_schema and tool.annotations for tool in tools)


def test_libraries_are_the_media_container_directories(plex: Served) -> None:
    """get_libraries unwraps MediaContainer.Directory."""
    libraries = plex.ok("plex_get_libraries")["data"]
    assert [(library["key"], library["type"]) for library in libraries] == [("1", "movie"), ("2", "show")]


def test_library_items_are_paged_with_container_parameters(plex: Served) -> None:
    """get_library_items passes limit and offset as X-Plex-Container-Size and -Start."""
    items = plex.ok("plex_get_library_items", {"library_id": "2", "limit": 1, "offset": 1})["data"]
    assert [item["title"] for item in items] == ["Severance"]


def test_an_unknown_library_is_a_not_found_error(plex: Served) -> None:
    """A 404 from Plex becomes an upstream_not_found tool error."""
    plex.fails("plex_get_library_items", {"library_id": "99"}, tag="upstream_not_found")


def test_recently_added_is_newest_first_and_limited(plex: Served) -> None:
    """get_recently_added returns at most limit items, newest first."""
    items = plex.ok("plex_get_recently_added", {"limit": 3})["data"]
    assert len(items) == 3
    assert [item["addedAt"] for item in items] == sorted((item["addedAt"] for item in items), reverse=True)


def test_on_deck_items_are_partly_watched(plex: Served) -> None:
    """get_on_deck returns items with a view offset inside their duration."""
    items = plex.ok("plex_get_on_deck", {"limit": 12})["data"]
    assert items and all(0 < item["viewOffset"] < item["duration"] for item in items)


def test_sessions_show_who_plays_what_and_progress(plex: Served) -> None:
    """get_sessions returns the playing stream, whose position advances with simulated time."""
    before = plex.ok("plex_get_sessions")["data"][0]
    assert before["User"]["title"] == "alice" and before["Player"]["state"] == "playing"
    plex.sim.state.clock.advance(30)
    assert plex.ok("plex_get_sessions")["data"][0]["viewOffset"] > before["viewOffset"]


def test_search_finds_titles_within_a_section(plex: Served) -> None:
    """plex_search matches titles, optionally within one section."""
    assert [item["title"] for item in plex.ok("plex_search", {"query": "the"})["data"]] == ["The Expanse"]
    assert plex.ok("plex_search", {"query": "the", "section_id": "1"})["data"] == []


def test_refreshing_a_library_starts_a_scan(plex: Served) -> None:
    """plex_refresh_library answers AutoArr's fixed reply and the section shows it is refreshing."""
    assert plex.ok("plex_refresh_library", {"library_id": "1"}) == {"success": True, "library_id": "1"}
    assert plex.ok("plex_get_libraries")["data"][0]["refreshing"] is True


def test_history_lists_watched_items(plex: Served) -> None:
    """plex_get_history returns watch-history entries, paged by limit and offset."""
    history = plex.ok("plex_get_history", {"limit": 2, "offset": 0})["data"]
    assert len(history) == 2 and all(entry["viewedAt"] for entry in history)
