"""What a seed caller reads from a tool: the one place the facade reshapes results.

The rules, each decided here and nowhere else (no per-call-site shaping):

* The bundled Sonarr, Radarr and Plex servers answer ``{"success": true, "data": X}`` (their
  structured output). AutoArr's routers read ``X`` (a list of series, a lookup list, a library,
  Sonarr's paged ``{"records": [...]}``...), so the facade returns ``X``. Only that exact
  two-key envelope with ``success`` true is unwrapped: a tool error never arrives as one.
* The generic paths, ``call_tool(..., include_metadata=True)`` and ``call_tools_parallel``, keep
  the tool's whole JSON object as ``data`` (the envelope included): AutoArr serves them from
  ``/mcp/call`` and ``/mcp/batch``, whose ``ToolCallResponse.data`` is declared a dict, and a
  list there would fail its validation.
* Anything else passes through unchanged: SABnzbd's raw JSON (``{"queue": {...}}``,
  ``{"history": {...}}``, ``{"status": true}``) is what AutoArr's download router returns.
* ``list_tools`` gives names as AutoArr writes them: without the ``<server>_`` prefix of the
  bundled servers (``get_queue``, not ``sabnzbd_get_queue``). Both forms call the same tool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["caller_data", "tool_names"]

ENVELOPE_KEYS = frozenset({"success", "data"})


def caller_data(data: Any) -> Any:
    """The payload a seed caller reads: ``X`` from ``{"success": True, "data": X}``, else ``data``."""
    if isinstance(data, Mapping) and data.keys() == ENVELOPE_KEYS and data["success"] is True:
        return data["data"]
    return data


def tool_names(server: str, tools: Iterable[Mapping[str, Any]]) -> list[str]:
    """Tool names as AutoArr calls them: the server's own prefix dropped, in catalog order."""
    prefix = f"{server}_"
    return [tool["name"].removeprefix(prefix) for tool in tools]
