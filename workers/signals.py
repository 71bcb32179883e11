"""Process signals: scrub secrets from worker logs, close held sessions at shutdown.

Sessions open lazily on first use (``workers.sessions.get_manager``), so nothing here blocks
process start-up on a slow MCP server (``worker_process_init`` must return within 4 s).
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
from workers.app import redactor
from workers.sessions import close_manager


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_logs(**_: Any) -> None:
    install_log_redaction(redactor)


@worker_process_shutdown.connect
@worker_shutdown.connect
def _close_sessions(**_: Any) -> None:
    close_manager()


atexit.register(close_manager)
