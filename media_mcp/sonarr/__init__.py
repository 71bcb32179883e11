"""Sonarr MCP server: TV series, episodes, searches and downloads of a Sonarr v3/v4 instance."""

from media_mcp.sonarr.server import SPEC

open_server = SPEC.open_server
"""The server built from an environment, for the worker's ``inprocess`` transport (``module = "media_mcp.sonarr"``)."""
