"""The asyncio client against real Redis and workers: results on the loop, typed errors, cancellation."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from orchestrator import keys
from orchestrator.aio.client import AsyncOrchestrator
from orchestrator.aio.turnstile import Turnstile
from orchestrator.errors import (
    CircuitBreakerOpenError,
    DeadlineExceeded,
    InvalidCall,
    NotEnqueued,
    OrchestratorError,
    OutcomeUnknown,
    ServerUnavailable,
    ToolReturnedError,
)
from orchestrator.results import ToolResult
from tests.conftest import Stack
from tests.support.fault_stack import FaultStack  # its fixture comes from conftest
from tests.test_batch import revoked_ids

pytestmark = pytest.mark.slow


def run(stack_settings: Any, body: Callable[[AsyncOrchestrator], Awaitable[Any]]) -> Any:
    """Run ``body`` with a fresh async client on a fresh loop, closing the client after it. Garbage of earlier
    tests (results bound to their stopped Redis) is collected here, not inside a publisher thread."""
    gc.collect()
    async def main() -> Any:
        async with AsyncOrchestrator(stack_settings) as aclient:
            return await body(aclient)
    return asyncio.run(main())


def test_an_async_call_returns_the_tool_result(stack: Stack) -> None:
    """A call awaited on the loop comes back as the worker's ToolResult."""
    result = run(stack.settings, lambda c: c.call_tool("probe", "echo", {"text": "hi"}))
    assert isinstance(result, ToolResult) and result.data == {"text": "hi", "length": 2}
    assert result.worker and result.task_id


def test_async_calls_raise_the_same_typed_errors_as_the_sync_client(stack: Stack) -> None:
    """Bad input before enqueue, a tool's isError, a deadline and an open breaker are typed errors."""
    async def body(c: AsyncOrchestrator) -> dict[str, OrchestratorError]:
        caught: dict[str, OrchestratorError] = {}
        for name, call in {
            "invalid": c.call_tool("probe", "echo", {"text": float("nan")}),
            "tool": c.call_tool("probe", "fail", {"message": "boom"}),
            "deadline": c.call_tool("probe", "sleep", {"seconds": 5}, timeout=0.5),
        }.items():
            try:
                await call
            except OrchestratorError as exc:
                caught[name] = exc
        await c.force_breaker("probe_http", "open")
        try:
            await c.call_tool("probe_http", "echo", {"text": "x"})
        except OrchestratorError as exc:
            caught["breaker"] = exc
        finally:
            await c.reset_breaker("probe_http")
        return caught

    caught = run(stack.settings, body)
    assert isinstance(caught["invalid"], InvalidCall) and caught["invalid"].field == "params"
    assert isinstance(caught["tool"], ToolReturnedError) and "boom" in str(caught["tool"])
    assert isinstance(caught["deadline"], DeadlineExceeded) and caught["deadline"].timeout == 0.5
    assert isinstance(caught["breaker"], CircuitBreakerOpenError)
    with pytest.raises(ToolReturnedError):
        run(stack.settings, lambda c: c.call_tool("probe", "fail", {"message": "x"}))
    result = run(stack.settings, lambda c: c.call_tool("probe", "fail", {"message": "x"}, raise_on_error=False))
    assert result.is_error and not result.ok


