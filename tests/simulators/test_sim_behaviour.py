"""The upstream simulators: fault knobs, statistics, key checks like the real services, and stateful data."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.testclient import TestClient

import upstream_sim
from tests.support.media import REPO_ROOT
from tests.support.ports import free_port

KEY = "sim-test-key"


@pytest.fixture
def sonarr() -> Iterator[upstream_sim.SimHandle]:
    handle = upstream_sim.run_in_thread("sonarr", KEY)
    yield handle
    handle.stop()


@pytest.fixture
def sab() -> Iterator[upstream_sim.SimHandle]:
    handle = upstream_sim.run_in_thread("sabnzbd", KEY)
    yield handle
    handle.stop()


def sab_get(handle: upstream_sim.SimHandle, **params: str) -> httpx.Response:
    return httpx.get(f"{handle.url}/api", params={"output": "json", **params}, timeout=10)


def test_faults_are_shown_and_set_over_http(sonarr: upstream_sim.SimHandle) -> None:
    """POST /__sim__/faults changes only the given knobs; GET shows them; unknown knobs are refused."""
    changed = httpx.post(f"{sonarr.url}/__sim__/faults", json={"latency_ms": 5, "error_rate": 0.25}, timeout=10)
    assert changed.json()["latency_ms"] == 5 and changed.json()["error_rate"] == 0.25
    assert httpx.get(f"{sonarr.url}/__sim__/faults", timeout=10).json()["down"] is False
    assert sonarr.faults.latency_ms == 5
    refused = httpx.put(f"{sonarr.url}/__sim__/faults", json={"explode": True}, timeout=10)
    assert refused.status_code == 400 and "explode" in refused.json()["error"]


def test_control_routes_answer_only_loopback_clients() -> None:
    """A client that is not on loopback gets 403 from /__sim__ routes."""
    client = TestClient(upstream_sim.create("plex", KEY).app)
    assert client.get("/__sim__/faults").status_code == 403


def test_down_answers_503_to_everything_but_the_control_routes(sonarr: upstream_sim.SimHandle) -> None:
    """With down set, service endpoints answer 503 while /__sim__ still works."""
    sonarr.faults = {"down": True}
    assert httpx.get(f"{sonarr.url}/api/v3/series", headers={"X-Api-Key": KEY}, timeout=10).status_code == 503
    assert httpx.get(f"{sonarr.url}/__sim__/stats", timeout=10).status_code == 200


def test_error_rate_fails_about_that_fraction_of_requests(sonarr: upstream_sim.SimHandle) -> None:
    """error_rate 0.5 answers roughly half the requests with the chosen 5xx status."""
    sonarr.faults = {"error_rate": 0.5, "error_status": 500}
    with httpx.Client(base_url=sonarr.url, headers={"X-Api-Key": KEY}, timeout=10) as client:
        statuses = [client.get("/api/v3/system/status").status_code for _ in range(200)]
    assert set(statuses) == {200, 500}
    assert 60 <= statuses.count(500) <= 140


def test_slow_delays_only_matching_paths(sonarr: upstream_sim.SimHandle) -> None:
    """A slow entry delays requests under its path prefix and leaves others fast."""
    sonarr.faults = {"slow": {"/api/v3/queue": 400}}
    with httpx.Client(base_url=sonarr.url, headers={"X-Api-Key": KEY}, timeout=10) as client:
        started = time.monotonic()
        client.get("/api/v3/queue")
        slow = time.monotonic() - started
        started = time.monotonic()
        client.get("/api/v3/series")
        fast = time.monotonic() - started
    assert slow >= 0.4 > fast


def test_stats_count_requests_per_path_and_peak_concurrency(sonarr: upstream_sim.SimHandle) -> None:
    """Stats count each path and record the most requests in flight at once."""
    sonarr.faults = {"latency_ms": 300}
    sonarr.reset_stats()

    async def burst() -> None:
        async with httpx.AsyncClient(base_url=sonarr.url, headers={"X-Api-Key": KEY}, timeout=10) as client:
            await asyncio.gather(*(client.get("/api/v3/series") for _ in range(6)))

    asyncio.run(asyncio.wait_for(burst(), timeout=10))
    stats = httpx.get(f"{sonarr.url}/__sim__/stats", timeout=10).json()
    assert stats["requests"] == {"/api/v3/series": 6}
    assert stats["max_in_flight"] == 6 and stats["in_flight"] == 0


def test_sabnzbd_checks_the_key_like_sabnzbd(sab: upstream_sim.SimHandle) -> None:
    """Wrong or missing keys get SABnzbd's plain-text 403s; mode=version needs no key."""
    wrong = sab_get(sab, mode="queue", apikey="nope")
    assert (wrong.status_code, wrong.text) == (403, "API Key Incorrect")
    assert sab_get(sab, mode="queue").text == "API Key Required"
    assert sab_get(sab, mode="version").json() == {"version": "5.0.1"}
    assert sab_get(sab, mode="frobnicate", apikey=KEY).json() == {"status": False, "error": "not implemented"}


