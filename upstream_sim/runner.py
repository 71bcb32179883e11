"""Run a simulator with uvicorn in a background thread, for tests, benchmarks and the dev stack."""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from orchestrator.services import MEDIA_SERVICES
from upstream_sim.app import Simulator
from upstream_sim.faults import Faults

FACTORIES: dict[str, Callable[[str], Simulator]] = {
    service.name: importlib.import_module(service.simulator_module).create for service in MEDIA_SERVICES
}
"""Each simulated service's ``create(api_key)``, from ``upstream_sim.<name>`` of every registered service."""
SERVICES = tuple(FACTORIES)
SECRET_VARS = {service.name: service.secret_variable for service in MEDIA_SERVICES}
"""The environment variable holding each service's key, the same names the MCP servers read."""


def create(service: str, api_key: str) -> Simulator:
    """A fresh simulator of ``service`` (one of ``SERVICES``) accepting ``api_key``."""
    if service not in FACTORIES:
        raise ValueError(f"service must be one of {SERVICES}, not {service!r}")
    if not api_key:
        raise ValueError("api_key must not be empty")
    return FACTORIES[service](api_key)


class SimHandle:
    """A simulator served on a loopback port by a background thread."""

    def __init__(self, simulator: Simulator, server: uvicorn.Server, thread: threading.Thread, url: str) -> None:
        self.simulator = simulator
        self.url = url
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        self._server = server
        self._thread = thread

    @property
    def service(self) -> str:
        return self.simulator.service

    @property
    def state(self) -> Any:
        """The service's in-memory data (``state.clock.advance(s)`` moves simulated time)."""
        return self.simulator.state

    @property
    def faults(self) -> Faults:
        return self.simulator.control.faults

    @faults.setter
    def faults(self, value: Faults | dict[str, Any]) -> None:
        """Replace all faults; a dict is validated (unknown knobs are refused by name)."""
        self.simulator.control.faults = value if isinstance(value, Faults) else Faults.from_dict(value)

    def alive(self) -> bool:
        """Still serving (its thread runs)."""
        return self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        """Requests per path, total, in flight now, and the most ever in flight at once."""
        return self.simulator.control.stats.snapshot()

    def reset_stats(self) -> None:
        self.simulator.control.stats.reset()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving; afterwards connections to ``url`` are refused."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"{self.service} simulator did not stop within {timeout}s")

    def __enter__(self) -> SimHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(
    service: str, api_key: str, port: int = 0, host: str = "127.0.0.1", startup_timeout: float = 10.0
) -> SimHandle:
    """Serve a new simulator of ``service`` on ``host:port`` (0 picks a free port) and return its handle."""
    simulator = create(service, api_key)
    config = uvicorn.Config(simulator.app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"upstream-sim-{service}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"{service} simulator failed to start on {host}:{port} within {startup_timeout}s")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    return SimHandle(simulator, server, thread, f"http://{host}:{bound_port}")
