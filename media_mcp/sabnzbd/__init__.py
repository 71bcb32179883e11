"""SABnzbd MCP server: queue, history, status and config of a SABnzbd download client."""
