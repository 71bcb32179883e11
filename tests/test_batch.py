"""Batches of parallel tool calls run as one Celery group on real workers."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
import redis

from orchestrator.aio.client import AsyncOrchestrator
from orchestrator.client import Orchestrator
from orchestrator.errors import CallCancelled, DeadlineExceeded, InvalidCall, ToolReturnedError, UnknownServer
from orchestrator.results import ToolResult
from tests.conftest import Stack

pytestmark = pytest.mark.slow


def test_an_empty_batch_returns_an_empty_list_at_once(client: Orchestrator) -> None:
    """No calls, no group: the answer is [] without touching a queue."""
    assert client.call_tools_parallel([]) == []


def test_outcomes_come_back_in_input_order_under_uneven_latencies(client: Orchestrator) -> None:
    """Slow calls first and fast calls last still come back in the order they were given."""
    delays = [0.6, 0.05, 0.4, 0.0, 0.2, 0.01]
    calls = [{"server": "probe", "tool": "sleep", "params": {"seconds": d}} for d in delays]
    outcomes = client.call_tools_parallel(calls)
    assert [o.data for o in outcomes] == [{"result": f"slept {d}"} for d in delays]


def test_mixed_success_and_failure_hide_no_result(client: Orchestrator) -> None:
    """Each call gets its own outcome: results where it worked, typed errors where it did not."""
    outcomes = client.call_tools_parallel([
        ("probe", "add", {"a": 1, "b": 2}),
        ("probe", "fail", {"message": "broken"}),
        ("probe_http", "echo", {"text": "hi"}),
        ("probe", "sleep", {"seconds": 5}, 0.5),
        ("forked", "add", {"a": 2, "b": 2}),
    ])
    assert isinstance(outcomes[0], ToolResult) and outcomes[0].data == {"result": 3}
    assert isinstance(outcomes[1], ToolReturnedError) and "broken" in str(outcomes[1])
    assert isinstance(outcomes[2], ToolResult) and outcomes[2].data["text"] == "hi"
    assert isinstance(outcomes[3], DeadlineExceeded) and outcomes[3].tool == "sleep"
    assert isinstance(outcomes[4], ToolResult) and outcomes[4].data == {"result": 4}


def test_overall_deadline_returns_partial_results_and_revokes_the_rest(stack: Stack, client: Orchestrator) -> None:
    """What finished by the batch deadline is returned; the rest is reported timed out and revoked."""
    calls = [("probe", "add", {"a": i, "b": 0}) for i in range(3)]
    calls += [("idle", "echo", {"text": "never consumed"}) for _ in range(3)]  # no worker serves mcp.idle
    client.call_tool("probe", "add", {"a": 0, "b": 0})  # the worker's session is open: the deadline is the point
    started = time.monotonic()
    outcomes = client.call_tools_parallel(calls, timeout=2)
    assert time.monotonic() - started < 5
    assert [o.data for o in outcomes[:3]] == [{"result": i} for i in range(3)]
    assert all(isinstance(o, DeadlineExceeded) and o.server == "idle" for o in outcomes[3:])
    assert {o.task_id for o in outcomes[3:]} <= revoked_ids(stack)
    redis.Redis.from_url(stack.broker_url).delete("mcp.idle")


def test_fail_fast_cancels_what_has_not_started(stack: Stack, client: Orchestrator) -> None:
    """After the first permanent failure the batch stops, revokes the unfinished calls and reports them
    as cancelled."""
    calls = [("probe", "fail", {"message": "first"})] + [("idle", "echo", {"text": "x"})] * 4
    started = time.monotonic()
    outcomes = client.call_tools_parallel(calls, fail_fast=True)
    assert time.monotonic() - started < 10
    assert isinstance(outcomes[0], ToolReturnedError)
    assert all(isinstance(o, CallCancelled) for o in outcomes[1:])
    assert {o.task_id for o in outcomes[1:]} <= revoked_ids(stack)
    redis.Redis.from_url(stack.broker_url).delete("mcp.idle")


def revoked_ids(stack: Stack) -> set[str]:
    """Task ids the running workers hold as revoked (a revoked message is dropped when it arrives)."""
    revoked = stack.client().app.control.inspect(timeout=1).revoked() or {}
    return {task_id for ids in revoked.values() for task_id in ids}


def test_progress_is_reported_as_results_arrive_up_to_the_total(client: Orchestrator) -> None:
    """The progress callback sees (completed, total) climbing one by one to (total, total)."""
    seen: list[tuple[int, int]] = []
    client.call_tools_parallel([("probe", "add", {"a": i, "b": i}) for i in range(10)],
                               progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 10) for i in range(1, 11)]


def test_the_async_client_runs_batches_with_an_async_progress_callback(stack: Stack) -> None:
    """AsyncOrchestrator.call_tools_parallel awaits the batch and calls a coroutine progress callback."""
    seen: list[int] = []

    async def report(done: int, total: int) -> None:
        seen.append(done)

    async def run() -> list[object]:
        async with AsyncOrchestrator(stack.settings) as aclient:
            return await aclient.call_tools_parallel([("pr", "add", {"a": 1, "b": i}) for i in range(5)],
                                                     progress=report)

    outcomes = asyncio.run(run())
    assert [o.data for o in outcomes] == [{"result": 1 + i} for i in range(5)]
    assert seen == [1, 2, 3, 4, 5]


def test_the_concurrency_cap_holds_across_all_workers(client: Orchestrator) -> None:
    """With max_concurrency=2 the MCP server never sees more than 2 calls at once from both workers."""
    client.call_tool("capped", "in_flight_stats", {"reset": True})
    outcomes = client.call_tools_parallel([("capped", "hold", {"seconds": 0.15})] * 12,
                                          max_concurrency={"capped": 2})
    assert all(isinstance(o, ToolResult) for o in outcomes)
    assert {o.worker for o in outcomes} == {"threads@test", "prefork@test"}, "both workers should take part"
    assert client.call_tool("capped", "in_flight_stats").data["max"] == 2


def test_without_a_cap_the_same_batch_runs_wider(client: Orchestrator) -> None:
    """The control case: the same batch uncapped puts more than 2 calls in flight at once."""
    client.call_tool("capped", "in_flight_stats", {"reset": True})
    client.call_tools_parallel([("capped", "hold", {"seconds": 0.3})] * 12)
    assert client.call_tool("capped", "in_flight_stats").data["max"] > 2


@pytest.mark.parametrize(("calls", "field"), [
    ([("probe", "add", {}), ("nosuch", "add", {})], "calls[1].server"),
    ([("probe", "add", {}), ("probe", "", {})], "calls[1].tool"),
    ([("probe", "add", {}), ("probe", "add", {}), ("probe", "add", [1])], "calls[2].params"),
    ([("probe", "add", {}, -1)], "calls[0].timeout"),
    ([{"server": "probe", "tool": "add", "prams": {}}], "calls[0].prams"),
    (["probe add"], "calls[0]"),
    ("probe", "calls"),
])
def test_bad_input_anywhere_in_the_batch_is_refused_before_enqueueing(stack: Stack, client: Orchestrator,
                                                                       calls: object, field: str) -> None:
    """One bad call refuses the whole batch, naming its index and field, and nothing reaches a queue."""
    conn = redis.Redis.from_url(stack.broker_url)
    before = conn.llen("mcp.probe")
    with pytest.raises((InvalidCall, UnknownServer)) as caught:
        client.call_tools_parallel(calls)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(field)
    assert conn.llen("mcp.probe") == before


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, True, "10"])
def test_a_batch_deadline_that_is_not_a_positive_finite_number_is_refused_before_enqueueing(
        stack: Stack, client: Orchestrator, timeout: object) -> None:
    conn = redis.Redis.from_url(stack.broker_url)
    before = conn.llen("mcp.probe")
    with pytest.raises(InvalidCall) as caught:
        client.call_tools_parallel([("probe", "add", {"a": 1, "b": 2})], timeout=timeout)  # type: ignore[arg-type]
    assert caught.value.field == "timeout" and "positive, finite" in str(caught.value)
    assert conn.llen("mcp.probe") == before


def test_max_concurrency_takes_server_names_or_aliases_and_refuses_others(client: Orchestrator) -> None:
    """A cap may name the server by an alias; an unknown name is refused naming the field, before enqueueing."""
    outcomes = client.call_tools_parallel([("probe", "add", {"a": 1, "b": 1})] * 3, max_concurrency={"pr": 1})
    assert [o.data for o in outcomes] == [{"result": 2}] * 3
    for caps, text in (({"nosuch": 1}, "max_concurrency.nosuch: unknown server"),
                       ({"probe-alias": 0}, "max_concurrency.probe-alias: must be a positive integer")):
        with pytest.raises(InvalidCall) as caught:
            client.call_tools_parallel([("probe", "add", {"a": 1, "b": 1})], max_concurrency=caps)
        assert caught.value.field == "max_concurrency" and str(caught.value).startswith(text)


def test_a_batch_of_a_thousand_calls_completes(client: Orchestrator) -> None:
    """1,000 calls in one group all come back, in order, with their own results."""
    outcomes = client.call_tools_parallel([("probe", "add", {"a": i, "b": 1}) for i in range(1000)], timeout=120)
    assert [o.data["result"] for o in outcomes] == [i + 1 for i in range(1000)]
