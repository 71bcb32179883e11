"""Batches in chunks (several calls to one server in one task) against a task per call, on real workers:
the same outcomes either way, a chunk's worker killed mid-run, a call revoked inside a started chunk."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Sequence
from uuid import uuid4

import pytest
import redis

from orchestrator import keys
from orchestrator.batch import Outcome
from orchestrator.client import Orchestrator
from orchestrator.errors import CallCancelled, OrchestratorError, OutcomeUnknown
from orchestrator.operator.processes import wait_until
from orchestrator.results import ToolResult
from tests.conftest import Stack
from tests.support.fault_stack import FaultStack
from tests.test_faults import pool_children

pytestmark = pytest.mark.slow

MODES = {"a task per call": 1, "adaptive chunks": 0, "chunks of 3": 3}
"""``batch_chunk_size`` of each mode compared."""


@pytest.fixture
def clients(stack: Stack) -> Iterator[dict[str, Orchestrator]]:
    """One client of the session stack per batch mode."""
    made = {mode: Orchestrator(stack.settings.model_copy(update={"batch_chunk_size": size}))
            for mode, size in MODES.items()}
    yield made
    for client in made.values():
        client.close()


def summary(outcomes: Sequence[Outcome]) -> list[tuple[str, str | None, str | None, object]]:
    """What a caller reads of each outcome, without what differs from run to run (ids, durations, worker)."""
    return [(type(o).__name__, o.server, o.tool, o.data if isinstance(o, ToolResult) else o.transient)
            for o in outcomes]


def test_chunked_and_per_call_batches_give_the_same_outcomes_in_the_same_order(
        clients: dict[str, Orchestrator]) -> None:
    """Results, tool errors and a call's own deadline come back alike, in input order, in every mode."""
    calls = [("probe", "sleep", {"seconds": 0.3}), ("probe", "add", {"a": 1, "b": 2}),
             ("probe", "fail", {"message": "broken"}), ("probe_http", "echo", {"text": "hi"}),
             ("probe", "sleep", {"seconds": 5}, 0.5), ("forked", "add", {"a": 2, "b": 2}),
             *[("pr", "add", {"a": i, "b": 10}) for i in range(9)]]
    seen = {mode: summary(client.call_tools_parallel(calls)) for mode, client in clients.items()}
    reference = seen.pop("a task per call")
    assert [kind for kind, *_ in reference[:6]] == ["ToolResult", "ToolResult", "ToolReturnedError", "ToolResult",
                                                    "DeadlineExceeded", "ToolResult"]
    assert all(outcomes == reference for outcomes in seen.values()), seen


def test_chunked_and_per_call_batches_keep_the_same_partial_results_at_the_batch_deadline(
        stack: Stack, clients: dict[str, Orchestrator]) -> None:
    """At the batch deadline the finished calls are kept and the others are DeadlineExceeded, in every mode."""
    calls = [("probe", "add", {"a": i, "b": 0}) for i in range(5)]
    calls += [("idle", "echo", {"text": "never consumed"}) for _ in range(5)]  # no worker serves mcp.idle
    try:
        seen = {mode: summary(client.call_tools_parallel(calls, timeout=2)) for mode, client in clients.items()}
    finally:
        redis.Redis.from_url(stack.broker_url).delete("mcp.idle")
    reference = seen.pop("a task per call")
    assert [kind for kind, *_ in reference] == ["ToolResult"] * 5 + ["DeadlineExceeded"] * 5
    assert all(outcomes == reference for outcomes in seen.values()), seen


def test_chunked_and_per_call_batches_fail_fast_alike(stack: Stack, clients: dict[str, Orchestrator]) -> None:
    """The first permanent failure cancels the calls that had not ended, in every mode."""
    calls = [("probe", "fail", {"message": "first"})] + [("idle", "echo", {"text": "x"})] * 6
    try:
        seen = {mode: summary(client.call_tools_parallel(calls, fail_fast=True)) for mode, client in clients.items()}
    finally:
        redis.Redis.from_url(stack.broker_url).delete("mcp.idle")
    reference = seen.pop("a task per call")
    assert [kind for kind, *_ in reference] == ["ToolReturnedError"] + ["CallCancelled"] * 6
    assert all(outcomes == reference for outcomes in seen.values()), seen


@pytest.mark.parametrize("mode", MODES)
def test_the_concurrency_cap_holds_in_every_batch_mode(clients: dict[str, Orchestrator], mode: str) -> None:
    """With max_concurrency=2 the MCP server never sees more than 2 calls at once, chunks or not."""
    client = clients[mode]
    client.call_tool("capped", "in_flight_stats", {"reset": True})
    outcomes = client.call_tools_parallel([("capped", "hold", {"seconds": 0.1})] * 12, max_concurrency={"capped": 2})
    assert all(isinstance(o, ToolResult) for o in outcomes)
    assert client.call_tool("capped", "in_flight_stats").data["max"] == 2


