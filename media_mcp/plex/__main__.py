"""``python -m media_mcp.plex [--transport stdio|http] [--host H] [--port N]``."""

from media_mcp.common.runner import main
from media_mcp.plex.server import SPEC

main(SPEC)
