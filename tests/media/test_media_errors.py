"""Upstream failures reach MCP callers as tagged isError results, never leaking the key; start-up checks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

import upstream_sim
from orchestrator.operator.processes import port_open, wait_until
from tests.support.media import CANARY, REPO_ROOT, HeldClient, Served, everything_in, read_tool, server_env, text_of
from tests.support.ports import free_port

TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def faulty() -> Iterator[Served]:
    """A SABnzbd server with a short upstream timeout, so latency faults turn into timeouts."""
    served = Served("sabnzbd", timeout=TIMEOUT_S)
    yield served
    served.close()


@pytest.fixture
def sab(faulty: Served) -> Iterator[Served]:
    faulty.sim.faults = {}
    yield faulty
    faulty.sim.faults = {}


@pytest.mark.slow
@pytest.mark.parametrize("service", upstream_sim.SERVICES)
def test_a_wrong_key_is_an_unauthorized_error_that_never_shows_either_key(service: str) -> None:
    """A server holding the wrong key gets 401/403 upstream and reports upstream_unauthorized."""
    wrong = f"WRONG-{service}-key-1234"
    served = Served(service, server_secret=wrong)
    try:
        tool, arguments = read_tool(service)
        text = served.fails(tool, arguments, tag="upstream_unauthorized")
        assert wrong not in text and "unauthorized" in text
    finally:
        served.close()


@pytest.mark.parametrize("status", [500, 503])
def test_upstream_server_errors_are_unavailable_errors_with_the_status(sab: Served, status: int) -> None:
    """Every request failing with a 5xx gives upstream_unavailable naming the HTTP status."""
    sab.sim.faults = {"error_rate": 1.0, "error_status": status}
    assert f"HTTP {status}" in sab.fails("sabnzbd_get_history", tag="upstream_unavailable")


def test_a_down_upstream_is_an_unavailable_error(sab: Served) -> None:
    """A simulator marked down answers 503 to everything, reported as upstream_unavailable."""
    sab.sim.faults = {"down": True}
    assert "HTTP 503" in sab.fails("sabnzbd_get_status", tag="upstream_unavailable")


def test_a_slow_upstream_times_out_after_the_configured_seconds(sab: Served) -> None:
    """Latency beyond SABNZBD_TIMEOUT gives upstream_unavailable saying how long it waited."""
    sab.sim.faults = {"slow": {"/api": 1500}}
    text = sab.fails("sabnzbd_get_queue", tag="upstream_unavailable")
    assert f"timed out after {TIMEOUT_S:g}s" in text


def test_the_server_recovers_once_faults_clear(sab: Served) -> None:
    """After a fault the same session serves data again: errors do not poison the client."""
    sab.sim.faults = {"down": True}
    sab.fails("sabnzbd_get_queue", tag="upstream_unavailable")
    sab.sim.faults = {}
    assert sab.ok("sabnzbd_get_queue")["queue"]["version"] == "5.0.1"


@pytest.mark.slow
def test_a_stopped_upstream_is_an_unreachable_error() -> None:
    """With the simulator stopped the connection is refused, reported as upstream_unavailable."""
    served = Served("sonarr")
    try:
        served.sim.stop()
        text = served.fails("sonarr_get_queue", tag="upstream_unavailable")
        assert "unreachable" in text
    finally:
        served.client.close()


@pytest.mark.parametrize(
    ("faults", "tag"),
    [
        ({"down": True}, "upstream_unavailable"),
        ({"slow": {"/api": 1500}}, "upstream_unavailable"),
        ({}, "upstream_not_found"),
    ],
)
def test_no_error_text_contains_the_key_even_when_the_caller_sends_it(sab: Served, faults: dict, tag: str) -> None:
    """Error texts are redacted: the key is masked even when a caller passes it in as an argument."""
    sab.sim.faults = faults
    sab.fails("sabnzbd_retry_download", {"nzo_id": CANARY["sabnzbd"]}, tag=tag)


@pytest.mark.parametrize(
    ("env", "missing"),
    [({}, "SONARR_URL"), ({"SONARR_URL": "http://127.0.0.1:9"}, "SONARR_API_KEY")],
)
def test_a_server_without_its_settings_exits_naming_the_variable(env: dict[str, str], missing: str) -> None:
    """Missing URL or key stops the process at start with one line naming the variable."""
    done = subprocess.run(
        [sys.executable, "-m", "media_mcp.sonarr"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and missing in done.stderr


def wait_for_server(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait until ``process`` listens on ``port``; fail with its stderr if it exits first."""

    def listening() -> bool:
        assert process.poll() is None, process.stderr.read() if process.stderr else "server exited"
        return port_open(port)

    wait_until(listening, timeout, f"port {port} to accept connections", interval=0.05)


@pytest.mark.slow
def test_every_server_also_serves_streamable_http() -> None:
    """``--transport http`` serves the same tools at /mcp, with errors tagged the same way."""
    secret = CANARY["radarr"]
    sim = upstream_sim.run_in_thread("radarr", secret)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "media_mcp.radarr", "--transport", "http", "--host", "127.0.0.1", "--port", str(port)],
        env=server_env("radarr", sim.url, secret),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_server(port, process)
        client = HeldClient(f"http://127.0.0.1:{port}/mcp")
        try:
            movies = client.call("radarr_get_movies")
            assert not movies.is_error and secret not in everything_in(movies)
            assert "Oppenheimer" in {movie["title"] for movie in movies.structured_content["data"]}
            missing = client.call("radarr_get_movie_by_id", {"movie_id": 404})
            assert missing.is_error and text_of(missing).startswith("[upstream_not_found] ")
        finally:
            client.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
        sim.stop()
