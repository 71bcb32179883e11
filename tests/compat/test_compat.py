"""The seed orchestrator's API (``orchestrator.compat``) on the real stack: the four bundled media
servers with their simulators, workers started with the environment the seed config maps to.

The module gets its own compat stack (``tests/support/compat_stack.py``, fixtures in
``tests/compat/conftest.py``): one threads worker for sabnzbd, sonarr and radarr, one for plex (a
test stops and restarts it), both started with ``worker_environment(seed config)`` and nothing
else, so what the workers do (breaker threshold, retries) shows the mapping reached them.
"""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from orchestrator import compat, errors
from orchestrator.celery_app import make_celery
from orchestrator.compat import (
    CircuitBreakerOpenError,
    MCPConnectionError,
    MCPOrchestrator,
    MCPOrchestratorConfig,
    MCPOrchestratorError,
    MCPTimeoutError,
    MCPToolCall,
    MCPToolError,
    SeedConfigError,
    SeedConfigWarning,
    ServerConfig,
)
from orchestrator.config import DEFAULTS_FILE, Settings, load_settings
from orchestrator.operator.processes import wait_until
from tests.support.compat_stack import WAIT, CompatStack, connected, run, seed_config
from tests.support.media_stack import MEDIA_SERVICES, worker_env

pytestmark = pytest.mark.slow


# -- exceptions and configuration (no stack needed) ------------------------------------------------

def test_the_seed_exception_names_are_our_classes_and_keep_their_attributes_after_a_round_trip() -> None:
    """MCPTimeoutError is DeadlineExceeded (etc.); .context, .timeout, .original_error survive Celery's JSON."""
    assert compat.MCPOrchestratorError is errors.OrchestratorError
    assert MCPConnectionError is errors.ServerUnavailable and MCPToolError is errors.ToolReturnedError
    assert MCPTimeoutError is errors.DeadlineExceeded and CircuitBreakerOpenError is errors.CircuitBreakerOpenError
    assert issubclass(errors.InvalidCall, ValueError)
    backend = make_celery(Settings(broker_url="redis://127.0.0.1:1/0", result_backend="redis://127.0.0.1:1/0")).backend

    def round_trip(error: Exception) -> Any:
        return backend.exception_to_python(json.loads(json.dumps(backend.prepare_exception(error, "json"))))

    timeout = round_trip(MCPTimeoutError("too slow", server="sonarr", tool="sonarr_get_series", timeout=2.5))
    assert type(timeout) is MCPTimeoutError and (timeout.server, timeout.tool, timeout.timeout) == (
        "sonarr", "sonarr_get_series", 2.5)
    assert timeout.message == "too slow" and timeout.context == {"server": "sonarr", "tool": "sonarr_get_series",
                                                                "timeout": 2.5}
    lost = round_trip(MCPConnectionError("gone", server="plex", original_error=ConnectionRefusedError("refused")))
    assert type(lost) is MCPConnectionError and lost.original_error == "ConnectionRefusedError: refused"
    assert round_trip(MCPToolError("bad", server="sabnzbd", tool="sabnzbd_get_queue")).tool == "sabnzbd_get_queue"
    assert isinstance(round_trip(CircuitBreakerOpenError("open", server="radarr")), MCPOrchestratorError)


