"""Promises of README's "Guarantees" that only a real stack can break: each test here failed
with the smallest code change that breaks its promise (issue 21; tests/mutation_survivors.md).

One private stack for the module: its own redis-server (a short visibility timeout), the HTTP probe
MCP server, and two threads-pool workers; the ``unserved`` server's queue has no worker, so whatever
reaches it stays; ``lost`` gets a worker that the test kills.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery

from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import Settings
from orchestrator.errors import (
    CircuitBreakerOpenError,
    OrchestratorError,
    OutcomeUnknown,
    ToolReturnedError,
    UpstreamUnavailable,
)
from orchestrator.keys import execution_marker_key
from orchestrator.operator.processes import ChildProcess, wait_until
from orchestrator.results import ToolResult
from tests.support.procs import probe_config, start_worker
from tests.support.redis_proc import RedisServer

pytestmark = pytest.mark.slow

SECRET = "CANARY-promise-key-41f7"
"""The leaky server's API key, known only to the worker's environment."""

VISIBILITY_TIMEOUT = 16
"""Seconds before Redis re-delivers the unacked message of a dead worker (kept short for the test)."""

CONFIG = """
broker_url = "{broker}"
default_timeout = 15
max_timeout = 15
visibility_timeout = {visibility}

[servers.patient]
retry = {{ max_attempts = 5, backoff_seconds = 12, max_backoff_seconds = 12 }}
transport = {{ type = "http", url = "http://127.0.0.1:{port}/mcp" }}

[servers.capped]
max_concurrency = 2
transport = {{ type = "http", url = "http://127.0.0.1:{port}/mcp" }}

[servers.unserved]
transport = {{ type = "http", url = "http://127.0.0.1:{port}/mcp" }}

[servers.lost]
transport = {{ type = "http", url = "http://127.0.0.1:{port}/mcp" }}

