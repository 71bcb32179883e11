"""Real beat processes for the tests (``mcp-orch beat``: RedBeat with its Redis lock)."""

from __future__ import annotations

import sys
from pathlib import Path

import redis

from orchestrator import keys
from orchestrator.operator.processes import ChildProcess, wait_until
from tests.support.procs import start_child


def start_beat(name: str, *, config: Path, log: Path, env: dict[str, str] | None = None) -> ChildProcess:
    """``mcp-orch --config <config> beat`` as a child process (returns at once)."""
    return start_child(name, [sys.executable, "-m", "orchestrator.operator.cli", "--config", str(config), "beat"],
                       log=log, env=env)


def wait_for_lock(client: redis.Redis, beat: ChildProcess, timeout: float = 20.0) -> None:
    """Wait until a beat holds the RedBeat lock (it schedules from then on)."""

    def held() -> bool:
        if not beat.alive():
            raise RuntimeError(f"beat {beat.name} exited:\n{beat.output()[-3000:]}")
        return bool(client.exists(keys.REDBEAT_LOCK_KEY))

    wait_until(held, timeout, f"{beat.name} to take the beat lock")
