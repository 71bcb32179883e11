"""The ``inprocess`` transport: a held MCP session to a server object living in the worker's process.

The tests drive the worker's real session manager (loop thread, owner coroutine, reconnects)
against a server built in this process: ``tests.support.servers.embedded`` and the bundled
``media_mcp.sonarr`` with a simulated Sonarr. No child process is started for a server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import upstream_sim
from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import ConfigError, ServerConfig, load_settings
from orchestrator.errors import ServerUnavailable, ToolReturnedError
from tests.support.procs import start_worker
from tests.support.servers import embedded
from workers.sessions import HeldSession, SessionManager

WAIT = 10.0
"""Longest any single step may take (seconds)."""
SONARR_KEY = "CANARY-inprocess-sonarr-7b2e"
EMBEDDED_KEY = "CANARY-inprocess-embedded-41c9"


def inprocess(name: str, module: str, **env: str) -> ServerConfig:
    return ServerConfig(name=name, transport={"type": "inprocess", "module": module, "env": env})


@pytest.fixture
def manager() -> Iterator[SessionManager]:
    sessions = SessionManager()
    try:
        yield sessions
    finally:
        sessions.close()


def test_an_inprocess_server_serves_a_call_without_a_child_process(manager: SessionManager,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A call on an ``inprocess`` session is answered by a server in this very process, which read its
    key from the worker's environment; no process is spawned for it."""
    monkeypatch.setenv(embedded.KEY_VAR, "worker-env-key")
    children_before = {child.pid for child in psutil.Process().children(recursive=True)}
    held = manager.session(inprocess("emb", "tests.support.servers.embedded"))
    result = manager.run(held.call_tool("whoami", {}, WAIT), WAIT)
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["pid"] == psutil.Process().pid
    assert result.structured_content["has_key"] is True
    assert {child.pid for child in psutil.Process().children(recursive=True)} == children_before


def test_a_tool_that_raises_is_a_tool_error_and_the_session_keeps_serving(manager: SessionManager) -> None:
    """An exception inside a tool comes back as an ``is_error`` result; the same session (not a rebuilt
    one) answers the next call."""
    held = manager.session(inprocess("emb", "tests.support.servers.embedded"))
    crashed = manager.run(held.call_tool("crash", {"message": "bug in the tool"}, WAIT), WAIT)
    assert crashed.is_error
    after = manager.run(held.call_tool("whoami", {}, WAIT), WAIT)
    assert not after.is_error and held.opens == 1


def test_the_server_is_torn_down_when_the_worker_closes_its_sessions() -> None:
    """Closing the session manager (worker shutdown) exits the server's ``open_server`` context."""
    sessions = SessionManager()
    before = dict(embedded.lifecycle)
    try:
        held = sessions.session(inprocess("emb", "tests.support.servers.embedded"))
        sessions.run(held.wait_connected(WAIT), WAIT)
        assert embedded.lifecycle["opened"] == before["opened"] + 1
        assert embedded.lifecycle["closed"] == before["closed"]
    finally:
        sessions.close()
    assert embedded.lifecycle["closed"] == before["closed"] + 1


async def _force_close(held: HeldSession) -> None:
    """What the session does when its transport fails under it: drop the client and wake the owner."""
    assert held._client is not None
    held._mark_broken(held._client, "forced close by the test")


def test_a_forced_close_rebuilds_the_server_and_reopens_the_session(manager: SessionManager) -> None:
    """After the session is forced closed, the owner tears the old server down, builds a new one and
    re-opens the session; the next call is answered by the new server."""
    held = manager.session(inprocess("emb", "tests.support.servers.embedded"))
    first = manager.run(held.call_tool("whoami", {}, WAIT), WAIT).structured_content
    before = dict(embedded.lifecycle)
    manager.run(_force_close(held), WAIT)
    second = manager.run(held.call_tool("whoami", {}, WAIT), WAIT).structured_content
    assert held.opens == 2 and held.last_error == "forced close by the test"
    assert first is not None and second is not None and second["build"] == first["build"] + 1
    assert embedded.lifecycle == {"opened": before["opened"] + 1, "closed": before["closed"] + 1}


