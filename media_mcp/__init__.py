"""AutoArr's four media-server MCP servers (SABnzbd, Sonarr, Radarr, Plex) on the official MCP SDK."""
