"""``mcp-orch stack`` starts a dead worker again, with backoff, and says so."""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator.operator.processes import (
    RESTART_MAX_SECONDS,
    RESTART_MIN_SECONDS,
    ChildProcess,
    Restarter,
    wait_until,
)


def test_a_dead_child_is_restarted_after_a_growing_wait_and_each_restart_is_logged(tmp_path: Path) -> None:
    """A real process that exits at once: restarted after a backoff that grows per restart in a row."""
    said: list[str] = []
    now = [0.0]
    child = ChildProcess("worker-x", [sys.executable, "-c", "print('up')"], log=tmp_path / "x.log")
    restarter = Restarter(said.append, clock=lambda: now[0])
    try:
        waits = []
        for _ in range(4):
            wait_until(lambda: not child.alive(), 10, "the child to exit")
            restarter.tend(child)  # plans the restart
            wait = float(said[-1].split("restarting it in ")[1].split("s")[0])
            waits.append(wait)
            restarter.tend(child)  # not due yet: nothing happens
            assert not said[-1].startswith("worker-x restarted")
            now[0] += wait + 0.1  # the message rounds to 0.1 s
            restarter.tend(child)
            assert said[-1].startswith("worker-x restarted (pid ")
        assert RESTART_MIN_SECONDS / 2 <= waits[0] <= RESTART_MIN_SECONDS
        assert waits[-1] > waits[0] and max(waits) <= RESTART_MAX_SECONDS
        assert "exited with code 0" in said[0]
        wait_until(lambda: child.output().count("up") == 5, 10, "five runs in the log")
    finally:
        child.stop()
