"""Real-process helpers shared by the test suite (Redis, Celery workers, MCP servers)."""