@pytest.mark.parametrize("service", ["sonarr", "radarr"])
def test_arr_simulators_take_the_key_as_header_or_query(service: str) -> None:
    """Sonarr/Radarr accept X-Api-Key or ?apikey= and answer 401 otherwise."""
    with upstream_sim.run_in_thread(service, KEY) as handle:
        url = f"{handle.url}/api/v3/system/status"
        assert httpx.get(url, headers={"X-Api-Key": KEY}, timeout=10).json()["appName"] == service.title()
        assert httpx.get(url, params={"apikey": KEY}, timeout=10).status_code == 200
        assert httpx.get(url, headers={"X-Api-Key": "nope"}, timeout=10).status_code == 401


@pytest.mark.parametrize("service", ["sonarr", "radarr"])
def test_arr_simulators_answer_ping_without_a_key_and_their_settings_only_with_it(service: str) -> None:
    """/ping is the keyless liveness probe; quality profiles, root folders, tags and languages need the key."""
    with upstream_sim.run_in_thread(service, KEY) as handle:
        assert httpx.get(f"{handle.url}/ping", timeout=10).json() == {"status": "OK"}
        for resource in ("qualityprofile", "rootfolder", "tag", "language", "diskspace", "health"):
            url = f"{handle.url}/api/v3/{resource}"
            assert httpx.get(url, timeout=10).status_code == 401, resource
            assert isinstance(httpx.get(url, headers={"X-Api-Key": KEY}, timeout=10).json(), list), resource


@pytest.mark.parametrize("service", ["sonarr", "radarr"])
def test_arr_simulators_refuse_an_unknown_quality_profile_and_keep_add_options(service: str) -> None:
    """Adding with a profile id that /qualityprofile lacks is a 400 naming QualityProfileId; addOptions come back."""
    key, external, root = ("tvdbId", 393189, "/tv") if service == "sonarr" else ("tmdbId", 157336, "/movies")
    resource = "series" if service == "sonarr" else "movie"
    with upstream_sim.run_in_thread(service, KEY) as handle, httpx.Client(
        base_url=f"{handle.url}/api/v3", headers={"X-Api-Key": KEY}, timeout=10
    ) as client:
        assert {profile["id"] for profile in client.get("/qualityprofile").json()} == {1, 4}
        body = {key: external, "qualityProfileId": 2, "rootFolderPath": root}
        refused = client.post(f"/{resource}", json=body)
        assert refused.status_code == 400 and refused.json()[0]["propertyName"] == "QualityProfileId"
        added = client.post(f"/{resource}", json={**body, "qualityProfileId": 4, "addOptions": {"monitor": "all"}})
        assert added.status_code == 200 and added.json()["addOptions"] == {"monitor": "all"}
        assert client.get(f"/qualityprofile/{added.json()['qualityProfileId']}").json()["name"] == "HD-1080p"


def test_plex_takes_the_token_as_header_or_query() -> None:
    """Plex accepts X-Plex-Token as header or query and answers 401 otherwise."""
    with upstream_sim.run_in_thread("plex", KEY) as handle:
        url = f"{handle.url}/library/sections"
        assert httpx.get(url, headers={"X-Plex-Token": KEY}, timeout=10).status_code == 200
        assert httpx.get(url, params={"X-Plex-Token": KEY}, timeout=10).status_code == 200
        assert httpx.get(url, timeout=10).status_code == 401


def test_sabnzbd_jobs_finish_into_history_as_time_passes(sab: upstream_sim.SimHandle) -> None:
    """Downloading jobs complete into history as Completed, leaving only the paused job queued."""
    sab.state.clock.advance(3600)
    queue = sab_get(sab, mode="queue", apikey=KEY).json()["queue"]
    assert [slot["status"] for slot in queue["slots"]] == ["Paused"]
    history = sab_get(sab, mode="history", apikey=KEY).json()["history"]
    newest = {slot["name"]: slot["status"] for slot in history["slots"][:2]}
    assert newest == {
        "Another.Show.S02E05.1080p.WEB.h264-GRP": "Completed",
        "Some.Movie.2023.2160p.UHD.BluRay.x265-GRP": "Completed",
    }


def test_a_retried_job_fails_again_into_history(sab: upstream_sim.SimHandle) -> None:
    """A retried job whose articles are missing ends in history as Failed again, with SABnzbd's message."""
    failed = sab_get(sab, mode="history", apikey=KEY, failed_only="1").json()["history"]["slots"][0]
    new_id = sab_get(sab, mode="retry", apikey=KEY, value=failed["nzo_id"]).json()["nzo_id"]
    sab.state.clock.advance(3600)
    again = sab_get(sab, mode="history", apikey=KEY, failed_only="1").json()["history"]["slots"]
    assert [(slot["nzo_id"], slot["status"]) for slot in again] == [(new_id, "Failed")]
    assert "Not on your server" in again[0]["fail_message"]


def test_a_stopped_simulator_refuses_connections() -> None:
    """After stop() nothing listens on the simulator's port."""
    handle = upstream_sim.run_in_thread("radarr", KEY)
    handle.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{handle.url}/api/v3/movie", timeout=5)


@pytest.mark.slow
def test_the_command_line_serves_a_simulator_with_the_key_from_the_environment() -> None:
    """``python -m upstream_sim plex --port N`` serves Plex, taking PLEX_TOKEN from the environment."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "upstream_sim", "plex", "--port", str(port)],
        env={"PLEX_TOKEN": KEY},
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the simulator exited"
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/identity", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the simulator never answered"
                time.sleep(0.05)
        assert reply.json()["MediaContainer"]["claimed"] is True
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)
