"""The parts of the stack command (and the tests): child processes (own process group, log file, clean
stop), threads of the stack process stopped the same way, and ``RunningStack``, the parts one stack started."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.backoff import jittered_backoff
from orchestrator.config import Settings

STOP_TIMEOUT_SECONDS = 15.0
"""How long a child gets after SIGTERM before its process group is killed (seconds)."""

_PR_SET_PDEATHSIG = 1
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
"""Linux's prctl(2), resolved once before any fork (the child must not look anything up)."""


def _die_with_parent() -> None:
    """In the forked child, before exec: ask the kernel for SIGTERM when the parent dies, however it
    dies (kill -9 included), so a stack's children never outlive it. Kept across exec."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class ChildProcess:
    """A child in its own session, so stopping it stops everything it started.

    A child started from the main thread gets SIGTERM when this process dies, however it dies
    (``PR_SET_PDEATHSIG``). The kernel ties that signal to the thread that forked, so a child started
    from another thread (which may end first) does not get it.
    """

    def __init__(self, name: str, args: list[str], *, log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.args = args
        self.log = log
        self.env = env
        self.cwd = cwd
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log.open("ab")
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        tied = threading.current_thread() is threading.main_thread()
        return subprocess.Popen(self.args, cwd=self.cwd, env={**os.environ, **(self.env or {})},
                                stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=_die_with_parent if tied else None)

    def respawn(self) -> None:
        """Start the same command again after it exited (its output goes on in the same log)."""
        self._signal_group(signal.SIGKILL)  # whatever the dead one left in its group
        self.proc = self._spawn()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        """Ask the whole process group to stop (SIGTERM) without waiting."""
        if self.alive():
            self._signal_group(signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after ``timeout``."""
        if self.alive():
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._signal_group(signal.SIGKILL)  # stragglers the child left in its group
        self._log_file.close()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


RESTART_MIN_SECONDS = 1.0
"""First wait before a dead worker is started again (seconds); doubles per restart in a row."""
RESTART_MAX_SECONDS = 30.0
"""Longest wait between two restarts of a worker that keeps dying (seconds)."""
RESTART_RESET_SECONDS = 60.0
"""A worker that stayed up this long after a restart starts again from the shortest wait (seconds)."""


class Restarter:
    """Starts dead children again with backoff, as docker-compose's ``restart: unless-stopped`` does."""

    def __init__(self, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.say = say
        self.clock = clock
        self._streak: dict[str, int] = {}
        self._due: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def tend(self, child: ChildProcess) -> None:
        """Call every second or so for a child that must stay up: plans its restart, then restarts it."""
        now = self.clock()
        if child.alive():
            if now - self._started.get(child.name, now) >= RESTART_RESET_SECONDS:
                self._streak.pop(child.name, None)
            return
        if child.name not in self._due:
            streak = self._streak.get(child.name, 0) + 1
            self._streak[child.name] = streak
            wait = jittered_backoff(streak, RESTART_MIN_SECONDS, RESTART_MAX_SECONDS)
            self._due[child.name] = now + wait
            self.say(f"{child.name} exited with code {child.proc.returncode}; restarting it in {wait:.1f}s "
                     f"(restart {streak} in a row, log {child.log})")
        elif now >= self._due[child.name]:
            del self._due[child.name]
            child.respawn()
            self._started[child.name] = now
            self.say(f"{child.name} restarted (pid {child.pid})")


class InParent:
    """A part of the stack running as a thread of the stack process, stopped like a child process.

    ``log`` is its log file, or the stack's log directory for a part that logs nothing of its own.
    """

    def __init__(self, name: str, log: Path, alive: Callable[[], bool], stop: Callable[[], None]) -> None:
        self.name = name
        self.log = log
        self._alive = alive
        self._stop = stop
        self._stopped = False

    def alive(self) -> bool:
        return self._alive()

    def terminate(self) -> None:
        """Stopped in ``stop`` (the stack stops its threads one by one)."""

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._stop()


REDIS_MISSING = "redis-server is not installed. Install it with: sudo apt-get install -y redis-server"


def start_redis_server(log_dir: Path) -> tuple[ChildProcess, str]:
    """A private ``redis-server`` on a free loopback port, nothing persisted; it and its URL (db 0).

    Raises FileNotFoundError (saying how to install it) when the binary is missing.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError(REDIS_MISSING)
    port = free_port()
    child = ChildProcess("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", str(log_dir)], log=log_dir / "redis.log")
    wait_until(lambda: port_open(port), 10, "redis-server to accept connections")
    return child, f"redis://127.0.0.1:{port}/0"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``predicate`` until it holds, or raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class RunningStack:
    """What the stack started, for the summary table and the shutdown."""

    log_dir: Path
    settings: Settings
    env: dict[str, str]
    children: list[ChildProcess | InParent] = field(default_factory=list)
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, child: ChildProcess | InParent, what: str, where: str) -> ChildProcess | InParent:
        self.children.append(child)
        self.rows.append((child.name, what, where))
        return child

    def stop(self) -> None:
        """Workers first (they close their MCP sessions), then simulators and Redis."""
        workers = [child for child in self.children if child.name.startswith(("worker", "beat", "flower", "metrics"))]
        for group in (workers, [child for child in self.children if child not in workers]):
            for child in group:
                child.terminate()
            for child in group:
                child.stop()
