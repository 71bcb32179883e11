"""SABnzbd MCP server: queue, history, status and config of a SABnzbd download client."""

from media_mcp.sabnzbd.server import SPEC

open_server = SPEC.open_server
"""The server built from an environment, for the worker's ``inprocess`` transport (``module = "media_mcp.sabnzbd"``)."""
