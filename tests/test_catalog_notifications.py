"""A server that announces a changed tool list gets its catalog refreshed at once, without a health check."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.client import Orchestrator
from orchestrator.config import load_settings
from orchestrator.operator.processes import wait_until
from tests.support.procs import REPO, start_worker

pytestmark = pytest.mark.slow

CONFIG = """
broker_url = "{broker}"
[servers.growing]
health_interval_seconds = 3600
transport = {{ type = "stdio", command = "python", args = ["-m", "tests.support.servers.growing"], cwd = "{repo}" }}
"""


def catalog_names(client: Orchestrator) -> set[str]:
    return {tool["name"] for tool in client.catalog.tools("growing") or []}


def test_a_tools_list_changed_announcement_refreshes_the_catalog(redis_url: str, tmp_path: Path) -> None:
    """An unannounced new tool stays out of the catalog; an announced one brings the catalog up to date."""
    config = tmp_path / "growing.toml"
    config.write_text(CONFIG.format(broker=redis_url, repo=REPO))
    settings = load_settings(config)
    client = Orchestrator(settings)
    worker = start_worker(client.app, name="growing", queues=["mcp.growing"], pool="threads",
                          concurrency=2, env={"MCP_ORCH_CONFIG": str(config)}, log=tmp_path / "worker.log")
    try:
        client.call_tool("growing", "grow", {"name": "opener"})  # opens the session
        wait_until(lambda: "grow" in catalog_names(client), 15, "the catalog written when the session opened")
        client.call_tool("growing", "grow", {"name": "silent"})
        time.sleep(1.5)  # no beat runs: nothing but an announcement may refresh the catalog now
        assert "silent" not in catalog_names(client)
        client.call_tool("growing", "grow", {"name": "announced", "announce": True})
        wait_until(lambda: {"silent", "announced"} <= catalog_names(client), 10,
                   "the announced tool list to reach the catalog")
    finally:
        client.close()
        worker.stop()