def test_a_bundled_server_reads_the_same_variables_in_process(manager: SessionManager,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``media_mcp.sonarr`` in-process reads ``SONARR_URL`` / ``SONARR_API_KEY`` from the worker's
    environment as its ``python -m`` form does: with them it serves Sonarr's tools from the upstream;
    the key never appears in a reply."""
    with upstream_sim.run_in_thread("sonarr", SONARR_KEY) as sim:
        monkeypatch.setenv("SONARR_URL", sim.url)
        monkeypatch.setenv("SONARR_API_KEY", SONARR_KEY)
        held = manager.session(inprocess("sonarr", "media_mcp.sonarr"))
        listing = manager.run(held.list_tools(WAIT), WAIT)
        assert {"sonarr_get_series", "sonarr_get_series_by_id"} <= {tool.name for tool in listing.tools}
        result = manager.run(held.call_tool("sonarr_get_series", {}, WAIT), WAIT)
        assert not result.is_error and result.structured_content
        assert SONARR_KEY not in str(result.content)


def test_a_missing_variable_makes_the_server_unavailable_naming_it(manager: SessionManager,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``SONARR_URL`` the session cannot open; the call fails as ServerUnavailable naming the variable."""
    monkeypatch.delenv("SONARR_URL", raising=False)
    monkeypatch.setenv("SONARR_API_KEY", SONARR_KEY)
    held = manager.session(inprocess("sonarr", "media_mcp.sonarr"))
    with pytest.raises(ServerUnavailable, match="SONARR_URL is required"):
        manager.run(held.call_tool("sonarr_get_series", {}, WAIT), WAIT)


def test_a_module_without_open_server_is_refused_by_name(manager: SessionManager) -> None:
    """A module that defines no ``open_server`` fails the session with an error naming the module."""
    held = manager.session(inprocess("bad", "orchestrator.keys"))
    with pytest.raises(ServerUnavailable, match=r"orchestrator\.keys defines no open_server"):
        manager.run(held.call_tool("anything", {}, WAIT), WAIT)


def test_an_inprocess_module_must_be_a_dotted_name(tmp_path: Path) -> None:
    """The config refuses a ``module`` that is not a dotted Python name, naming the field."""
    path = tmp_path / "bad.toml"
    path.write_text('[servers.x.transport]\ntype = "inprocess"\nmodule = "media_mcp/sonarr"\n')
    with pytest.raises(ConfigError, match=r"servers\.x\.transport\.module: String should match pattern"):
        load_settings(path)


EMBEDDED_CONFIG = """
broker_url = "{broker}"
[servers.emb]
[servers.emb.transport]
type = "inprocess"
module = "tests.support.servers.embedded"
env = {{ EMBEDDED_API_KEY = "${{EMBEDDED_API_KEY}}" }}
"""


@pytest.mark.slow
def test_through_the_queue_a_raising_tool_is_a_tool_error_and_the_worker_lives_on(redis_url: str,
                                                                                 tmp_path: Path) -> None:
    """A real threads-pool worker serving an ``inprocess`` server: the raising tool's call fails as
    ToolReturnedError, the next call is answered by the same worker process (which spawned no
    child), and the key the server read from the worker's environment never reaches the client."""
    config = tmp_path / "embedded.toml"
    config.write_text(EMBEDDED_CONFIG.format(broker=redis_url))
    settings = load_settings(config)
    app = make_celery(settings)
    worker = start_worker(app, name="embedded", queues=["mcp.emb"], pool="threads", concurrency=4,
                          env={"MCP_ORCH_CONFIG": str(config), embedded.KEY_VAR: EMBEDDED_KEY},
                          log=tmp_path / "worker.log")
    client = Orchestrator(settings)
    try:
        with pytest.raises(ToolReturnedError) as crashed:
            client.call_tool("emb", "crash", {"message": "bug in the tool"}, timeout=WAIT)
        assert crashed.value.server == "emb"
        result = client.call_tool("emb", "whoami", {}, timeout=WAIT)
        assert result.ok and result.data["pid"] == worker.pid and result.data["has_key"] is True
        assert psutil.Process(worker.pid).children(recursive=True) == []
        assert EMBEDDED_KEY not in result.model_dump_json() + str(crashed.value.to_dict())
    finally:
        client.close()
        worker.stop()
        app.close()
    assert EMBEDDED_KEY not in (tmp_path / "worker.log").read_text()
