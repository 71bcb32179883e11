"""Typed configuration: the MCP servers, the broker and the global defaults.

Loaded from one TOML file (``--config`` / ``MCP_ORCH_CONFIG``; the bundled ``defaults.toml``
when neither is given) and overridable from the environment with the ``MCP_ORCH_`` prefix and
``__`` for nesting, e.g. ``MCP_ORCH_BROKER_URL`` or ``MCP_ORCH_SERVERS__SONARR__ENABLED=false``.

String values in a server's transport (``url``, ``args``, ``env``, ``headers``) may say ``${VAR}`` or
``${VAR:-default}``: the variable is read when a worker opens the session, from that worker's
environment, so secrets stay with the worker that needs them: never in a file, a task
message or a log, and a client needs none of them. Transport ``env`` and ``headers`` values
are ``SecretStr``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from orchestrator.breaker.policy import BreakerPolicy
from orchestrator.keys import queue_name
from orchestrator.services import MEDIA_SERVICES

ENV_PREFIX = "MCP_ORCH_"
CONFIG_PATH_ENV = "MCP_ORCH_CONFIG"
DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
EMBEDDED_FILE = Path(__file__).with_name("embedded.toml")
"""``DEFAULTS_FILE``'s servers served in-process: what the compact stack's worker loads by default."""

MEDIA_SERVER_VARIABLES = {service.name: (service.url_variable, service.secret_variable) for service in MEDIA_SERVICES}
"""The bundled media servers (``defaults.toml``) and the variables their MCP server reads: URL and secret
(from the one table in ``orchestrator.services``)."""

DEFAULT_TIMEOUT_SECONDS = 30.0
"""Default of ``default_timeout``: a call's deadline when neither the call nor its server sets one (s)."""
MAX_TIMEOUT_SECONDS = 600.0
"""Default of ``max_timeout``: the longest deadline a call may have; below the visibility timeout (s)."""
VISIBILITY_TIMEOUT_SECONDS = 3600
"""Redis re-delivers an unacked message after this long; longer than any call can run (s)."""
RESULT_EXPIRES_SECONDS = 3600
"""How long a call's result stays in the result backend (seconds)."""
REDIS_URL_SCHEMES = ("redis", "rediss", "unix")
"""URL schemes of a Redis the broker, the result backend and the shared state may use."""
MAX_PARAMS_BYTES = 256 * 1024
"""Default of ``max_params_bytes``: the largest JSON-encoded params a call may carry (bytes); a
bigger call is refused before enqueue instead of clogging the broker and failing at the upstream."""
BATCH_CHUNK_SIZE = 0
"""Default of ``batch_chunk_size``: how a batch's calls to one server are grouped into tasks. 0: adaptive
chunks (small first, then larger, ``orchestrator.batch``); 1: one task per call; n > 1: chunks of at most n."""
KEEPALIVE_SECONDS = 30.0
"""How often an idle held MCP session is probed with ``tools/list`` (seconds)."""
CONNECT_TIMEOUT_SECONDS = 20.0
"""How long opening one MCP session may take before it counts as failed (seconds)."""
HEALTH_INTERVAL_SECONDS = 30.0
"""How often beat enqueues a ``health_check`` on a server's queue; each check expires after it (seconds)."""
DOWN_AFTER_FAILURES = 3
"""Consecutive failed health checks after which a server is marked down (one success brings it back up)."""
BEAT_LOCK_TIMEOUT_SECONDS = 25
"""RedBeat's lock expiry: a second beat takes over this long after the first one dies (seconds)."""
BEAT_MAX_INTERVAL_SECONDS = 5.0
"""Longest sleep between two beat ticks; each tick renews the lock, so keep it well under the timeout (s)."""
RETRY_MAX_ATTEMPTS = 3
"""Attempts of a call that is safe to repeat, the first one included."""
RETRY_BACKOFF_SECONDS = 0.2
"""Wait before the first retry (seconds); doubles per retry, with jitter."""
RETRY_MAX_BACKOFF_SECONDS = 2.0
"""Longest wait between two attempts (seconds); never past the call's deadline."""

