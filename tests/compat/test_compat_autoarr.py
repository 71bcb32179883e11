"""AutoArr's own call sites and its seed orchestrator's behaviours, through ``orchestrator.compat``.

Each router and service call site of AutoArr (``../shared/upstream-api/autoarr-call-sites.md``)
is one row: server, tool and params exactly as AutoArr writes them, and a check of what the
caller reads from the result. The seed behaviours follow, then AutoArr's error middleware
mapping (rebuilt here from its documented order, not copied) applied to real failures.

The stack is ``tests/support/compat_stack.py``'s (fixtures in ``tests/compat/conftest.py``): four simulators, workers
started with ``worker_environment(seed config)``, Redis database 17.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

from orchestrator import errors
from orchestrator.compat import (
    CircuitBreakerOpenError,
    MCPOrchestrator,
    MCPOrchestratorConfig,
    MCPToolCall,
    SeedConfigError,
    SeedConfigWarning,
    ServerConfig,
    exceptions,
)
from orchestrator.operator.processes import wait_until
from tests.support.compat_stack import WAIT, CompatStack, connected, run
from tests.support.proctree import descendants

pytestmark = pytest.mark.slow

Ids = dict[str, Any]


@dataclass(frozen=True)
class CallSite:
    """One AutoArr call site: where it is, what it sends, and what its caller reads."""

    where: str
    server: str
    tool: str
    params: Callable[[Ids], dict[str, Any]]
    reads: Callable[[Any, Ids], bool]
    keep: Callable[[Any, Ids], None] | None = None

    def __str__(self) -> str:
        return self.where


def _is_list(result: Any, _: Ids) -> bool:
    return isinstance(result, list)


def _non_empty_list(result: Any, _: Ids) -> bool:
    return isinstance(result, list) and len(result) > 0 and all(isinstance(item, dict) for item in result)


def _object_with(*keys: str) -> Callable[[Any, Ids], bool]:
    def reads(result: Any, _: Ids) -> bool:
        return isinstance(result, dict) and all(key in result for key in keys)
    return reads


def _raw_sab(*keys: str) -> Callable[[Any, Ids], bool]:
    """SABnzbd's own JSON, passed through: never the bundled servers' envelope."""
    def reads(result: Any, _: Ids) -> bool:
        return isinstance(result, dict) and result.keys() != {"success", "data"} and all(k in result for k in keys)
    return reads


def _no_params(_: Ids) -> dict[str, Any]:
    return {}


def _keep(name: str, pick: Callable[[Any], Any]) -> Callable[[Any, Ids], None]:
    def keep(result: Any, ids: Ids) -> None:
        ids[name] = pick(result)
    return keep


def _queue_page_or_list(result: Any, _: Ids) -> bool:
    """The shows/movies queue routers wrap a list and return anything else as it is: *arr v3's
    ``/queue`` is paged, so the tool answers the page (``records``), which the router returns."""
    return isinstance(result, list) or (isinstance(result, dict) and isinstance(result.get("records"), list))


ROUTER_CALL_SITES = [
    # downloads router: SABnzbd's raw JSON passes through
    CallSite("downloads: GET /queue", "sabnzbd", "get_queue", _no_params, _raw_sab("queue")),
    CallSite("downloads: GET /history", "sabnzbd", "get_history", lambda _: {"limit": 50}, _raw_sab("history")),
    CallSite("downloads: GET /status", "sabnzbd", "get_status", _no_params, _raw_sab()),
    CallSite("downloads: POST /pause", "sabnzbd", "pause_queue", _no_params, _raw_sab("status")),
    CallSite("downloads: POST /resume", "sabnzbd", "resume_queue", _no_params, _raw_sab("status")),
    CallSite("downloads: POST /retry/{nzo_id}", "sabnzbd", "retry_download", lambda ids: {"nzo_id": ids["failed_nzo"]},
             _raw_sab("status")),
    CallSite("downloads: DELETE /{nzo_id}", "sabnzbd", "delete_download", lambda ids: {"nzo_id": ids["queued_nzo"]},
             _raw_sab("status")),
    # shows router: lists where it wraps a list
    CallSite("shows: GET /", "sonarr", "get_series", _no_params, _non_empty_list),
    CallSite("shows: GET /{id}", "sonarr", "get_series_by_id", lambda ids: {"series_id": ids["series"]},
             lambda r, ids: isinstance(r, dict) and r.get("id") == ids["series"]),
    CallSite("shows: GET /search", "sonarr", "search_series", lambda _: {"query": "the bear"}, _non_empty_list),
    CallSite("shows: POST /", "sonarr", "add_series",
             lambda _: {"title": "Shogun", "tvdb_id": 392573, "quality_profile_id": 1, "root_folder_path": "/tv",
                        "monitored": True, "season_folder": True},
             lambda r, _: isinstance(r, dict) and r.get("tvdbId") == 392573, _keep("added_series", lambda r: r["id"])),
    CallSite("shows: DELETE /{id}", "sonarr", "delete_series",
             lambda ids: {"series_id": ids["added_series"], "delete_files": False}, lambda r, _: isinstance(r, dict)),
    CallSite("shows: GET /calendar/upcoming (dates)", "sonarr", "get_calendar",
             lambda _: {"start_date": "2000-01-01", "end_date": "2100-01-01"}, _non_empty_list),
    CallSite("shows: GET /calendar/upcoming", "sonarr", "get_calendar", _no_params, _is_list),
    CallSite("shows: GET /queue/active", "sonarr", "get_queue", _no_params, _queue_page_or_list),
    CallSite("shows: POST /{id}/search", "sonarr", "trigger_series_search", lambda ids: {"series_id": ids["series"]},
             _object_with("id", "name")),
    CallSite("shows: POST /episodes/{id}/search", "sonarr", "trigger_episode_search",
             lambda ids: {"episode_id": ids["episode"]}, _object_with("id", "name")),
    # movies router
    CallSite("movies: GET /", "radarr", "get_movies", _no_params, _non_empty_list),
    CallSite("movies: GET /{id}", "radarr", "get_movie_by_id", lambda ids: {"movie_id": ids["movie"]},
             lambda r, ids: isinstance(r, dict) and r.get("id") == ids["movie"]),
    CallSite("movies: GET /search", "radarr", "search_movies", lambda _: {"query": "arrival"}, _non_empty_list),
    CallSite("movies: POST /", "radarr", "add_movie",
             lambda _: {"title": "Arrival", "tmdb_id": 329865, "quality_profile_id": 1, "root_folder_path": "/movies",
                        "monitored": True},
             lambda r, _: isinstance(r, dict) and r.get("tmdbId") == 329865, _keep("added_movie", lambda r: r["id"])),
    CallSite("movies: DELETE /{id}", "radarr", "delete_movie",
             lambda ids: {"movie_id": ids["added_movie"], "delete_files": False}, lambda r, _: isinstance(r, dict)),
    CallSite("movies: GET /calendar/upcoming (dates)", "radarr", "get_calendar",
             lambda _: {"start_date": "2000-01-01", "end_date": "2100-01-01"}, _non_empty_list),
    CallSite("movies: GET /calendar/upcoming", "radarr", "get_calendar", _no_params, _is_list),
    CallSite("movies: GET /queue/active", "radarr", "get_queue", _no_params, _queue_page_or_list),
    CallSite("movies: POST /{id}/search", "radarr", "trigger_movie_search", lambda ids: {"movie_id": ids["movie"]},
             _object_with("id", "name")),
    CallSite("movies: POST /{id}/refresh", "radarr", "refresh_movie", lambda ids: {"movie_id": ids["movie"]},
             _object_with("id", "name")),
    CallSite("movies: GET /missing", "radarr", "get_missing_movies", _no_params, _non_empty_list),
    # media router
    CallSite("media: GET /libraries", "plex", "get_libraries", _no_params, _non_empty_list),
    CallSite("media: GET /recently-added", "plex", "get_recently_added", lambda _: {"limit": 20}, _non_empty_list),
    CallSite("media: GET /on-deck", "plex", "get_on_deck", _no_params, _is_list),
    CallSite("media: GET /sessions", "plex", "get_sessions", _no_params, _is_list),
    CallSite("media: GET /libraries/{key}", "plex", "get_library", lambda ids: {"library_key": ids["library"]},
             _object_with("key")),
    CallSite("media: POST /scan", "plex", "scan_library", lambda ids: {"library_key": ids["library"]},
             lambda r, _: isinstance(r, dict)),
    CallSite("media: POST /refresh/{rating_key}", "plex", "refresh_metadata", lambda ids: {"rating_key": ids["item"]},
             lambda r, _: isinstance(r, dict)),
    CallSite("media: GET /search", "plex", "search_media", lambda _: {"query": "the"}, _is_list),
    CallSite("media: GET /server/status", "plex", "get_server_status", _no_params, lambda r, _: isinstance(r, dict)),
]
SERVICE_CALL_SITES = [
    CallSite("monitoring: queue", "sabnzbd", "get_queue", _no_params, _raw_sab("queue")),
    CallSite("monitoring: history", "sabnzbd", "get_history", _no_params, _raw_sab("history")),
    CallSite("monitoring: sonarr wanted", "sonarr", "get_wanted", lambda _: {"page": 1, "pageSize": 50},
             lambda r, _: isinstance(r, dict) and isinstance(r["records"], list)),
    CallSite("monitoring: radarr wanted", "radarr", "get_wanted", lambda _: {"page": 1, "pageSize": 50},
             lambda r, _: isinstance(r, dict) and isinstance(r["records"], list)),
    CallSite("content: radarr lookup", "radarr", "lookup_movie", lambda _: {"tmdb_id": 335984},
             lambda r, _: bool(r)),
    CallSite("content: sonarr lookup", "sonarr", "lookup_series", lambda _: {"term": "tvdb:393189"}, _non_empty_list),
    CallSite("content: radarr quality profiles", "radarr", "get_quality_profiles", _no_params, _non_empty_list),
    CallSite("content: sonarr quality profiles", "sonarr", "get_quality_profiles", _no_params, _non_empty_list),
    CallSite("content: radarr root folders", "radarr", "get_root_folders", _no_params, _non_empty_list),
    CallSite("content: sonarr root folders", "sonarr", "get_root_folders", _no_params, _non_empty_list),
    CallSite("content: radarr add", "radarr", "add_movie",
             lambda _: {"tmdb_id": 335984, "quality_profile_id": 1, "root_folder_path": "/movies", "monitored": True,
                        "search_for_movie": False}, lambda r, _: isinstance(r, dict) and r.get("tmdbId") == 335984),
    CallSite("content: sonarr add", "sonarr", "add_series",
             lambda _: {"tvdb_id": 393189, "quality_profile_id": 1, "root_folder_path": "/tv", "monitored": True,
                        "search_for_missing_episodes": False},
             lambda r, _: isinstance(r, dict) and r.get("tvdbId") == 393189),
]


def _first(key: str) -> Callable[[Any], Any]:
    return lambda result: result[0][key]


async def _ids(mcp: MCPOrchestrator) -> Ids:
    """Real ids from the simulators, as a user of AutoArr would have them."""
    history = await mcp.call_tool("sabnzbd", "get_history", {"limit": 100})
    queue = await mcp.call_tool("sabnzbd", "get_queue", {})
    series = await mcp.call_tool("sonarr", "get_series", {})
    episodes = await mcp.call_tool("sonarr", "get_episodes", {"series_id": series[0]["id"]})
    movies = await mcp.call_tool("radarr", "get_movies", {})
    libraries = await mcp.call_tool("plex", "get_libraries", {})
    recent = await mcp.call_tool("plex", "get_recently_added", {"limit": 1})
    return {"failed_nzo": next(s["nzo_id"] for s in history["history"]["slots"] if s["status"] == "Failed"),
            "queued_nzo": queue["queue"]["slots"][-1]["nzo_id"], "series": series[0]["id"],
            "episode": episodes[0]["id"], "movie": movies[0]["id"], "library": libraries[0]["key"],
            "item": recent[0]["ratingKey"]}


@pytest.fixture(scope="module")
def ids(compat_stack: CompatStack) -> Ids:
    async def scenario() -> Ids:
        async with await connected(compat_stack) as mcp:
            return await _ids(mcp)
    return run(scenario())


def _call_site(stack: CompatStack, ids: Ids, site: CallSite) -> None:
    async def scenario() -> Any:
        async with await connected(stack) as mcp:
            return await mcp.call_tool(site.server, site.tool, site.params(ids))
    result = run(scenario())
    assert site.reads(result, ids), f"{site}: {site.server} {site.tool} gave {str(result)[:300]}"
    if site.keep:
        site.keep(result, ids)


@pytest.mark.parametrize("site", ROUTER_CALL_SITES + SERVICE_CALL_SITES, ids=str)
def test_each_autoarr_call_site_gets_the_shape_its_caller_reads(stack: CompatStack, ids: Ids, site: CallSite) -> None:
    """The tool as AutoArr names it, with AutoArr's params, answers what that caller reads."""
    _call_site(stack, ids, site)


