"""Plex MCP server: libraries, recently added, on deck, sessions, search and history of a Plex server."""