def test_a_call_revoked_before_it_started_inside_a_started_chunk_never_runs(stack: Stack) -> None:
    """Fail fast inside one chunk running one call at a time: the deletes queued behind a slow call are revoked
    while it runs, stored as revoked, reported cancelled, and never reach the MCP server."""
    client = Orchestrator(stack.settings.model_copy(update={"batch_chunk_size": 8}))
    names = [f"revoked-{uuid4().hex[:8]}-{i}" for i in range(5)]
    calls = [("probe_http", "fail", {"message": "first"}), ("probe_http", "hold", {"seconds": 1.5}),
             *[("probe_http", "record_delete", {"name": name}) for name in names]]
    try:
        outcomes = client.call_tools_parallel(calls, fail_fast=True, max_concurrency={"probe_http": 1})
        assert type(outcomes[0]).__name__ == "ToolReturnedError"
        assert all(isinstance(o, CallCancelled) for o in outcomes[1:])
        backend = client.app.backend

        def all_deletes_settled() -> bool:
            return all(backend.get_task_meta(o.task_id)["status"] == "REVOKED" for o in outcomes[2:]
                       if isinstance(o, OrchestratorError))

        wait_until(all_deletes_settled, 15, "the chunk to store the revoked deletes", interval=0.1)
        deleted = client.call_tool("probe_http", "deletions").data
        assert not set(names) & set(deleted), deleted
    finally:
        client.close()


def test_a_chunks_worker_killed_mid_run_loses_nothing_and_runs_no_destructive_call_twice(
        fault_stack: FaultStack) -> None:
    """kill -9 of the pool process running a chunk: the chunk is delivered again; the deletes that had finished
    keep their stored result, the deletes that had started are OutcomeUnknown (not run again), the reads
    are run again, and every call has one outcome."""
    worker = fault_stack.worker("prefork", "prefork", 1)
    client = Orchestrator(fault_stack.settings.model_copy(update={"batch_chunk_size": 16}))
    tag = uuid4().hex[:8]
    done_names = [f"done-{tag}-{i}" for i in range(3)]
    slow_names = [f"slow-{tag}-{i}" for i in range(3)]
    calls = [*[("probe_http", "record_delete", {"name": name}) for name in done_names],
             *[("probe_http", "record_delete", {"name": name, "seconds": 3}) for name in slow_names],
             *[("probe_http", "hold", {"seconds": 3}) for _ in range(4)]]
    box: list[list[Outcome]] = []
    markers = redis.Redis.from_url(fault_stack.settings.broker_url)
    try:
        runner = threading.Thread(target=lambda: box.append(client.call_tools_parallel(calls, timeout=60)))
        runner.start()

        def mid_run() -> bool:
            """The quick deletes stored, the slow ones claimed (on their way to the MCP server)."""
            stored = [key for key in markers.scan_iter("celery-task-meta-*")]
            claimed = list(markers.scan_iter(keys.execution_marker_key("*")))
            return len(stored) >= 3 and len(claimed) >= 6

        wait_until(mid_run, 30, "a chunk mid-run", interval=0.05)
        (child,) = pool_children(worker)
        os.kill(child, signal.SIGKILL)
        runner.join(timeout=90)
        assert box, "the batch never returned"
        outcomes = box[0]
        assert len(outcomes) == len(calls)
        assert all(isinstance(o, ToolResult) for o in outcomes[:3]), outcomes[:3]
        assert all(isinstance(o, OutcomeUnknown) for o in outcomes[3:6]), outcomes[3:6]
        assert all(isinstance(o, ToolResult) for o in outcomes[6:]), outcomes[6:]
        deleted = client.call_tool("probe_http", "deletions").data
        assert all(deleted[name] == 1 for name in done_names), deleted
        assert all(deleted.get(name, 0) <= 1 for name in slow_names), deleted
    finally:
        client.close()
        worker.stop()


def test_a_chunks_calls_are_all_in_flight_at_once_without_a_thread_each(fault_stack: FaultStack) -> None:
    """A chunk of 64 slow calls on a threads-pool worker: all 64 are in flight on the held session at once, and
    the worker process holds no more threads than before (the chunk's task thread schedules them as coroutines
    on the session loop; the other task thread answers the in-flight probe)."""
    worker = fault_stack.worker("threads", "threads", 2)
    client = Orchestrator(fault_stack.settings.model_copy(update={"batch_chunk_size": 64}))

    def threads() -> int:
        return len(os.listdir(f"/proc/{worker.pid}/task"))

    try:
        with Orchestrator(fault_stack.settings.model_copy(update={"batch_chunk_size": 1})) as per_call:
            per_call.call_tools_parallel([("probe_http", "hold", {"seconds": 0.5})] * 2)  # both task threads up
        client.call_tool("probe_http", "in_flight_stats", {"reset": True})
        before = threads()
        box: list[list[Outcome]] = []
        runner = threading.Thread(target=lambda: box.append(
            client.call_tools_parallel([("probe_http", "hold", {"seconds": 2})] * 64, timeout=30)))
        runner.start()
        wait_until(lambda: client.call_tool("probe_http", "in_flight_stats").data["now"] == 64, 15,
                   "64 calls of the chunk in flight at once", interval=0.05)
        during = threads()
        runner.join(timeout=30)
        assert box and all(isinstance(o, ToolResult) for o in box[0]), box
        assert during <= before + 4, (before, during)
    finally:
        client.close()
        worker.stop()