def queued_task_id(conn: redis.Redis, queue: str, timeout: float = 10) -> str:
    """The id of the task message waiting in ``queue`` (a list in the Redis broker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = conn.lindex(queue, 0)
        if raw is not None:
            return json.loads(raw)["headers"]["id"]
        time.sleep(0.02)
    raise AssertionError(f"no message appeared in {queue}")


def test_cancelling_the_awaiting_task_revokes_a_call_not_yet_started_and_drops_its_subscription(
        stack: Stack, redis_server: Any) -> None:
    """``idle`` has no worker: its call waits in the queue; cancelling its awaiter revokes it and leaves
    no subscription to its result channel."""
    conn = redis.Redis.from_url(stack.broker_url)

    async def body(c: AsyncOrchestrator) -> tuple[str, int, int]:
        task = asyncio.create_task(c.call_tool("idle", "echo", {"text": "never"}, wait_for_worker=True))
        task_id = await asyncio.to_thread(queued_task_id, conn, "mcp.idle")
        channel = c.app.backend.get_key_for_task(task_id)

        async def subscribers(wanted: int) -> int:  # subscribes and unsubscribes are batched: wait a little
            for _ in range(100):
                count = dict(conn.pubsub_numsub(channel))[channel]
                if count == wanted:
                    break
                await asyncio.sleep(0.05)
            return count

        subscribed = await subscribers(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task_id, subscribed, await subscribers(0) + c.results.pending

    try:
        task_id, before, after = run(stack.settings, body)
        assert before == 1 and after == 0
        deadline = time.monotonic() + 10
        while task_id not in revoked_ids(stack):
            assert time.monotonic() < deadline, "the cancelled call was never revoked"
            time.sleep(0.2)
    finally:
        conn.delete("mcp.idle")
        conn.close()


def queued_deadlines(conn: redis.Redis, queue: str, count: int, timeout: float = 10) -> list[float]:
    """The ``deadline`` in each of the ``count`` task messages waiting in ``queue``."""
    deadline = time.monotonic() + timeout
    while conn.llen(queue) < count:
        assert time.monotonic() < deadline, f"fewer than {count} messages appeared in {queue}"
        time.sleep(0.02)
    return [json.loads(base64.b64decode(json.loads(raw)["body"]))[1]["deadline"] for raw in conn.lrange(queue, 0, -1)]


def test_a_call_that_waited_in_the_turnstile_keeps_its_deadline_counted_from_when_it_was_asked(
        stack: Stack) -> None:
    """Invariant 5: two calls asked in the same turn, the second let through a second later (the loop was
    busy), both carry ``asked + timeout`` as their deadline, not ``let through + timeout``."""
    conn = redis.Redis.from_url(stack.broker_url)

    async def body(c: AsyncOrchestrator) -> tuple[float, list[float]]:
        c._turnstile = Turnstile(budget=0.0)  # only the first call of a turn goes through at once
        calls = [asyncio.create_task(c.call_tool("idle", "echo", {"text": str(i)}, timeout=30, wait_for_worker=True))
                 for i in range(2)]
        await asyncio.sleep(0)  # both were asked; the second waits for the next turn
        asked_by = time.time()
        time.sleep(1.0)  # the loop is busy before that turn comes
        deadlines = await asyncio.to_thread(queued_deadlines, conn, "mcp.idle", 2)
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        return asked_by, deadlines

    try:
        asked_by, deadlines = run(stack.settings, body)
        assert len(deadlines) == 2 and all(deadline <= asked_by + 30 for deadline in deadlines), (asked_by, deadlines)
    finally:
        conn.delete("mcp.idle")
        conn.close()


def test_an_async_call_to_a_queue_no_live_worker_consumes_fails_at_once_and_leaves_nothing_queued(
        stack: Stack) -> None:
    """As the sync client: no worker heartbeat for mcp.idle, so a 30 s call fails after about a second with
    ServerUnavailable naming the queue, and its message is taken out of the queue."""
    conn = redis.Redis.from_url(stack.broker_url)

    async def body(c: AsyncOrchestrator) -> tuple[OrchestratorError, float]:
        started = time.monotonic()
        with pytest.raises(OrchestratorError) as caught:
            await c.call_tool("idle", "echo", {"text": "nobody"}, timeout=30)
        return caught.value, time.monotonic() - started

    try:
        error, took = run(stack.settings, body)
        assert isinstance(error, ServerUnavailable) and "no live worker consumes mcp.idle" in error.message, repr(error)
        assert took < 25  # well before the call's own 30 s deadline
        assert conn.llen("mcp.idle") == 0
    finally:
        conn.delete("mcp.idle")
        conn.close()


def test_an_unsafe_call_that_started_but_never_answered_is_outcome_unknown(stack: Stack) -> None:
    """A call whose execution marker is claimed (a worker started it, then vanished) and whose result never
    comes ends as OutcomeUnknown, not as a deadline that suggests it did not run."""
    conn = redis.Redis.from_url(stack.broker_url)

    async def body(c: AsyncOrchestrator) -> OrchestratorError:
        task = asyncio.create_task(c.call_tool("idle", "delete_thing", {"name": "x"}, timeout=1,
                                                 wait_for_worker=True))
        task_id = await asyncio.to_thread(queued_task_id, conn, "mcp.idle")
        conn.set(keys.execution_marker_key(task_id), "gone-worker", ex=60)
        with pytest.raises(OrchestratorError) as caught:
            await task
        return caught.value

    try:
        error = run(stack.settings, body)
        assert isinstance(error, OutcomeUnknown), repr(error)
    finally:
        conn.delete("mcp.idle")
        conn.close()


def test_a_batch_on_the_async_client_awaits_a_coroutine_progress_and_honours_fail_fast(stack: Stack) -> None:
    """Progress is awaited once per call up to the total; a permanent failure revokes what is left."""
    seen: list[tuple[int, int]] = []

    async def progress(done: int, total: int) -> None:
        await asyncio.sleep(0)
        seen.append((done, total))

    async def body(c: AsyncOrchestrator) -> tuple[list[Any], list[Any]]:
        ok = await c.call_tools_parallel([("probe", "add", {"a": i, "b": 1}) for i in range(20)], progress=progress)
        failing = await c.call_tools_parallel([("probe", "fail", {"message": "no"})]
                                              + [("probe", "sleep", {"seconds": 3})] * 3, fail_fast=True)
        return ok, failing

    ok, failing = run(stack.settings, body)
    assert [o.data["result"] for o in ok] == list(range(1, 21))
    assert seen[:20] == [(n, 20) for n in range(1, 21)]
    assert isinstance(failing[0], ToolReturnedError)
    assert all(type(o).__name__ == "CallCancelled" for o in failing[1:]), failing


def test_a_batch_whose_every_server_has_its_breaker_open_fails_fast_on_the_async_client(stack: Stack) -> None:
    """Nothing is enqueued: each call of the batch is CircuitBreakerOpenError, progress still reaches the total."""
    seen: list[int] = []

    async def body(c: AsyncOrchestrator) -> list[Any]:
        await c.force_breaker("probe_http", "open")
        try:
            return await c.call_tools_parallel([("probe_http", "echo", {"text": "x"})] * 3,
                                               progress=lambda done, total: seen.append(done))
        finally:
            await c.reset_breaker("probe_http")

    outcomes = run(stack.settings, body)
    assert [type(o) for o in outcomes] == [CircuitBreakerOpenError] * 3 and seen == [1, 2, 3]


def test_calls_admitted_together_fail_one_by_one_a_bad_param_or_an_open_breaker_failing_only_its_call(
        stack: Stack) -> None:
    """Calls started in one loop turn are admitted as one chunk; a schema violation or an open breaker
    fails only the call it concerns, each with its own error, and the others return their results."""
    async def body(c: AsyncOrchestrator) -> tuple[Any, ...]:
        await c.call_tool("probe", "add", {"a": 1, "b": 1})  # the catalog is cached
        await c.force_breaker("probe_http", "open")
        try:
            return await asyncio.gather(
                c.call_tool("probe", "add", {"a": 1, "b": 1}), c.call_tool("probe", "add", {"a": "x", "b": 1}),
                c.call_tool("probe_http", "echo", {"text": "x"}), c.call_tool("probe_http", "echo", {"text": "y"}),
                c.call_tool("probe", "add", {"a": 2, "b": 1}), return_exceptions=True)
        finally:
            await c.reset_breaker("probe_http")

    first, bad, open_1, open_2, last = run(stack.settings, body)
    assert first.data["result"] == 2 and last.data["result"] == 3
    assert isinstance(bad, InvalidCall) and bad.field == "params.a", bad
    assert isinstance(open_1, CircuitBreakerOpenError) and isinstance(open_2, CircuitBreakerOpenError)
    assert open_1 is not open_2


def test_two_thousand_concurrent_calls_run_with_a_constant_thread_count(stack: Stack) -> None:
    """The client's threads are the same with 20 or 2,000 calls in flight (waiting costs no thread)."""
    async def body(c: AsyncOrchestrator) -> tuple[int, int, list[ToolResult]]:
        await asyncio.gather(*(c.call_tool("probe", "add", {"a": 1, "b": 1}) for _ in range(20)))
        before = threading.active_count()
        peak = before
        calls = [asyncio.create_task(c.call_tool("probe", "add", {"a": i, "b": 1}, timeout=120))
                 for i in range(2000)]
        while not all(call.done() for call in calls):
            peak = max(peak, threading.active_count())
            await asyncio.sleep(0.01)
        return before, peak, [call.result() for call in calls]

    before, peak, results = run(stack.settings, body)
    assert peak == before, (before, peak)
    assert [r.data["result"] for r in results] == [i + 1 for i in range(2000)]