def test_optimize_item_is_refused_as_a_tool_error_naming_the_tool(stack: CompatStack) -> None:
    """media: POST /optimize/{rating_key} calls plex optimize_item, which no server has: a 400-class
    MCPToolError whose .tool is what AutoArr passed."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            with pytest.raises(exceptions.MCPToolError) as caught:
                await mcp.call_tool("plex", "optimize_item", {"rating_key": "1"})
            assert caught.value.tool == "optimize_item" and "optimize_item" in str(caught.value)
            assert not isinstance(caught.value, exceptions.MCPConnectionError)
    run(scenario())


def test_the_mcp_router_gets_names_metadata_with_the_tool_passed_and_object_data(stack: CompatStack) -> None:
    """GET /mcp/tools and /mcp/tools/{server} get names; POST /mcp/call gets {data: object, metadata.tool as
    passed}; POST /mcp/batch gets {success, data: object, error} per call; /mcp/stats a counters dict."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            everything = await mcp.list_all_tools()
            assert set(everything) == {"sabnzbd", "sonarr", "radarr", "plex"}
            assert all(isinstance(name, str) for names in everything.values() for name in names)
            assert {"get_queue", "get_history", "retry_download"} <= set(await mcp.list_tools("sabnzbd"))
            assert {"get_series", "search_series", "get_calendar"} <= set(everything["sonarr"])
            called = await mcp.call_tool(server="sonarr", tool="get_series", params={}, timeout=None,
                                         include_metadata=True)
            assert isinstance(called["data"], dict) and called["metadata"]["server"] == "sonarr"
            assert called["metadata"]["tool"] == "get_series" and called["metadata"]["duration"] > 0
            batch = await mcp.call_tools_parallel(calls=[MCPToolCall("sabnzbd", "get_queue", {}),
                                                         MCPToolCall("sonarr", "get_series", {})], return_partial=False)
            assert all(entry["success"] and isinstance(entry["data"], dict) for entry in batch)
            assert mcp.get_stats()["total_calls"] == 3
    run(scenario())


