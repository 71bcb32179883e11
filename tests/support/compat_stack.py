"""The compat stack: four simulators and workers started with ``worker_environment(seed config)``
and nothing else, on their own Redis database, so what the workers do (breaker threshold,
retries) shows the seed config's mapping reached them.

One threads worker serves sabnzbd, sonarr and radarr, another plex (a test stops and restarts it).
``tests/compat/conftest.py`` gives each compat test module one such stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

import upstream_sim
from orchestrator import compat
from orchestrator.celery_app import make_celery
from orchestrator.compat import MCPOrchestrator, MCPOrchestratorConfig, SeedConfigWarning, ServerConfig
from orchestrator.config import Settings, load_settings
from orchestrator.operator.processes import ChildProcess
from tests.support.media import CANARY
from tests.support.media_stack import MEDIA_CONFIG, MEDIA_SERVICES
from tests.support.procs import REPO, start_worker
from tests.support.redis_proc import RedisServer
from upstream_sim.runner import SimHandle

DATABASE = 17
"""This module's Redis database: broker, results, breakers, health records and catalog."""
WAIT = 20.0
"""Longest any single test step may wait (seconds)."""


def seed_config(sims: dict[str, SimHandle], **tunables: Any) -> MCPOrchestratorConfig:
    """AutoArr's config as it builds it today: each server's URL and key, plus tunables."""
    servers = {name: ServerConfig(name=name, url=sim.url, api_key=CANARY[name]) for name, sim in sims.items()}
    defaults = {"circuit_breaker_threshold": 2, "circuit_breaker_timeout": 1.0, "circuit_breaker_success_threshold": 1,
                "max_retries": 0, "default_tool_timeout": 10.0, "health_check_failure_threshold": 2,
                "server_aliases": {"downloads": "sabnzbd"}, "max_parallel_calls": 4}
    return MCPOrchestratorConfig(**servers, **{**defaults, **tunables})


@dataclass
class CompatStack:
    root: Path
    base: Settings
    sims: dict[str, SimHandle]
    redis: redis.Redis
    env: dict[str, str]
    workers: dict[str, ChildProcess]

    def facade(self, **tunables: Any) -> MCPOrchestrator:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SeedConfigWarning)  # the secrets are in the workers' env, not ours
            return MCPOrchestrator(seed_config(self.sims, **tunables), settings=self.base)

    def start_plex_worker(self) -> None:
        app = make_celery(self.base)
        try:
            self.workers["plex"] = start_worker(app, name="compat-plex", queues=["mcp.plex"], pool="threads",
                                                concurrency=4, env=self.env, log=self.root / "worker-plex.log")
        finally:
            app.close()


def run(coro: Coroutine[Any, Any, Any], timeout: float = WAIT) -> Any:
    """Run one test's coroutine with a time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.contextmanager
def running_compat_stack(redis_server: RedisServer, root: Path) -> Iterator[CompatStack]:
    """The simulators and workers of a compat stack on database 17, stopped on exit."""
    broker = f"{redis_server.url}/{DATABASE}"
    conn = redis.Redis.from_url(broker)
    conn.flushdb()
    sims = {service: upstream_sim.run_in_thread(service, CANARY[service]) for service in MEDIA_SERVICES}
    config_path = root / "media.toml"
    config_path.write_text(MEDIA_CONFIG.format(broker=broker, repo=REPO))
    base = load_settings(config_path)
    env = {"MCP_ORCH_CONFIG": str(config_path), **compat.worker_environment(seed_config(sims), base)}
    stack = CompatStack(root, base, sims, conn, env, {})
    app = make_celery(base)
    try:
        stack.workers["arr"] = start_worker(app, name="compat", queues=["mcp.sabnzbd", "mcp.sonarr", "mcp.radarr"],
                                            pool="threads", concurrency=8, env=env, log=root / "worker.log")
        stack.start_plex_worker()
        yield stack
    finally:
        for worker in stack.workers.values():
            worker.stop()
        app.close()
        for sim in sims.values():
            sim.stop()
        conn.flushdb()
        conn.close()


def reset_faults_and_breakers(stack: CompatStack) -> None:
    """Simulator faults and breakers back to normal (after each test)."""
    for sim in stack.sims.values():
        sim.faults = {}
    for name in MEDIA_SERVICES:
        for key in stack.redis.scan_iter(match=f"mcpo:breaker:{name}*"):
            stack.redis.delete(key)


async def connected(stack: CompatStack, **tunables: Any) -> MCPOrchestrator:
    facade = stack.facade(**tunables)
    assert await facade.connect_all() == dict.fromkeys(MEDIA_SERVICES, True)
    return facade


