"""The worker's Celery app: ``celery -A workers.app worker -Q mcp.<server>``.

Importing this module loads the configuration (``MCP_ORCH_CONFIG`` / ``MCP_ORCH_*``), fails
at start-up on a bad one, installs the process's runtime and registers the tasks and signal
hooks, explicitly and in one place. Nothing under ``workers/`` imports this module back.
"""

from __future__ import annotations

from orchestrator.celery_app import make_celery
from orchestrator.config import load_settings
from workers import health, metrics, runtime, signals, tasks

settings = load_settings()
_runtime = runtime.install(runtime.WorkerRuntime(settings, session_hooks=[health.refresh_catalog_on_open]))
redactor = _runtime.redactor
app = make_celery(settings, main="mcp_orchestrator_worker")

tasks.register(app)  # call_tool, list_tools
health.register(app)  # health_check, consumer heartbeat
metrics.connect()  # counts every call_tool in Redis for metrics and stats
signals.connect()  # log redaction, session close at shutdown