def test_the_health_and_settings_routers_get_bools_and_the_breaker_state_string(stack: CompatStack) -> None:
    """GET /health reads get_connected_servers(), health_check(s) and the breaker's ["state"]; settings reads
    health_check_all() and reconnect(service)."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            for server in mcp.get_connected_servers():
                assert await mcp.health_check(server) is True
                assert mcp.get_circuit_breaker_state(server)["state"] == "closed"
            assert await mcp.health_check_all() == dict.fromkeys(("sabnzbd", "sonarr", "radarr", "plex"), True)
            assert await mcp.reconnect("sonarr") is True
    run(scenario())


def test_the_recovery_service_calls_with_arguments_and_gets_the_tools_data(stack: CompatStack, ids: Ids) -> None:
    """RecoveryService passes arguments= (and prefixed names); each call runs and returns the tool's data."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            series = await mcp.call_tool(server="sonarr", tool="sonarr_get_series", arguments={})
            episodes = await mcp.call_tool(server="sonarr", tool="sonarr_get_episodes",
                                           arguments={"series_id": series[0]["id"], "season_number": 1})
            assert episodes and all(episode["seasonNumber"] == 1 for episode in episodes)
            command = await mcp.call_tool(server="sonarr", tool="search_episode",
                                          arguments={"episode_id": episodes[0]["id"]})
            assert command["name"] == "EpisodeSearch"
            movies = await mcp.call_tool(server="radarr", tool="radarr_get_movies", arguments={})
            command = await mcp.call_tool(server="radarr", tool="search_movie", arguments={"movie_id": movies[0]["id"]})
            assert command["name"] == "MoviesSearch"
            with pytest.raises(errors.InvalidCall, match="not both"):
                await mcp.call_tool("sonarr", "get_series", {}, arguments={})
    run(scenario())


