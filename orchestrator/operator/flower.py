"""Flower, the Celery monitor, set up for the orchestrator: basic auth, readable task names.

``mcp-orch flower`` (and the stack) run ``celery -A orchestrator.operator.flower_app flower`` with the
login passed through the child's environment (``FLOWER_BASIC_AUTH``), never on the command line
where ``ps`` would show it. Flower's API (``/api/tasks``, ``/api/workers``) needs the same login.

Task names: every ``mcp.*`` task is published with Celery's ``shadow`` name
``<server>.<tool>`` (``sabnzbd.sabnzbd_get_queue``, ``sonarr.tools/list``, ``plex.health_check``;
``orchestrator.wire.LabelledAMQP``, the app's message builder, sets it), so Flower's task list and the worker logs
say what each task does; the arguments Flower shows are the message's ``kwargsrepr``: server, tool, params, deadline,
never a URL or a key (those stay in the workers' own configuration).
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.config import Settings
from orchestrator.operator.stack_state import remembered_flower_password

BASIC_AUTH_ENV = "FLOWER_BASIC_AUTH"
"""The variable Flower reads its ``user:password`` login from."""
FLOWER_APP = "orchestrator.operator.flower_app"
"""The Celery app module Flower monitors (queues and settings of the orchestrator, no task bodies)."""
MAX_TASKS = 10000
"""Tasks Flower keeps in memory for its task list."""


@dataclass(frozen=True)
class FlowerLogin:
    user: str
    password: str
    generated: bool

    def basic_auth(self) -> str:
        return f"{self.user}:{self.password}"


def flower_login(settings: Settings, *, generate: bool) -> FlowerLogin | None:
    """The configured login; without a password, the generated one kept for this user (``generate``) or None."""
    if settings.flower.password is not None:
        return FlowerLogin(settings.flower.user, settings.flower.password.get_secret_value(), generated=False)
    if generate:
        return FlowerLogin(settings.flower.user, remembered_flower_password(), generated=True)
    return None


def flower_argv(python: str, *, address: str, port: int, url_prefix: str | None = None) -> list[str]:
    """The command that runs Flower on this orchestrator's broker (no secret in it)."""
    argv = [python, "-m", "celery", "-A", FLOWER_APP, "flower", f"--address={address}", f"--port={port}",
            f"--max_tasks={MAX_TASKS}", "--purge_offline_workers=60"]
    if url_prefix:
        argv.append(f"--url_prefix={url_prefix}")
    return argv


def flower_env(login: FlowerLogin | None) -> dict[str, str]:
    """The environment that turns on basic auth (empty without a login)."""
    return {BASIC_AUTH_ENV: login.basic_auth()} if login else {}
