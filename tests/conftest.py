"""Session-wide real parts: one ``redis-server`` started on a free port for the whole run."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import Settings
from orchestrator.operator.processes import ChildProcess
from tests.support.procs import probe_config, start_worker
from tests.support.redis_proc import RedisServer

pytest_plugins = ["tests.support.breaker_fixtures", "tests.support.fault_stack"]

_databases = itertools.cycle(range(1, 32))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server owned by the test session (never the machine's shared one)."""
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of a flushed database on the session's redis-server, flushed again afterwards."""
    url = f"{redis_server.url}/{next(_databases)}"
    conn = redis.Redis.from_url(url)
    conn.flushdb()
    yield url
    with contextlib.suppress(redis.ConnectionError):
        conn.flushdb()
    conn.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A redis-py client on the flushed test database."""
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


CANARY_KEY = "CANARY-probe-key-5d1e"
"""Secret given to the probe MCP server's environment; must never leave the worker."""
CANARY_TOKEN = "CANARY-http-token-8b2c"
"""Secret sent as an HTTP header to the probe server over streamable HTTP."""


@dataclass
class Stack:
    """A real stack for one test session: Redis, a probe MCP server over HTTP (``probe_config``), two workers."""

    redis: RedisServer
    config_path: Path
    broker_url: str
    settings: Settings
    workers: dict[str, ChildProcess]

    def client(self) -> Orchestrator:
        return Orchestrator(self.settings)


STACK_CONFIG = """
broker_url = "{broker}"
default_timeout = 20

[servers.probe]
aliases = ["pr", "probe-alias"]
[servers.probe.transport]
type = "stdio"
command = "python"
args = ["-m", "tests.support.servers.probe"]
cwd = "{repo}"
env = {{ PROBE_API_KEY = "${{PROBE_API_KEY}}" }}

[servers.forked.transport]
type = "stdio"
command = "python"
args = ["-m", "tests.support.servers.probe"]
cwd = "{repo}"
env = {{ PROBE_API_KEY = "${{PROBE_API_KEY}}" }}

[servers.probe_http.transport]
type = "http"
url = "http://127.0.0.1:{port}/mcp"
headers = {{ Authorization = "Bearer ${{PROBE_TOKEN}}" }}

[servers.capped.transport]
type = "http"
url = "http://127.0.0.1:{port}/mcp"

[servers.flaky]
breaker = {{ failure_threshold = 3, open_seconds = 1.5, success_threshold = 1 }}
retry = {{ max_attempts = 3, backoff_seconds = 0.01, max_backoff_seconds = 0.05, attempt_timeout_seconds = 1 }}
deny_tools = ["delete_thing"]
[servers.flaky.transport]
type = "http"
url = "http://127.0.0.1:{port}/mcp"

[servers.flaky_attempts]
breaker = {{ failure_threshold = 3, open_seconds = 1.5, success_threshold = 1, count = "attempts" }}
retry = {{ max_attempts = 3, backoff_seconds = 0.01, max_backoff_seconds = 0.05 }}
[servers.flaky_attempts.transport]
type = "http"
url = "http://127.0.0.1:{port}/mcp"

[servers.idle.transport]
type = "stdio"
command = "python"
args = ["-m", "tests.support.servers.probe"]
cwd = "{repo}"

[servers.stuck]
connect_timeout = 2
transport = {{ type = "stdio", command = "python", args = ["-c", "import time; time.sleep(300)"] }}

[servers.off]
enabled = false
transport = {{ type = "stdio", command = "python", args = ["-m", "tests.support.servers.probe"] }}
"""


@pytest.fixture(scope="session")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis + probe MCP server over HTTP + a threads-pool worker and a prefork worker."""
    root = tmp_path_factory.mktemp("stack")
    broker = f"{redis_server.url}/0"
    workers: dict[str, ChildProcess] = {}
    with probe_config(root, "orchestrator", STACK_CONFIG, broker=broker) as (config_path, settings):
        env = {"MCP_ORCH_CONFIG": str(config_path), "PROBE_API_KEY": CANARY_KEY, "PROBE_TOKEN": CANARY_TOKEN}
        app = make_celery(settings)
        try:
            workers["threads"] = start_worker(app, name="threads", queues=["mcp.probe", "mcp.probe_http", "mcp.stuck",
                                                                             "mcp.capped", "mcp.flaky",
                                                                             "mcp.flaky_attempts"],
                                              pool="threads", concurrency=8, env=env, log=root / "worker-threads.log")
            workers["prefork"] = start_worker(app, name="prefork", queues=["mcp.forked", "mcp.capped"],
                                              pool="prefork", concurrency=1, env=env, log=root / "worker-prefork.log")
            yield Stack(redis_server, config_path, broker, settings, workers)
        finally:
            for child in workers.values():
                child.stop()
            app.close()


@pytest.fixture
def client(stack: Stack) -> Iterator[Orchestrator]:
    """A client of the session stack, closed after the test."""
    orchestrator = stack.client()
    yield orchestrator
    orchestrator.close()
