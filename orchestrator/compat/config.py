"""The seed orchestrator's configuration, accepted as it is and mapped onto ``Settings``.

AutoArr builds ``MCPOrchestratorConfig(sabnzbd=ServerConfig(name, url, api_key, ...), ...)`` (or a
dict ``{name: ServerConfig}``). ``map_seed_config(config, base)`` turns it into:

* ``settings``: this project's ``Settings`` for the facade's client (no secret in it: the
  transports keep their ``${VAR}`` references);
* ``worker_environment()``: the environment the workers (and beat) of these servers must run
  with: the secrets (``SABNZBD_URL``, ``SABNZBD_API_KEY``, ...) and the tunables as
  ``MCP_ORCH_SERVERS__<NAME>__...`` overrides of their own config file, so both sides of the
  queue apply the same policy.

Secrets never go into a task message (invariant 1, docs/ARCHITECTURE.md), so a facade in AutoArr's process
cannot hand ``url`` / ``api_key`` to a worker. They are for the workers: give the workers the
variables ``worker_environment()`` lists (env file, container env, secret store). The facade
does not keep them and does not drop them silently either: it checks them against its own
environment when the variables are set there (a mismatch is a ``SeedConfigError``), and else
warns (``SeedConfigWarning``) naming the variables the workers must have; ``on_secrets="error"``
turns that warning into an error.

Every seed setting, and what it becomes (W = applied by the workers through
``worker_environment()``, C = applied by the client / facade):

=================================== ====================================================================
seed setting                        here
=================================== ====================================================================
``sabnzbd/sonarr/radarr/plex``      the servers the facade serves; ``None`` -> ``servers.X.enabled=false`` (C+W)
``ServerConfig.url``                ``SABNZBD_URL`` / ``SONARR_URL`` / ``RADARR_URL`` / ``PLEX_URL`` (W)
``ServerConfig.api_key``            ``SABNZBD_API_KEY`` / ``SONARR_API_KEY`` / ``RADARR_API_KEY`` / ``PLEX_TOKEN`` (W)
``ServerConfig.enabled``            ``servers.X.enabled`` (C+W)
``ServerConfig.timeout``            ``servers.X.connect_timeout``: how long opening the MCP session may take (W)
``ServerConfig.max_retries``        ``servers.X.retry.max_attempts = max_retries + 1`` when not the default 3 (W)
``ServerConfig.retry_delay``        ``servers.X.retry.backoff_seconds`` (first retry wait, doubling) (W)
``default_tool_timeout``            ``default_timeout`` and ``servers.X.timeout``: a call's deadline (C)
``max_retries``                     ``servers.X.retry.max_attempts = max_retries + 1`` (a per-server value wins) (W)
``circuit_breaker_threshold``       ``servers.X.breaker.failure_threshold`` (C+W)
``circuit_breaker_timeout``         ``servers.X.breaker.open_seconds`` (C+W)
``circuit_breaker_success_threshold`` ``servers.X.breaker.success_threshold`` (C+W)
``enable_circuit_breaker=False``    the facade forces the breakers of its servers to ``disabled`` on connect
                                    (an operator state, fleet-wide: warned)
``health_check_interval``           ``servers.X.health_interval_seconds`` (beat) (W)
``health_check_failure_threshold``  ``servers.X.down_after_failures`` (W)
``keepalive_interval``              ``servers.X.keepalive_seconds`` (W)
``server_aliases``                  ``servers.X.aliases`` (C+W)
``max_concurrent_requests``         calls the facade runs at once (C)
``max_parallel_calls``              ``call_tools_parallel``: at most this many calls per server at once,
                                    fleet-wide, for the batch's calls (``max_concurrency``) (C)
``parallel_timeout``                ``call_tools_parallel``'s overall deadline (C)
``cancel_on_critical_failure``      ``call_tools_parallel`` fails fast on the first permanent failure (a
                                    tool error, an outcome unknown) and raises ``MCPOrchestratorError`` (C)
``connection_pool_size``            no meaning: each worker holds one session per server; size the pool
                                    with the worker's ``--concurrency``. Warned when not the default.
``auto_reconnect``                  always on: workers re-open broken sessions with backoff. ``False``
                                    cannot be honoured: warned.
``retryable_errors``                retries follow the typed errors (transient: connection, timeout,
                                    upstream unavailable), for tools safe to repeat only. The default
                                    ``[ConnectionError, TimeoutError]`` is that; anything else is warned.
=================================== ====================================================================
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.config import (
    DEFAULTS_FILE,
    ENV_PREFIX,
    MEDIA_SERVER_VARIABLES,
    ConfigError,
    Settings,
    describe_validation_error,
    load_settings,
)
from orchestrator.config import ServerConfig as ServerSettings

__all__ = [
    "SECRET_VARIABLES",
    "SEED_SERVERS",
    "MCPOrchestratorConfig",
    "SeedConfigError",
    "SeedConfigWarning",
    "SeedMapping",
    "ServerConfig",
    "map_seed_config",
    "worker_environment",
]

SEED_SERVERS = ("sabnzbd", "sonarr", "radarr", "plex")
"""The servers the seed knew; its ``MCPOrchestratorConfig`` has one field for each."""
SECRET_VARIABLES = MEDIA_SERVER_VARIABLES
"""Where a bundled media server reads the seed's ``url`` and ``api_key`` (in the worker's environment)."""


class SeedConfigError(ConfigError):
    """A seed configuration this project cannot honour; the message names the setting."""


class SeedConfigWarning(UserWarning):
    """A seed setting with no effect here, or a secret the facade cannot hand to the workers."""


@dataclass
class ServerConfig:
    """The seed's per-server entry (same fields, same checks)."""

    name: str
    url: str
    api_key: str = field(repr=False)
    enabled: bool = True
    timeout: float = 30.0
    max_retries: int = 3
    retry_delay: float = 1.0

    def __post_init__(self) -> None:
        for name in ("name", "url", "api_key"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"{name} must be a non-empty string")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")


