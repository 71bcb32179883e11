"""The one HTTP client a server process uses to reach its upstream, with errors translated once, here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from media_mcp.common.errors import UNAVAILABLE, TaggedToolError, status_error
from media_mcp.common.redact import redact, redact_text
from media_mcp.common.settings import Settings

DETAIL_LIMIT = 200
"""Characters of an upstream error body quoted in a tool error."""


@dataclass(frozen=True)
class Auth:
    """How a service takes its secret: as headers, as query parameters, or both."""

    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


class Upstream:
    """A keep-alive `httpx.AsyncClient` bound to one upstream; each reply is redacted JSON or a tagged error.

    Built once per process and closed when the server stops (``async with``), so concurrent tool
    calls share its connection pool.
    """

    def __init__(self, settings: Settings, auth: Auth) -> None:
        self.settings = settings
        self._auth_params = auth.params
        self._client = httpx.AsyncClient(
            base_url=settings.url,
            headers=auth.headers,
            timeout=settings.timeout,
            limits=httpx.Limits(max_keepalive_connections=20, max_connections=100),
        )

    async def __aenter__(self) -> Upstream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.aclose()

    async def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, body: dict[str, Any] | None = None
    ) -> Any:
        """Send one request and return its JSON (``{}`` for an empty body), secrets removed.

        ``None`` parameters are dropped. Raises ``TaggedToolError`` for every failure.
        """
        query = {key: value for key, value in (params or {}).items() if value is not None}
        query.update(self._auth_params)
        try:
            response = await self._client.request(method, path, params=query, json=body)
        except httpx.TimeoutException:
            raise self._error(f"{method} {path}: upstream timed out after {self.settings.timeout:g}s") from None
        except httpx.ConnectError:
            raise self._error(f"{method} {path}: upstream unreachable (connection refused)") from None
        except httpx.HTTPError as exc:
            raise self._error(f"{method} {path}: upstream request failed ({type(exc).__name__})") from None
        if response.status_code >= 400:
            detail = self._clean(response.text[:DETAIL_LIMIT].strip())
            raise status_error(self.settings.service, method, path, response.status_code, detail)
        if not response.content.strip():
            return {}
        try:
            return redact(response.json(), self.settings.secret)
        except json.JSONDecodeError:
            raise self._error(f"{method} {path}: upstream sent a reply that is not JSON") from None

    def _error(self, message: str) -> TaggedToolError:
        return TaggedToolError(UNAVAILABLE, self._clean(f"{self.settings.service} {message}"))

    def _clean(self, text: str) -> str:
        return redact_text(text, self.settings.secret)
