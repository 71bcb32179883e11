"""Waiting for a TCP port, with a time limit (free ports come from orchestrator.operator.processes)."""

from __future__ import annotations

from orchestrator.operator.processes import free_port, port_open, wait_until

__all__ = ["free_port", "wait_for_port"]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Block until something accepts connections on ``port``, or raise TimeoutError."""
    wait_until(lambda: port_open(port), timeout, f"port {port} to accept connections", interval=0.05)
