"""Where a running ``mcp-orch stack`` tells other shells its broker: one state file per stack.

A stack is keyed by its resolved configuration file (each checkout has its own bundled
``defaults.toml``), so two stacks on one machine never take over each other's CLI. A state file
whose process is gone is stale: it is removed when found, and said so.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


def state_dir() -> Path:
    """The per-user folder of stack state files (``$XDG_RUNTIME_DIR`` or ``~/.cache``)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache"
    return Path(base) / "mcp-orch" / "stacks"


def stack_key(config: Path) -> str:
    """A short name for the stack that runs ``config`` (its resolved path)."""
    return hashlib.sha256(str(config.resolve()).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StackState:
    """What one running stack publishes: its process, its broker and the config it runs."""

    pid: int
    broker_url: str
    config: str
    started: float

    def alive(self) -> bool:
        """Whether the stack process still runs (a reused pid must also have started no later)."""
        try:
            process = psutil.Process(self.pid)
            return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= self.started + 1
        except psutil.Error:
            return False


def state_path(config: Path) -> Path:
    return state_dir() / f"{stack_key(config)}.json"


def publish(state: StackState) -> None:
    """Write the state file of the stack running ``state.config`` (readable by this user only)."""
    path = state_path(Path(state.config))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(state)))
    temporary.chmod(0o600)
    temporary.replace(path)


def withdraw(config: Path, pid: int) -> None:
    """Remove the state file of ``config``'s stack if process ``pid`` wrote it."""
    path = state_path(config)
    found = _read(path)
    if found is not None and found.pid == pid:
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Lookup:
    """The running stack for a config, if any, and the stale state removed on the way."""

    running: StackState | None
    stale: StackState | None = None


def find(config: Path) -> Lookup:
    """The stack running ``config`` on this machine; a state file whose process is gone is removed."""
    path = state_path(config)
    found = _read(path)
    if found is None:
        return Lookup(None)
    if found.alive():
        return Lookup(found)
    path.unlink(missing_ok=True)
    return Lookup(None, stale=found)


def _read(path: Path) -> StackState | None:
    try:
        raw = json.loads(path.read_text())
        return StackState(pid=int(raw["pid"]), broker_url=str(raw["broker_url"]), config=str(raw["config"]),
                          started=float(raw["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def flower_password_path() -> Path:
    return state_dir().parent / "flower-password"


def remembered_flower_password() -> str:
    """The stack's generated Flower password: made once per user and kept (mode 0600), so a bookmarked
    login keeps working from one ``make stack`` to the next."""
    path = flower_password_path()
    try:
        kept = path.read_text().strip()
        if len(kept) >= 8:
            return kept
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(password)
    return password