def test_a_pending_async_call_survives_redis_restarting_with_an_outcome_by_its_deadline(
        fault_stack: FaultStack) -> None:
    """Redis restarts while calls wait: each ends with its result or a typed error, none past its deadline,
    and the same client works afterwards."""
    worker = fault_stack.worker("threads", "threads", 4)

    async def body(c: AsyncOrchestrator) -> tuple[list[Any], float, ToolResult]:
        await c.call_tool("probe_http", "add", {"a": 1, "b": 1})
        started = time.monotonic()
        calls = [asyncio.create_task(c.call_tool("probe_http", "hold", {"seconds": 1.0}, timeout=8))
                 for _ in range(4)]
        await asyncio.sleep(0.3)
        await asyncio.to_thread(fault_stack.redis.restart, 1.0)
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        elapsed = time.monotonic() - started
        for _ in range(60):
            try:
                return outcomes, elapsed, await c.call_tool("probe_http", "add", {"a": 2, "b": 3}, timeout=5)
            except OrchestratorError:
                await asyncio.sleep(0.5)
        raise AssertionError("the client never worked again after the restart")

    try:
        outcomes, elapsed, after = run(fault_stack.settings, body)
    finally:
        worker.stop()
    assert all(isinstance(o, ToolResult | OrchestratorError) for o in outcomes), outcomes
    assert elapsed < 8 + 2.0 + 3, elapsed  # deadline + result grace + slack for a loaded machine
    assert after.data == {"result": 5}


