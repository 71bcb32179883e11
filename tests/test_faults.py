"""Faults with real processes: workers killed mid-call, Redis restarted, pickled messages sent.

Each test builds its own small stack (own redis-server, own MCP server, own workers), so it
can break things without disturbing the rest of the suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from typing import Any

import pytest
import redis

from orchestrator import keys
from orchestrator.client import Orchestrator
from orchestrator.errors import DeadlineExceeded, OrchestratorError, OutcomeUnknown, ToolReturnedError
from orchestrator.operator.processes import ChildProcess, wait_until
from orchestrator.results import ToolResult
from orchestrator.wire import CALL_TOOL
from tests.support.fault_stack import FaultStack

pytestmark = pytest.mark.slow


def pool_children(worker: ChildProcess) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True, timeout=5)
    return [int(pid) for pid in out.stdout.split()]


def test_killing_a_worker_process_mid_batch_loses_no_call_and_runs_no_destructive_call_twice(
        fault_stack: FaultStack) -> None:
    """kill -9 of the pool process that is running a delete, mid-batch: every call ends with one outcome,
    the safe ones are re-run, the killed delete comes back as OutcomeUnknown and no delete runs twice.
    A task per call here; a chunk's worker killed is tests/test_batch_chunks.py's."""
    worker = fault_stack.worker("prefork", "prefork", 2)
    client = Orchestrator(fault_stack.settings.model_copy(update={"batch_chunk_size": 1}))
    try:
        calls = []
        for i in range(8):
            calls.append(("probe_http", "hold", {"seconds": 0.8}))
            calls.append(("probe_http", "record_delete", {"name": f"item-{i}", "seconds": 0.8}))
        result_box: list[list[object]] = []

        def run() -> None:
            result_box.append(client.call_tools_parallel(calls, timeout=60))

        import threading

        runner = threading.Thread(target=run)
        runner.start()
        wait_until(lambda: len(pool_children(worker)) == 2, 10, "two pool processes")
        victim: dict[str, object] = {}
        markers = redis.Redis.from_url(fault_stack.settings.broker_url)

        def a_delete_is_running() -> bool:
            """A delete that has claimed its execution marker: it is on its way to the MCP server."""
            active = client.app.control.inspect(destination=["prefork@test"], timeout=0.5, limit=1).active() or {}
            for task in (task for tasks in active.values() for task in tasks):
                if ("record_delete" in str(task.get("kwargs")) and task.get("worker_pid")
                        and markers.exists(keys.execution_marker_key(task["id"]))):
                    victim.update(pid=task["worker_pid"], task_id=task["id"])
                    return True
            return False

        wait_until(a_delete_is_running, 20, "a delete in flight", interval=0.05)
        os.kill(int(victim["pid"]), signal.SIGKILL)  # type: ignore[call-overload]
        runner.join(timeout=90)
        assert result_box, "the batch never returned"
        outcomes = result_box[0]
        assert len(outcomes) == len(calls)
        assert all(isinstance(o, ToolResult | OrchestratorError) for o in outcomes)
        deleted = client.call_tool("probe_http", "deletions").data
        for i in range(8):
            assert deleted.get(f"item-{i}", 0) <= 1, f"item-{i} was deleted twice"
        killed = [o for o in outcomes if isinstance(o, OrchestratorError) and o.task_id == victim["task_id"]]
        assert len(killed) == 1 and isinstance(killed[0], OutcomeUnknown), killed
        for index, outcome in enumerate(outcomes):
            if index % 2 == 0:
                assert isinstance(outcome, ToolResult), f"safe call {index} should have been re-run: {outcome!r}"
            elif isinstance(outcome, ToolResult):
                assert deleted[f"item-{index // 2}"] == 1
            else:
                assert isinstance(outcome, OutcomeUnknown), repr(outcome)
    finally:
        client.close()
        worker.stop()


def test_calls_in_flight_end_with_an_outcome_and_everything_resumes_after_redis_restarts(
        fault_stack: FaultStack) -> None:
    """Restarting redis-server mid-run: in-flight calls end with an outcome; later calls work, no manual step."""
    worker = fault_stack.worker("threads", "threads", 4)
    client = fault_stack.client()
    try:
        assert client.call_tool("probe_http", "add", {"a": 1, "b": 1}).data == {"result": 2}
        import threading

        box: list[object] = []

        def run() -> None:
            try:
                box.append(client.call_tools_parallel([("probe_http", "hold", {"seconds": 1.0})] * 4, timeout=20))
            except OrchestratorError as exc:  # a typed error is an outcome too
                box.append(exc)

        runner = threading.Thread(target=run)
        runner.start()
        time.sleep(0.3)
        fault_stack.redis.restart(down_for=1.0)
        runner.join(timeout=40)
        assert box, "the batch in flight never ended"
        outcome = box[0]
        assert isinstance(outcome, OrchestratorError | list)
        if isinstance(outcome, list):
            assert len(outcome) == 4 and all(isinstance(o, ToolResult | OrchestratorError) for o in outcome)

        def works() -> bool:
            try:
                return client.call_tool("probe_http", "add", {"a": 2, "b": 3}, timeout=5).data == {"result": 5}
            except OrchestratorError:
                return False

        wait_until(works, 60, "calls to work again after the Redis restart", interval=0.5)
        assert worker.alive()
    finally:
        client.close()
        worker.stop()


def test_a_pickled_message_is_refused_by_the_worker(fault_stack: FaultStack) -> None:
    """A task message serialised with pickle is refused, never executed."""
    worker = fault_stack.worker("threads", "threads", 2)
    client = fault_stack.client()
    try:
        before = client.call_tool("probe_http", "whoami").data["calls"]
        client.app.send_task(CALL_TOOL, kwargs={"server": "probe_http", "tool": "whoami", "params": {},
                                                "deadline": time.time() + 10}, queue="mcp.probe_http",
                             serializer="pickle")
        wait_until(lambda: "untrusted content" in worker.output() or "ContentDisallowed" in worker.output(),
                   10, "the worker to refuse the pickled message")
        after = client.call_tool("probe_http", "whoami").data["calls"]
        assert after == before + 1  # only the second whoami ran, not the pickled one
    finally:
        client.close()
        worker.stop()


def redeliver(conn: redis.Redis, message: dict[str, Any]) -> None:
    """Queue ``message`` again as the broker does after a worker was lost (flagged ``redelivered``)."""
    redelivered = {**message, "headers": {**message["headers"], "redelivered": True}}
    redelivered["properties"]["delivery_info"]["redelivered"] = True
    conn.lpush("mcp.probe_http", json.dumps(redelivered))


def test_a_duplicate_delivery_of_a_finished_call_returns_the_stored_result(fault_stack: FaultStack) -> None:
    """A redelivered message whose call already finished gets its stored result; the delete does not run again."""
    conn = redis.Redis.from_url(fault_stack.settings.broker_url)
    client = fault_stack.client()
    deadline = time.time() + 30
    handle = client.app.send_task(CALL_TOOL, kwargs={"server": "probe_http", "tool": "record_delete",
                                                     "params": {"name": "once"}, "deadline": deadline},
                                  queue="mcp.probe_http")
    original = json.loads(conn.lindex("mcp.probe_http", 0))  # no worker yet: the message waits in its queue
    worker = fault_stack.worker("threads", "threads", 2)
    try:
        first = handle.get(timeout=20)
        redeliver(conn, original)
        wait_until(lambda: worker.output().count(f"[{handle.id}] succeeded") >= 2, 20,
                   "the duplicate delivery to be processed")
        assert client.call_tool("probe_http", "deletions").data == {"once": 1}
        assert handle.get(timeout=5) == first
    finally:
        client.close()
        worker.stop()


def test_a_duplicate_delivery_of_a_call_that_ended_in_a_tool_error_raises_that_error_again(
        fault_stack: FaultStack) -> None:
    """A tool error is stored as FAILURE (for Flower); a redelivery of its message raises the stored error
    again without running the tool a second time, as a stored success is returned again."""
    conn = redis.Redis.from_url(fault_stack.settings.broker_url)
    client = fault_stack.client()
    handle = client.app.send_task(CALL_TOOL, kwargs={"server": "probe_http", "tool": "fail",
                                                     "params": {"message": "boom"}, "deadline": time.time() + 30},
                                  queue="mcp.probe_http")
    original = json.loads(conn.lindex("mcp.probe_http", 0))
    worker = fault_stack.worker("threads", "threads", 2)
    try:
        with pytest.raises(ToolReturnedError) as first:
            handle.get(timeout=20)
        calls = client.call_tool("probe_http", "whoami").data["calls"]
        redeliver(conn, original)
        wait_until(lambda: worker.output().count(f"[{handle.id}] raised expected") >= 2, 20,
                   "the duplicate delivery to be processed")
        assert client.call_tool("probe_http", "whoami").data["calls"] == calls + 1  # only this whoami ran
        with pytest.raises(ToolReturnedError) as again:
            handle.get(timeout=5)
        assert again.value.details == first.value.details and again.value.result["is_error"] is True
    finally:
        client.close()
        worker.stop()


def test_an_http_session_the_server_expired_is_reopened_and_the_call_sent_once_more(fault_stack: FaultStack) -> None:
    """A legacy-protocol HTTP server that forgot the worker's session answers 404 "Session not found"; the
    worker opens a new session and resends the call once, inside the same attempt: the caller sees a success."""
    worker = fault_stack.worker("threads", "threads", 1, queues=("mcp.probe_legacy",))
    client = fault_stack.client()
    try:
        before = client.call_tool("probe_legacy", "whoami").data["handshakes"]
        assert client.call_tool("probe_legacy", "expire_sessions").data["expired"] >= 1
        after = client.call_tool("probe_legacy", "whoami")
        assert after.ok and after.attempts == 1 and after.data["handshakes"] == before + 1
    finally:
        client.close()
        worker.stop()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_a_stopping_worker_closes_its_mcp_sessions_and_leaves_no_server_process(fault_stack: FaultStack,
                                                                                pool: str) -> None:
    """On a warm shutdown the worker closes its held stdio session: the MCP server process exits too."""
    worker = fault_stack.worker(pool, pool, 1, queues=("mcp.probe_stdio",))
    client = fault_stack.client()
    try:
        server_pid = client.call_tool("probe_stdio", "whoami").data["pid"]
        assert pid_alive(server_pid)
        worker.proc.send_signal(signal.SIGTERM)  # to the worker alone, as an operator or systemd would
        worker.proc.wait(timeout=30)
        wait_until(lambda: not pid_alive(server_pid), 10, "the MCP server process to exit")
    finally:
        client.close()
        worker.stop()


def test_a_message_whose_deadline_passed_in_the_queue_is_not_executed(fault_stack: FaultStack) -> None:
    """A call that waited in its queue past its deadline ends as DeadlineExceeded without running."""
    client = fault_stack.client()
    try:
        handle = client.app.send_task(CALL_TOOL, kwargs={"server": "probe_http", "tool": "record_delete",
                                                         "params": {"name": "late"}, "deadline": time.time() + 1},
                                      queue="mcp.probe_http")  # no worker consumes the queue yet
        time.sleep(1.5)  # the deadline passes while the message waits
        worker = fault_stack.worker("threads", "threads", 2)
        try:
            with pytest.raises(DeadlineExceeded):
                handle.get(timeout=15)
            assert "late" not in client.call_tool("probe_http", "deletions").data
        finally:
            worker.stop()
    finally:
        client.close()


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_a_busy_worker_survives_redis_restarting_under_it_and_serves_again(fault_stack: FaultStack,
                                                                             pool: str) -> None:
    """Redis restarted four times while the worker is kept busy with slow calls (acks_late, unacknowledged
    messages in hand): the workers stay up, log no unrecoverable error and serve the next calls unaided.

    Two workers with gossip on, as ``mcp-orch stack`` runs them: each sees the other's events, so a
    lost connection is often noticed on the event subscription. Without ``orchestrator.redis_transport``
    the workers die on the first or second restart with ``AttributeError: 'NoneType' object has no
    attribute 'hostname'``."""
    workers = [fault_stack.worker(f"{pool}-{n}", pool, 8, gossip=True) for n in (1, 2)]
    client = fault_stack.client()
    stop = threading.Event()

    def keep_busy() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):  # Redis is down part of the time: publishing fails then
                for seconds in (0.05, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5):
                    client.app.send_task(CALL_TOOL, kwargs={"server": "probe_http", "tool": "hold",
                                                            "params": {"seconds": seconds},
                                                            "deadline": time.time() + 20}, queue="mcp.probe_http")
            stop.wait(0.3)

    feeder = threading.Thread(target=keep_busy, daemon=True)
    feeder.start()
    try:
        wait_until(lambda: all("] received" in worker.output() for worker in workers), 20, "the workers to take calls")
        for busy_for, down_for in ((2.0, 1.0), (2.5, 0.2), (1.7, 1.4), (3.0, 0.6)):
            time.sleep(busy_for)  # calls in flight, their messages unacknowledged
            fault_stack.redis.restart(down_for=down_for)
        time.sleep(2.0)
        stop.set()
        feeder.join(timeout=10)

        def works() -> bool:
            try:
                return client.call_tool("probe_http", "add", {"a": 2, "b": 3}, timeout=5).data == {"result": 5}
            except OrchestratorError:
                return False

        wait_until(works, 60, "the workers to serve again after the Redis restarts", interval=0.5)
        for worker in workers:
            assert worker.alive(), worker.output()[-3000:]
            assert "Unrecoverable error" not in worker.output()
            assert "Restoring" in worker.output()  # the restarts did catch messages in hand
    finally:
        stop.set()
        client.close()
        for worker in workers:
            worker.stop()