# -- the seed's behaviours -----------------------------------------------------------------------

def test_config_and_is_initialized_are_the_seeds(stack: CompatStack) -> None:
    """.config is the config given; .is_initialized is True until shutdown."""
    async def scenario() -> None:
        mcp = stack.facade()
        assert isinstance(mcp.config, MCPOrchestratorConfig) and mcp.config.sonarr.name == "sonarr"
        assert mcp.is_initialized is True
        await mcp.shutdown()
        assert mcp.is_initialized is False
    run(scenario())


def test_tunables_set_after_construction_are_honoured_or_refused_by_name(stack: CompatStack) -> None:
    """Facade-side tunables take effect when set; worker-side ones raise SeedConfigError naming them."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            mcp.server_aliases = {"sab2": "sabnzbd", "tv2": "sonarr"}
            assert "queue" in await mcp.call_tool("sab2", "get_queue", {})
            radarr = stack.sims["radarr"]
            await asyncio.to_thread(wait_until, lambda: radarr.stats()["in_flight"] == 0, WAIT, "idle radarr")
            radarr.faults = {"latency_ms": 200}
            radarr.reset_stats()
            mcp.max_concurrent_requests = 1
            await asyncio.gather(*(mcp.call_tool("radarr", "get_movies", {}) for _ in range(3)))
            assert radarr.stats()["max_in_flight"] == 1  # honoured at the upstream
            mcp.max_parallel_calls = 1
            mcp.default_tool_timeout = 15.0
            assert (mcp.max_concurrent_requests, mcp.max_parallel_calls, mcp.default_tool_timeout) == (1, 1, 15.0)
            assert mcp.mapping.options.max_parallel_calls == 1
            for name, value in [("circuit_breaker_threshold", 1), ("circuit_breaker_timeout", 0.1),
                                ("health_check_failure_threshold", 5), ("max_retries", 7), ("auto_reconnect", False),
                                ("retryable_errors", [KeyError])]:
                with pytest.raises(SeedConfigError, match=name):
                    setattr(mcp, name, value)
            mcp.auto_reconnect = True  # what it already is: accepted
            assert mcp.circuit_breaker_threshold == 2  # the value in force
            with pytest.raises(SeedConfigError, match=r"server_aliases\.x"):
                mcp.server_aliases = {"x": "lidarr"}
            with pytest.raises(SeedConfigError, match="keepalive_interval"):
                mcp.keepalive_interval = 0
            with pytest.raises(SeedConfigError, match="parallel_timeout"):
                mcp.parallel_timeout = -1
            mcp.parallel_timeout = 2.5
            assert mcp.mapping.options.parallel_timeout == 2.5
    run(scenario())


def test_pending_tasks_call_slots_and_leaks_follow_the_calls_in_flight(stack: CompatStack) -> None:
    """A slow call is pending and holds a slot; once it ends (or is cancelled) none is pending, all slots
    are free and check_for_leaks reports nothing."""
    async def scenario() -> None:
        async with await connected(stack, max_concurrent_requests=3) as mcp:
            stack.sims["radarr"].faults = {"latency_ms": 600}
            slow = [asyncio.ensure_future(mcp.call_tool("radarr", "get_movies", {})) for _ in range(2)]
            await asyncio.sleep(0.3)
            assert len(mcp.get_pending_tasks()) == 2
            assert mcp.get_connection_pool_state() == {"available_connections": 1, "max_connections": 3}
            slow[1].cancel()
            await asyncio.gather(*slow, return_exceptions=True)
            assert mcp.get_pending_tasks() == []
            assert mcp.get_connection_pool_state() == {"available_connections": 3, "max_connections": 3}
            assert mcp.check_for_leaks() == {"leaked_tasks": 0, "leaked_connections": 0}
    run(scenario())


def test_connection_state_is_saved_and_restored_into_a_new_facade(stack: CompatStack) -> None:
    """get_connection_state lists the servers in use; restore_connection_state connects them in another facade."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            await mcp.disconnect("plex")
            state = mcp.get_connection_state()
            assert state["connected_servers"] == ["radarr", "sabnzbd", "sonarr"] and state["timestamp"] > 0
        async with stack.facade() as fresh:
            assert await fresh.restore_connection_state(state) == dict.fromkeys(state["connected_servers"], True)
            assert await fresh.is_connected("sabnzbd") and not await fresh.is_connected("plex")
    run(scenario())


