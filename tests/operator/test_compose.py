"""docker-compose.yml, checked statically (Docker cannot run here): it parses, every service runs a
command that exists in this package, and every variable it uses is documented and read."""

from __future__ import annotations

import importlib
import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config import CONFIG_PATH_ENV, ENV_PREFIX, FlowerSettings, RedisSentinel, Settings, load_settings
from orchestrator.operator.cli import build_parser
from orchestrator.operator.stack import SIMULATED_SERVICES

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
VARIANTS = {name: REPO / f"docker-compose.{name}.yml" for name in ("sentinel", "rabbitmq")}
"""Override files for other brokers (checked in test_compose_variants.py); .env.example serves them too."""
ENV_EXAMPLE = REPO / ".env.example"
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=value: {line!r}"
            values[key.strip()] = value.strip()
    return values


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """What ``docker compose`` makes of a value with ``env`` as the .env file (``$$`` is a literal $)."""
    if isinstance(value, str):
        def substitute(match: re.Match[str]) -> str:
            name, kind, default = match.groups()
            if name in env and (env[name] or kind != "-"):
                return env[name]
            assert kind != "?", f"${{{name}}} is required but .env.example does not set it"
            return default or ""

        return _REF.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return interpolate(compose["services"], env_example())


@pytest.fixture(scope="module")
def compose_settings() -> Settings:
    return load_settings(REPO / "deploy" / "compose.toml")


def referenced_variables() -> set[str]:
    return {match.group(1) for path in [COMPOSE, *VARIANTS.values()]
            for match in _REF.finditer(path.read_text().replace("$$", ""))}


def test_compose_file_parses_and_has_every_service_of_the_multi_machine_shape(services: dict[str, Any],
                                                                               compose_settings: Settings) -> None:
    """Redis, one worker service per server queue, one beat, Flower, metrics and the four MCP servers."""
    expected = {"redis", "beat", "flower", "metrics"}
    expected |= {f"worker-{name}" for name in compose_settings.enabled_servers()}
    expected |= {f"{name}-mcp" for name in SIMULATED_SERVICES}
    assert expected <= set(services)
    beats = [name for name, service in services.items() if service.get("command", [None, None])[:2] == ["mcp-orch",
                                                                                                         "beat"]]
    assert beats == ["beat"]


def test_every_service_command_exists_in_the_package(services: dict[str, Any]) -> None:
    """``mcp-orch <sub>`` parses with the real CLI parser; ``python -m <module>`` imports and parses its args."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for name, service in services.items():
        if "image" in service and "build" not in service:
            continue  # a third-party image (redis)
        command = service["command"]
        assert isinstance(command, list), f"{name}: use the exec form (a list) for the command"
        if command[0] in scripts:
            args = build_parser().parse_args(command[1:])
            assert callable(args.func), name
        else:
            assert command[:2] == ["python", "-m"], f"{name}: unknown command {command}"
            module = command[2]
            assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
            if module.startswith("media_mcp."):
                runner = importlib.import_module("media_mcp.common.runner")
                parsed = runner.parse_args(module.split(".")[1], command[3:])
                assert (parsed.transport, parsed.host, parsed.port) == ("http", "0.0.0.0", 8000), name


def test_workers_reach_every_mcp_server_over_streamable_http(services: dict[str, Any],
                                                             compose_settings: Settings) -> None:
    """Each server of deploy/compose.toml is an HTTP URL naming an MCP service of the compose file."""
    for name, server in compose_settings.enabled_servers().items():
        assert server.transport.type == "http", name
        url = server.transport.resolved_url()
        host_port = re.match(r"^http://([^/:]+):(\d+)/mcp$", url)
        assert host_port, url
        service = services[host_port.group(1)]
        assert host_port.group(2) == service["command"][service["command"].index("--port") + 1]


def test_worker_services_are_one_per_queue_and_scalable(services: dict[str, Any], compose_settings: Settings) -> None:
    """A worker service consumes exactly its server's queue and has no fixed name or host port (--scale works)."""
    for name in compose_settings.enabled_servers():
        service = services[f"worker-{name}"]
        args = build_parser().parse_args(service["command"][1:])
        assert args.command == "worker" and args.servers == name
        assert "container_name" not in service and "ports" not in service
        assert "%h" in args.name, "each scaled container needs its own node name"


def test_redis_has_a_password_and_persistence(compose: dict[str, Any], services: dict[str, Any]) -> None:
    """Redis requires the password from .env and keeps an append-only file on a named volume."""
    redis = services["redis"]
    command = " ".join(redis["command"])
    assert '--requirepass "$REDIS_PASSWORD"' in command and "--appendonly yes" in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "redis-data" in compose["volumes"]
    broker = services["worker-sabnzbd"]["environment"]["MCP_ORCH_BROKER_URL"]
    assert broker == f"redis://:{env_example()['REDIS_PASSWORD']}@redis:6379/0"
    assert "${REDIS_PASSWORD:?" in COMPOSE.read_text(), "an unset password must stop compose, not start Redis open"


