"""Flower and the metrics endpoint inside ``mcp-orch stack`` (the rest of the stack is ``orchestrator.operator.stack``).

Flower runs behind basic auth: the login comes from the configuration
(``MCP_ORCH_FLOWER__USER`` / ``MCP_ORCH_FLOWER__PASSWORD``); without a password the stack
generates one and prints it once on its console (never to a log file). The login reaches
Flower through its environment only, not its command line.
"""

from __future__ import annotations

import functools
import sys

import psutil

from orchestrator.operator.flower import FlowerLogin, flower_argv, flower_env, flower_login
from orchestrator.operator.metrics_server import METRICS_PORT
from orchestrator.operator.processes import ChildProcess, InParent, RunningStack, free_port, port_open, wait_until
from orchestrator.operator.stack_state import flower_password_path

START_TIMEOUT_SECONDS = 30.0
"""How long Flower and the metrics endpoint may take to listen (seconds)."""


def choose_port(stack: RunningStack, what: str, preferred: int, address: str) -> int:
    """``preferred`` when it is free, else any free port (a second stack on the machine still starts); a
    taken port is said in the stack's notes, naming the process that holds it (an older stack, often)."""
    host = "127.0.0.1" if address in ("0.0.0.0", "") else address
    if not port_open(preferred, host):
        return preferred
    port = free_port()
    stack.notes.append(f"  note: port {preferred} is held by {port_holder(preferred)}; {what} is on {port} instead")
    return port


def port_holder(port: int) -> str:
    """``pid N (command line)`` of the process listening on ``port``, or why it cannot be told."""
    try:
        listening = [conn.pid for conn in psutil.net_connections(kind="tcp")
                     if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid]
        if not listening:
            return "another process"
        command = " ".join(psutil.Process(listening[0]).cmdline())
    except psutil.Error:
        return "another process"
    return f"pid {listening[0]} ({command[:120]})"


def start_flower(stack: RunningStack) -> FlowerLogin:
    """Flower on the stack's broker, behind basic auth; returns the login."""
    settings = stack.settings
    login = flower_login(settings, generate=True)
    assert login is not None
    address = settings.flower.address
    port = choose_port(stack, "Flower", settings.flower.port, address)
    child = ChildProcess("flower", flower_argv(sys.executable, address=address, port=port),
                         log=stack.log_dir / "flower.log", env={**stack.env, **flower_env(login)})
    url = f"http://{'127.0.0.1' if address == '0.0.0.0' else address}:{port}"
    stack.add(child, "Flower (tasks, workers, queues; basic auth)", url)
    stack.urls["flower"] = url
    return login


def start_metrics(stack: RunningStack) -> None:
    """``mcp-orch metrics``: Prometheus text for breakers, health, calls and queues."""
    port = choose_port(stack, "metrics", METRICS_PORT, "127.0.0.1")
    args = [sys.executable, "-m", "orchestrator.operator.cli", "metrics", "--address", "127.0.0.1", "--port", str(port)]
    child = ChildProcess("metrics", args, log=stack.log_dir / "metrics.log", env=stack.env)
    url = f"http://127.0.0.1:{port}/metrics"
    stack.add(child, "Prometheus metrics (breakers, health, calls, queues)", url)
    stack.urls["metrics"] = url


def _listening_or_gone(port: int, child: ChildProcess | InParent) -> bool:
    return port_open(port) or not child.alive()


def wait_monitoring_ready(stack: RunningStack) -> dict[str, str]:
    """Wait until Flower and the metrics endpoint accept connections; a status line for each."""
    status: dict[str, str] = {}
    for name, url in stack.urls.items():
        port = int(url.split(":")[2].split("/")[0])
        child = next(child for child in stack.children if child.name == name)
        try:
            wait_until(functools.partial(_listening_or_gone, port, child), START_TIMEOUT_SECONDS,
                       f"{name} to listen")
            status[name] = "ready" if child.alive() else f"NOT READY: exited (see {child.log})"
        except TimeoutError as exc:
            status[name] = f"NOT READY: {exc}"
    return status


def login_lines(login: FlowerLogin | None) -> list[str]:
    """What the console says about the Flower login (the password only when it was generated)."""
    if login is None:
        return []
    if login.generated:
        return [f"  Flower login: {login.user} / {login.password}   (generated once and kept in "
                f"{flower_password_path()}; set MCP_ORCH_FLOWER__PASSWORD to choose it)"]
    return [f"  Flower login: {login.user} / (the configured password, MCP_ORCH_FLOWER__PASSWORD)"]


def monitoring_notes(stack: RunningStack, login: FlowerLogin | None) -> list[str]:
    """Readiness of Flower and the metrics endpoint, then the Flower login, for the stack's console."""
    lines = [f"  {name:<13} {state:<10} {stack.urls[name]}" for name, state in wait_monitoring_ready(stack).items()]
    return lines + login_lines(login)
