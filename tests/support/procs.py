"""Real Celery worker processes for the tests, built on the stack's own process helpers."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import redis
from celery import Celery

from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import Settings, load_settings
from orchestrator.operator.processes import ChildProcess, wait_until
from tests.support.ports import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]


def start_child(name: str, args: list[str], *, log: Path, env: dict[str, str] | None = None) -> ChildProcess:
    """A child process run from the repository root (so ``tests.*`` modules import)."""
    return ChildProcess(name, args, log=log, env=env, cwd=REPO)


def start_http_probe(name: str, port: int, *, log: Path) -> ChildProcess:
    """The probe MCP server (``tests.support.servers.probe``) over streamable HTTP on ``port``; returns once it
    listens."""
    child = start_child(name, [sys.executable, "-m", "tests.support.servers.probe", "--transport", "http", "--port",
                               str(port)],
                        log=log)
    try:
        wait_for_port(port)
    except BaseException:
        child.stop()
        raise
    return child


def start_worker(app: Celery, *, name: str, queues: list[str], pool: str, concurrency: int,
                 env: dict[str, str], log: Path, timeout: float = 30.0, gossip: bool = False) -> ChildProcess:
    """A real ``celery worker`` consuming ``queues``; returns once it answers a ping.

    ``gossip`` keeps Celery's gossip and mingle steps on, as ``mcp-orch stack`` runs its workers."""
    hostname = f"{name}@test"
    args = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", ",".join(queues), "-P", pool,
            "-c", str(concurrency), "-n", hostname, "-l", "INFO",
            *([] if gossip else ["--without-gossip", "--without-mingle"])]
    child = start_child(name, args, env=env, log=log)

    def answers() -> bool:
        if not child.alive():
            raise RuntimeError(f"worker {hostname} exited:\n{child.output()[-3000:]}")
        return bool(app.control.ping(destination=[hostname], timeout=0.5))

    wait_until(answers, timeout, f"worker {hostname} to answer a ping")
    return child


@contextlib.contextmanager
def configured_worker(broker: str, config: str, root: Path, *, name: str,
                      env: dict[str, str] | None = None) -> Iterator[tuple[Settings, ChildProcess, Orchestrator]]:
    """A threads-pool worker (4 threads) for every server of ``config`` (TOML text) and a client, on
    ``broker`` (a database of its own, flushed first); all stopped and closed on exit.

    The worker reads ``config`` from ``root/<name>.toml`` (``MCP_ORCH_CONFIG``) plus ``env``."""
    conn = redis.Redis.from_url(broker)
    conn.flushdb()
    conn.close()
    config_path = root / f"{name}.toml"
    config_path.write_text(config)
    settings = load_settings(config_path)
    app = make_celery(settings)
    worker = client = None
    try:
        worker = start_worker(app, name=name, queues=[server.queue for server in settings.servers.values()],
                              pool="threads", concurrency=4, env={"MCP_ORCH_CONFIG": str(config_path), **(env or {})},
                              log=root / f"worker-{name}.log")
        client = Orchestrator(settings)
        yield settings, worker, client
    finally:
        if client is not None:
            client.close()
        if worker is not None:
            worker.stop()
        app.close()


@contextlib.contextmanager
def probe_config(root: Path, name: str, template: str, **fields: object) -> Iterator[tuple[Path, Settings]]:
    """The probe MCP server over HTTP on a free port, and ``template`` (TOML text) formatted with that
    ``port``, the ``repo`` and ``fields``, written to ``root/<name>.toml`` and loaded; the probe stops on exit."""
    port = free_port()
    probe = start_http_probe(f"{name}-probe", port, log=root / f"{name}-probe.log")
    try:
        path = root / f"{name}.toml"
        path.write_text(template.format(port=port, repo=REPO, **fields))
        yield path, load_settings(path)
    finally:
        probe.stop()
