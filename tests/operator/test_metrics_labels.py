"""Metric labels stay bounded whatever names callers send."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

from orchestrator import AsyncOrchestrator
from orchestrator.client import Orchestrator
from orchestrator.errors import CircuitBreakerOpenError, ToolReturnedError
from orchestrator.metrics import UNLISTED_TOOL, read_call_stats
from orchestrator.operator.processes import wait_until
from orchestrator.results import ToolResult, tool_error
from tests.conftest import Stack
from workers.metrics import task_outcome

pytestmark = pytest.mark.slow


def test_calls_to_tools_the_server_does_not_list_are_counted_under_one_label(stack: Stack,
                                                                            client: Orchestrator) -> None:
    """Three misspelled tool names add to one ``(unlisted)`` counter on the worker, never a label each."""
    client.call_tool("probe", "echo", {"text": "warm"})  # the worker's session has listed its tools
    typos = [f"ech{uuid.uuid4().hex[:6]}" for _ in range(3)]
    conn = redis.Redis.from_url(stack.broker_url)
    before = read_call_stats(conn, ["probe"])["probe"]
    unlisted_before = before[UNLISTED_TOOL].calls if UNLISTED_TOOL in before else 0
    for typo in typos:
        with pytest.raises(ToolReturnedError):
            client.call_tool("probe", typo, {})

    def counted() -> bool:  # the worker counts after it stored the result: the client may be first
        stats = read_call_stats(conn, ["probe"])["probe"]
        return UNLISTED_TOOL in stats and stats[UNLISTED_TOOL].calls >= unlisted_before + 3

    wait_until(counted, 10, "the worker to count the three calls")
    after = read_call_stats(conn, ["probe"])["probe"]
    assert not set(typos) & set(after), "a misspelled name became a label"
    assert after[UNLISTED_TOOL].calls == unlisted_before + 3
    assert after[UNLISTED_TOOL].failures >= 3
    assert "echo" in after


def test_upstream_unavailable_results_are_counted_under_their_own_error_label() -> None:
    """A tool result tagged ``[upstream_unavailable]`` is counted as UpstreamUnavailable, other tool errors as
    ToolReturnedError: the two read differently on a dashboard (the upstream is down vs the call was wrong).
    The task raises the tool error of an ``isError`` result (FAILURE, for Flower); its attempts are the result's."""
    def raised(text: str) -> BaseException:
        return tool_error(ToolResult(server="sabnzbd", tool="sabnzbd_get_queue", ok=False, is_error=True,
                                     attempts=2, content=[{"type": "text", "text": text}]))

    assert task_outcome(raised("[upstream_unavailable] SABnzbd: connection refused"), "FAILURE") == (
        False, 2, "UpstreamUnavailable")
    assert task_outcome(raised("[upstream_not_found] no job nzo_x"), "FAILURE") == (False, 2, "ToolReturnedError")


def test_calls_refused_by_an_open_breaker_before_enqueue_are_counted_by_the_client(stack: Stack,
                                                                                   client: Orchestrator) -> None:
    """No worker sees a call its client's breaker refused, so the client counts it under
    ``error="CircuitBreakerOpenError"``: a single call, a batch, the async client and its batch; a tool the
    catalog does not list is counted under ``UNLISTED_TOOL``."""
    client.call_tool("probe", "echo", {"text": "warm"})  # the catalog lists probe's tools
    conn = redis.Redis.from_url(stack.broker_url)

    def refusals(tool: str) -> int:
        stats = read_call_stats(conn, ["probe"])["probe"]
        return stats[tool].errors.get("CircuitBreakerOpenError", 0) if tool in stats else 0

    before = {tool: refusals(tool) for tool in ("echo", UNLISTED_TOOL)}
    call = {"server": "probe", "tool": "echo", "params": {"text": "x"}}

    async def from_the_async_client() -> list[object]:
        async with AsyncOrchestrator(stack.settings) as aclient:
            with pytest.raises(CircuitBreakerOpenError):
                await aclient.call_tool("probe", "echo", {"text": "x"})
            return list(await aclient.call_tools_parallel([call]))

    client.force_breaker("probe", "open")
    try:
        with pytest.raises(CircuitBreakerOpenError):
            client.call_tool("probe", "echo", {"text": "x"})
        with pytest.raises(CircuitBreakerOpenError):
            client.call_tool("probe", f"ech{uuid.uuid4().hex[:6]}", {})
        assert [type(o) for o in client.call_tools_parallel([call, call])] == [CircuitBreakerOpenError] * 2
        assert [type(o) for o in asyncio.run(from_the_async_client())] == [CircuitBreakerOpenError]
    finally:
        client.reset_breaker("probe")
    assert refusals("echo") == before["echo"] + 5
    assert refusals(UNLISTED_TOOL) == before[UNLISTED_TOOL] + 1
