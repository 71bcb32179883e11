"""Health checks scheduled by a real beat, run by a real worker, recorded in a real Redis.

The module builds its own small stack on its own Redis database (the session-wide ``stack``
is never touched): a threads worker for ``steady`` (stdio probe), ``fragile`` (HTTP probe that
a test kills and restarts) and ``growing`` (a server whose tool set changes), no worker for
``orphan`` and ``quiet``, and one beat checking every server each second.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator import keys
from orchestrator.catalog import Catalog
from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import Settings, load_settings
from orchestrator.errors import DeadlineExceeded, InvalidCall
from orchestrator.health import HealthStatus, ServerHealth
from orchestrator.operator.processes import ChildProcess
from orchestrator.wire import HEALTH_CHECK
from tests.support.beat import start_beat, wait_for_lock
from tests.support.ports import free_port
from tests.support.procs import REPO, start_http_probe, start_worker
from tests.support.redis_proc import RedisServer

pytestmark = pytest.mark.slow

DATABASE = 29
"""This module's Redis database: its broker, results, health records, catalog and beat lock."""
DOWN_AFTER = 2
"""Consecutive failed checks that mark ``fragile`` down."""

CONFIG = """
broker_url = "{broker}"
default_timeout = 10
beat_lock_timeout = 4
beat_max_interval = 0.5

[servers.steady]
health_interval_seconds = 1
transport = {{ type = "stdio", command = "python", args = ["-m", "tests.support.servers.probe"], cwd = "{repo}" }}

[servers.fragile]
health_interval_seconds = 1
down_after_failures = {down_after}
timeout = 2
connect_timeout = 2
transport = {{ type = "http", url = "http://127.0.0.1:{port}/mcp" }}

[servers.growing]
health_interval_seconds = 1
transport = {{ type = "stdio", command = "python", args = ["-m", "tests.support.servers.growing"], cwd = "{repo}" }}

[servers.orphan]
health_interval_seconds = 1
transport = {{ type = "stdio", command = "python", args = ["-m", "tests.support.servers.probe"], cwd = "{repo}" }}

[servers.quiet]
health_interval_seconds = 3600
transport = {{ type = "stdio", command = "python", args = ["-m", "tests.support.servers.probe"], cwd = "{repo}" }}
"""


@dataclass
class HealthStack:
    """What this module started, and how to restart the killable HTTP server."""

    root: Path
    settings: Settings
    redis: redis.Redis
    client: Orchestrator
    port: int
    fragile_server: ChildProcess
    worker: ChildProcess
    beat: ChildProcess

    def start_fragile_server(self) -> None:
        self.fragile_server = start_http_probe("fragile-http", self.port, log=self.root / "fragile-http.log")


