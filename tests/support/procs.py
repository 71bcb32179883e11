"""Start and stop real child processes (Celery workers, MCP servers) with bounded waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from celery import Celery

REPO = Path(__file__).resolve().parents[2]


class Child:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, log: Path) -> None:
        self.args = args
        self.log = log
        self._log_file = log.open("ab")
        self.proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, **(env or {})}, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``timeout``."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log_file.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``predicate`` until it holds, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def start_worker(app: Celery, *, name: str, queues: list[str], pool: str, concurrency: int,
                 env: dict[str, str], log: Path, timeout: float = 30.0) -> Child:
    """A real ``celery worker`` consuming ``queues``; returns once it answers a ping."""
    hostname = f"{name}@test"
    args = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", ",".join(queues), "-P", pool,
            "-c", str(concurrency), "-n", hostname, "--without-gossip", "--without-mingle", "-l", "INFO"]
    child = Child(args, env=env, log=log)

    def answers() -> bool:
        if not child.alive():
            raise RuntimeError(f"worker {hostname} exited:\n{child.output()[-3000:]}")
        return bool(app.control.ping(destination=[hostname], timeout=0.5))

    wait_until(answers, timeout, f"worker {hostname} to answer a ping")
    return child
