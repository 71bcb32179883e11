"""A private stack for fault tests: its own redis-server (which a test may stop and restart), the probe
MCP server over HTTP, and workers started by each test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import Settings
from orchestrator.operator.processes import ChildProcess
from tests.support.procs import probe_config, start_worker
from tests.support.redis_proc import RedisServer

CONFIG = """
broker_url = "{broker}"
[servers.probe_http]
retry = {{ max_attempts = 3, backoff_seconds = 0.05, max_backoff_seconds = 0.2 }}
[servers.probe_http.transport]
type = "http"
url = "http://127.0.0.1:{port}/mcp"

[servers.probe_legacy]
protocol = "legacy"
[servers.probe_legacy.transport]
type = "http"
url = "http://127.0.0.1:{port}/mcp"

[servers.probe_stdio.transport]
type = "stdio"
command = "python"
args = ["-m", "tests.support.servers.probe"]
cwd = "{repo}"
"""


@dataclass
class FaultStack:
    redis: RedisServer
    settings: Settings
    env: dict[str, str]
    root: Path

    def client(self) -> Orchestrator:
        return Orchestrator(self.settings)

    def worker(self, name: str, pool: str, concurrency: int, queues: tuple[str, ...] = ("mcp.probe_http",),
               gossip: bool = False) -> ChildProcess:
        return start_worker(make_celery(self.settings), name=name, queues=list(queues), pool=pool,
                            concurrency=concurrency, env=self.env, log=self.root / f"{name}.log", gossip=gossip)


@pytest.fixture
def fault_stack(tmp_path: Path) -> Iterator[FaultStack]:
    """A private redis-server and HTTP probe MCP server; workers are started by each test."""
    server = RedisServer()
    server.start()
    try:
        with probe_config(tmp_path, "faults", CONFIG, broker=f"{server.url}/0") as (config, settings):
            yield FaultStack(server, settings, {"MCP_ORCH_CONFIG": str(config)}, tmp_path)
    finally:
        server.cleanup()