def _default_retryable() -> list[type[BaseException]]:
    return [ConnectionError, TimeoutError]


@dataclass
class MCPOrchestratorConfig:
    """The seed's orchestrator configuration (same fields, defaults and checks)."""

    sabnzbd: ServerConfig | None = None
    sonarr: ServerConfig | None = None
    radarr: ServerConfig | None = None
    plex: ServerConfig | None = None
    connection_pool_size: int = 10
    max_concurrent_requests: int = 10
    health_check_interval: float = 60
    health_check_failure_threshold: int = 3
    enable_circuit_breaker: bool = True
    circuit_breaker_threshold: int = 5
    circuit_breaker_timeout: float = 60.0
    circuit_breaker_success_threshold: int = 3
    default_tool_timeout: float = 30.0
    max_retries: int = 3
    retryable_errors: list[type[BaseException]] = field(default_factory=_default_retryable)
    auto_reconnect: bool = True
    keepalive_interval: float = 30.0
    max_parallel_calls: int = 10
    parallel_timeout: float | None = None
    cancel_on_critical_failure: bool = False
    server_aliases: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.connection_pool_size <= 0:
            raise ValueError("connection_pool_size must be positive")
        if self.health_check_interval <= 0:
            raise ValueError("health_check_interval must be positive")

    def get_enabled_servers(self) -> dict[str, ServerConfig]:
        """The configured and enabled servers, by name."""
        return {name: server for name in SEED_SERVERS
                if (server := getattr(self, name)) is not None and server.enabled}

    def get_server_config(self, name: str) -> ServerConfig | None:
        """A server's entry by name or alias."""
        return getattr(self, self.server_aliases.get(name, name), None) if name else None


_TUNABLES = [f.name for f in fields(MCPOrchestratorConfig) if f.name not in SEED_SERVERS]
_DEFAULTS = MCPOrchestratorConfig()


