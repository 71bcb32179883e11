"""The bundled media services, in one table: everything that lists them derives from it.

Config (``MEDIA_SERVER_VARIABLES``), the stack's simulated upstreams, the simulators' runner
(``upstream_sim.runner``), the AutoArr facade's secret variables and the tests read this table.
Adding a service means a row here, its MCP server (``media_mcp/<name>/``), its simulator
(``upstream_sim/<name>.py``) and its ``[servers.<name>]`` block in ``defaults.toml``.

This module imports nothing from the project, so the simulators can read it too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaService:
    """One bundled media service and how its MCP server reaches the real upstream."""

    name: str
    """Server name, queue suffix and package name (``media_mcp.<name>``, ``upstream_sim.<name>``)."""
    url_variable: str
    """The variable holding the upstream's base URL."""
    secret_variable: str
    """The variable holding the upstream's API key or token (never on the wire)."""
    api_prefix: str
    """The path every upstream API route starts with ("" when the API sits at the root)."""
    default_port: int
    """The port the real upstream listens on by default."""

    @property
    def mcp_module(self) -> str:
        """``python -m`` target of the bundled MCP server."""
        return f"media_mcp.{self.name}"

    @property
    def simulator_module(self) -> str:
        """Module of the simulated upstream (its ``create(api_key)`` builds one)."""
        return f"upstream_sim.{self.name}"


MEDIA_SERVICES: tuple[MediaService, ...] = (
    MediaService("sabnzbd", "SABNZBD_URL", "SABNZBD_API_KEY", "/api", 8080),
    MediaService("sonarr", "SONARR_URL", "SONARR_API_KEY", "/api/v3", 8989),
    MediaService("radarr", "RADARR_URL", "RADARR_API_KEY", "/api/v3", 7878),
    MediaService("plex", "PLEX_URL", "PLEX_TOKEN", "", 32400),
)
"""Every bundled media service, in the order the stack starts and lists them."""

MEDIA_SERVICE_NAMES: tuple[str, ...] = tuple(service.name for service in MEDIA_SERVICES)


def media_service(name: str) -> MediaService:
    """The service called ``name``; a clear error naming the known ones otherwise."""
    for service in MEDIA_SERVICES:
        if service.name == name:
            return service
    raise ValueError(f"service must be one of {MEDIA_SERVICE_NAMES}, not {name!r}")
