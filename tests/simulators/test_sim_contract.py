"""The Sonarr and Radarr simulators answer every endpoint the MCP tools use as the official OpenAPI specs say."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

import upstream_sim

SPECS = Path(__file__).resolve().parents[1] / "contracts"
KEY = "contract-key"
SPEC_HOST = {"sonarr": "http://localhost:8989", "radarr": "http://localhost:7878"}
NEXT_MONTH = {"start": str(datetime.now(UTC).date()), "end": str(datetime.now(UTC).date() + timedelta(days=30))}

# (method, path, query, body): the settings third-party *arr clients read, answered alike by both simulators.
SETTINGS = [
    ("GET", "/api/v3/qualityprofile", {}, None),
    ("GET", "/api/v3/qualityprofile/1", {}, None),
    ("GET", "/api/v3/rootfolder", {}, None),
    ("GET", "/api/v3/rootfolder/1", {}, None),
    ("GET", "/api/v3/tag", {}, None),
    ("GET", "/api/v3/language", {}, None),
    ("GET", "/api/v3/command", {}, None),
    ("GET", "/api/v3/health", {}, None),
    ("GET", "/api/v3/diskspace", {}, None),
    ("GET", "/ping", {}, None),
    ("GET", "/api/v3/system/backup", {}, None),
    ("GET", "/api/v3/history", {"page": "1", "pageSize": "20"}, None),
    ("GET", "/api/v3/blocklist", {"page": "1", "pageSize": "20"}, None),
    ("GET", "/api/v3/log", {"page": "1", "pageSize": "20"}, None),
]
# (method, path, query, body): every upstream call behind a tool, plus the health check and SETTINGS.
CALLS = {
    "sonarr": [
        ("GET", "/api/v3/system/status", {}, None),
        ("GET", "/api/v3/series", {}, None),
        ("GET", "/api/v3/series/1", {}, None),
        ("GET", "/api/v3/series/lookup", {"term": "the"}, None),
        ("POST", "/api/v3/series", {}, {"tvdbId": 403245, "qualityProfileId": 1, "rootFolderPath": "/tv"}),
        ("GET", "/api/v3/episode", {"seriesId": "2", "seasonNumber": "2"}, None),
        ("POST", "/api/v3/command", {}, {"name": "EpisodeSearch", "episodeIds": [1]}),
        ("POST", "/api/v3/command", {}, {"name": "SeriesSearch", "seriesId": 1}),
        ("GET", "/api/v3/wanted/missing", {"page": "1", "pageSize": "5", "includeSeries": "true"}, None),
        ("GET", "/api/v3/calendar", NEXT_MONTH, None),
        ("GET", "/api/v3/queue", {"page": "1", "pageSize": "10"}, None),
        ("DELETE", "/api/v3/series/3", {"deleteFiles": "true", "addImportListExclusion": "false"}, None),
        *SETTINGS,
    ],
    "radarr": [
        ("GET", "/api/v3/system/status", {}, None),
        ("GET", "/api/v3/movie", {}, None),
        ("GET", "/api/v3/movie/1", {}, None),
        ("GET", "/api/v3/movie/lookup", {"term": "blade"}, None),
        ("GET", "/api/v3/movie/lookup/tmdb", {"tmdbId": "329865"}, None),
        ("POST", "/api/v3/movie", {}, {"tmdbId": 335984, "qualityProfileId": 1, "rootFolderPath": "/movies",
                                       "addOptions": {"searchForMovie": True}}),
        ("POST", "/api/v3/command", {}, {"name": "MoviesSearch", "movieIds": [3]}),
        ("POST", "/api/v3/command", {}, {"name": "RefreshMovie", "movieIds": [1]}),
        ("GET", "/api/v3/wanted/missing", {"page": "1", "pageSize": "5"}, None),
        ("GET", "/api/v3/calendar", NEXT_MONTH, None),
        ("GET", "/api/v3/queue", {"page": "1", "pageSize": "10"}, None),
        ("DELETE", "/api/v3/movie/2", {"deleteFiles": "true", "addImportExclusion": "false"}, None),
        *SETTINGS,
    ],
}


LISTS = {"calendar", "missing", "queue", "lookup", "episode", "qualityprofile", "rootfolder", "tag", "language",
         "diskspace"}
"""The last path segments of the list endpoints, checked to be non-empty."""


@pytest.fixture(scope="module", params=sorted(CALLS))
def service(request: pytest.FixtureRequest) -> Iterator[tuple[str, upstream_sim.SimHandle, OpenAPI]]:
    handle = upstream_sim.run_in_thread(request.param, KEY)
    # The published specs fail strict spec validation (an unresolved path parameter on '/'); the
    # schemas our endpoints use are sound, so only the spec check is skipped, not the response check.
    config = Config(spec_validator_cls=None)
    spec = OpenAPI.from_file_path(str(SPECS / f"{request.param}-v3.openapi.json"), config=config)
    yield request.param, handle, spec
    handle.stop()


def test_every_endpoint_the_tools_use_answers_per_the_openapi_spec(
    service: tuple[str, upstream_sim.SimHandle, OpenAPI],
) -> None:
    """Each call behind a tool returns 200 with a body valid against the official response schema."""
    name, handle, spec = service
    with httpx.Client(base_url=handle.url, headers={"X-Api-Key": KEY}, timeout=10) as client:
        for method, path, query, body in CALLS[name]:
            reply = client.request(method, path, params=query, json=body)
            assert reply.status_code == 200, (method, path, reply.text)
            request = MockRequest(SPEC_HOST[name], method.lower(), path, args=query)
            content_type = reply.headers.get("content-type", "application/json").split(";")[0]
            response = MockResponse(reply.content, status_code=reply.status_code, content_type=content_type)
            spec.validate_response(request, response)


def test_non_empty_lists_are_what_gets_validated(service: tuple[str, upstream_sim.SimHandle, OpenAPI]) -> None:
    """The contract is meaningful: the list endpoints return records for the schema check to look at."""
    name, handle, _ = service
    with httpx.Client(base_url=handle.url, headers={"X-Api-Key": KEY}, timeout=10) as client:
        for method, path, query, _body in CALLS[name]:
            if method == "GET" and path.rsplit("/", 1)[-1] in LISTS:
                data = client.get(path, params=query).json()
                assert data["records"] if isinstance(data, dict) else data, path
