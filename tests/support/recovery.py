"""Recovery time after a fault: seconds until a read-only call first succeeds again."""

from __future__ import annotations

import time

import redis

from orchestrator.client import Orchestrator
from orchestrator.errors import OrchestratorError


def first_success_after(client: Orchestrator, since: float, server: str, limit: float = 40.0) -> float:
    """Seconds from ``since`` (monotonic) until ``echo`` on ``server`` first succeeds; each try has a
    short deadline.

    A single call may still raise redis-py's own error while no Redis master answers (its catalog read
    is not wrapped yet; issue 13 turns that into a typed error), so both count as "not yet"."""
    while time.monotonic() - since < limit:
        try:
            if client.call_tool(server, "echo", {"text": "back?"}, timeout=3).ok:
                return time.monotonic() - since
        except (OrchestratorError, redis.RedisError):
            time.sleep(0.2)
    raise AssertionError(f"no call to {server} succeeded within {limit:g}s of the fault")
