"""Plex MCP server: libraries, recently added, on deck, sessions, search, history, scans, metadata refresh and
server status of a Plex server."""

from media_mcp.plex.server import SPEC

open_server = SPEC.open_server
"""The server built from an environment, for the worker's ``inprocess`` transport (``module = "media_mcp.plex"``)."""