[servers.leaky]
retry = {{ max_attempts = 1 }}
[servers.leaky.transport]
type = "stdio"
command = "python"
args = ["-m", "tests.support.servers.probe"]
cwd = "{repo}"
env = {{ PROBE_API_KEY = "${{LEAKY_API_KEY}}" }}
"""


@dataclass
class PromiseStack:
    settings: Settings
    broker: redis.Redis
    app: Celery
    env: dict[str, str]
    root: Path
    workers: list[ChildProcess]

    def worker(self, name: str, queues: list[str]) -> ChildProcess:
        """Start one more threads-pool worker; it is stopped with the stack."""
        child = start_worker(self.app, name=name, queues=queues, pool="threads", concurrency=4, env=self.env,
                             log=self.root / f"worker-{name}.log")
        self.workers.append(child)
        return child


@pytest.fixture(scope="module")
def promise_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromiseStack]:
    """Redis, the HTTP probe, and two workers that both consume ``mcp.capped``; none consumes ``mcp.unserved``
    (``mcp.lost`` gets its workers from the test that kills one)."""
    root = tmp_path_factory.mktemp("promises")
    server = RedisServer()
    server.start()
    try:
        with probe_config(root, "promises", CONFIG, broker=f"{server.url}/0",
                          visibility=VISIBILITY_TIMEOUT) as (config, settings):
            env = {"MCP_ORCH_CONFIG": str(config), "LEAKY_API_KEY": SECRET}
            app = make_celery(settings)
            stack = PromiseStack(settings, redis.Redis.from_url(settings.broker_url), app, env, root, [])
            try:
                stack.worker("one", ["mcp.capped", "mcp.patient", "mcp.leaky"])
                stack.worker("two", ["mcp.capped"])
                yield stack
            finally:
                for child in stack.workers:
                    child.stop()
                stack.broker.close()
                app.close()
    finally:
        server.cleanup()


@pytest.fixture
def client(promise_stack: PromiseStack) -> Iterator[Orchestrator]:
    """A client whose breakers start closed and are closed again afterwards."""
    orchestrator = Orchestrator(promise_stack.settings)
    for name in promise_stack.settings.servers:
        orchestrator.reset_breaker(name)
    yield orchestrator
    for name in promise_stack.settings.servers:
        orchestrator.reset_breaker(name)
    orchestrator.close()


def test_a_retry_is_not_scheduled_past_the_deadline_the_last_real_outcome_comes_back_before_it(
        client: Orchestrator) -> None:
    """A backoff (6-12 s) longer than the time left (5 s) ends the call with its upstream error, before the deadline."""
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable) as caught:
        client.call_tool("patient", "upstream_down", timeout=5)
    assert time.monotonic() - started < 5, "the worker slept past the deadline instead of giving up"
    assert "simulated outage" in str(caught.value)


def test_a_secret_in_the_text_of_an_error_raised_on_the_worker_is_masked(
        promise_stack: PromiseStack, client: Orchestrator) -> None:
    """A protocol error whose message holds the server's API key reaches the client and the backend masked
    (a JSON-RPC error the server sends is a tool error: issue 14's classification)."""
    with pytest.raises(ToolReturnedError) as caught:
        client.call_tool("leaky", "leak_key_protocol_error", timeout=15)
    error = caught.value
    assert "backend refused key ***" in str(error), "the error should still say what went wrong"
    assert SECRET not in str(error) and SECRET not in json.dumps(error.details)
    stored = promise_stack.broker.get(f"celery-task-meta-{error.task_id}")
    assert stored is not None and SECRET.encode() not in stored


def test_an_open_breaker_refuses_a_single_call_before_anything_is_enqueued(
        promise_stack: PromiseStack, client: Orchestrator) -> None:
    """No worker consumes mcp.unserved: a call that was enqueued would stay there (and time out)."""
    client.force_breaker("unserved", "open")
    with pytest.raises(CircuitBreakerOpenError) as caught:
        client.call_tool("unserved", "echo", {"text": "x"}, timeout=2)
    assert caught.value.server == "unserved"
    assert promise_stack.broker.llen("mcp.unserved") == 0


def test_an_open_breaker_refuses_its_servers_calls_of_a_batch_before_anything_is_enqueued(
        promise_stack: PromiseStack, client: Orchestrator) -> None:
    """The refused server's calls fail client-side, nothing reaches its queue, the other server's calls run."""
    client.force_breaker("unserved", "open")
    outcomes = client.call_tools_parallel([("unserved", "echo", {"text": "a"}, 2), ("patient", "add", {"a": 1, "b": 2}),
                                           ("unserved", "echo", {"text": "b"}, 2)])
    assert [type(outcome) for outcome in outcomes] == [CircuitBreakerOpenError, ToolResult, CircuitBreakerOpenError]
    assert promise_stack.broker.llen("mcp.unserved") == 0


def test_a_servers_configured_max_concurrency_holds_across_workers(client: Orchestrator) -> None:
    """capped sets max_concurrency = 2: eight slow calls taken by two 4-thread workers never overlap more than 2."""
    client.call_tool("capped", "in_flight_stats", {"reset": True})
    outcomes = client.call_tools_parallel([("capped", "hold", {"seconds": 0.4})] * 8)
    assert all(isinstance(outcome, ToolResult) for outcome in outcomes)
    assert {outcome.worker for outcome in outcomes} == {"one@test", "two@test"}, "both workers should take part"
    assert client.call_tool("capped", "in_flight_stats").data["max"] == 2


def test_a_whole_worker_killed_mid_call_ends_the_call_at_its_deadline_and_redis_redelivers_the_message(
        promise_stack: PromiseStack, client: Orchestrator) -> None:
    """kill -9 of a worker running a delete: the caller gets OutcomeUnknown (the delete had claimed its
    marker: it may have run, issue 13); the message left in ``unacked`` is then either discarded by a
    live worker's reclaim (its deadline passed) or re-delivered after visibility_timeout and refused
    (it expired): either way the delete does not run a second time and nothing is left behind."""
    doomed = promise_stack.worker("doomed", ["mcp.lost"])
    name = uuid.uuid4().hex
    outcome: list[OrchestratorError] = []

    def call() -> None:
        try:
            client.call_tool("lost", "record_delete", {"name": name, "seconds": 1}, timeout=3)
        except OrchestratorError as exc:
            outcome.append(exc)

    def markers() -> set[bytes]:
        return set(promise_stack.broker.scan_iter(execution_marker_key("*")))

    earlier = markers()  # other tests' calls not safe to repeat left theirs
    caller = threading.Thread(target=call)
    caller.start()
    wait_until(lambda: bool(markers() - earlier), 5, "the delete to start")
    os.kill(doomed.pid, signal.SIGKILL)
    caller.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], OutcomeUnknown), outcome
    assert "the call's deadline (3s)" in str(outcome[0])
    assert promise_stack.broker.hlen("unacked") == 1, "the killed worker's message should wait to be re-delivered"
    [(_, delivered_at)] = promise_stack.broker.zrange("unacked_index", 0, -1, withscores=True)
    # kombu sweeps for expired unacked messages when a worker starts (then only every ~100 s): start the
    # heir once the message has waited visibility_timeout.
    time.sleep(max(delivered_at + VISIBILITY_TIMEOUT - time.time(), 0) + 0.5)
    promise_stack.worker("heir", ["mcp.lost"])
    wait_until(lambda: promise_stack.broker.hlen("unacked") == 0 and promise_stack.broker.llen("mcp.lost") == 0,
               15, "the message to be re-delivered and taken")
    assert client.call_tool("patient", "deletions").data.get(name, 0) <= 1
