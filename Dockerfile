# One image for every orchestrator service in docker-compose.yml: workers, beat, Flower, the
# metrics endpoint and the bundled MCP servers (and, with the "sim" profile, the simulators).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    MCP_ORCH_CONFIG=/app/deploy/compose.toml
WORKDIR /app
COPY pyproject.toml README.md beat_schedule.py ./
COPY orchestrator ./orchestrator
COPY workers ./workers
COPY media_mcp ./media_mcp
COPY upstream_sim ./upstream_sim
COPY deploy ./deploy
RUN pip install . && useradd --create-home --uid 10001 orchestrator
USER orchestrator
CMD ["mcp-orch", "--help"]
