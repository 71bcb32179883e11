"""The worker's Celery app: ``celery -A workers.app worker -Q mcp.<server>``.

Importing this module loads the configuration (``MCP_ORCH_CONFIG`` / ``MCP_ORCH_*``), fails
at start-up on a bad one, and registers the tasks and process signals.
"""

from __future__ import annotations

from orchestrator.celery_app import make_celery
from orchestrator.config import load_settings
from orchestrator.redaction import Redactor

settings = load_settings()
redactor = Redactor(settings.secret_values())
app = make_celery(settings, main="mcp_orchestrator_worker")

import workers.health  # noqa: E402  (health_check task, catalog refresh, consumer heartbeat)
import workers.metrics  # noqa: E402  (counts every call_tool in Redis for metrics and stats)
import workers.signals  # noqa: E402  (registers process signal handlers)
import workers.tasks  # noqa: E402,F401  (registers the tasks on ``app``)
