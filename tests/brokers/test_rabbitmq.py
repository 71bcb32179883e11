"""RabbitMQ as the broker, Redis kept for results and shared state: quorum queues per server, and a
worker killed with ``kill -9`` has its calls redelivered at once (the at-most-once rules decide what
runs again)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from bench.brokers import PrivateBroker
from orchestrator.aio.client import AsyncOrchestrator
from orchestrator.aio.publisher import loop_publishing
from orchestrator.batch import Outcome
from orchestrator.celery_app import RABBITMQ_DELIVERY_LIMIT, make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import Settings, load_settings
from orchestrator.errors import OrchestratorError, OutcomeUnknown
from orchestrator.keys import execution_marker_key
from orchestrator.operator.processes import ChildProcess, wait_until
from orchestrator.results import ToolResult
from tests.support import rabbitmq
from tests.support.ports import free_port
from tests.support.procs import start_http_probe, start_worker
from tests.support.recovery import first_success_after

pytestmark = pytest.mark.slow

CONFIG = """
broker_url = "{broker}"
result_backend = "{backend}"
default_timeout = 40

[servers.probe_http.transport]
type = "http"
url = "http://127.0.0.1:{http_port}/mcp"
"""


@dataclass
class RabbitStack:
    vhost: str
    settings: Settings
    env: dict[str, str]
    root: Path
    children: list[ChildProcess]

    def worker(self, name: str) -> ChildProcess:
        app = make_celery(self.settings)
        try:
            child = start_worker(app, name=name, queues=["mcp.probe_http"], pool="threads", concurrency=2,
                                 env=self.env, log=self.root / f"{name}.log")
        finally:
            app.close()
        self.children.append(child)
        return child


@pytest.fixture
def rabbit_stack(redis_url: str, tmp_path: Path) -> Iterator[RabbitStack]:
    with rabbitmq.vhost() as broker:
        http_port = free_port()
        children = [start_http_probe("probe-http", http_port, log=tmp_path / "probe.log")]
        config_path = tmp_path / "orchestrator.toml"
        config_path.write_text(CONFIG.format(broker=broker, backend=redis_url, http_port=http_port))
        stack = RabbitStack(broker.rsplit("/", 1)[1], load_settings(config_path),
                            {"MCP_ORCH_CONFIG": str(config_path)}, tmp_path, children)
        try:
            yield stack
        finally:
            for child in reversed(stack.children):
                child.stop()


def test_each_server_queue_is_a_durable_quorum_queue_with_a_delivery_limit(rabbit_stack: RabbitStack) -> None:
    """A worker declares ``mcp.<server>`` as a quorum queue, so it is replicated, survives a broker
    restart and stops redelivering a message that kills its worker every time."""
    rabbit_stack.worker("w1")
    info = rabbitmq.queue_info(rabbit_stack.vhost, "mcp.probe_http")
    assert info["type"] == "quorum"
    assert info["durable"] == "true"
    assert f'"x-delivery-limit",{RABBITMQ_DELIVERY_LIMIT}' in info["arguments"].replace(" ", "")


def test_the_async_client_publishes_its_calls_through_kombu_to_rabbitmq(rabbit_stack: RabbitStack) -> None:
    """The async client's loop publisher writes Redis lists only; on RabbitMQ its calls go through kombu on its
    publisher threads, and come back as results on the loop."""
    rabbit_stack.worker("w1")

    async def main() -> list[ToolResult]:
        async with AsyncOrchestrator(rabbit_stack.settings) as client:
            return await asyncio.gather(*(client.call_tool("probe_http", "add", {"a": i, "b": 1}) for i in range(5)))

    assert not loop_publishing(rabbit_stack.settings)
    assert [result.data for result in asyncio.run(main())] == [{"result": i + 1} for i in range(5)]


@pytest.mark.parametrize("chunk_size", [1, 0], ids=["a task per call", "chunked"])
def test_calls_of_a_worker_killed_with_sigkill_are_redelivered_at_once(
        rabbit_stack: RabbitStack, redis_url: str, chunk_size: int, capsys: pytest.CaptureFixture[str]) -> None:
    """The broker requeues a dead consumer's unacked calls when its connection drops: a read-only call
    is answered by the other worker right away, and a destructive one is not run again but ends as
    ``OutcomeUnknown``; the same when both calls travel in one chunk task."""
    doomed = rabbit_stack.worker("doomed")
    client = Orchestrator(rabbit_stack.settings.model_copy(update={"batch_chunk_size": chunk_size}))
    backend = redis.Redis.from_url(redis_url)
    markers_before = len(backend.keys(execution_marker_key("*")))
    outcomes: list[Outcome] = []
    arrived: list[float] = []

    def run_batch() -> None:
        calls = [{"server": "probe_http", "tool": "hang_once", "params": {"key": "k1", "seconds": 60}},
                 {"server": "probe_http", "tool": "record_delete", "params": {"name": "y", "seconds": 60}}]
        outcomes.extend(client.call_tools_parallel(calls, timeout=40))
        arrived.append(time.monotonic())

    try:
        assert client.call_tool("probe_http", "echo", {"text": "warm"}).ok
        batch = threading.Thread(target=run_batch)
        batch.start()
        inspect = client.app.control.inspect(destination=["doomed@test"], timeout=1)
        tasks = 2 if chunk_size == 1 else 1  # a chunk is one task; its calls start together
        wait_until(lambda: len((inspect.active() or {}).get("doomed@test", [])) == tasks
                   and len(backend.keys(execution_marker_key("*"))) > markers_before, 20,
                   "both calls to run on the doomed worker")
        rabbit_stack.worker("survivor")
        os.kill(doomed.pid, signal.SIGKILL)
        killed = time.monotonic()
        batch.join(45)
        assert not batch.is_alive(), "the batch did not end"
        redelivered = arrived[0] - killed

        read_only, destructive = outcomes
        assert isinstance(read_only, ToolResult) and read_only.worker == "survivor@test", read_only
        assert isinstance(destructive, OutcomeUnknown), destructive
        assert client.call_tool("probe_http", "deletions").data.get("y", 0) <= 1
        assert redelivered < 5, f"redelivery took {redelivered:.1f}s"
        with capsys.disabled():
            print(f"\nrabbitmq: both calls of a kill -9'd worker ended {redelivered:.2f}s after the kill "
                  "(read-only re-run by another worker, destructive one OutcomeUnknown)")
    finally:
        client.close()
        backend.close()


@pytest.fixture
def private_broker() -> Iterator[PrivateBroker]:
    with rabbitmq.private_node() as broker:
        yield broker


def test_a_broker_restart_mid_batch_gives_every_call_one_outcome_and_workers_reconnect(
        private_broker: PrivateBroker, redis_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Calls queued or running when RabbitMQ stops are kept on disk by the quorum queue and delivered
    after it is back; every call ends with a result or a typed error, no destructive call runs twice."""
    http_port = free_port()
    config_path = tmp_path / "orchestrator.toml"
    config_path.write_text(CONFIG.format(broker=private_broker.url, backend=redis_url, http_port=http_port))
    stack = RabbitStack("/", load_settings(config_path), {"MCP_ORCH_CONFIG": str(config_path)}, tmp_path,
                        [start_http_probe("probe-http", http_port, log=tmp_path / "probe.log")])
    client = Orchestrator(stack.settings)
    try:
        stack.worker("w1")
        stack.worker("w2")
        assert client.call_tool("probe_http", "echo", {"text": "warm"}).ok
        calls = [{"server": "probe_http", "tool": "record_delete", "params": {"name": f"d{i}", "seconds": 0.5}}
                 if i % 3 == 0 else {"server": "probe_http", "tool": "sleep", "params": {"seconds": 0.5}}
                 for i in range(30)]
        outcomes: list[Outcome] = []
        batch = threading.Thread(target=lambda: outcomes.extend(client.call_tools_parallel(calls, timeout=60)))
        batch.start()
        time.sleep(1.0)
        private_broker.stop()
        stopped = time.monotonic()
        private_broker.start()
        recovery = first_success_after(Orchestrator(stack.settings), stopped, "probe_http", limit=60)
        batch.join(90)
        assert not batch.is_alive(), "the batch did not end"

        assert len(outcomes) == len(calls)
        assert all(isinstance(outcome, ToolResult | OrchestratorError) for outcome in outcomes), outcomes
        deletions = client.call_tool("probe_http", "deletions").data
        assert all(count == 1 for count in deletions.values()), f"a destructive call ran twice: {deletions}"
        errors = Counter(type(outcome).__name__ for outcome in outcomes if not isinstance(outcome, ToolResult))
        with capsys.disabled():
            print(f"\nrabbitmq broker restart: first success {recovery:.1f}s after the stop (node start included); "
                  f"batch of {len(calls)}: {len(calls) - errors.total()} results, typed errors {dict(errors)}")
    finally:
        client.close()
        for child in reversed(stack.children):
            child.stop()
