"""The FastAPI integration in a real uvicorn process, driven over HTTP by httpx."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from orchestrator.errors import (
    CallFailed,
    CircuitBreakerOpenError,
    DeadlineExceeded,
    InvalidCall,
    OutcomeUnknown,
    ServerUnavailable,
    ToolReturnedError,
    UpstreamUnavailable,
)
from orchestrator.fastapi import error_status, orchestrator_router
from orchestrator.operator.processes import ChildProcess
from tests.conftest import Stack
from tests.support.ports import free_port, wait_for_port
from tests.support.procs import start_child

KEY = "test-api-key-2f9a"


@pytest.fixture(scope="module")
def api(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``tests.support.servers.orch_api`` under uvicorn on a free port; yields its base URL."""
    port = free_port()
    child: ChildProcess = start_child(
        "orch-api", [sys.executable, "-m", "uvicorn", "tests.support.servers.orch_api:api", "--port", str(port),
                     "--log-level", "warning"],
        log=tmp_path_factory.mktemp("api") / "api.log",
        env={"MCP_ORCH_CONFIG": str(stack.config_path), "ORCH_API_KEY": KEY})
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        child.stop()


def test_the_router_is_refused_without_an_auth_dependency_unless_explicitly_allowed() -> None:
    """Tool calls are not exposed by accident: no auth and no opt-out is a clear error."""
    with pytest.raises(ValueError, match="auth"):
        orchestrator_router(auth=None)
    FastAPI().include_router(orchestrator_router(auth=None, allow_unauthenticated=True))


def test_errors_map_to_the_status_codes_of_autoarrs_middleware() -> None:
    """Caller and tool errors 400, unreachable or breaker open 503, timeout 504, the rest 500."""
    assert [error_status(e("x")) for e in (InvalidCall, ToolReturnedError, UpstreamUnavailable,
                                           CircuitBreakerOpenError, ServerUnavailable, DeadlineExceeded,
                                           OutcomeUnknown, CallFailed)] == [400, 400, 503, 503, 503, 504, 500, 500]


@pytest.mark.slow
def test_routes_need_the_api_key_and_answer_with_mapped_errors(api: str) -> None:
    """No key is 401; with it a call works, an unknown server is 400, a tool timing out is 504."""
    with httpx.Client(base_url=api, timeout=30) as http:
        assert http.post("/mcp/call", json={"server": "probe", "tool": "echo"}).status_code == 401
        headers = {"Authorization": f"Bearer {KEY}"}
        ok = http.post("/mcp/call", json={"server": "probe", "tool": "echo", "params": {"text": "hi"}},
                       headers=headers)
        assert ok.status_code == 200 and ok.json()["data"] == {"text": "hi", "length": 2}
        unknown = http.post("/mcp/call", json={"server": "nope", "tool": "echo"}, headers={"X-API-Key": KEY})
        assert unknown.status_code == 400 and unknown.json()["error"]["type"] == "UnknownServer"
        slow = http.post("/mcp/call", json={"server": "probe", "tool": "sleep", "params": {"seconds": 5},
                                            "timeout": 0.5}, headers=headers)
        assert slow.status_code == 504 and slow.json()["error"]["type"] == "DeadlineExceeded"
        assert http.get("/echo/yo").json() == {"text": "yo", "length": 2}
        assert "probe" in http.get("/mcp/health", headers=headers).json()


@pytest.mark.slow
def test_a_200_call_batch_streams_its_progress_and_outcomes_as_server_sent_events(api: str) -> None:
    """Streaming the SSE of a 200-call batch: 200 progress events up to the total, 200 outcomes in order, done."""
    calls = [{"server": "probe", "tool": "add", "params": {"a": i, "b": 1}} for i in range(200)]
    counts: dict[str, int] = {}
    outcomes: list[dict] = []
    progress: list[dict] = []
    with httpx.Client(base_url=api, timeout=120) as http, http.stream(
            "POST", "/mcp/batch/stream", json={"calls": calls}, headers={"X-API-Key": KEY}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
                counts[event] = counts.get(event, 0) + 1
            elif line.startswith("data: ") and event is not None:
                data = json.loads(line.removeprefix("data: "))
                (outcomes if event == "outcome" else progress if event == "progress" else []).append(data)
    assert counts == {"progress": 200, "outcome": 200, "done": 1}
    assert [p["done"] for p in progress] == list(range(1, 201)) and progress[-1]["total"] == 200
    assert [o["data"]["result"] for o in outcomes] == [i + 1 for i in range(200)]
