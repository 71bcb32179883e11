"""The plex MCP server over stdio against the simulated Plex: every tool, real processes."""

from __future__ import annotations

from importlib import metadata

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
    "plex_get_library",
    "plex_scan_library",
    "plex_refresh_metadata",
    "plex_search_media",
    "plex_get_server_status",
}
"""AutoArr's 8 Plex MCP tools and the 5 more its media router calls (``optimize_item`` has no Plex equivalent)."""
TRAVERSAL = "1/../../../status/sessions?"


def test_server_lists_exactly_autoarrs_plex_tools_with_output_schemas(plex: Served) -> None:
    """The server offers AutoArr's 8 Plex tools and the 5 its router calls, each with an output schema and
    annotations."""
    plex.assert_lists_exactly(TOOLS)


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


def test_server_reports_the_package_version_in_its_server_info(plex: Served) -> None:
    """initialize's serverInfo carries the installed package version, not the SDK's empty default."""
    info = plex.client.client.server_info
    assert info.name == "plex" and info.version == metadata.version("autoarr-mcp-orchestrator")


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("plex_get_library_items", {"library_id": TRAVERSAL}),
        ("plex_refresh_library", {"library_id": TRAVERSAL}),
        ("plex_get_library", {"library_key": TRAVERSAL}),
        ("plex_scan_library", {"library_key": TRAVERSAL}),
        ("plex_refresh_metadata", {"rating_key": TRAVERSAL}),
        ("plex_search", {"query": "the", "section_id": TRAVERSAL}),
        ("plex_search_media", {"query": "the", "library_key": TRAVERSAL}),
        ("plex_get_library_items", {"library_id": "%2e%2e"}),
    ],
)
def test_an_id_that_is_not_digits_is_refused_before_reaching_plex(plex: Served, tool: str, arguments: dict) -> None:
    """A path-traversal id is refused as invalid_arguments and the simulator never sees a request."""
    plex.sim.reset_stats()
    text = plex.fails(tool, arguments, tag="invalid_arguments")
    assert next(iter(arguments.keys() - {"query"})) in text
    assert plex.sim.stats()["requests"] == {}


def test_get_library_returns_the_one_section_with_its_type_and_locations(plex: Served) -> None:
    """plex_get_library answers the section AutoArr's router shows: key, title, type and locations."""
    library = plex.ok("plex_get_library", {"library_key": "2"})["data"]
    assert (library["key"], library["title"], library["type"]) == ("2", "TV Shows", "show")
    assert library["Location"] == [{"id": 2, "path": "/data/tv"}]
    plex.fails("plex_get_library", {"library_key": "99"}, tag="upstream_not_found")


def test_scanning_a_library_starts_a_scan_of_that_section(plex: Served) -> None:
    """plex_scan_library calls the section's refresh endpoint and the section shows it is refreshing."""
    reply = plex.ok("plex_scan_library", {"library_key": "2"})
    assert reply["success"] is True and reply["library_key"] == "2"
    assert plex.ok("plex_get_library", {"library_key": "2"})["data"]["refreshing"] is True
    plex.fails("plex_scan_library", {"library_key": "99"}, tag="upstream_not_found")


def test_refreshing_metadata_updates_that_item(plex: Served) -> None:
    """plex_refresh_metadata PUTs /library/metadata/{key}/refresh; the item's updatedAt moves to now."""
    before = plex.ok("plex_get_library_items", {"library_id": "1"})["data"][0]
    plex.sim.state.clock.advance(60)
    reply = plex.ok("plex_refresh_metadata", {"rating_key": before["ratingKey"]})
    assert reply["success"] is True and reply["rating_key"] == before["ratingKey"]
    after = plex.ok("plex_get_library_items", {"library_id": "1"})["data"][0]
    assert after["updatedAt"] > before["updatedAt"]
    plex.fails("plex_refresh_metadata", {"rating_key": "999999"}, tag="upstream_not_found")


def test_search_media_flattens_the_hubs_of_plexs_hub_search(plex: Served) -> None:
    """plex_search_media queries /hubs/search and returns the items of every hub (limit applies per hub, as
    in Plex), optionally in one section."""
    plex.sim.reset_stats()
    found = plex.ok("plex_search_media", {"query": "e"})["data"]
    assert {item["type"] for item in found} == {"movie", "show"}
    assert "/hubs/search" in plex.sim.stats()["requests"]
    within = plex.ok("plex_search_media", {"query": "e", "library_key": "2"})["data"]
    assert within and {item["type"] for item in within} == {"show"}
    assert plex.ok("plex_search_media", {"query": "no such title"})["data"] == []
    per_hub = plex.ok("plex_search_media", {"query": "e", "limit": 1})["data"]
    assert sorted(item["type"] for item in per_hub) == ["movie", "show"]


def test_server_status_is_the_root_media_container(plex: Served) -> None:
    """plex_get_server_status returns what GET / says: version and platform, as AutoArr's status page reads."""
    status = plex.ok("plex_get_server_status")["data"]
    assert status["version"] and status["platform"] == "Linux" and status["machineIdentifier"]