def test_keepalive_and_periodic_health_checks_run_checks_through_the_queue_until_stopped(stack: CompatStack) -> None:
    """start_keepalive checks each server in use every keepalive_interval; start_periodic_health_checks runs
    health_check_all every health_check_interval; stop_* (and shutdown) end them."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            await mcp.disconnect("plex")
            mcp.keepalive_interval = 0.1
            before = {name: mcp._core.sync.health_detail(name).checks for name in ("sabnzbd", "plex")}
            mcp.start_keepalive()
            await asyncio.sleep(0.6)
            mcp.stop_keepalive()
            await asyncio.sleep(0.2)  # a check already on its way still lands
            after = {name: mcp._core.sync.health_detail(name).checks for name in ("sabnzbd", "plex")}
            assert after["sabnzbd"] - before["sabnzbd"] >= 2 and after["plex"] == before["plex"]
            await asyncio.sleep(0.4)
            assert mcp._core.sync.health_detail("sabnzbd").checks == after["sabnzbd"]  # stopped
            mcp.health_check_interval = 0.1
            checks = mcp.get_stats()["total_health_checks"]
            mcp.start_periodic_health_checks()
            await asyncio.sleep(0.6)
            assert mcp.get_stats()["total_health_checks"] - checks >= 2 * 4
        assert mcp._loops == {}  # shutdown stopped the loop
    run(scenario())


def test_connect_retries_while_a_worker_starts_and_times_out_with_asyncio_timeout_error(stack: CompatStack) -> None:
    """With plex's worker gone, connect keeps retrying with backoff and succeeds once a worker starts; with
    a short seed timeout it raises asyncio.TimeoutError; connect_all reads such a server as False."""
    stack.workers.pop("plex").stop()
    try:
        async def scenario() -> None:
            quick = stack.facade(max_retries=15)
            quick.config.plex.timeout = 0.8
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await quick.connect("plex")
            assert 0.7 < time.monotonic() - started < 2.0
            assert (await quick.connect_all())["plex"] is False
            await quick.shutdown()
            patient = stack.facade(max_retries=6)
            patient.config.plex.timeout = WAIT
            connecting = asyncio.ensure_future(patient.connect("plex"))
            await asyncio.sleep(0.5)
            assert not connecting.done()
            await asyncio.to_thread(stack.start_plex_worker)
            assert await connecting is True
            await patient.shutdown()
        run(scenario(), timeout=60)
    finally:
        if "plex" not in stack.workers:
            stack.start_plex_worker()


def test_breaker_reads_half_open_once_its_open_time_passed_and_keeps_its_failure_count(stack: CompatStack) -> None:
    """Open: failure_count is the failures that opened it; after circuit_breaker_timeout it reads half_open."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            stack.sims["radarr"].faults = {"down": True}
            for _ in range(2):
                with pytest.raises(exceptions.MCPConnectionError):
                    await mcp.call_tool("radarr", "get_movies", {})
            state = mcp.get_circuit_breaker_state("radarr")
            assert state["state"] == "open" and state["failure_count"] >= 2
            await asyncio.sleep(1.1)
            state = mcp.get_circuit_breaker_state("radarr")
            assert state["state"] == "half_open" and state["failure_count"] >= 2
    run(scenario())


