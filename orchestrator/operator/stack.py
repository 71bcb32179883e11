"""The whole stack on one machine, for ``mcp-orch stack`` (the README's run command).

Starts, in order: a private ``redis-server`` on a free port (unless a broker is configured),
a simulated upstream for every bundled media server whose ``<SERVICE>_URL`` is not set,
the Celery workers, the beat that schedules health checks, Flower (basic auth) and the
metrics endpoint (``orchestrator.operator.stack_monitoring``), in one of two layouts: ``compact``
(the default, ``orchestrator.operator.stack_compact``: one worker with the bundled servers
in-process; beat, metrics and simulators as threads of this process) or ``distributed`` (one
worker per server queue, or one for all, with stdio servers; every other part a process of its own).
It prints what runs where, waits until every server answers ``tools/list`` through the queue, and
on Ctrl-C, SIGTERM, SIGHUP or its terminal hanging up (``make stack`` keeps the SIGHUP to itself) stops
every child process group, leaving nothing behind; children also get SIGTERM if this process is killed
outright (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import os
import secrets
import select
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kombu.utils.url import maybe_sanitize_url

from orchestrator.client import Orchestrator
from orchestrator.config import (
    CONFIG_PATH_ENV,
    DEFAULTS_FILE,
    EMBEDDED_FILE,
    ENV_PREFIX,
    MEDIA_SERVER_VARIABLES,
    Settings,
    config_path,
    load_settings,
)
from orchestrator.errors import OrchestratorError
from orchestrator.operator import stack_compact, stack_state
from orchestrator.operator.flower import FlowerLogin
from orchestrator.operator.processes import (
    ChildProcess,
    Restarter,
    RunningStack,
    free_port,
    port_open,
    start_redis_server,
    wait_until,
)
from orchestrator.operator.stack_monitoring import monitoring_notes, start_flower, start_metrics

BROKER_ENV = f"{ENV_PREFIX}BROKER_URL"
READY_TIMEOUT_SECONDS = 60.0
"""How long the stack waits for every server to answer through its queue (seconds)."""
WORKER_THREADS = 8
"""Threads per worker: calls are I/O-bound waits on the held MCP session."""

SIMULATED_SERVICES = MEDIA_SERVER_VARIABLES
"""The services the stack simulates when their URL is not set, with the variables that reach them."""


class StackError(RuntimeError):
    """The stack cannot start; the message says what to do."""


LAYOUTS = ("compact", "distributed")
"""``compact`` (the default): one worker, servers in-process, few processes. ``distributed``: a worker per queue."""


@dataclass
class StackOptions:
    config: str | None = None
    layout: str = "compact"
    single_worker: bool = False
    pool: str = "threads"
    flower: bool = True
    log_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise StackError(f"layout: must be one of {', '.join(LAYOUTS)}, not {self.layout!r}")
        if self.layout == "compact" and (self.single_worker or self.pool != "threads"):
            raise StackError("--single-worker and --pool apply to --layout distributed (the compact layout "
                             "always runs one threads-pool worker)")


def start_redis(stack: RunningStack) -> str:
    try:
        child, url = start_redis_server(stack.log_dir)
    except FileNotFoundError as exc:
        raise StackError(f"{exc} (or point {BROKER_ENV} at a running Redis)") from None
    stack.add(child, "Redis (broker + results + breaker state)", url)
    return url


def configured_redis_row(settings: Settings) -> tuple[str, str, str]:
    """The report's ``redis`` row for a Redis the stack did not start (the config's or ``MCP_ORCH_BROKER_URL``),
    so the report still names the Redis that clients and ``AsyncOrchestrator`` must use (password hidden)."""
    sentinel = settings.redis_sentinel
    where = f"sentinel master {sentinel.master_name}" if sentinel else maybe_sanitize_url(settings.state_url)
    return "redis", "Redis (configured; not started by the stack)", where


def spawn_simulator(service: str, log_dir: Path, key: str) -> tuple[ChildProcess, dict[str, str]]:
    """``service``'s simulated upstream on a free port (not yet listening); the env that reaches it."""
    url_var, key_var = SIMULATED_SERVICES[service]
    port = free_port()
    child = ChildProcess(f"sim-{service}", [sys.executable, "-m", "upstream_sim", service, "--port", str(port)],
                         log=log_dir / f"sim-{service}.log", env={key_var: key})
    return child, {url_var: f"http://127.0.0.1:{port}", key_var: key}


