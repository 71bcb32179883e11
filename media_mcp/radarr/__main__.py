"""``python -m media_mcp.radarr [--transport stdio|http] [--host H] [--port N]``."""

from media_mcp.common.runner import main
from media_mcp.radarr.server import SPEC

main(SPEC)