def test_on_error_hears_of_every_failure_and_errors_name_the_tool_as_passed(stack: CompatStack) -> None:
    """Bad input, a tool error, an upstream down and an open breaker each reach on_error; .tool is as passed."""
    reported: list[dict[str, Any]] = []

    async def scenario() -> None:
        async with await connected(stack) as mcp:
            mcp.on_error = reported.append
            with pytest.raises(TypeError, match="params must be a dict") as bad:
                await mcp.call_tool("sonarr", "get_series", "invalid")
            assert isinstance(bad.value, errors.InvalidCall) and bad.value.tool == "get_series"
            with pytest.raises(exceptions.MCPToolError) as refused:
                await mcp.call_tool("sonarr", "get_series_by_id", {"series_id": 987654})
            assert refused.value.tool == "get_series_by_id" and refused.value.resolved_tool == "sonarr_get_series_by_id"
            stack.sims["sonarr"].faults = {"down": True}
            for _ in range(2):
                with pytest.raises(exceptions.MCPConnectionError) as down:
                    await mcp.call_tool("sonarr", "get_series", {})
                assert isinstance(down.value, errors.UpstreamUnavailable) and down.value.tool == "get_series"
            with pytest.raises(CircuitBreakerOpenError) as open_breaker:
                await mcp.call_tool("tv", "get_series", {})
            assert open_breaker.value.tool == "get_series"
    run(scenario())
    assert [type(report["error"]) for report in reported] == [exceptions.ParamsNotADict, errors.ToolReturnedError,
                                                             exceptions.UpstreamConnectionError,
                                                             exceptions.UpstreamConnectionError,
                                                             CircuitBreakerOpenError]
    assert all(report["server"] == "sonarr" for report in reported)


