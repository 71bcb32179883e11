"""Radarr MCP server: movies, searches and downloads of a Radarr v3+ instance."""
