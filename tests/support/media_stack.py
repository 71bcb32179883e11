"""The four media simulators behind a real orchestrator: a config, one threads-pool worker, a client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

import upstream_sim
from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import DEFAULTS_FILE, Settings, load_settings
from orchestrator.operator.processes import ChildProcess
from orchestrator.services import MEDIA_SERVICE_NAMES
from tests.support.media import CANARY
from tests.support.procs import REPO, start_worker
from upstream_sim.runner import SimHandle

MEDIA_SERVICES = MEDIA_SERVICE_NAMES


def _media_config_template() -> str:
    servers = "[servers." + DEFAULTS_FILE.read_text().split("\n[servers.", 1)[1]
    lines = []
    for line in servers.replace("{", "{{").replace("}", "}}").splitlines():
        lines.append(line)
        if line.startswith("args = "):
            lines.append('cwd = "{repo}"')
    return 'broker_url = "{broker}"\ndefault_timeout = 20\n\n' + "\n".join(lines) + "\n"


MEDIA_CONFIG = _media_config_template()
"""The servers exactly as ``orchestrator/defaults.toml`` declares them, run from the repository root
(a template taking ``broker`` and ``repo``)."""


@dataclass
class MediaStack:
    """Simulators, the config they are reached through, one worker and its log."""

    broker_url: str
    config_path: Path
    settings: Settings
    sims: dict[str, SimHandle]
    worker: ChildProcess
    log: Path
    _clients: list[Orchestrator] = field(default_factory=list)

    def client(self) -> Orchestrator:
        """A new synchronous client (closed with the stack)."""
        orchestrator = Orchestrator(self.settings)
        self._clients.append(orchestrator)
        return orchestrator

    def stored_results(self) -> dict[bytes, bytes]:
        """Every raw result the worker stored in Redis (``celery-task-meta-*``)."""
        conn = redis.Redis.from_url(self.broker_url)
        try:
            keys = list(conn.scan_iter(match="celery-task-meta-*", count=500))
            return {key: value for key, value in zip(keys, conn.mget(keys) if keys else [], strict=True) if value}
        finally:
            conn.close()

    def close(self) -> None:
        for orchestrator in self._clients:
            orchestrator.close()


def worker_env(sims: dict[str, SimHandle], config_path: Path) -> dict[str, str]:
    """What the worker reads: its config path, each upstream's URL and canary key."""
    env = {"MCP_ORCH_CONFIG": str(config_path)}
    for service, sim in sims.items():
        env[f"{service.upper()}_URL"] = sim.url
        env[upstream_sim.SECRET_VARS[service]] = CANARY[service]
    return env


@contextlib.contextmanager
def running_media_stack(redis_url: str, root: Path, *, worker_name: str = "media") -> Iterator[MediaStack]:
    """Four simulators with canary keys, the default four servers, one threads-pool worker on their queues."""
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    conn.close()
    sims: dict[str, SimHandle] = {}
    worker: ChildProcess | None = None
    app = None
    stack: MediaStack | None = None
    try:
        for service in MEDIA_SERVICES:
            sims[service] = upstream_sim.run_in_thread(service, CANARY[service])
        config_path = root / "media.toml"
        config_path.write_text(MEDIA_CONFIG.format(broker=redis_url, repo=REPO))
        settings = load_settings(config_path)
        app = make_celery(settings)
        log = root / f"worker-{worker_name}.log"
        worker = start_worker(app, name=worker_name, queues=[f"mcp.{s}" for s in MEDIA_SERVICES], pool="threads",
                              concurrency=8, env=worker_env(sims, config_path), log=log)
        stack = MediaStack(redis_url, config_path, settings, sims, worker, log)
        yield stack
    finally:
        if stack is not None:
            stack.close()
        if worker is not None:
            worker.stop()
        if app is not None:
            app.close()
        for sim in sims.values():
            sim.stop()


def canaries() -> list[str]:
    """Every canary key, for leak checks."""
    return list(CANARY.values())


def leaked(text: str | bytes) -> list[str]:
    """The canary keys that occur in ``text``."""
    raw = text if isinstance(text, bytes) else text.encode()
    return [key for key in canaries() if key.encode() in raw]