def test_the_seed_config_maps_each_tunable_and_the_worker_env_rebuilds_the_same_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every honoured tunable lands in Settings; the workers' env reproduces those Settings from their file."""
    config = MCPOrchestratorConfig(
        sabnzbd=ServerConfig("sabnzbd", "http://sab:8080", "sab-key", timeout=7, retry_delay=0.5),
        sonarr=ServerConfig("sonarr", "http://sonarr:8989", "sonarr-key", max_retries=1),
        circuit_breaker_threshold=4, circuit_breaker_timeout=90, circuit_breaker_success_threshold=2,
        health_check_interval=15, health_check_failure_threshold=5, default_tool_timeout=12, max_retries=2,
        keepalive_interval=45, server_aliases={"downloads": "sabnzbd"}, max_parallel_calls=3, parallel_timeout=8,
        max_concurrent_requests=6, cancel_on_critical_failure=True)
    base = load_settings(DEFAULTS_FILE)
    mapping = compat.map_seed_config(config, base)
    sab, sonarr = mapping.settings.servers["sabnzbd"], mapping.settings.servers["sonarr"]
    assert mapping.servers == ("sabnzbd", "sonarr") and not mapping.settings.servers["plex"].enabled
    assert (sab.timeout, sab.connect_timeout, sab.keepalive_seconds) == (12, 7, 45)
    assert (sab.health_interval_seconds, sab.down_after_failures) == (15, 5)
    assert (sab.breaker.failure_threshold, sab.breaker.open_seconds, sab.breaker.success_threshold) == (4, 90, 2)
    assert (sab.retry.max_attempts, sab.retry.backoff_seconds, sonarr.retry.max_attempts) == (3, 0.5, 2)
    assert "downloads" in sab.aliases and mapping.settings.default_timeout == 12
    assert (mapping.options.max_parallel_calls, mapping.options.parallel_timeout) == (3, 8)
    assert mapping.options.max_concurrent_requests == 6 and mapping.options.cancel_on_critical_failure
    env = mapping.worker_environment()
    assert env["SABNZBD_API_KEY"] == "sab-key" and env["SONARR_URL"] == "http://sonarr:8989"
    assert "sab-key" not in mapping.settings.model_dump_json() and "sab-key" not in repr(mapping)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert load_settings(DEFAULTS_FILE).servers == mapping.settings.servers


def test_settings_without_meaning_here_and_secrets_the_facade_cannot_place_are_never_silently_ignored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pool size, auto_reconnect=False and custom retryable_errors warn; url/api_key warn or must match this env."""
    base = load_settings(DEFAULTS_FILE)
    sab = ServerConfig("sabnzbd", "http://sab:8080", "sab-key")
    for tunable, value in [("connection_pool_size", 3), ("auto_reconnect", False), ("retryable_errors", [KeyError])]:
        with pytest.warns(SeedConfigWarning, match=tunable):
            compat.map_seed_config(MCPOrchestratorConfig(sabnzbd=sab, **{tunable: value}), base)
    with pytest.warns(SeedConfigWarning, match="SABNZBD_URL, SABNZBD_API_KEY"):
        MCPOrchestrator(MCPOrchestratorConfig(sabnzbd=sab), settings=base)
    with pytest.raises(SeedConfigError, match="SABNZBD_URL"):
        MCPOrchestrator({"sabnzbd": sab}, settings=base, on_secrets="error")
    monkeypatch.setenv("SABNZBD_URL", "http://sab:8080")
    monkeypatch.setenv("SABNZBD_API_KEY", "another-key")
    with pytest.raises(SeedConfigError, match=r"sabnzbd\.api_key: differs from SABNZBD_API_KEY") as caught:
        MCPOrchestrator({"sabnzbd": sab}, settings=base)
    assert "another-key" not in str(caught.value) and "sab-key" not in str(caught.value)
    monkeypatch.setenv("SABNZBD_API_KEY", "sab-key")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MCPOrchestrator({"sabnzbd": sab}, settings=base)  # confirmed by this process's env: no warning
    with pytest.raises(ValueError):
        MCPOrchestrator(None)
    with pytest.raises(TypeError):
        MCPOrchestrator(["sabnzbd"])
    with pytest.raises(ValueError, match="api_key"):
        ServerConfig("sabnzbd", "http://sab:8080", "")
    with pytest.raises(SeedConfigError, match=r"server_aliases\.dl"):
        compat.map_seed_config(MCPOrchestratorConfig(sabnzbd=sab, server_aliases={"dl": "plex"}), base)


# -- calls through the queue ----------------------------------------------------------------------

def test_calls_route_to_the_named_server_or_an_alias_and_return_the_tools_data(stack: CompatStack) -> None:
    """call_tool returns the tool's data; include_metadata wraps it with server, tool and duration."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            queue = await mcp.call_tool("sabnzbd", "sabnzbd_get_queue", {})
            assert isinstance(queue, dict) and "slots" in json.dumps(queue)
            for name in ("sab", "downloads", "SABNZBD"):
                assert (await mcp.call_tool(name, "sabnzbd_get_queue", {})).keys() == queue.keys()  # it progresses
            wrapped = await mcp.call_tool("tv", "sonarr_get_series", {}, include_metadata=True)
            assert set(wrapped) == {"data", "metadata"}
            meta = wrapped["metadata"]
            assert (meta["server"], meta["tool"]) == ("sonarr", "sonarr_get_series")
            assert 0 < meta["duration"] < WAIT and meta["worker"] == "compat@test"
    run(scenario())


