"""Redis Sentinel failover with real processes on loopback: a master, a replica, three sentinels,
two workers, beat and a client running a batch; the master is killed with ``kill -9`` mid-batch."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.brokers import MASTER_NAME, SentinelGroup
from orchestrator import keys, redis_conn
from orchestrator.aio.client import AsyncOrchestrator
from orchestrator.batch import Outcome
from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import Settings, load_settings
from orchestrator.errors import OrchestratorError
from orchestrator.operator.processes import ChildProcess, wait_until
from orchestrator.results import ToolResult
from tests.support.beat import start_beat
from tests.support.ports import free_port
from tests.support.procs import start_http_probe, start_worker
from tests.support.recovery import first_success_after

pytestmark = pytest.mark.slow

CONFIG = """
default_timeout = 15
beat_max_interval = 1
beat_lock_timeout = 4

[redis_sentinel]
sentinels = {sentinels}
master_name = "{master}"

[servers.probe_http]
health_interval_seconds = 1
[servers.probe_http.transport]
type = "http"
url = "http://127.0.0.1:{http_port}/mcp"
"""


@dataclass
class FailoverStack:
    group: SentinelGroup
    settings: Settings
    config_path: Path
    children: list[ChildProcess]


@pytest.fixture
def failover_stack(tmp_path: Path) -> Iterator[FailoverStack]:
    group = SentinelGroup()
    children: list[ChildProcess] = []
    try:
        group.start()
        http_port = free_port()
        children.append(start_http_probe("probe-http", http_port, log=tmp_path / "probe.log"))
        config_path = tmp_path / "orchestrator.toml"
        sentinels = "[" + ", ".join(f'"{address}"' for address in group.sentinels) + "]"
        config_path.write_text(CONFIG.format(sentinels=sentinels, master=MASTER_NAME, http_port=http_port))
        settings = load_settings(config_path)
        env = {"MCP_ORCH_CONFIG": str(config_path)}
        app = make_celery(settings)
        for name in ("w1", "w2"):
            children.append(start_worker(app, name=name, queues=["mcp.probe_http"], pool="threads", concurrency=4,
                                         env=env, log=tmp_path / f"{name}.log"))
        app.close()
        children.append(start_beat("beat", config=config_path, log=tmp_path / "beat.log", env=env))
        yield FailoverStack(group, settings, config_path, children)
    finally:
        for child in reversed(children):
            child.stop()
        group.cleanup()


def test_a_master_killed_mid_batch_fails_over_and_every_call_gets_one_outcome(
        failover_stack: FailoverStack, capsys: pytest.CaptureFixture[str]) -> None:
    """Every call of the batch ends with a result or a typed error, no destructive call runs twice,
    and workers, beat and the client carry on against the promoted replica without a restart."""
    group = failover_stack.group
    client = Orchestrator(failover_stack.settings)
    async_client = AsyncOrchestrator(failover_stack.settings)
    loop = asyncio.new_event_loop()  # the async client's result waiter lives on one loop across the kill
    state = redis_conn.connect(failover_stack.settings, socket_timeout=2, socket_connect_timeout=2)
    try:
        assert client.call_tool("probe_http", "echo", {"text": "warm"}).ok
        assert loop.run_until_complete(async_client.call_tool("probe_http", "echo", {"text": "warm"})).ok
        old_master = group.master_port_now()
        calls = [{"server": "probe_http", "tool": "record_delete", "params": {"name": f"d{i}", "seconds": 0.3}}
                 if i % 3 == 0 else {"server": "probe_http", "tool": "sleep", "params": {"seconds": 0.3}}
                 for i in range(60)]
        outcomes: list[Outcome] = []
        batch = threading.Thread(target=lambda: outcomes.extend(client.call_tools_parallel(calls, timeout=30)))
        batch.start()
        time.sleep(1.0)
        killed = group.kill_master()
        recovery = first_success_after(Orchestrator(failover_stack.settings), killed, "probe_http")
        batch.join(60)
        assert not batch.is_alive(), "the batch did not end"
        assert group.master_port_now() != old_master

        assert len(outcomes) == len(calls)
        assert all(isinstance(outcome, ToolResult | OrchestratorError) for outcome in outcomes), outcomes
        deletions = client.call_tool("probe_http", "deletions").data
        assert all(count == 1 for count in deletions.values()), f"a destructive call ran twice: {deletions}"

        after = client.call_tools_parallel([{"server": "probe_http", "tool": "add", "params": {"a": i, "b": 1}}
                                            for i in range(8)], timeout=20)
        assert [outcome.data if isinstance(outcome, ToolResult) else outcome for outcome in after] == [
            {"result": i + 1} for i in range(8)]

        def beat_checked_after_kill() -> bool:
            checked = client.health_detail("probe_http").last_check_at
            return checked is not None and checked > time.time() - (time.monotonic() - killed) + 1
        async_after = loop.run_until_complete(async_client.call_tool("probe_http", "add", {"a": 2, "b": 2}))
        assert async_after.data == {"result": 4}, "the async client's waiter follows the new master"
        wait_until(beat_checked_after_kill, 20, "beat's health check to run against the new master")
        assert state.exists(keys.REDBEAT_LOCK_KEY)

        errors = Counter(type(outcome).__name__ for outcome in outcomes if not isinstance(outcome, ToolResult))
        with capsys.disabled():
            print(f"\nsentinel failover: first success {recovery:.1f}s after kill -9 of the master; batch of "
                  f"{len(calls)}: {len(calls) - errors.total()} results, typed errors {dict(errors)}")
    finally:
        loop.run_until_complete(async_client.aclose())
        loop.close()
        state.close()
        client.close()
