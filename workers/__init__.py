"""Worker side: Celery tasks that run tool calls on MCP sessions held by each worker process."""
