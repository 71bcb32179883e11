"""Configuration: one TOML file, environment overrides, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import DEFAULTS_FILE, EMBEDDED_FILE, ConfigError, load_settings

MINIMAL = """
broker_url = "redis://127.0.0.1:6379/3"
[servers.sonarr]
aliases = ["tv"]
timeout = 12
[servers.sonarr.transport]
type = "http"
url = "http://sonarr-mcp:9000/mcp"
headers = { X-Api-Key = "${SONARR_TOKEN}" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_config_file_defines_servers_with_names_from_their_keys(tmp_path: Path) -> None:
    """``[servers.sonarr]`` gives a server named sonarr with its aliases, queue and timeout."""
    settings = load_settings(write(tmp_path, MINIMAL))
    server = settings.servers["sonarr"]
    assert server.name == "sonarr" and server.aliases == ["tv"] and server.queue == "mcp.sonarr"
    assert server.timeout == 12 and settings.broker_url.endswith("/3")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MCP_ORCH_* variables win over the file, nested with double underscores."""
    monkeypatch.setenv("MCP_ORCH_BROKER_URL", "redis://elsewhere:6379/1")
    monkeypatch.setenv("MCP_ORCH_SERVERS__SONARR__ENABLED", "false")
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.broker_url == "redis://elsewhere:6379/1"
    assert settings.servers["sonarr"].enabled is False
    assert settings.servers["sonarr"].timeout == 12


def test_a_server_without_a_timeout_takes_default_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``default_timeout`` (file or environment) is the deadline of a server that sets none; its own wins."""
    text = "default_timeout = 45\n" + MINIMAL + '[servers.radarr]\ntransport = { type = "stdio", command = "x" }\n'
    settings = load_settings(write(tmp_path, text))
    assert settings.servers["radarr"].timeout == 45 and settings.servers["sonarr"].timeout == 12
    monkeypatch.setenv("MCP_ORCH_DEFAULT_TIMEOUT", "5")
    settings = load_settings(write(tmp_path, text))
    assert settings.servers["radarr"].timeout == 5 and settings.servers["sonarr"].timeout == 12


def test_config_path_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MCP_ORCH_CONFIG chooses the file when no path is passed."""
    monkeypatch.setenv("MCP_ORCH_CONFIG", str(write(tmp_path, MINIMAL)))
    assert "sonarr" in load_settings().servers


def test_secret_references_are_read_by_the_worker_not_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``${VAR}`` stays unexpanded in the settings and is resolved from the environment on demand."""
    settings = load_settings(write(tmp_path, MINIMAL))
    transport = settings.servers["sonarr"].transport
    assert "SONARR_TOKEN" in transport.headers["X-Api-Key"].get_secret_value()
    with pytest.raises(ValueError, match="SONARR_TOKEN"):
        transport.resolved_headers()
    monkeypatch.setenv("SONARR_TOKEN", "tok-123456")
    assert transport.resolved_headers() == {"X-Api-Key": "tok-123456"}
    assert "tok-123456" in settings.secret_values()
    assert "tok-123456" not in repr(settings)


@pytest.mark.parametrize(("text", "field"), [
    (MINIMAL.replace("timeout = 12", "timeout = -1"), "servers.sonarr.timeout"),
    (MINIMAL.replace('url = "http://sonarr-mcp:9000/mcp"', 'url = "ftp://x"'), "servers.sonarr.transport.url"),
    (MINIMAL.replace('type = "http"', 'type = "carrier-pigeon"'), "servers.sonarr.transport"),
    (MINIMAL.replace('aliases = ["tv"]', 'aliases = ["TV Shows"]'), "servers.sonarr.aliases"),
    (MINIMAL.replace("timeout = 12", "colour = 'red'"), "servers.sonarr.colour"),
    (MINIMAL + '\n[servers.radarr]\naliases = ["tv"]\ntransport = { type = "stdio", command = "x" }\n',
     "servers.radarr"),
    (MINIMAL.replace("${SONARR_TOKEN}", "${SONARR TOKEN"), "servers.sonarr.transport.headers"),
    ('max_timeout = 5000\nvisibility_timeout = 100\n', "max_timeout"),
    ("max_timeout = 10\ndefault_timeout = 5\n" + MINIMAL, "servers.sonarr.timeout"),
    ("max_timeout = 10\ndefault_timeout = 11\n", "default_timeout"),
    ('broker_url = "redis://127.0.0.1:6379/1/0"\n', "broker_url: the path after host:port must be a database"),
    ('result_backend = "redis://127.0.0.1:6379/results"\n', "result_backend: the path after host:port must be"),
])
def test_a_bad_config_fails_with_a_message_naming_the_field(tmp_path: Path, text: str, field: str) -> None:
    """Every invalid value is refused at load time, and the error names its dotted field path."""
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert field in str(caught.value)


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    """A missing file or bad TOML is a ConfigError that names the file."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "servers = [[["))


def test_a_bad_value_is_not_echoed_in_the_error(tmp_path: Path) -> None:
    """A rejected value (it may be a secret) does not appear in the error text."""
    text = MINIMAL.replace('url = "http://sonarr-mcp:9000/mcp"', 'url = "sftp://user:hunter2hunter2@x"')
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert "hunter2" not in str(caught.value)


def test_the_bundled_defaults_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no file and no MCP_ORCH_CONFIG the bundled defaults load and define servers."""
    monkeypatch.delenv("MCP_ORCH_CONFIG", raising=False)
    settings = load_settings()
    assert settings.servers


def test_the_compact_stacks_servers_are_the_bundled_defaults_but_for_the_transport() -> None:
    """embedded.toml serves defaults.toml's servers in-process: same aliases, health probe, policies, variables."""
    stdio, inprocess = load_settings(DEFAULTS_FILE).servers, load_settings(EMBEDDED_FILE).servers
    assert inprocess.keys() == stdio.keys()
    for name, server in stdio.items():
        embedded = inprocess[name]
        assert embedded.transport.type == "inprocess"
        assert embedded.transport.env.keys() == server.transport.env.keys(), name
        assert embedded.model_dump(exclude={"transport"}) == server.model_dump(exclude={"transport"}), name
