"""``python -m media_mcp.sonarr [--transport stdio|http] [--host H] [--port N]``."""

from media_mcp.common.runner import main
from media_mcp.sonarr.server import SPEC

main(SPEC)
