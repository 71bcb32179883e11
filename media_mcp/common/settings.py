"""Where the upstream is and how to authenticate: read only from the server process's environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_TIMEOUT = 10.0
"""Seconds to wait for one upstream request when ``<SERVICE>_TIMEOUT`` is unset: well inside a call's
default 30 s deadline, so that a timed-out request of a safe tool can be retried (as ``[upstream_unavailable]``)."""


class SettingsError(Exception):
    """A required environment variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    """One upstream: base URL (no trailing slash), secret, and per-request timeout in seconds."""

    service: str
    url: str
    secret: str
    timeout: float

    @classmethod
    def from_env(cls, service: str, secret_var: str, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``<SERVICE>_URL``, ``secret_var`` and optional ``<SERVICE>_TIMEOUT``."""
        env = os.environ if env is None else env
        prefix = service.upper()
        url = _required(env, f"{prefix}_URL").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise SettingsError(f"{prefix}_URL must start with http:// or https://, got {url!r}")
        secret = _required(env, secret_var)
        raw_timeout = env.get(f"{prefix}_TIMEOUT", "").strip()
        try:
            timeout = float(raw_timeout) if raw_timeout else DEFAULT_TIMEOUT
        except ValueError:
            raise SettingsError(f"{prefix}_TIMEOUT must be a number of seconds, got {raw_timeout!r}") from None
        if timeout <= 0:
            raise SettingsError(f"{prefix}_TIMEOUT must be positive, got {raw_timeout!r}")
        return cls(service=service, url=url, secret=secret, timeout=timeout)


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is required but not set")
    return value
