"""A third-party Sonarr MCP server from PyPI, run by the orchestrator like any other stdio server.

The server is ``arr-py-mcp`` from ``arr-py-client[mcp]==0.11.0``: an MCP SDK 1.x server (FastMCP 3)
that reads ``SONARR_BASE_URL`` / ``SONARR_API_KEY``. It needs ``mcp<2``, which cannot live beside
this project's ``mcp>=2.3``, so it is installed into a virtualenv of its own and the config points
``command`` at that environment's console script; this module skips when it is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

import upstream_sim
from orchestrator.client import Orchestrator
from orchestrator.config import Settings
from orchestrator.operator.processes import ChildProcess
from tests.support.media import CANARY
from tests.support.procs import REPO, configured_worker
from tests.support.redis_proc import RedisServer
from upstream_sim.runner import SimHandle

pytestmark = pytest.mark.slow

PACKAGE = "arr-py-client[mcp]==0.11.0"
SCRIPT = "arr-py-mcp"
COMMAND_ENV = "ARR_PY_MCP"
"""Path of the ``arr-py-mcp`` console script, when it is neither on PATH nor in ``THIRD_PARTY_VENV``."""
THIRD_PARTY_VENV = REPO / ".venv-thirdparty"
INSTALL_HINT = (f"python -m venv .venv-thirdparty && .venv-thirdparty/bin/pip install '{PACKAGE}' "
                f"(or set {COMMAND_ENV}=/path/to/{SCRIPT})")
BROKER_DB = 8
"""A Redis database of the session's server kept for this module (flushed when the worker starts)."""
SECRET = CANARY["sonarr"]


def find_command() -> str | None:
    """The ``arr-py-mcp`` console script: ``$ARR_PY_MCP``, else PATH, else ``.venv-thirdparty``."""
    explicit = os.environ.get(COMMAND_ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    bundled = THIRD_PARTY_VENV / "bin" / SCRIPT
    return shutil.which(SCRIPT) or (str(bundled) if os.access(bundled, os.X_OK) else None)


COMMAND = find_command()
if COMMAND is None:
    pytest.skip(f"third-party Sonarr MCP server {SCRIPT!r} ({PACKAGE}) is not installed; it needs mcp<2 "
                f"so it lives in its own virtualenv: {INSTALL_HINT}", allow_module_level=True)

SERVER = """
[servers.{name}]
{protocol}connect_timeout = 30
[servers.{name}.transport]
type = "stdio"
command = "{command}"
args = ["--sonarr-only", "--disclosure", "off"]
[servers.{name}.transport.env]
SONARR_BASE_URL = "${{SONARR_URL}}"
SONARR_API_KEY = "${{SONARR_API_KEY}}"
FASTMCP_SHOW_CLI_BANNER = "false"
"""


def config_text(broker: str) -> str:
    """``sonarr3p`` pins the legacy (2025-11-25) handshake; ``sonarr3p_auto`` lets the client fall back to it."""
    servers = [SERVER.format(name=name, protocol=protocol, command=COMMAND)
               for name, protocol in (("sonarr3p", 'protocol = "legacy"\n'), ("sonarr3p_auto", ""))]
    return "\n".join([f'broker_url = "{broker}"', "default_timeout = 30", *servers])


@dataclass
class ThirdParty:
    sim: SimHandle
    settings: Settings
    broker_url: str
    worker: ChildProcess
    client: Orchestrator


@pytest.fixture(scope="module")
def third_party(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThirdParty]:
    """The Sonarr simulator, the third-party server configured twice, one threads-pool worker for both."""
    broker = f"{redis_server.url}/{BROKER_DB}"
    sim = upstream_sim.run_in_thread("sonarr", SECRET)
    try:
        with configured_worker(broker, config_text(broker), tmp_path_factory.mktemp("third-party"), name="thirdparty",
                               env={"SONARR_URL": sim.url, "SONARR_API_KEY": SECRET}) as (settings, worker, client):
            yield ThirdParty(sim, settings, broker, worker, client)
    finally:
        sim.stop()


def simulator_titles(sim: SimHandle) -> set[str]:
    with sim.state.library.lock:
        return {series["title"] for series in sim.state.library.items.values()}


@pytest.mark.parametrize("server", ["sonarr3p", "sonarr3p_auto"])
def test_third_party_server_lists_its_sonarr_tools_through_the_queue(third_party: ThirdParty, server: str) -> None:
    """list_tools through the worker shows the third-party server's Sonarr tools and their read-only hints."""
    tools = {tool["name"]: tool for tool in third_party.client.list_tools(server, timeout=40)}
    assert {"sonarr_series_list", "sonarr_series_get", "sonarr_series_lookup", "sonarr_queue_list"} <= set(tools)
    assert tools["sonarr_series_list"]["annotations"]["readOnlyHint"] is True
    assert tools["sonarr_series_get"]["inputSchema"]["required"] == ["series_id"]


@pytest.mark.parametrize("server", ["sonarr3p", "sonarr3p_auto"])
def test_third_party_series_list_returns_the_simulators_titles(third_party: ThirdParty, server: str) -> None:
    """sonarr_series_list through the queue returns every series title the simulator holds."""
    result = third_party.client.call_tool(server, "sonarr_series_list", {}, timeout=40)
    assert result.ok and result.server == server and result.worker == "thirdparty@test"
    series = result.data["data"]
    assert {item["title"] for item in series} == simulator_titles(third_party.sim)
    assert "Severance" in {item["title"] for item in series}
    assert SECRET not in result.model_dump_json()


def test_third_party_series_get_returns_one_series(third_party: ThirdParty) -> None:
    """sonarr_series_get with an id returns that series from the simulator."""
    result = third_party.client.call_tool("sonarr3p", "sonarr_series_get", {"series_id": 2})
    series = result.data["data"]
    assert series["id"] == 2 and series["title"] == "Severance"


def test_third_party_calls_leave_no_key_in_results_or_the_worker_log(third_party: ThirdParty) -> None:
    """The worker's stored results and its log (which relays the server's stderr) hold no Sonarr key."""
    result = third_party.client.call_tool("sonarr3p", "sonarr_system_status")
    assert result.data["data"]["app_name"] == "Sonarr"
    conn = redis.Redis.from_url(third_party.broker_url)
    try:
        keys = list(conn.scan_iter(match="celery-task-meta-*"))
        stored = [value for value in conn.mget(keys) if value]
    finally:
        conn.close()
    assert f"celery-task-meta-{result.task_id}".encode() in keys
    assert not [value for value in stored if SECRET.encode() in value]
    log = third_party.worker.output()
    assert result.task_id in log and SECRET not in log
    assert SECRET not in json.dumps(result.model_dump())
