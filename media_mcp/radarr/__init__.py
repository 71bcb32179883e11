"""Radarr MCP server: movies, searches and downloads of a Radarr v3+ instance."""

from media_mcp.radarr.server import SPEC

open_server = SPEC.open_server
"""The server built from an environment, for the worker's ``inprocess`` transport (``module = "media_mcp.radarr"``)."""
