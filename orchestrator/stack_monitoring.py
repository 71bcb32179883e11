"""Flower and the metrics endpoint inside ``mcp-orch stack`` (the rest of the stack is ``orchestrator.stack``).

Flower runs behind basic auth: the login comes from the configuration
(``MCP_ORCH_FLOWER__USER`` / ``MCP_ORCH_FLOWER__PASSWORD``); without a password the stack
generates one and prints it once on its console (never to a log file). The login reaches
Flower through its environment only, not its command line.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from orchestrator.flower import FlowerLogin, flower_argv, flower_env, flower_login
from orchestrator.metrics import METRICS_PORT
from orchestrator.processes import ChildProcess, free_port, port_open, wait_until

if TYPE_CHECKING:
    from orchestrator.stack import RunningStack

START_TIMEOUT_SECONDS = 30.0
"""How long Flower and the metrics endpoint may take to listen (seconds)."""


def free_or_any_port(preferred: int, address: str) -> int:
    """``preferred`` when it is free, else any free port (a second stack on the machine still starts)."""
    host = "127.0.0.1" if address in ("0.0.0.0", "") else address
    return free_port() if port_open(preferred, host) else preferred


def start_flower(stack: RunningStack) -> FlowerLogin:
    """Flower on the stack's broker, behind basic auth; returns the login."""
    settings = stack.settings
    login = flower_login(settings, generate=True)
    assert login is not None
    address = settings.flower.address
    port = free_or_any_port(settings.flower.port, address)
    child = ChildProcess("flower", flower_argv(sys.executable, address=address, port=port),
                         log=stack.log_dir / "flower.log", env={**stack.env, **flower_env(login)})
    url = f"http://{'127.0.0.1' if address == '0.0.0.0' else address}:{port}"
    stack.add(child, "Flower (tasks, workers, queues; basic auth)", url)
    stack.urls["flower"] = url
    return login


def start_metrics(stack: RunningStack) -> None:
    """``mcp-orch metrics``: Prometheus text for breakers, health, calls and queues."""
    port = free_or_any_port(METRICS_PORT, "127.0.0.1")
    args = [sys.executable, "-m", "orchestrator.cli", "metrics", "--address", "127.0.0.1", "--port", str(port)]
    child = ChildProcess("metrics", args, log=stack.log_dir / "metrics.log", env=stack.env)
    url = f"http://127.0.0.1:{port}/metrics"
    stack.add(child, "Prometheus metrics (breakers, health, calls, queues)", url)
    stack.urls["metrics"] = url


def wait_listening(stack: RunningStack) -> dict[str, str]:
    """Wait until Flower and the metrics endpoint accept connections; a status line for each."""
    status: dict[str, str] = {}
    for name, url in stack.urls.items():
        port = int(url.split(":")[2].split("/")[0])
        child = next(child for child in stack.children if child.name == name)
        try:
            wait_until(lambda p=port, c=child: port_open(p) or not c.alive(), START_TIMEOUT_SECONDS,
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
        return [f"  Flower login: {login.user} / {login.password}   (generated for this run; set "
                "MCP_ORCH_FLOWER__PASSWORD to choose it)"]
    return [f"  Flower login: {login.user} / (the configured password, MCP_ORCH_FLOWER__PASSWORD)"]


def monitoring_notes(stack: RunningStack, login: FlowerLogin | None) -> list[str]:
    """Readiness of Flower and the metrics endpoint, then the Flower login, for the stack's console."""
    lines = [f"  {name:<13} {state:<10} {stack.urls[name]}" for name, state in wait_listening(stack).items()]
    return lines + login_lines(login)