def test_with_redis_down_an_async_call_and_batch_end_as_not_enqueued_at_their_deadline(
        fault_stack: FaultStack) -> None:
    """The async client retries publishing as the sync client does (backoff, one task id): with Redis
    stopped a call is NotEnqueued (transient, naming the Redis) by its deadline, a batch gets one per call."""
    async def body(c: AsyncOrchestrator) -> tuple[Any, float, list[Any]]:
        with fault_stack.redis.stopped():
            started, error = time.monotonic(), None
            try:
                await c.call_tool("probe_http", "add", {"a": 1, "b": 2}, timeout=1.5)
            except OrchestratorError as exc:
                error = exc
            elapsed = time.monotonic() - started
            outcomes = await c.call_tools_parallel([("probe_http", "add", {"a": i, "b": 1}, 1.0) for i in range(3)])
        return error, elapsed, outcomes

    error, elapsed, outcomes = run(fault_stack.settings, body)
    assert isinstance(error, NotEnqueued) and error.transient, error
    assert f"127.0.0.1:{fault_stack.redis.port}" in str(error) and "not enqueued" in str(error)
    assert error.server == "probe_http" and error.tool == "add"
    assert 1.2 < elapsed < 6, elapsed
    assert [type(o) for o in outcomes] == [NotEnqueued] * 3