@dataclass(frozen=True)
class FacadeOptions:
    """The seed tunables the facade applies itself (client side)."""

    max_concurrent_requests: int = 10
    max_parallel_calls: int = 10
    parallel_timeout: float | None = None
    cancel_on_critical_failure: bool = False
    enable_circuit_breaker: bool = True


@dataclass(frozen=True)
class SeedMapping:
    """A seed configuration mapped onto this project: client settings, facade options, worker env."""

    settings: Settings
    servers: tuple[str, ...]
    options: FacadeOptions
    overrides: dict[str, str]
    secrets: dict[str, str] = field(repr=False)
    secret_sources: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Secret variable -> (server, seed field) it came from, for messages that name no value."""

    def worker_environment(self) -> dict[str, str]:
        """What the workers (and beat) of these servers must run with: secrets and tunables."""
        return {**self.overrides, **self.secrets}

    def without_secrets(self) -> SeedMapping:
        """The same mapping holding no secret value (what the facade keeps)."""
        return SeedMapping(self.settings, self.servers, self.options, self.overrides, {}, self.secret_sources)


def _as_server(name: str, entry: Any) -> ServerConfig | None:
    if entry is None:
        return None
    if isinstance(entry, ServerConfig):
        return entry
    if isinstance(entry, Mapping):
        return ServerConfig(**{"name": name, **entry})
    if hasattr(entry, "url") and hasattr(entry, "api_key"):  # AutoArr's own seed dataclass
        known = {f.name for f in fields(ServerConfig)}
        return ServerConfig(**{k: getattr(entry, k) for k in known if hasattr(entry, k)})
    raise TypeError(f"servers.{name}: must be a ServerConfig, a dict or None, got {type(entry).__name__}")


def _normalise(config: Any) -> tuple[dict[str, ServerConfig | None], MCPOrchestratorConfig]:
    """The server entries and the tunables of any accepted seed config shape."""
    if config is None:
        raise ValueError("config is required")
    if isinstance(config, MCPOrchestratorConfig) or (not isinstance(config, Mapping)
                                                     and hasattr(config, "circuit_breaker_threshold")):
        tunables = MCPOrchestratorConfig(**{name: getattr(config, name) for name in _TUNABLES
                                            if hasattr(config, name)})
        return {name: _as_server(name, getattr(config, name, None)) for name in SEED_SERVERS}, tunables
    if isinstance(config, Mapping):
        settings = {k: v for k, v in config.items() if k in _TUNABLES}
        servers = {k: v for k, v in config.items() if k not in _TUNABLES}
        return {name: _as_server(name, entry) for name, entry in servers.items()}, MCPOrchestratorConfig(**settings)
    raise TypeError(f"config must be MCPOrchestratorConfig or dict, got {type(config).__name__}")


def _secret_names(server: str) -> tuple[str, str]:
    return SECRET_VARIABLES.get(server, (f"{server.upper()}_URL", f"{server.upper()}_API_KEY"))


def _env_key(*path: str) -> str:
    return ENV_PREFIX + "__".join(part.upper() for part in path)


def _warn_unhonoured(tunables: MCPOrchestratorConfig) -> None:
    if tunables.connection_pool_size != _DEFAULTS.connection_pool_size:
        warnings.warn("connection_pool_size has no effect: each worker holds one MCP session per server; size "
                      "the worker pool with its --concurrency", SeedConfigWarning, stacklevel=4)
    if not tunables.auto_reconnect:
        warnings.warn("auto_reconnect=False cannot be honoured: workers always re-open broken sessions",
                      SeedConfigWarning, stacklevel=4)
    if list(tunables.retryable_errors) != _DEFAULTS.retryable_errors:
        warnings.warn("retryable_errors cannot be honoured: workers retry transient failures (connection, timeout, "
                      "upstream unavailable) of tools safe to repeat, whatever the list says",
                      SeedConfigWarning, stacklevel=4)


def map_seed_config(config: Any, base: Settings | None = None) -> SeedMapping:
    """Map a seed configuration onto ``base`` (default: ``load_settings()``); see the module table.

    A server of the seed config must be defined in ``base`` (how to reach it), or in the bundled
    ``defaults.toml`` for the four media servers. Raises ``SeedConfigError`` naming the setting.
    """
    entries, tunables = _normalise(config)
    base = base or load_settings()
    definitions = _definitions(entries, base)
    _warn_unhonoured(tunables)
    _check_tunables(tunables)
    aliases = _seed_aliases(entries, tunables)

    servers = {name: server.model_dump() for name, server in base.servers.items()}
    overrides: dict[str, str] = {}
    secrets: dict[str, str] = {}
    sources: dict[str, tuple[str, str]] = {}
    served = []
    for name, entry in entries.items():
        data = definitions[name].model_dump()
        if entry is None or not entry.enabled:
            data["enabled"] = False
            overrides[_env_key("servers", name, "enabled")] = "false"
            servers[name] = data
            continue
        served.append(name)
        servers[name] = _served_server(name, entry, data, tunables, aliases.get(name, []), overrides)
        url_var, key_var = _secret_names(name)
        secrets[url_var], secrets[key_var] = entry.url, entry.api_key
        sources[url_var], sources[key_var] = (name, "url"), (name, "api_key")
    overrides[_env_key("default_timeout")] = _env_value(float(tunables.default_tool_timeout))
    for name in servers.keys() - set(served):  # a server without its own timeout would take the new default
        overrides[_env_key("servers", name, "timeout")] = _env_value(servers[name]["timeout"])
    try:
        settings = Settings.model_validate({**base.model_dump(), "servers": servers,
                                            "default_timeout": float(tunables.default_tool_timeout)})
    except ValidationError as exc:  # pydantic names the field; the value is not echoed
        raise SeedConfigError(describe_validation_error(exc, "seed configuration")) from None
    options = FacadeOptions(max_concurrent_requests=tunables.max_concurrent_requests,
                            max_parallel_calls=tunables.max_parallel_calls,
                            parallel_timeout=tunables.parallel_timeout,
                            cancel_on_critical_failure=tunables.cancel_on_critical_failure,
                            enable_circuit_breaker=tunables.enable_circuit_breaker)
    return SeedMapping(settings, tuple(served), options, overrides, secrets, sources)


def _definitions(entries: Mapping[str, Any], base: Settings) -> dict[str, ServerSettings]:
    """How to reach each server of the seed config: from ``base``, else the bundled ``defaults.toml``."""
    definitions = dict(base.servers)
    missing = [name for name in entries if name not in definitions]
    if missing:
        bundled = load_settings(DEFAULTS_FILE).servers
        for name in missing:
            if name not in bundled:
                raise SeedConfigError(f"servers.{name}: no definition of this server (transport) in the base "
                                      "configuration")
            definitions[name] = bundled[name]
    return definitions


def _check_tunables(tunables: Any) -> None:
    if tunables.max_concurrent_requests < 1 or tunables.max_parallel_calls < 1:
        raise SeedConfigError("max_concurrent_requests and max_parallel_calls must be positive")
    if tunables.parallel_timeout is not None and tunables.parallel_timeout <= 0:
        raise SeedConfigError("parallel_timeout must be positive (or None)")


def _seed_aliases(entries: Mapping[str, Any], tunables: Any) -> dict[str, list[str]]:
    """``server_aliases`` grouped by the server they name (which must be configured)."""
    aliases: dict[str, list[str]] = {}
    for alias, target in tunables.server_aliases.items():
        if target not in entries or entries[target] is None:
            raise SeedConfigError(f"server_aliases.{alias}: names {target!r}, which is not a configured server")
        aliases.setdefault(target, []).append(alias.strip().lower())
    return aliases


def _served_server(name: str, entry: Any, data: dict[str, Any], tunables: Any, aliases: list[str],
                   overrides: dict[str, str]) -> dict[str, Any]:
    """``data`` (a server's settings) with the seed's values applied; the same values go into
    ``overrides`` as the worker environment's ``MCP_ORCH_*`` variables."""
    attempts = (entry.max_retries if entry.max_retries != _DEFAULTS.max_retries else tunables.max_retries) + 1
    if attempts > 20:
        raise SeedConfigError(f"{name}.max_retries: at most 19 retries are allowed")
    open_seconds = float(tunables.circuit_breaker_timeout)
    breaker = {**data["breaker"], "failure_threshold": tunables.circuit_breaker_threshold,
               "open_seconds": open_seconds,
               "max_open_seconds": max(data["breaker"]["max_open_seconds"], open_seconds),
               "success_threshold": tunables.circuit_breaker_success_threshold}
    retry = {"max_attempts": attempts, "backoff_seconds": float(entry.retry_delay),
             "max_backoff_seconds": max(data["retry"]["max_backoff_seconds"], float(entry.retry_delay))}
    changes = {
        "enabled": True,
        "timeout": float(tunables.default_tool_timeout),
        "connect_timeout": float(entry.timeout),
        "keepalive_seconds": float(tunables.keepalive_interval),
        "health_interval_seconds": float(tunables.health_check_interval),
        "down_after_failures": tunables.health_check_failure_threshold,
        "aliases": list(dict.fromkeys([*data["aliases"], *aliases])),
    }
    data.update(changes, breaker=breaker, retry=retry)
    for key, value in changes.items():
        overrides[_env_key("servers", name, key)] = _env_value(value)
    for key in ("failure_threshold", "open_seconds", "max_open_seconds", "success_threshold"):
        overrides[_env_key("servers", name, "breaker", key)] = _env_value(breaker[key])
    for key, value in retry.items():
        overrides[_env_key("servers", name, "retry", key)] = _env_value(value)
    return data


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        import json
        return json.dumps(value)
    return str(value)


def worker_environment(config: Any, base: Settings | None = None) -> dict[str, str]:
    """The environment the workers (and beat) of a seed configuration must run with: the servers'
    ``url`` / ``api_key`` under the variables the bundled media servers read, and the tunables as
    ``MCP_ORCH_...`` overrides of the workers' own config file."""
    return map_seed_config(config, base).worker_environment()


def write_worker_env_file(config: Any, path: str | os.PathLike[str], base: Settings | None = None) -> Path:
    """Write ``worker_environment`` as an env file (``KEY=value`` lines) readable by its owner only."""
    target = Path(path)
    lines = [f"{key}={value}" for key, value in sorted(worker_environment(config, base).items())]
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return target


def check_worker_secrets(mapping: SeedMapping, on_secrets: str = "warn") -> None:
    """The facade cannot send ``url`` / ``api_key`` to the workers: never drop them silently.

    A variable set in this process's environment must hold the config's value (else
    ``SeedConfigError``); the variables not set here are named in one ``SeedConfigWarning``
    (``on_secrets="error"``: a ``SeedConfigError``), as the workers must have them.
    """
    if on_secrets not in ("warn", "error"):
        raise ValueError("on_secrets must be 'warn' or 'error'")
    unconfirmed = []
    for variable, value in mapping.secrets.items():
        server, seed_field = mapping.secret_sources[variable]
        present = os.environ.get(variable)
        if present is None:
            unconfirmed.append(variable)
        elif present != value:
            raise SeedConfigError(f"{server}.{seed_field}: differs from {variable} in this process's environment; "
                                  "the workers use their own environment's value, not the config's")
    if unconfirmed:
        message = ("url/api_key of the seed config are not sent to workers (no secrets on the wire); the workers "
                   f"must run with {', '.join(unconfirmed)} set: see orchestrator.compat.worker_environment(config)")
        if on_secrets == "error":
            raise SeedConfigError(message)
        warnings.warn(message, SeedConfigWarning, stacklevel=3)
