"""``python -m media_mcp.sabnzbd [--transport stdio|http] [--host H] [--port N]``."""

from media_mcp.common.runner import main
from media_mcp.sabnzbd.server import SPEC

main(SPEC)