def test_an_unprefixed_tool_name_resolves_and_an_unknown_one_names_close_matches(stack: CompatStack) -> None:
    """get_queue on sabnzbd runs sabnzbd_get_queue (metadata keeps the name passed); get_queu and
    get_series get errors naming the near names."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            meta = (await mcp.call_tool("sabnzbd", "get_queue", {}, include_metadata=True))["metadata"]
            assert (meta["tool"], meta["resolved_tool"]) == ("get_queue", "sabnzbd_get_queue")
            meta = (await mcp.call_tool("movies", "get_movies", {}, include_metadata=True))["metadata"]
            assert (meta["tool"], meta["resolved_tool"]) == ("get_movies", "radarr_get_movies")
            with pytest.raises(MCPToolError, match="close matches on sabnzbd: sabnzbd_get_queue"):
                await mcp.call_tool("sabnzbd", "get_queu", {})
            with pytest.raises(MCPToolError, match="found as sonarr_get_series on sonarr"):
                await mcp.call_tool("sabnzbd", "get_series", {})
    run(scenario())


def test_bad_input_is_refused_as_a_value_error_before_anything_is_enqueued(stack: CompatStack) -> None:
    """An unknown server, an empty tool, non-dict params or params failing the schema never reach a queue."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            await mcp.call_tool("sonarr", "sonarr_get_series", {})  # the catalog is filled
            queued = stack.redis.llen("mcp.sonarr")
            with pytest.raises(ValueError, match="Invalid server: 'lidarr'"):
                await mcp.call_tool("lidarr", "get_artists", {})
            with pytest.raises(ValueError, match="tool: must be a non-empty string"):
                await mcp.call_tool("sonarr", "", {})
            with pytest.raises(ValueError, match="params must be a dict"):
                await mcp.call_tool("sonarr", "sonarr_get_series", ["not", "a", "dict"])
            with pytest.raises(ValueError, match=r"params\.series_id") as caught:
                await mcp.call_tool("sonarr", "get_series_by_id", {"series_id": "one"})
            assert caught.value.field == "params.series_id" and caught.value.tool == "get_series_by_id"
            assert stack.redis.llen("mcp.sonarr") == queued
    run(scenario())


def test_a_call_that_outlives_its_timeout_raises_mcp_timeout_error_and_reaches_on_error(stack: CompatStack) -> None:
    """A slow upstream and timeout=1 give MCPTimeoutError(.server, .tool, .timeout=1) within a few seconds."""
    reported: list[dict[str, Any]] = []

    async def scenario() -> None:
        async with await connected(stack) as mcp:
            mcp.on_error = reported.append
            stack.sims["radarr"].faults = {"latency_ms": 4000}
            started = time.monotonic()
            with pytest.raises(MCPTimeoutError) as caught:
                await mcp.call_tool("radarr", "radarr_get_movies", {}, timeout=1)
            assert time.monotonic() - started < 5
            assert (caught.value.server, caught.value.tool, caught.value.timeout) == ("radarr", "radarr_get_movies", 1)
            assert mcp.get_stats()["failed_calls"] == 1
    run(scenario())
    assert len(reported) == 1 and set(reported[0]) == {"server", "tool", "error", "attempt"}
    assert reported[0]["server"] == "radarr" and isinstance(reported[0]["error"], MCPTimeoutError)
    assert reported[0]["attempt"] >= 1