# -- AutoArr's error middleware ----------------------------------------------------------------------

def autoarr_status(error: Exception, module: Any = exceptions) -> int:
    """AutoArr's ErrorHandlerMiddleware mapping as its documentation states it, checks in its order,
    the classes taken from the module AutoArr imports them from."""
    for name, status in [("MCPConnectionError", 503), ("MCPTimeoutError", 504), ("CircuitBreakerOpenError", 503),
                         ("MCPToolError", 400), ("MCPOrchestratorError", 500)]:
        if isinstance(error, getattr(module, name)):
            return status
    return 400 if isinstance(error, ValueError) else 500


def test_autoarrs_error_middleware_answers_503_504_503_400_for_the_facades_real_failures(stack: CompatStack) -> None:
    """Server down (its worker gone) or not connected 503, upstream down 503, timeout 504, breaker open 503,
    a caller's bad id 400, input refused before enqueue (unknown server, non-dict params, a bad param) 400."""
    async def failure(mcp: MCPOrchestrator, server: str, tool: str, params: dict[str, Any],
                      timeout: float | None = None) -> Exception:
        try:
            await mcp.call_tool(server, tool, params, timeout=timeout)
        except Exception as exc:
            return exc
        raise AssertionError(f"{server} {tool} did not fail")

    async def scenario() -> dict[str, int]:
        async with await connected(stack) as mcp:
            codes = {}
            await asyncio.to_thread(stack.workers.pop("plex").stop)
            codes["server down"] = autoarr_status(await failure(mcp, "plex", "get_libraries", {}))
            await mcp.disconnect("plex")
            codes["not connected"] = autoarr_status(await failure(mcp, "plex", "get_libraries", {}))
            stack.sims["radarr"].faults = {"latency_ms": 3000}
            codes["timeout"] = autoarr_status(await failure(mcp, "radarr", "get_movies", {}, timeout=1))
            stack.sims["radarr"].faults = {}
            codes["caller error"] = autoarr_status(await failure(mcp, "sonarr", "get_series_by_id",
                                                                 {"series_id": 987654}))
            refused = [await failure(mcp, "lidarr", "get_artists", {}),
                       await failure(mcp, "sonarr", "get_series", "invalid"),  # type: ignore[arg-type]
                       await failure(mcp, "sonarr", "get_series_by_id", {"series_id": "one"})]
            assert all(isinstance(error, ValueError) for error in refused)
            codes["bad input"] = max(autoarr_status(error) for error in refused)
            stack.sims["sonarr"].faults = {"down": True}
            codes["upstream down"] = autoarr_status(await failure(mcp, "sonarr", "get_series", {}))
            await failure(mcp, "sonarr", "get_series", {})
            codes["breaker open"] = autoarr_status(await failure(mcp, "sonarr", "get_series", {}))
            return codes

    try:
        codes = run(scenario())
    finally:
        if "plex" not in stack.workers:
            stack.start_plex_worker()
    assert codes == {"server down": 503, "not connected": 503, "timeout": 504, "caller error": 400, "bad input": 400,
                     "upstream down": 503, "breaker open": 503}