_SERVER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_loading_path: ContextVar[Path | None] = ContextVar("_loading_path", default=None)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file and the field."""


def expand_env_refs(value: str, where: str) -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}`` with the environment's value."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ValueError(f"{where} refers to ${{{name}}}, which is not set in the environment")

    return _ENV_REF.sub(substitute, value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_env_refs(value: Any, where: str) -> Any:
    """Refuse a malformed ``${...}`` at load time; the value itself is read later."""
    if isinstance(value, str) and "${" in _ENV_REF.sub("", value):
        raise ValueError(f"{where} has a malformed ${{...}} reference (use ${{VAR}} or ${{VAR:-default}})")
    return value


def _check_map_refs(values: dict[str, SecretStr]) -> dict[str, SecretStr]:
    for key, secret in values.items():
        _check_env_refs(secret.get_secret_value(), key)
    return values


SecretMap = Annotated[dict[str, SecretStr], AfterValidator(_check_map_refs)]
"""Names to secret values (env of a stdio server, headers of an HTTP one); ``${VAR}`` allowed."""


def _reveal(values: dict[str, SecretStr], where: str) -> dict[str, str]:
    return {k: expand_env_refs(v.get_secret_value(), f"{where}.{k}") for k, v in values.items()}


_SECRET_NAME = re.compile(r"key|token|passw|secret|auth|credential|cookie", re.IGNORECASE)
"""An ``env`` or ``headers`` entry whose name matches holds a secret, even when written out in the file."""


def _referenced_values(texts: Iterable[str]) -> Iterator[str]:
    """Values of the variables that ``${VAR}`` references in ``texts`` name (set ones only): a value the
    configuration keeps out of the file is treated as a secret."""
    for text in texts:
        for match in _ENV_REF.finditer(text):
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name, default)
            if value:
                yield value


def _secret_values(named: dict[str, SecretStr], also: Iterable[str] = ()) -> list[str]:
    """What the configuration marks secret: ``${VAR}`` values anywhere in ``named``'s values and ``also``,
    and the whole value of every entry whose name says key, token, password, secret, auth..."""
    raw = {key: secret.get_secret_value() for key, secret in named.items()}
    found = list(_referenced_values([*raw.values(), *also]))
    for key, text in raw.items():
        if _SECRET_NAME.search(key):
            with contextlib.suppress(ValueError):  # an unset reference: nothing this process could leak
                found.append(expand_env_refs(text, key))
    return [value for value in dict.fromkeys(found) if value]


class _ServerEnv(_Strict):
    """The variables a server launched by the worker gets (``${VAR}`` read from the worker's environment)."""

    env: SecretMap = Field(default_factory=dict)

    def resolved_env(self) -> dict[str, str]:
        """The server's extra environment, ``${VAR}`` read from this process (secrets inside)."""
        return _reveal(self.env, "env")

    def secret_values(self) -> list[str]:
        return _secret_values(self.env)


class StdioTransport(_ServerEnv):
    """Launch the MCP server as a child process and speak MCP over its stdin/stdout.

    ``command = "python"`` means the interpreter of the worker itself, so a bundled server
    runs in the worker's virtualenv whatever the PATH says. ``args`` may say ``${VAR}`` too
    (for servers that take a key on the command line); the values are masked like ``env``'s.
    """

    type: Literal["stdio"] = "stdio"
    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    cwd: str | None = None

    @field_validator("args")
    @classmethod
    def _check_args(cls, value: list[str]) -> list[str]:
        for index, arg in enumerate(value):
            _check_env_refs(arg, f"args[{index}]")
        return value

    def resolved_command(self) -> str:
        return sys.executable if self.command == "python" else self.command

    def resolved_args(self) -> list[str]:
        """The arguments, ``${VAR}`` read from this process (a key given on the command line)."""
        return [expand_env_refs(arg, f"args[{index}]") for index, arg in enumerate(self.args)]

    def secret_values(self) -> list[str]:
        return _secret_values(self.env, self.args)


class InProcessTransport(_ServerEnv):
    """Run a Python MCP server inside the worker and speak MCP to it in memory: no child process.

    ``module`` (e.g. ``media_mcp.sonarr``) defines ``open_server(env)``, an async context manager
    that builds the server from ``env`` and yields it. ``env`` is the worker's environment with
    this table's ``env`` on top, so the server reads the same variables it reads when run with
    ``python -m module``.
    """

    type: Literal["inprocess"] = "inprocess"
    module: str = Field(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class HttpTransport(_Strict):
    """Reach an MCP server over streamable HTTP."""

    type: Literal["http"] = "http"
    url: SecretStr
    headers: SecretMap = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        raw = _check_env_refs(value.get_secret_value(), "url")
        if not re.match(r"^(https?://[^/\s]+|\$\{)", raw):
            raise ValueError("must be an http:// or https:// URL")
        return value

    def resolved_url(self) -> str:
        return expand_env_refs(self.url.get_secret_value(), "url")

    def resolved_headers(self) -> dict[str, str]:
        return _reveal(self.headers, "headers")

    def secret_values(self) -> list[str]:
        return _secret_values(self.headers, [self.url.get_secret_value()])


Transport = Annotated[StdioTransport | HttpTransport | InProcessTransport, Field(discriminator="type")]


class RetryPolicy(_Strict):
    """How a worker retries a transient failure of a tool that is safe to repeat."""

    max_attempts: int = Field(default=RETRY_MAX_ATTEMPTS, ge=1, le=20)
    backoff_seconds: float = Field(default=RETRY_BACKOFF_SECONDS, gt=0)
    max_backoff_seconds: float = Field(default=RETRY_MAX_BACKOFF_SECONDS, gt=0)
    attempt_timeout_seconds: float | None = Field(default=None, gt=0)
    """Longest one attempt of a safe tool may wait for the MCP server, so that a lost reply or a
    hung server is retried within the call's deadline. None: an attempt may use all the time left."""


class ToolPolicy(_Strict):
    """Per-tool overrides; ``safe_to_repeat`` wins over the tool's MCP annotations."""

    safe_to_repeat: bool | None = None


class FlowerSettings(_Strict):
    """Flower, the task monitor: where it listens and its basic-auth login.

    Set the password with ``MCP_ORCH_FLOWER__PASSWORD`` (never in a committed file). Without one,
    ``mcp-orch stack`` generates a password and prints it once; ``mcp-orch flower`` refuses to start.
    """

    user: str = Field(default="admin", pattern=r"^[^:,\s]+$")
    password: SecretStr | None = None
    address: str = "127.0.0.1"
    port: int = Field(default=5555, ge=1, le=65535)

    @field_validator("password")
    @classmethod
    def _check_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (len(value.get_secret_value()) < 8 or "," in value.get_secret_value()):
            raise ValueError("must be at least 8 characters, without a comma")
        return value


class ServerConfig(_Strict):
    """One MCP server: how to reach it and how calls to it behave."""

    name: str
    aliases: list[str] = Field(default_factory=list)
    transport: Transport
    enabled: bool = True
    timeout: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0)
    """A call's deadline when the call gives none; in a config file, ``default_timeout`` if unset."""
    protocol: Literal["auto", "legacy"] = "auto"
    keepalive_seconds: float = Field(default=KEEPALIVE_SECONDS, gt=0)
    connect_timeout: float = Field(default=CONNECT_TIMEOUT_SECONDS, gt=0)
    max_concurrency: int | None = Field(default=None, gt=0)
    health_interval_seconds: float = Field(default=HEALTH_INTERVAL_SECONDS, gt=0)
    down_after_failures: int = Field(default=DOWN_AFTER_FAILURES, ge=1)
    health_tool: str | None = Field(default=None, min_length=1)
    """A cheap read-only tool a health check calls after ``tools/list``, so the check reaches the upstream
    with the configured credentials; None: only ``tools/list`` (the upstream is not checked)."""
    health_params: dict[str, Any] = Field(default_factory=dict)
    """The arguments of ``health_tool``."""
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    tools: dict[str, ToolPolicy] = Field(default_factory=dict)
    deny_tools: list[str] = Field(default_factory=list)

    @field_validator("name", "aliases")
    @classmethod
    def _check_names(cls, value: str | list[str]) -> str | list[str]:
        for name in [value] if isinstance(value, str) else value:
            if not _SERVER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid server name (lowercase letters, digits, - and _)")
        return value

    @property
    def queue(self) -> str:
        """The Celery queue that carries this server's calls."""
        return queue_name(self.name)

    def secret_values(self) -> list[str]:
        """The secrets this server's transport holds, as far as this process can know them: values of
        ``${VAR}`` references and of entries named like keys, tokens or passwords (not every value)."""
        return self.transport.secret_values()


class RedisSentinel(_Strict):
    """Redis behind Sentinel: every Redis client of the project (broker unless it is RabbitMQ,
    results, breakers, health, catalog, limits, markers, metrics, RedBeat) asks these sentinels
    for the current master, so a failover needs no restart."""

    sentinels: list[str] = Field(min_length=1)
    master_name: str = Field(min_length=1)
    password: SecretStr | None = None
    sentinel_password: SecretStr | None = None
    db: int = Field(default=0, ge=0)

    @field_validator("sentinels")
    @classmethod
    def _check_addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.fullmatch(r"[^\s:/]+:\d{1,5}", address):
                raise ValueError(f"{address!r} is not host:port (e.g. \"127.0.0.1:26379\")")
        return value

    @field_validator("password", "sentinel_password")
    @classmethod
    def _check_password(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is None else SecretStr(_check_env_refs(value.get_secret_value(), "password"))

    def addresses(self) -> list[tuple[str, int]]:
        return [(host, int(port)) for host, _, port in (a.rpartition(":") for a in self.sentinels)]

    def resolved_password(self) -> str | None:
        return None if self.password is None else expand_env_refs(self.password.get_secret_value(), "password")

    def resolved_sentinel_password(self) -> str | None:
        secret = self.sentinel_password
        return None if secret is None else expand_env_refs(secret.get_secret_value(), "sentinel_password")

    def url(self) -> str:
        """Kombu's and Celery's form: ``sentinel://:pw@host:port/db;sentinel://...`` (the master's password)."""
        password = self.resolved_password()
        auth = f":{quote(password, safe='')}@" if password else ""
        return ";".join(f"sentinel://{auth}{address}/{self.db}" for address in self.sentinels)

    def secret_values(self) -> list[str]:
        return [v for v in (self.resolved_password(), self.resolved_sentinel_password()) if v]


class Settings(BaseSettings):
    """The whole configuration of clients, workers and beat."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid",
                                      env_ignore_empty=True,  # a blank variable is unset (compose variants)
                                      frozen=True)

    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str | None = None
    redis_sentinel: RedisSentinel | None = None
    default_timeout: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0)
    max_timeout: float = Field(default=MAX_TIMEOUT_SECONDS, gt=0)
    visibility_timeout: int = Field(default=VISIBILITY_TIMEOUT_SECONDS, gt=0)
    result_expires: int = Field(default=RESULT_EXPIRES_SECONDS, gt=0)
    max_params_bytes: int = Field(default=MAX_PARAMS_BYTES, gt=0)
    batch_chunk_size: int = Field(default=BATCH_CHUNK_SIZE, ge=0)
    beat_lock_timeout: int = Field(default=BEAT_LOCK_TIMEOUT_SECONDS, ge=2)
    beat_max_interval: float = Field(default=BEAT_MAX_INTERVAL_SECONDS, gt=0)
    servers: dict[str, ServerConfig] = Field(default_factory=dict)
    flower: FlowerSettings = Field(default_factory=FlowerSettings)

    @field_validator("broker_url", "result_backend")
    @classmethod
    def _check_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A bad URL is named here, not as a traceback from redis-py or kombu (``memory://`` and
        ``cache+memory://`` are Celery's in-process transports, for tests)."""
        if value is not None and value.startswith("sentinel://"):
            raise ValueError("for Redis Sentinel leave this out and set [redis_sentinel] (sentinels, master_name)")
        broker = info.field_name == "broker_url"
        allowed = REDIS_URL_SCHEMES + (("amqp", "amqps", "memory") if broker else ("cache+memory",))
        scheme, separator, _ = (value or "").partition("://")
        if value is not None and (not separator or scheme not in allowed):
            raise ValueError(f"must be a URL with one of the schemes {', '.join(s + '://' for s in allowed)}")
        if scheme in ("redis", "rediss") and not re.fullmatch(r"/?\d*", urlsplit(value or "").path):
            # redis-py and Celery's backend would fail later, in a worker or beat thread, with a traceback.
            raise ValueError("the path after host:port must be a database number (redis://host:6379/0)")
        return value

    @field_validator("servers", mode="before")
    @classmethod
    def _name_servers(cls, value: Any, info: ValidationInfo) -> Any:
        """A server's name is its table key, so ``[servers.sonarr]`` needs no ``name =``; a server
        without its own ``timeout`` takes ``default_timeout``."""
        if not isinstance(value, dict):
            return value
        defaults = {"timeout": info.data["default_timeout"]} if "default_timeout" in info.data else {}
        return {key: {"name": key, **defaults, **entry} if isinstance(entry, dict) else entry
                for key, entry in value.items()}

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.redis_sentinel is not None:
            named = sorted(f for f in ("broker_url", "result_backend") if f in self.model_fields_set
                           and not (f == "broker_url" and self.broker_is_amqp))
            if named:
                raise ValueError(f"{' and '.join(named)}: leave out when redis_sentinel is set (the sentinels "
                                 "name the master); only an amqp:// broker_url may stand beside it")
        elif self.broker_is_amqp and self.result_backend is None:
            raise ValueError("an amqp:// broker_url needs result_backend (a redis:// URL) or redis_sentinel: "
                             "results, breakers, health and limits live in Redis")
        if self.max_timeout >= self.visibility_timeout:
            raise ValueError(f"max_timeout ({self.max_timeout}s) must be shorter than visibility_timeout "
                             f"({self.visibility_timeout}s), or Redis would re-deliver running calls")
        timeouts = {"default_timeout": self.default_timeout,
                    **{f"servers.{key}.timeout": server.timeout for key, server in self.servers.items()}}
        for field, seconds in timeouts.items():
            if seconds > self.max_timeout:
                raise ValueError(f"{field} ({seconds:g}s) must not exceed max_timeout ({self.max_timeout:g}s)")
        seen: dict[str, str] = {}
        for key, server in self.servers.items():
            if server.name != key:
                raise ValueError(f"servers.{key}: name {server.name!r} differs from its key {key!r}")
            for alias in [server.name, *server.aliases]:
                if alias in seen and seen[alias] != key:
                    raise ValueError(f"servers.{key}: alias {alias!r} is already used by {seen[alias]!r}")
                seen[alias] = key
        return self

    @property
    def broker_is_amqp(self) -> bool:
        return self.broker_url.startswith(("amqp://", "amqps://"))

    @property
    def broker(self) -> str:
        """The broker Celery connects to: the sentinels' master unless the broker is RabbitMQ."""
        if self.redis_sentinel is not None and not self.broker_is_amqp:
            return self.redis_sentinel.url()
        return self.broker_url

    @property
    def backend_url(self) -> str:
        """The result backend: the sentinels' master, else ``result_backend``, else the broker's Redis."""
        if self.redis_sentinel is not None:
            return self.redis_sentinel.url()
        return self.result_backend or self.broker_url

    @property
    def state_url(self) -> str:
        """The Redis of shared state (breakers, health, catalog, limits, markers, metrics, RedBeat) when
        there is no Sentinel: the broker's Redis, or the result backend's when the broker is RabbitMQ."""
        return self.backend_url if self.broker_is_amqp else self.broker_url

    def enabled_servers(self) -> dict[str, ServerConfig]:
        return {name: server for name, server in self.servers.items() if server.enabled}

    def secret_values(self) -> list[str]:
        """Every secret of every server, for scrubbing text that leaves a process."""
        sentinel = self.redis_sentinel.secret_values() if self.redis_sentinel is not None else []
        return sentinel + [value for server in self.servers.values() for value in server.secret_values()]

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: explicit arguments, then the environment, then the config file."""
        return init_settings, env_settings, _TomlFile(settings_cls)


class _TomlFile(PydanticBaseSettingsSource):
    """The TOML file chosen by ``load_settings`` (read once, errors name the file)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _loading_path.get()
        if path is None:
            return {}
        try:
            return tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Which file to load: the argument, else ``MCP_ORCH_CONFIG``, else the bundled defaults."""
    chosen = explicit or os.environ.get(CONFIG_PATH_ENV)
    return Path(chosen) if chosen else DEFAULTS_FILE


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load and validate the configuration, or raise ConfigError naming the bad field."""
    source = config_path(path)
    token = _loading_path.set(source)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(source))) from None
    finally:
        _loading_path.reset(token)


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line: every problem with its dotted field path and, when an ``MCP_ORCH_*`` variable set
    it, that variable's name (never the bad value: it may be a password or a URL with one)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        path = [str(part) for part in error["loc"] if part not in ("stdio", "http", "inprocess")]
        where = ".".join(path) or "(top level)"
        variable = ENV_PREFIX + "__".join(path).upper()
        if path and variable in os.environ:
            where += f" (from {variable})"
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return f"invalid configuration ({source}): " + "; ".join(problems)
