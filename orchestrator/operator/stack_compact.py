"""The compact layout of ``mcp-orch stack`` (the default): every part, in as few processes as can hold it.

- one Celery worker (threads pool, ``WORKER_THREADS`` per server) consumes every server's queue
  and holds every session; with the bundled configuration the media servers run inside it
  (``orchestrator/embedded.toml``, transport ``inprocess``), so it spawns no child;
- beat (RedBeat, its Redis lock kept: still exactly one scheduler), the metrics endpoint and the
  simulated upstreams are threads of the stack process itself;
- Flower stays a process of its own, and ``--no-flower`` leaves it out.

The distributed layout (one worker per queue, stdio servers, beat, metrics and each simulator in
a process of its own) is ``orchestrator.operator.stack``'s other branch.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
from collections import Counter
from pathlib import Path

from orchestrator.config import MEDIA_SERVER_VARIABLES, ServerConfig
from orchestrator.operator.processes import ChildProcess, InParent, RunningStack, free_port

STOP_TIMEOUT_SECONDS = 10.0
"""How long a thread of the stack process gets to finish after it was asked to stop (seconds)."""


def _log_to(path: Path, *loggers: str) -> None:
    """Send these loggers' INFO lines to ``path`` (the stack's own console stays quiet)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/%(name)s] %(message)s"))
    for name in loggers:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)


def start_worker(stack: RunningStack, threads_per_server: int) -> None:
    """One threads-pool worker on every enabled server's queue, sized for all of them.

    It has no peer to synchronise with at start-up or to gossip with, so mingle (a one-second wait
    for replies) and gossip are off; heartbeats stay on (Flower and the health view use them).
    """
    servers = list(stack.settings.enabled_servers().values())
    queues = ",".join(server.queue for server in servers)
    threads = threads_per_server * len(servers)
    args = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", queues, "-P", "threads",
            "-c", str(threads), "-n", "compact@%h", "--without-mingle", "--without-gossip", "-l", "INFO"]
    child = ChildProcess("worker", args, log=stack.log_dir / "worker.log", env=stack.env)
    stack.add(child, f"Celery worker (threads pool, {threads} threads; {served_as(servers)})", queues)


def served_as(servers: list[ServerConfig]) -> str:
    """How the worker reaches its servers: ``servers in-process`` under the bundled configuration; with
    another file, what its transports are (``servers: 4 stdio, 1 http``): that file's servers are not embedded."""
    kinds = Counter(server.transport.type for server in servers)
    if set(kinds) == {"inprocess"}:
        return "servers in-process"
    return "servers: " + ", ".join(f"{count} {kind}" for kind, count in kinds.items())


def plan_simulators(stack: RunningStack, services: list[str]) -> dict[str, tuple[int, str]]:
    """A free port and a key for each simulated upstream, put into the env the worker gets; the
    simulators themselves start after the worker was launched (it opens sessions lazily), so its
    start-up, the long one, is not kept waiting."""
    planned = {}
    for service in services:
        url_var, key_var = MEDIA_SERVER_VARIABLES[service]
        port, key = free_port(), os.environ.get(key_var) or secrets.token_hex(16)
        stack.env.update({url_var: f"http://127.0.0.1:{port}", key_var: key})
        planned[service] = (port, key)
    return planned


def start_simulators(stack: RunningStack, planned: dict[str, tuple[int, str]]) -> None:
    """The simulated upstreams as threads of this process, on their planned ports."""
    import upstream_sim

    for service, (port, key) in planned.items():
        handle = upstream_sim.run_in_thread(service, key, port=port)
        stack.add(InParent(f"sim-{service}", stack.log_dir, handle.alive, handle.stop),
                  f"simulated {service} upstream (a thread of the stack)", handle.url)


def start_beat(stack: RunningStack) -> None:
    """The one beat as a thread of this process; it takes RedBeat's lock like ``mcp-orch beat``."""
    from celery.beat import EmbeddedService

    from beat_schedule import configure_beat
    from orchestrator.celery_app import make_celery

    log = stack.log_dir / "beat.log"
    _log_to(log, "celery.beat", "redbeat")
    app = configure_beat(make_celery(stack.settings, main="mcp_orchestrator_beat"), stack.settings)
    beat = EmbeddedService(app, thread=True, scheduler_cls=app.conf.beat_scheduler)
    beat.start()

    def stop() -> None:
        beat.service.stop()
        beat.join(STOP_TIMEOUT_SECONDS)
        app.close()

    stack.add(InParent("beat", log, beat.is_alive, stop),
              "Celery beat (health checks, RedBeat lock; a thread of the stack)", "every server queue")


def start_metrics(stack: RunningStack) -> None:
    """``/metrics`` served by a thread of this process (read from Redis at each scrape, as ``mcp-orch metrics``)."""
    from orchestrator.operator.metrics_server import METRICS_PORT, make_metrics_server
    from orchestrator.operator.stack_monitoring import choose_port

    port = choose_port(stack, "metrics", METRICS_PORT, "127.0.0.1")
    server = make_metrics_server(stack.settings, "127.0.0.1", port)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    url = f"http://127.0.0.1:{port}/metrics"
    stack.add(InParent("metrics", stack.log_dir, thread.is_alive, stop),
              "Prometheus metrics (breakers, health, calls, queues; a thread of the stack)", url)
    stack.urls["metrics"] = url
