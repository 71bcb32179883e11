"""The Celery app Flower monitors: ``celery -A orchestrator.operator.flower_app flower``.

It knows the broker and the per-server queues (Flower's broker view lists them with their
lengths) but no task bodies; the configuration is read like a worker's (``MCP_ORCH_CONFIG``,
``MCP_ORCH_*``).
"""

from __future__ import annotations

from orchestrator.celery_app import make_celery
from orchestrator.config import load_settings

settings = load_settings()
app = make_celery(settings, main="mcp_orchestrator_flower")
