"""Plex MCP server: libraries, recently added, on deck, sessions, search, history, scans, metadata refresh and
server status of a Plex server."""
