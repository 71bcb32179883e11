"""Free ports (from orchestrator.operator.processes) and waiting for a port (from bench/brokers.py)."""

from __future__ import annotations

from bench.brokers import wait_for_port
from orchestrator.operator.processes import free_port

__all__ = ["free_port", "wait_for_port"]
