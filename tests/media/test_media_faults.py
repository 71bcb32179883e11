"""An upstream made to fail with the simulator's fault knobs: retries for safe tools only, and the
breaker opens within its threshold and closes again after recovery."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import CircuitBreakerOpenError, UpstreamUnavailable
from orchestrator.operator.processes import wait_until
from tests.support.media_stack import MediaStack, running_media_stack
from tests.support.redis_proc import RedisServer

pytestmark = pytest.mark.slow
BROKER_DB = 10


@pytest.fixture
def media(redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MediaStack]:
    """The four media servers with a quick Sonarr breaker (3 failures, 1 s open, 1 success to close)."""
    for name, value in {"FAILURE_THRESHOLD": "3", "OPEN_SECONDS": "1", "SUCCESS_THRESHOLD": "1"}.items():
        monkeypatch.setenv(f"MCP_ORCH_SERVERS__SONARR__BREAKER__{name}", value)
    monkeypatch.setenv("MCP_ORCH_SERVERS__SONARR__RETRY__BACKOFF_SECONDS", "0.01")
    with running_media_stack(f"{redis_server.url}/{BROKER_DB}", tmp_path, worker_name="media-faults") as stack:
        yield stack


def upstream_requests(stack: MediaStack, prefix: str) -> int:
    return sum(n for path, n in stack.sims["sonarr"].stats()["requests"].items() if path.startswith(prefix))


def test_a_down_upstream_is_retried_for_safe_tools_only_then_trips_the_breaker_until_it_recovers(
        media: MediaStack) -> None:
    """Sonarr down: a read is tried 3 times, a delete once; the third failed call opens the breaker (it counts
    calls, not attempts), which fails fast, then closes."""
    client = media.client()
    sim = media.sims["sonarr"]
    sim.faults = {"down": True}
    sim.reset_stats()

    with pytest.raises(UpstreamUnavailable) as unsafe:
        client.call_tool("sonarr", "sonarr_delete_series", {"series_id": 1})
    assert unsafe.value.result["attempts"] == 1
    assert upstream_requests(media, "/api/v3/series/1") == 1

    for failed_calls in (2, 3):
        with pytest.raises(UpstreamUnavailable) as safe:
            client.call_tool("sonarr", "sonarr_get_series")
        assert safe.value.result["attempts"] == 3
        assert client.breaker_states()["sonarr"].state == ("open" if failed_calls == 3 else "closed")

    requests_before = sim.stats()["total"]
    with pytest.raises(CircuitBreakerOpenError):
        client.call_tool("sonarr", "sonarr_get_series")
    assert sim.stats()["total"] == requests_before, "an open breaker must not reach the upstream"
    assert client.call_tool("radarr", "radarr_get_movies").ok, "other servers are not affected"

    sim.faults = {}
    wait_until(lambda: client.breaker_states()["sonarr"].retry_after in (None, 0), 5, "the open wait to pass")
    assert client.call_tool("sonarr", "sonarr_get_series").ok
    assert client.breaker_states()["sonarr"].state == "closed"
