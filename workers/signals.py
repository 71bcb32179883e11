"""Process signals: scrub secrets from worker logs, close held sessions at shutdown.

Sessions open lazily on first use (``WorkerRuntime.sessions``), so nothing here blocks process
start-up on a slow MCP server (``worker_process_init`` must return within 4 s).
"""

from __future__ import annotations

import atexit
from typing import Any

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    worker_process_shutdown,
    worker_shutdown,
)

from orchestrator.redaction import install_log_redaction
from workers.runtime import current


def _redact_logs(**_: Any) -> None:
    install_log_redaction(current().redactor)


def _close_sessions(**_: Any) -> None:
    current().close_sessions()


def connect() -> None:
    """Redact every worker log record; close this process's sessions when it ends."""
    after_setup_logger.connect(_redact_logs)
    after_setup_task_logger.connect(_redact_logs)
    worker_process_shutdown.connect(_close_sessions)
    worker_shutdown.connect(_close_sessions)
    atexit.register(_close_sessions)
