"""What ``mcp-orch stack`` decides before the rest runs: its private Redis, and which upstreams it
simulates (the whole running stack is tests/operator/test_operator_stack.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from orchestrator.config import DEFAULTS_FILE, load_settings
from orchestrator.operator.processes import REDIS_MISSING, RunningStack, port_open, start_redis_server
from orchestrator.operator.stack import SIMULATED_SERVICES, services_to_simulate, start_simulators
from orchestrator.services import MEDIA_SERVICE_NAMES
from tests.support.procs import start_child

GIVEN_SONARR_URL = "http://sonarr.example.test:8989"
GIVEN_SONARR_KEY = "given-sonarr-key-3f9a"
OTHERS_THAN_SONARR = [name for name in MEDIA_SERVICE_NAMES if name != "sonarr"]
RESOLVE_ENVS = ("import json; from orchestrator.config import DEFAULTS_FILE, load_settings; "
                "print(json.dumps({name: server.transport.resolved_env() "
                "for name, server in load_settings(DEFAULTS_FILE).servers.items()}))")
"""Run in a child started like a worker: the environment each bundled MCP server would get from it."""


def test_a_missing_redis_server_fails_saying_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    """With no ``redis-server`` on PATH, starting the private Redis raises FileNotFoundError whose
    message names the binary and the command that installs it; nothing is started."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(FileNotFoundError) as caught:
        start_redis_server(tmp_path)
    assert str(caught.value) == REDIS_MISSING
    assert "redis-server is not installed" in str(caught.value)
    assert "sudo apt-get install -y redis-server" in str(caught.value)
    assert not (tmp_path / "redis.log").exists()


def test_a_service_whose_url_is_set_gets_no_simulator() -> None:
    """Under the bundled config every media server is simulated, except one whose ``<SERVICE>_URL``
    is set (an empty value counts as not set)."""
    settings = load_settings(DEFAULTS_FILE)
    assert services_to_simulate(settings, {}) == list(MEDIA_SERVICE_NAMES)
    given = {"SONARR_URL": GIVEN_SONARR_URL, "SONARR_API_KEY": GIVEN_SONARR_KEY}
    assert services_to_simulate(settings, given) == OTHERS_THAN_SONARR
    assert services_to_simulate(settings, {"SONARR_URL": ""}) == list(MEDIA_SERVICE_NAMES)
    assert services_to_simulate(settings, {"SONARR_API_KEY": GIVEN_SONARR_KEY}) == list(MEDIA_SERVICE_NAMES)


@pytest.mark.slow
def test_workers_reach_a_given_sonarr_url_and_simulators_for_the_rest(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    """With SONARR_URL and SONARR_API_KEY set, the stack starts simulators for the other three only, and
    a child started as the stack starts its workers hands sonarr's MCP server the given URL and key,
    the others their simulator's."""
    for url_var, key_var in SIMULATED_SERVICES.values():
        monkeypatch.delenv(url_var, raising=False)
        monkeypatch.delenv(key_var, raising=False)
    monkeypatch.setenv("SONARR_URL", GIVEN_SONARR_URL)
    monkeypatch.setenv("SONARR_API_KEY", GIVEN_SONARR_KEY)
    stack = RunningStack(log_dir=tmp_path, settings=load_settings(DEFAULTS_FILE), env={})
    try:
        start_simulators(stack)
        assert [child.name for child in stack.children] == [f"sim-{name}" for name in OTHERS_THAN_SONARR]
        assert not {"SONARR_URL", "SONARR_API_KEY"} & set(stack.env)
        assert all(port_open(int(stack.env[SIMULATED_SERVICES[service][0]].rsplit(":", 1)[1]))
                   for service in OTHERS_THAN_SONARR)
        worker = stack.add(start_child("worker-env", [sys.executable, "-c", RESOLVE_ENVS], log=tmp_path / "env.log",
                                       env=stack.env), "environment probe", "-")
        assert worker.proc.wait(timeout=60) == 0, worker.output()
        envs = json.loads(worker.output())
    finally:
        stack.stop()
    assert envs["sonarr"] == {"SONARR_URL": GIVEN_SONARR_URL, "SONARR_API_KEY": GIVEN_SONARR_KEY}
    for service in OTHERS_THAN_SONARR:
        url_var, key_var = SIMULATED_SERVICES[service]
        assert envs[service][url_var] == stack.env[url_var] and envs[service][key_var] == stack.env[key_var]
        assert stack.env[url_var].startswith("http://127.0.0.1:") and stack.env[key_var]
