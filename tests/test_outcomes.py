"""Every call gets one outcome when Redis is down or a worker dies, and "may have run" is never
reported as "did not run" (issue 13). Real redis-server, MCP server and worker processes."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import redis

from orchestrator import keys
from orchestrator.errors import (
    BrokerUnavailable,
    DeadlineExceeded,
    NotEnqueued,
    OrchestratorError,
    OutcomeUnknown,
    ServerUnavailable,
)
from orchestrator.operator.processes import wait_until
from orchestrator.results import ToolResult
from tests.support.fault_stack import FaultStack

pytestmark = pytest.mark.slow


def test_with_redis_down_a_call_and_a_batch_end_as_not_enqueued_at_their_deadline(fault_stack: FaultStack) -> None:
    """Publishing retries until the call's deadline, then the call is NotEnqueued: a transient
    BrokerUnavailable naming the Redis it could not reach; a batch gets one such outcome per call."""
    client = fault_stack.client()
    try:
        with fault_stack.redis.stopped():
            started = time.monotonic()
            with pytest.raises(NotEnqueued) as caught:
                client.call_tool("probe_http", "add", {"a": 1, "b": 2}, timeout=1.5)
            assert 1.2 < time.monotonic() - started < 6
            error = caught.value
            assert isinstance(error, BrokerUnavailable) and isinstance(error, ServerUnavailable) and error.transient
            assert f"127.0.0.1:{fault_stack.redis.port}" in str(error) and "not enqueued" in str(error)
            assert error.server == "probe_http" and error.tool == "add"
            outcomes = client.call_tools_parallel([("probe_http", "add", {"a": i, "b": 1}, 1.0) for i in range(3)])
            assert [type(o) for o in outcomes] == [NotEnqueued] * 3
        assert client.call_tools_parallel([("probe_http", "add", {"a": 1, "b": 1})]) != []  # no worker: just typed
    finally:
        client.close()


def test_a_killed_worker_leaves_its_unsafe_call_outcome_unknown_and_its_safe_call_deadline_exceeded(
        fault_stack: FaultStack) -> None:
    """kill -9 of a worker's main process mid-call: the delete that claimed its execution marker is
    OutcomeUnknown, the read is DeadlineExceeded; both messages name the call's own deadline."""
    worker = fault_stack.worker("threads", "threads", 4)
    client = fault_stack.client()
    store = redis.Redis.from_url(fault_stack.settings.broker_url)
    try:
        box: list[list[object]] = []
        calls = [("probe_http", "hold", {"seconds": 5}, 3), ("probe_http", "record_delete",
                                                            {"name": "killed", "seconds": 5}, 3)]
        runner = threading.Thread(target=lambda: box.append(client.call_tools_parallel(calls, timeout=30)))
        runner.start()
        wait_until(lambda: bool(store.keys(keys.execution_marker_key("*"))), 10, "the delete to claim its marker")
        os.kill(worker.pid, signal.SIGKILL)
        runner.join(timeout=30)
        read, delete = box[0]
        assert isinstance(read, DeadlineExceeded) and "the call's deadline (3s)" in str(read), read
        assert isinstance(delete, OutcomeUnknown) and "the call's deadline (3s)" in str(delete), delete
        assert "may have run" in str(delete)
    finally:
        store.close()
        client.close()
        worker.stop()


def test_an_unsafe_call_cut_by_its_deadline_while_running_is_outcome_unknown(fault_stack: FaultStack) -> None:
    """The worker's MCP call of a delete outlives the deadline: the tool may have run, so OutcomeUnknown,
    while a read cut the same way stays DeadlineExceeded; a batch deadline shorter than the calls' is named."""
    worker = fault_stack.worker("threads", "threads", 4)
    client = fault_stack.client()
    try:
        with pytest.raises(OutcomeUnknown, match="may have run"):
            client.call_tool("probe_http", "record_delete", {"name": "slow", "seconds": 3}, timeout=1.5)
        with pytest.raises(DeadlineExceeded):
            client.call_tool("probe_http", "hold", {"seconds": 3}, timeout=1.5)
        late = client.call_tools_parallel([("probe_http", "hold", {"seconds": 3}, 20)], timeout=1.0)
        assert isinstance(late[0], DeadlineExceeded) and "the batch deadline" in str(late[0])
        time.sleep(2)  # past the tool's own 3 s: it ran at most once (the SDK may have cancelled it)
        assert client.call_tool("probe_http", "deletions").data.get("slow", 0) <= 1
    finally:
        client.close()
        worker.stop()


def test_a_batch_in_flight_gets_one_outcome_per_call_when_redis_restarts_under_it(fault_stack: FaultStack) -> None:
    """Redis (no persistence) restarted while a batch is being enqueued and collected: every call gets
    one outcome (a result or a typed error), no delete runs twice, and no raw library error escapes."""
    worker = fault_stack.worker("threads", "threads", 8)
    client = fault_stack.client()
    try:
        calls = [("probe_http", "record_delete" if i % 2 else "hold",
                  {"name": f"restart-{i}", "seconds": 0.2} if i % 2 else {"seconds": 0.2}, 8) for i in range(120)]
        box: list[object] = []

        def run() -> None:
            try:
                box.append(client.call_tools_parallel(calls))
            except Exception as exc:  # the test fails on it below, naming it
                box.append(exc)

        runner = threading.Thread(target=run)
        runner.start()
        time.sleep(0.5)
        fault_stack.redis.restart(down_for=1.0)
        runner.join(timeout=60)
        outcomes = box[0]
        assert isinstance(outcomes, list), outcomes
        assert len(outcomes) == len(calls)
        assert all(isinstance(o, ToolResult | OrchestratorError) for o in outcomes)
        deleted = client.call_tool("probe_http", "deletions").data
        assert all(count == 1 for count in deleted.values())
        for index in range(1, len(calls), 2):
            ran = deleted.get(f"restart-{index}", 0) == 1
            outcome = outcomes[index]
            if ran:  # it ran: a result, or an outcome that says it may have
                assert isinstance(outcome, ToolResult | OutcomeUnknown), outcome
    finally:
        client.close()
        worker.stop()