def eventually(read: Callable[[], Any], holds: Callable[[Any], bool], timeout: float, what: str) -> Any:
    """Poll ``read()`` until ``holds(value)``; fail naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    value = read()
    while not holds(value):
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}; last: {value!r}"
        time.sleep(0.1)
        value = read()
    return value


@pytest.fixture(scope="module")
def health_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HealthStack]:
    """Own Redis db, an HTTP probe, a threads worker and one beat (1 s health interval)."""
    root = tmp_path_factory.mktemp("health")
    broker = f"{redis_server.url}/{DATABASE}"
    conn = redis.Redis.from_url(broker)
    conn.flushdb()
    port = free_port()
    config_path = root / "orchestrator.toml"
    config_path.write_text(CONFIG.format(broker=broker, repo=REPO, port=port, down_after=DOWN_AFTER))
    settings = load_settings(config_path)
    env = {"MCP_ORCH_CONFIG": str(config_path)}
    app = make_celery(settings)
    stack = HealthStack(root, settings, conn, Orchestrator(settings, app=app), port, None, None, None)  # type: ignore[arg-type]
    try:
        stack.start_fragile_server()
        stack.worker = start_worker(app, name="health", queues=["mcp.steady", "mcp.fragile", "mcp.growing"],
                                    pool="threads", concurrency=8, env=env, log=root / "worker.log")
        stack.beat = start_beat("beat", config=config_path, log=root / "beat.log")
        wait_for_lock(conn, stack.beat)
        yield stack
    finally:
        for child in (stack.beat, stack.worker, stack.fragile_server):
            if child is not None:
                child.stop()
        stack.client.close()
        conn.flushdb()
        conn.close()


def detail(stack: HealthStack, server: str) -> Callable[[], ServerHealth]:
    return lambda: stack.client.health_detail(server)


def test_beat_runs_each_health_check_on_its_servers_queue(health_stack: HealthStack) -> None:
    """Beat's checks reach the worker of each server's own queue and record name, version, tools and latency."""
    health = eventually(detail(health_stack, "steady"), lambda h: h.checks >= 3, 20, "three checks of steady")
    assert health.status == HealthStatus.HEALTHY and health.recorded_status == HealthStatus.HEALTHY
    assert health.worker == "health@test" and health.consumers == 1
    assert health.server_name == "probe" and health.server_version == "1.0.0"
    assert health.tool_count and health.tool_count >= 8
    assert health.latency_ms is not None and 0 < health.latency_ms < 2000
    assert health.consecutive_failures == 0 and health.last_success_at and health.last_error is None
    assert detail(health_stack, "growing")().server_name == "growing"


def test_checks_for_a_queue_without_worker_stay_in_that_queue_and_expire(health_stack: HealthStack) -> None:
    """Beat puts orphan's checks on mcp.orphan only, each with an expiry no later than its interval."""
    eventually(lambda: health_stack.redis.llen("mcp.orphan"), lambda n: n >= 2, 10, "two checks in mcp.orphan")
    messages = [json.loads(raw) for raw in health_stack.redis.lrange("mcp.orphan", 0, -1)]
    for message in messages:
        headers = message["headers"]
        assert headers["task"] == HEALTH_CHECK
        assert "'server': 'orphan'" in headers["kwargsrepr"]
        assert headers["expires"] is not None
    assert health_stack.redis.llen("mcp.steady") == 0


def test_a_queue_without_worker_reads_as_down_naming_the_queue(health_stack: HealthStack) -> None:
    """No worker consumes mcp.orphan: its status is down, with zero consumers and a growing backlog."""
    health = eventually(detail(health_stack, "orphan"), lambda h: h.backlog >= 1, 10, "a backlog on mcp.orphan")
    assert health.status == HealthStatus.DOWN and health.consumers == 0
    assert health.reason == "no worker consumes mcp.orphan"
    assert health_stack.client.health_status()["orphan"] == "down"


def test_a_killed_server_goes_down_after_k_failures_and_comes_back_up(health_stack: HealthStack) -> None:
    """Killing fragile's MCP server marks it degraded, then down after K failures; restarting it brings it up."""
    eventually(detail(health_stack, "fragile"), lambda h: h.status == HealthStatus.HEALTHY, 20, "fragile healthy")
    health_stack.fragile_server.stop()
    seen: set[HealthStatus] = set()

    def read() -> ServerHealth:
        health = health_stack.client.health_detail("fragile")
        seen.add(health.status)
        return health

    down = eventually(read, lambda h: h.status == HealthStatus.DOWN, 20, "fragile down")
    assert down.consecutive_failures >= DOWN_AFTER and down.down_after == DOWN_AFTER
    assert down.last_error and down.last_failure_at and down.last_failure_at >= down.last_success_at
    assert HealthStatus.DEGRADED in seen or down.consecutive_failures == DOWN_AFTER
    health_stack.start_fragile_server()
    up = eventually(detail(health_stack, "fragile"), lambda h: h.status == HealthStatus.HEALTHY, 30, "fragile up")
    assert up.consecutive_failures == 0 and up.last_success_at > down.last_failure_at
    assert up.last_error and up.last_failure_at >= down.last_failure_at  # the last failure stays visible


def test_a_fresh_health_check_goes_through_the_queue(health_stack: HealthStack) -> None:
    """health_check() runs a check on a worker now; health_check_all() checks every server in parallel."""
    before = health_stack.client.health_detail("steady").checks
    fresh = health_stack.client.health_check("steady", timeout=5)
    assert fresh.status == HealthStatus.HEALTHY and fresh.checks > before
    started = time.monotonic()
    everything = health_stack.client.health_check_all(timeout=2)
    assert time.monotonic() - started < 6
    assert set(everything) == {"steady", "fragile", "growing", "orphan", "quiet"}
    assert everything["orphan"].status == HealthStatus.DOWN
    assert "no worker ran the health check within 2s" in (everything["quiet"].last_error or "")


