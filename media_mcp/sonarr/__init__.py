"""Sonarr MCP server: TV series, episodes, searches and downloads of a Sonarr v3/v4 instance."""