def test_flower_runs_with_basic_auth_from_the_configuration(services: dict[str, Any],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower's service passes its login as MCP_ORCH_FLOWER__* (read by Settings), and never --no-auth."""
    flower = services["flower"]
    assert "--no-auth" not in flower["command"]
    for key, value in flower["environment"].items():
        if key != CONFIG_PATH_ENV:  # /app/deploy/compose.toml inside the image is deploy/compose.toml here
            monkeypatch.setenv(key, str(value))
    assert flower["environment"][CONFIG_PATH_ENV] == "/app/deploy/compose.toml"
    settings = load_settings(REPO / "deploy" / "compose.toml")
    assert settings.broker_url == flower["environment"]["MCP_ORCH_BROKER_URL"]
    assert settings.flower.user == env_example()["FLOWER_USER"]
    assert settings.flower.password is not None
    assert settings.flower.password.get_secret_value() == env_example()["FLOWER_PASSWORD"]
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"] + services["metrics"]["ports"])


def _read_by_code(variable: str, service: dict[str, Any]) -> bool:
    """Whether the program this service runs reads ``variable`` (or the service's own command uses it)."""
    if variable == CONFIG_PATH_ENV:
        return True
    if variable.startswith(ENV_PREFIX):
        path = variable.removeprefix(ENV_PREFIX).lower().split("__")
        if path[0] in ("flower", "redis_sentinel"):
            model = FlowerSettings if path[0] == "flower" else RedisSentinel
            return len(path) == 2 and path[1] in model.model_fields
        return len(path) == 1 and path[0] in Settings.model_fields
    if f"${variable}" in " ".join(map(str, service.get("command", []))):
        return True
    if variable in str(service.get("healthcheck", "")):
        return True
    for name, (url_var, secret_var) in SIMULATED_SERVICES.items():
        if variable in (url_var, secret_var, f"{name.upper()}_TIMEOUT"):
            return True
    return False


def test_every_variable_is_documented_in_env_example_and_read(compose: dict[str, Any]) -> None:
    """Every ${VAR} compose uses is in .env.example and vice versa; every container variable is read by its program."""
    documented = set(env_example())
    used = referenced_variables()
    assert used - documented == set(), "used by docker-compose.yml but not in .env.example"
    assert documented - used == set(), "in .env.example but not used by docker-compose.yml"
    raw_services = compose["services"]
    for name, service in interpolate(raw_services, env_example()).items():
        for variable in service.get("environment") or {}:
            assert _read_by_code(variable, raw_services[name]), f"{name}: nothing reads {variable}"


def test_env_example_holds_no_real_secret() -> None:
    """Passwords, keys and tokens in .env.example are obvious placeholders."""
    for key, value in env_example().items():
        if re.search(r"PASSWORD|API_KEY|TOKEN|SECRET", key):
            assert value.startswith(("change-me", "replace-with-")), f"{key} looks like a real secret"


def test_the_image_contains_what_the_services_run() -> None:
    """The Dockerfile installs the package (console script, modules, beat schedule) and bakes in deploy/."""
    dockerfile = (REPO / "Dockerfile").read_text()
    for path in ("orchestrator", "workers", "media_mcp", "upstream_sim", "deploy", "beat_schedule.py",
                 "pyproject.toml"):
        assert re.search(rf"^COPY .*\b{re.escape(path)}\b", dockerfile, re.M), path
    assert "pip install ." in dockerfile
    assert "MCP_ORCH_CONFIG=/app/deploy/compose.toml" in dockerfile


def _healthcheck_code(test: list[str]) -> str | None:
    """The Python source a ``["CMD", "python", "-c", code]`` healthcheck runs, else None."""
    return test[3] if test[:3] == ["CMD", "python", "-c"] else None


def test_every_service_has_a_healthcheck_that_names_real_code(services: dict[str, Any]) -> None:
    """Each service has a healthcheck; Python ones compile, and what they import exists in this package."""
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name}: no healthcheck"
        code = _healthcheck_code(check["test"])
        if code is not None:
            compile(code, f"{name}-healthcheck", "exec")
            for module in re.findall(r"from (\w[\w.]*) import", code):
                assert importlib.util.find_spec(module) is not None, f"{name}: healthcheck imports {module}"
    beat_code = _healthcheck_code(services["beat"]["healthcheck"]["test"])
    assert beat_code is not None and "keys.REDBEAT_LOCK_KEY" in beat_code
    assert hasattr(importlib.import_module("orchestrator.keys"), "REDBEAT_LOCK_KEY")
    for name in ("flower", "metrics"):
        port = services[name]["command"][services[name]["command"].index("--port") + 1]
        assert f":{port}/" in str(services[name]["healthcheck"]["test"]), name


def test_workers_start_after_their_mcp_server_is_healthy_and_ping_by_their_own_node_name(
        services: dict[str, Any], compose_settings: Settings) -> None:
    """A worker waits for its MCP server's healthcheck; its own check pings the node name its command sets."""
    for name in compose_settings.enabled_servers():
        worker = services[f"worker-{name}"]
        assert worker["depends_on"][f"{name}-mcp"] == {"condition": "service_healthy"}
        assert worker["depends_on"]["redis"] == {"condition": "service_healthy"}
        node = worker["command"][worker["command"].index("-n") + 1]
        assert node == f"{worker['environment']['WORKER_NAME']}@%h"
        assert "inspect ping" in " ".join(worker["healthcheck"]["test"])
        assert importlib.util.find_spec("workers.app") is not None


def test_simulators_and_mcp_servers_are_checked_on_the_port_they_listen_on(services: dict[str, Any]) -> None:
    """The port probe reads LISTEN_PORT (default 8000): simulators set it to the port their command uses."""
    for name, service in services.items():
        command = service.get("command", [])
        if command[:2] != ["python", "-m"]:
            continue
        port = command[command.index("--port") + 1]
        assert str((service.get("environment") or {}).get("LISTEN_PORT", "8000")) == port, name