def test_the_exceptions_module_has_the_seeds_names_as_our_classes() -> None:
    """AutoArr's five names are this project's classes; the two compat classes sit under both parents."""
    assert exceptions.MCPConnectionError is errors.ServerUnavailable
    assert exceptions.MCPToolError is errors.ToolReturnedError and exceptions.MCPTimeoutError is errors.DeadlineExceeded
    assert exceptions.MCPOrchestratorError is errors.OrchestratorError
    assert exceptions.CircuitBreakerOpenError is errors.CircuitBreakerOpenError
    assert issubclass(exceptions.UpstreamConnectionError, errors.UpstreamUnavailable)
    assert issubclass(exceptions.UpstreamConnectionError, errors.ServerUnavailable)
    assert issubclass(exceptions.ParamsNotADict, errors.InvalidCall)
    assert issubclass(exceptions.ParamsNotADict, TypeError)
    assert issubclass(exceptions.RefusedServer, errors.UnknownServer)
    assert issubclass(exceptions.RefusedInput, exceptions.MCPToolError)


def test_a_dict_seed_config_serves_its_servers_and_reads_tunables_as_defaults(compat_stack: CompatStack) -> None:
    """The seed also accepted {name: ServerConfig}; its tunables then read the seed defaults."""
    config = {"sabnzbd": ServerConfig("sabnzbd", compat_stack.sims["sabnzbd"].url, "key")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeedConfigWarning)
        mcp = MCPOrchestrator(config, settings=compat_stack.base)
    assert mcp.config is config and mcp.servers == ("sabnzbd",) and mcp.max_retries == 3
    run(mcp.shutdown())


def test_a_health_check_after_the_mcp_server_died_retries_once_the_worker_reopens_the_session(
        stack: CompatStack) -> None:
    """Killing plex's MCP server process: the first check finds no session, the retried one passes."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            servers = [pid for pid, line in descendants(stack.workers["plex"].pid).items() if "media_mcp.plex" in line]
            assert servers, "the plex worker runs its MCP server"
            checks = mcp._core.sync.health_detail("plex").checks
            for pid in servers:
                psutil.Process(pid).kill()
            assert await mcp.health_check("plex") is True
            assert mcp._core.sync.health_detail("plex").checks - checks == 2  # the first check failed
    run(scenario())