def test_a_stale_catalog_is_refreshed_after_the_tool_set_changes(health_stack: HealthStack) -> None:
    """A tool added to a running server appears in the cached catalog at the next check, with its schema."""
    client = health_stack.client
    eventually(lambda: client.catalog.tools("growing"), lambda tools: tools is not None, 20, "growing's catalog")
    assert "added_later" not in {tool["name"] for tool in client.list_tools("growing")}
    client.call_tool("growing", "grow", {"name": "added_later"})
    tools = eventually(lambda: {tool["name"]: tool for tool in client.list_tools("growing")},
                       lambda tools: "added_later" in tools, 10, "added_later in the catalog")
    assert tools["added_later"]["inputSchema"]["properties"]["count"]["type"] == "integer"
    with pytest.raises(InvalidCall, match=r"params\.count: 'many' is not of type 'integer'"):
        client.call_tool("growing", "added_later", {"count": "many"})
    assert client.call_tool("growing", "added_later", {"count": 3}).data == {"result": 3}


def test_list_tools_is_served_from_the_catalog_without_a_worker(health_stack: HealthStack) -> None:
    """A server whose queue nobody consumes still lists its cached tools; refresh=True needs a worker."""
    tools = health_stack.client.list_tools("steady")
    Catalog(health_stack.redis).replace("quiet", tools, source="test")
    started = time.monotonic()
    assert health_stack.client.list_tools("quiet", timeout=1) == tools
    assert time.monotonic() - started < 0.5
    with pytest.raises(DeadlineExceeded):
        health_stack.client.list_tools("quiet", timeout=0.5, refresh=True)
    Catalog(health_stack.redis).replace("orphan", tools, source="test")
    listing = health_stack.client.list_all_tools(timeout=1)
    assert set(listing) == {"steady", "fragile", "growing", "orphan", "quiet"}
    assert listing["quiet"] == tools and listing["orphan"] == tools


def test_params_failing_the_schema_are_refused_before_enqueue(health_stack: HealthStack) -> None:
    """A call whose params break the cached input schema raises InvalidCall naming the field; nothing is queued."""
    client = health_stack.client
    Catalog(health_stack.redis).replace("quiet", client.list_tools("steady"), source="test")
    queued = health_stack.redis.llen("mcp.quiet")
    with pytest.raises(InvalidCall) as caught:
        client.call_tool("quiet", "add", {"a": "abc", "b": 1})
    assert str(caught.value) == "params.a: 'abc' is not of type 'integer'"
    assert caught.value.field == "params.a" and caught.value.server == "quiet" and caught.value.tool == "add"
    with pytest.raises(InvalidCall, match=r"^params\.b: required property is missing$"):
        client.call_tool("quiet", "add", {"a": 1})
    with pytest.raises(InvalidCall, match=r"^calls\[1\]\.params\.text: ") as batch:
        client.call_tools_parallel([("quiet", "add", {"a": 1, "b": 2}), ("quiet", "echo", {"text": 5})])
    assert batch.value.field == "calls[1].params.text"
    assert health_stack.redis.llen("mcp.quiet") == queued
    assert client.call_tool("steady", "add", {"a": 2, "b": 3}).data == {"result": 5}


def test_health_records_carry_no_secret_and_use_the_documented_keys(health_stack: HealthStack) -> None:
    """Health and catalog live under mcpo:health:<server> and mcpo:tools:<server>; the lock under RedBeat's key."""
    conn = health_stack.redis
    assert conn.hget(keys.health_key("steady"), "status") == b"healthy"
    assert conn.hlen(keys.tools_key("steady")) >= 8
    assert conn.hget(keys.tools_meta_key("steady"), "digest")
    assert conn.exists(keys.REDBEAT_LOCK_KEY)
    assert conn.zcard(keys.consumers_key("mcp.steady")) == 1


def test_the_cli_prints_health_from_redis(health_stack: HealthStack) -> None:
    """``mcp-orch health steady --json`` prints the detail record and exits 0 when healthy."""
    config = health_stack.root / "orchestrator.toml"
    done = subprocess.run([sys.executable, "-m", "orchestrator.operator.cli", "--config", str(config), "health",
                           "steady", "--json"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steady"]["status"] == "healthy"