def wait_listening(child: ChildProcess, url: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    wait_until(lambda: port_open(port), 20, f"{child.name} to listen")


def services_to_simulate(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """The bundled services the stack simulates: enabled in ``settings``, no ``<SERVICE>_URL`` in ``environ``."""
    planned = []
    for service, (url_var, _key_var) in SIMULATED_SERVICES.items():
        server = settings.servers.get(service)
        if server is None or not server.enabled or environ.get(url_var):
            continue
        planned.append(service)
    return planned


def start_simulators(stack: RunningStack) -> None:
    started: list[tuple[ChildProcess, str]] = []
    for service in services_to_simulate(stack.settings, os.environ):
        url_var, key_var = SIMULATED_SERVICES[service]
        child, env = spawn_simulator(service, stack.log_dir, os.environ.get(key_var) or secrets.token_hex(16))
        stack.add(child, f"simulated {service} upstream", env[url_var])
        stack.env.update(env)
        started.append((child, env[url_var]))
    for child, url in started:
        wait_listening(child, url)


def start_workers(stack: RunningStack, options: StackOptions) -> None:
    servers = list(stack.settings.enabled_servers().values())
    groups = [servers] if options.single_worker else [[server] for server in servers]
    for group in groups:
        name = "all" if options.single_worker else group[0].name
        queues = ",".join(server.queue for server in group)
        args = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", queues, "-P", options.pool,
                "-c", str(WORKER_THREADS), "-n", f"{name}@%h", "-l", "INFO"]
        child = ChildProcess(f"worker-{name}", args, log=stack.log_dir / f"worker-{name}.log", env=stack.env)
        stack.add(child, f"Celery worker ({options.pool} pool)", queues)


def start_beat(stack: RunningStack) -> None:
    """The one beat: schedules each server's health check on its queue (RedBeat, Redis lock)."""
    args = [sys.executable, "-m", "celery", "-A", "beat_schedule", "beat", "-l", "INFO"]
    child = ChildProcess("beat", args, log=stack.log_dir / "beat.log", env=stack.env)
    stack.add(child, "Celery beat (health checks, RedBeat lock)", "every server queue")


def wait_ready(stack: RunningStack) -> dict[str, str]:
    """Every enabled server answers ``tools/list`` through its queue; returns a status per server."""
    client = Orchestrator(stack.settings)
    status: dict[str, str] = {}
    try:
        for name in stack.settings.enabled_servers():
            try:
                tools = client.list_tools(name, timeout=READY_TIMEOUT_SECONDS, refresh=True)
                status[name] = f"ready, {len(tools)} tools"
            except OrchestratorError as exc:
                status[name] = f"NOT READY: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    return status


def try_command(settings: Settings, config: Path, bundled: bool) -> str:
    """The command the report suggests, one that works from another shell as printed: a call of the first
    enabled server's health tool (``sabnzbd_get_queue`` under the bundled configuration), else a listing of
    its tools; with another file, ``--config`` names it (the CLI finds only the bundled stack by itself)."""
    cli = Path(sys.executable).with_name("mcp-orch")
    head = f"{cli if cli.exists() else 'mcp-orch'}" + ("" if bundled else f" --config {shlex.quote(str(config))}")
    server = next(iter(settings.enabled_servers().values()), None)
    if server is None:
        return f"{head} health"
    return f"{head} call {server.name} {server.health_tool}" if server.health_tool else f"{head} tools {server.name}"


def print_table(stack: RunningStack, status: dict[str, str], suggestion: str) -> None:
    width = max(len(row[0]) for row in stack.rows)
    print(f"\nmcp-orch stack is up (logs in {stack.log_dir})\n")
    for name, what, where in stack.rows:
        print(f"  {name:<{width}}  {where:<40}  {what}")
    print()
    for name, state in status.items():
        print(f"  server {name:<10} {state}")
    for line in stack.notes:
        print(line)
    print(f"\nTry:  {suggestion}      (Ctrl-C stops everything)\n", flush=True)


def start_parts(stack: RunningStack, options: StackOptions) -> FlowerLogin | None:
    """Simulators, workers, beat, Flower and metrics, in the processes (or threads) of ``options.layout``;
    returns Flower's login (None without Flower)."""
    distributed = options.layout == "distributed"
    if distributed:
        start_simulators(stack)
        start_workers(stack, options)
        start_beat(stack)
    else:
        planned = stack_compact.plan_simulators(stack, services_to_simulate(stack.settings, os.environ))
        stack_compact.start_worker(stack, WORKER_THREADS)
        stack_compact.start_simulators(stack, planned)
        stack_compact.start_beat(stack)
    login = start_flower(stack) if options.flower else None
    if distributed:
        start_metrics(stack)
    else:
        stack_compact.start_metrics(stack)
    return login


def is_worker(name: str) -> bool:
    """A Celery worker of the stack: the compact layout's ``worker`` or a distributed ``worker-<queue>``."""
    return name == "worker" or name.startswith("worker-")


def watch_terminal(closed: threading.Event) -> None:
    """Set ``closed`` when the terminal on stdin hangs up. The stack's own SIGHUP handler covers a terminal
    it leads; under ``make stack`` make leads the session, gets the SIGHUP alone and waits for the stack
    forever (so do ``ssh -t host make stack`` and ``tmux new 'make stack'``). A poll with no events asked
    for still reports the hang-up, and nothing typed wakes it."""
    if not sys.stdin.isatty():
        return
    poller = select.poll()
    poller.register(sys.stdin.fileno(), 0)

    def wait_for_hangup() -> None:
        while not any(event & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, event in poller.poll()):
            pass
        closed.set()

    threading.Thread(target=wait_for_hangup, name="terminal-watch", daemon=True).start()


def run_stack(options: StackOptions) -> int:
    """Start everything, report readiness, block until SIGINT/SIGTERM/SIGHUP, stop everything."""
    started = time.monotonic()
    log_dir = options.log_dir or Path(tempfile.mkdtemp(prefix="mcp-orch-stack-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    path = config_path(options.config)
    bundled = path == DEFAULTS_FILE
    # What the workers load: under the bundled defaults the compact layout serves the same servers
    # inside its one worker. Clients (and the state file they look the stack up by) keep ``path``.
    served = EMBEDDED_FILE if bundled and options.layout == "compact" else path
    env = {CONFIG_PATH_ENV: str(served.resolve())}
    stack = RunningStack(log_dir=log_dir, settings=load_settings(served), env=env)
    stopping = threading.Event()
    stopped_cleanly = False
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal closed
        signal.signal(sig, lambda *_: stopping.set())
    watch_terminal(stopping)
    try:
        if os.environ.get(BROKER_ENV) is None and bundled:
            other = stack_state.find(path).running
            if other is not None:
                raise StackError(f"a stack from this checkout is already running (pid {other.pid}); stop it first "
                                 f"(Ctrl-C in its terminal, or kill {other.pid})")
            env[BROKER_ENV] = start_redis(stack)
            os.environ[BROKER_ENV] = env[BROKER_ENV]
            stack.settings = load_settings(served)
            stack_state.publish(stack_state.StackState(pid=os.getpid(), broker_url=env[BROKER_ENV],
                                                       config=str(path.resolve()), started=time.time()))
        else:
            stack.rows.append(configured_redis_row(stack.settings))
        login = start_parts(stack, options)
        status = wait_ready(stack)
        if all(state.startswith("ready") for state in status.values()):
            took = time.monotonic() - started
            stack.notes.insert(0, f"  every server answered through its queue {took:.1f} s after start")
        stack.notes += monitoring_notes(stack, login)
        print_table(stack, status, try_command(stack.settings, path.resolve(), bundled))
        restarter = Restarter(lambda line: print(line, file=sys.stderr, flush=True))
        while not stopping.wait(1.0):
            workers = [child for child in stack.children if isinstance(child, ChildProcess) and is_worker(child.name)]
            for worker in workers:
                restarter.tend(worker)  # a dead worker is started again, with backoff (either layout)
            dead = [child.name for child in stack.children if child not in workers and not child.alive()]
            if dead:
                print(f"stopping: {', '.join(dead)} exited (see {log_dir})", file=sys.stderr)
                return 1
        stopped_cleanly = True
        return 0
    finally:
        if stack.children:
            print("stopping the stack...", file=sys.stderr, flush=True)
        stack.stop()
        stack_state.withdraw(path, os.getpid())
        if stopped_cleanly and options.log_dir is None:  # a failed run keeps its logs
            shutil.rmtree(log_dir, ignore_errors=True)