def test_parallel_calls_keep_input_order_with_mixed_results_and_report_progress(stack: CompatStack) -> None:
    """Five calls (two servers, a bad server, a tool error) come back in order as {success, data, error}."""
    progress: list[tuple[int, int]] = []

    async def on_progress(done: int, total: int) -> None:
        progress.append((done, total))

    async def scenario() -> list[dict[str, Any]]:
        async with await connected(stack) as mcp:
            return await mcp.call_tools_parallel([
                MCPToolCall("sabnzbd", "get_queue", {}),
                {"server": "tv", "tool": "sonarr_get_series", "params": {}},
                MCPToolCall("lidarr", "get_artists", {}),
                ("sonarr", "sonarr_get_series_by_id", {"series_id": 987654}),
                MCPToolCall("radarr", "radarr_get_movies", {"limit": 1}),
            ], progress_callback=on_progress)

    results = run(scenario())
    assert [r["success"] for r in results] == [True, True, False, False, True]
    assert all(set(r) == {"success", "data", "error"} for r in results)
    assert "slots" in json.dumps(results[0]["data"]) and results[1]["error"] is None
    assert "Invalid server" in results[2]["error"] and results[2]["data"] == {}
    assert "[upstream_not_found]" in results[3]["error"]
    assert progress[-1] == (5, 5) and [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_a_parallel_timeout_returns_partial_results_or_raises_timeout_error(stack: CompatStack) -> None:
    """With parallel_timeout, finished calls are kept and the rest read 'Timeout' (or TimeoutError is raised)."""
    async def scenario() -> None:
        async with await connected(stack, parallel_timeout=1.5) as mcp:
            stack.sims["radarr"].faults = {"latency_ms": 5000}
            calls = [MCPToolCall("sabnzbd", "sabnzbd_get_queue", {}), MCPToolCall("radarr", "radarr_get_movies", {})]
            started = time.monotonic()
            partial = await mcp.call_tools_parallel(calls, return_partial=True)
            assert time.monotonic() - started < 4
            assert partial[0]["success"] and partial[1] == {"success": False, "data": {}, "error": "Timeout"}
            with pytest.raises(asyncio.TimeoutError):
                await mcp.call_tools_parallel(calls)
    run(scenario())


def test_max_parallel_calls_and_max_concurrent_requests_cap_what_reaches_the_upstream(stack: CompatStack) -> None:
    """The seed's two concurrency tunables hold, measured at the simulators: a batch never has more than
    max_parallel_calls of one server's calls in flight, concurrent call_tool()s never more than
    max_concurrent_requests (the workers alone would run 8 at once)."""
    async def scenario() -> tuple[int, int]:
        async with await connected(stack, max_parallel_calls=2, max_concurrent_requests=3) as mcp:
            sonarr, radarr = stack.sims["sonarr"], stack.sims["radarr"]
            for sim in (sonarr, radarr):  # slow requests of an earlier test may still be in flight
                await asyncio.to_thread(wait_until, lambda sim=sim: sim.stats()["in_flight"] == 0, WAIT,
                                        "earlier requests to finish")
                sim.faults = {"latency_ms": 300}
                sim.reset_stats()
            batch = await mcp.call_tools_parallel([MCPToolCall("sonarr", "sonarr_get_series", {})] * 8)
            assert all(result["success"] for result in batch)
            await asyncio.gather(*(mcp.call_tool("radarr", "radarr_get_movies", {}) for _ in range(8)))
            return sonarr.stats()["max_in_flight"], radarr.stats()["max_in_flight"]

    assert run(scenario(), timeout=40) == (2, 3)


def test_cancel_on_critical_failure_raises_the_batchs_permanent_failure(stack: CompatStack) -> None:
    """With cancel_on_critical_failure a tool error in a batch raises MCPOrchestratorError naming the call."""
    async def scenario() -> None:
        async with await connected(stack, cancel_on_critical_failure=True) as mcp:
            with pytest.raises(MCPOrchestratorError, match=r"critical failure in calls\[1\]"):
                await mcp.call_tools_parallel([MCPToolCall("sabnzbd", "sabnzbd_get_queue", {}),
                                               MCPToolCall("sonarr", "sonarr_get_series_by_id", {"series_id": 987654})])
    run(scenario())


def test_the_breaker_opens_after_the_seed_threshold_and_closes_after_its_timeout(stack: CompatStack) -> None:
    """Two upstream failures (threshold 2, as mapped to the workers) open it; after 1 s one success closes it."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            assert mcp.get_circuit_breaker_state("sonarr")["state"] == "closed"
            stack.sims["sonarr"].faults = {"down": True}
            for _ in range(2):
                with pytest.raises(MCPConnectionError, match="upstream_unavailable"):
                    await mcp.call_tool("sonarr", "sonarr_get_series", {})
            with pytest.raises(CircuitBreakerOpenError) as caught:
                await mcp.call_tool("sonarr", "sonarr_get_series", {})
            assert caught.value.server == "sonarr"
            state = mcp.get_circuit_breaker_state("tv")
            assert state["state"] == "open" and state["trips"] == 1 and state["last_failure_time"]
            assert (state["threshold"], state["timeout"], state["success_threshold"]) == (2, 1.0, 1)
            stack.sims["sonarr"].faults = {}
            await asyncio.sleep(1.2)
            assert isinstance(await mcp.call_tool("sonarr", "sonarr_get_series", {}), list)
            assert mcp.get_circuit_breaker_state("sonarr")["state"] == "closed"
    run(scenario())


# -- connection, health, stats, lifecycle -----------------------------------------------------------

def test_connection_state_follows_connect_disconnect_and_reconnect(stack: CompatStack) -> None:
    """Connected servers take calls; a disconnected one raises MCPConnectionError until reconnected."""
    async def scenario() -> None:
        mcp = stack.facade()
        with pytest.raises(MCPConnectionError, match="not connected"):
            await mcp.call_tool("sabnzbd", "sabnzbd_get_queue", {})
        assert await mcp.connect_all() == dict.fromkeys(MEDIA_SERVICES, True)
        assert sorted(mcp.get_connected_servers()) == sorted(await mcp.get_connected_servers()) == sorted(
            MEDIA_SERVICES)
        await mcp.disconnect("tv")
        assert not await mcp.is_connected("sonarr") and "sonarr" not in mcp.get_connected_servers()
        with pytest.raises(MCPConnectionError):
            await mcp.call_tool("sonarr", "sonarr_get_series", {})
        assert await mcp.reconnect("sonarr") and await mcp.is_connected("sonarr")
        assert "get_series" in await mcp.list_tools("sonarr")
        assert set(await mcp.list_all_tools()) == set(MEDIA_SERVICES)
        await mcp.disconnect_all()
        assert mcp.get_connected_servers() == []
        await mcp.shutdown()
    run(scenario())


def test_failed_health_checks_mark_a_server_down_and_one_passing_check_brings_it_back(stack: CompatStack) -> None:
    """Without plex's worker two checks (the threshold) mark it down; with the worker back it is up again."""
    async def scenario(step: str) -> None:
        async with await connected(stack) if step == "up-first" else stack.facade() as mcp:
            if step == "up-first":
                assert await mcp.health_check("plex") and mcp.get_server_status("plex")["status"] == "healthy"
                return
            await mcp.connect("plex")
            if step == "down":
                assert not await mcp.health_check("plex")
                assert mcp.get_server_status("plex")["status"] == "down"  # no worker reads as down at once
                assert not await mcp.health_check("plex")
                status = mcp.get_server_status("library")
                assert status["consecutive_failures"] >= 2 and status["down_after"] == 2 and not status["connected"]
                with pytest.raises(MCPConnectionError, match=r"no worker consumes mcp\.plex"):
                    await mcp.call_tool("plex", "plex_get_libraries", {})
                detail = await mcp.health_check_detailed("plex")
                assert detail["healthy"] is False and detail["error"] and detail["last_check_time"]
            else:
                assert await mcp.health_check("plex") and await mcp.is_connected("plex")
                status = mcp.get_server_status("plex")
                assert status["status"] == "healthy" and status["consecutive_failures"] == 0
                assert (await mcp.health_check_all())["plex"] is True  # the others are not in use here
                assert isinstance(await mcp.call_tool("plex", "plex_get_libraries", {}), list)
                assert mcp.get_stats()["total_health_checks"] == 5

    run(scenario("up-first"))
    stack.workers.pop("plex").stop()
    run(scenario("down"))
    stack.start_plex_worker()
    run(scenario("up"))
    assert mcp_status_unknown_for_unserved(stack)


def mcp_status_unknown_for_unserved(stack: CompatStack) -> bool:
    return stack.facade().get_server_status("lidarr") == {"status": "unknown"}


def test_stats_count_successful_calls_per_server_and_health_checks(stack: CompatStack) -> None:
    """get_stats has the seed's total_calls, calls_per_server and total_health_checks."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            for _ in range(3):
                await mcp.call_tool("sab", "sabnzbd_get_queue", {})
            await mcp.call_tool("plex", "get_libraries", {})
            with pytest.raises(MCPToolError):
                await mcp.call_tool("sonarr", "sonarr_get_series_by_id", {"series_id": 987654})
            await mcp.health_check_all()
            stats = mcp.get_stats()
            assert stats["total_calls"] == 4 and stats["calls_per_server"] == {"sabnzbd": 3, "plex": 1}
            assert stats["total_health_checks"] == 4 and stats["failed_calls"] == 1
            assert stats["in_flight_calls"] == 0
    run(scenario())


def test_the_context_manager_shuts_down_and_refuses_later_calls(stack: CompatStack) -> None:
    """Leaving ``async with`` shuts the facade down; a later call raises MCPConnectionError."""
    async def scenario() -> None:
        async with await connected(stack) as mcp:
            await mcp.call_tool("sabnzbd", "sabnzbd_get_queue", {})
        with pytest.raises(MCPConnectionError, match="shut down"):
            await mcp.call_tool("sabnzbd", "sabnzbd_get_queue", {})
        await mcp.restart()
        assert await mcp.call_tool("sabnzbd", "sabnzbd_get_queue", {}) is not None
        await mcp.shutdown()
    run(scenario())


def test_a_graceful_shutdown_waits_for_in_flight_calls_and_a_short_one_cancels_them(stack: CompatStack) -> None:
    """shutdown(graceful=True) returns once the slow call ended; timeout=0.2 gives its caller MCPConnectionError."""
    async def scenario() -> None:
        stack.sims["radarr"].faults = {"latency_ms": 1200}
        mcp = await connected(stack)
        call = asyncio.ensure_future(mcp.call_tool("radarr", "radarr_get_movies", {}))
        await asyncio.sleep(0.3)
        assert mcp.get_stats()["in_flight_calls"] == 1
        started = time.monotonic()
        await mcp.shutdown(graceful=True, timeout=10)
        assert call.done() and isinstance(call.result(), list) and time.monotonic() - started > 0.5
        impatient = await connected(stack)
        call = asyncio.ensure_future(impatient.call_tool("radarr", "radarr_get_movies", {}))
        await asyncio.sleep(0.3)
        await impatient.shutdown(graceful=True, timeout=0.2)
        with pytest.raises(MCPConnectionError, match="shut down"):
            await call
    run(scenario())


def test_the_facade_has_the_seeds_whole_public_surface() -> None:
    """Every seed method exists, async where the seed's was."""
    asynchronous = ["connect_all", "connect", "disconnect", "disconnect_all", "reconnect", "is_connected",
                    "call_tool", "call_tools_parallel", "list_tools", "list_all_tools", "health_check",
                    "health_check_all", "health_check_detailed", "shutdown", "restart", "__aenter__", "__aexit__",
                    "restore_connection_state"]
    for name in asynchronous:
        assert asyncio.iscoroutinefunction(getattr(MCPOrchestrator, name)), name
    for name in ("get_server_status", "get_circuit_breaker_state", "get_stats", "get_connected_servers",
                 "get_connection_state", "start_keepalive", "stop_keepalive", "start_periodic_health_checks",
                 "stop_periodic_health_checks", "get_pending_tasks", "get_connection_pool_state", "check_for_leaks"):
        assert callable(getattr(MCPOrchestrator, name)) and not asyncio.iscoroutinefunction(
            getattr(MCPOrchestrator, name))


def test_the_worker_env_of_the_seed_config_is_what_the_media_workers_expect(compat_stack: CompatStack) -> None:
    """The mapped secrets are exactly the variables the bundled media servers read, with the config's values."""
    env = compat.worker_environment(seed_config(compat_stack.sims), compat_stack.base)
    expected = worker_env(compat_stack.sims, Path("unused"))
    expected.pop("MCP_ORCH_CONFIG")
    assert {key: value for key, value in env.items() if not key.startswith("MCP_ORCH_")} == expected
