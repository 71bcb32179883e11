"""Check a call before anything is enqueued; every refusal names the bad field."""

from __future__ import annotations

import difflib
import json
import math
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.config import ServerConfig, Settings
from orchestrator.errors import InvalidCall, UnknownServer


@dataclass(frozen=True)
class PreparedCall:
    """A call that passed validation: canonical server, tool, params and its absolute deadline."""

    server: ServerConfig
    tool: str
    params: dict[str, Any]
    timeout: float
    deadline: float

    def task_kwargs(self) -> dict[str, Any]:
        """The task message body: names, params and deadline only (no secret, invariant 1, docs/ARCHITECTURE.md)."""
        return {"server": self.server.name, "tool": self.tool, "params": self.params, "deadline": self.deadline}


def resolve_server(settings: Settings, name: Any) -> ServerConfig:
    """The enabled server called ``name`` or one of its aliases."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidCall(f"server: must be a non-empty string, got {type(name).__name__}", field="server")
    wanted = name.strip().lower()
    for server in settings.servers.values():
        if wanted == server.name or wanted in server.aliases:
            if not server.enabled:
                raise UnknownServer(f"server: {server.name!r} is disabled in the configuration",
                                    server=server.name, field="server")
            return server
    known = ", ".join(sorted(settings.enabled_servers())) or "none"
    raise UnknownServer(f"server: unknown server {name!r} (configured: {known})", server=name, field="server")


def check_tool(tool: Any, server: str) -> str:
    if not isinstance(tool, str) or not tool.strip():
        raise InvalidCall("tool: must be a non-empty string", server=server, field="tool")
    return tool.strip()


def check_params(params: Any, server: str, tool: str, max_bytes: int | None = None) -> dict[str, Any]:
    """Params must be a JSON object that survives the JSON serializer unchanged, and (when
    ``max_bytes`` is given) encode to at most that many bytes."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidCall(f"params: must be a dict (a JSON object), got {type(params).__name__}",
                          server=server, tool=tool, field="params")
    try:
        encoded = json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidCall(f"params: not JSON-serialisable: {exc}", server=server, tool=tool,
                          field="params") from None
    size = len(encoded.encode())
    if max_bytes is not None and size > max_bytes:
        raise InvalidCall(f"params: {size:,} bytes of JSON exceed the limit of {max_bytes:,} bytes "
                          f"(max_params_bytes)", server=server, tool=tool, field="params")
    decoded = json.loads(encoded)
    if decoded != params:
        raise InvalidCall("params: keys must be strings (JSON object keys)", server=server, tool=tool,
                          field="params")
    return decoded


def check_timeout(timeout: Any, server: ServerConfig, settings: Settings, tool: str) -> float:
    if timeout is None:
        return server.timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout):
        raise InvalidCall("timeout: must be a number of seconds", server=server.name, tool=tool, field="timeout")
    if timeout <= 0 or timeout > settings.max_timeout:
        raise InvalidCall(f"timeout: must be > 0 and <= {settings.max_timeout:g} seconds, got {timeout:g}",
                          server=server.name, tool=tool, field="timeout")
    return float(timeout)


def prepare_call(settings: Settings, server: Any, tool: Any, params: Any = None,
                 timeout: Any = None) -> PreparedCall:
    """Validate one call and fix its deadline (queue time counts, invariant 5, docs/ARCHITECTURE.md)."""
    config = resolve_server(settings, server)
    name = check_tool(tool, config.name)
    if name in config.deny_tools:
        raise InvalidCall(f"tool: {name!r} is denied on server {config.name!r} by configuration",
                          server=config.name, tool=name, field="tool")
    checked = check_params(params, config.name, name, settings.max_params_bytes)
    seconds = check_timeout(timeout, config, settings, name)
    return PreparedCall(server=config, tool=name, params=checked, timeout=seconds,
                        deadline=time.time() + seconds)


CLOSE_MATCHES = 5
"""How many similar tool names an unknown-tool error suggests."""


def tool_name_candidates(server: str, tool: str) -> tuple[str, str]:
    """The names ``server`` may know ``tool`` by, preferred first: itself, then AutoArr's prefixed form."""
    return tool, f"{server}_{tool}"


def resolve_tool_name(server: str, tool: str, names: Collection[str]) -> str | None:
    """The name ``server`` knows ``tool`` by: itself, or AutoArr's prefixed form (``get_queue`` on
    ``sabnzbd`` -> ``sabnzbd_get_queue``); None when its catalog ``names`` list neither."""
    return next((name for name in tool_name_candidates(server, tool) if name in names), None)


def close_tool_matches(server: str, tool: str, catalogs: Mapping[str, Collection[str]]) -> str:
    """A hint for a tool name that no catalog lists: similar names on ``server`` (difflib, compared
    with and without the server prefix), and the other servers that have it; '' when none."""
    own = sorted(catalogs.get(server, ()))
    listed = resolve_tool_name(server, tool, own)
    if listed == tool:
        return ""  # the server refused a name it lists (bad params, a stale listing): nothing to suggest
    if listed:  # sent unresolved before the catalog had it; the catalog has caught up since
        return f"{server} lists it as {listed}"
    stripped = {name.removeprefix(f"{server}_"): name for name in own}
    wanted = tool.removeprefix(f"{server}_")
    similar = difflib.get_close_matches(wanted, list(stripped), n=CLOSE_MATCHES, cutoff=0.6)
    similar += difflib.get_close_matches(tool, own, n=CLOSE_MATCHES, cutoff=0.6)
    suggestions = list(dict.fromkeys(stripped.get(name, name) for name in similar))[:CLOSE_MATCHES]
    hints = []
    if suggestions:
        hints.append(f"close matches on {server}: {', '.join(suggestions)}")
    elsewhere = [f"{name} on {other}" for other, names in sorted(catalogs.items()) if other != server
                 for name in (resolve_tool_name(other, wanted, names), resolve_tool_name(other, tool, names))
                 if name]
    if elsewhere:
        hints.append(f"found as {', '.join(dict.fromkeys(elsewhere))}")
    return "; ".join(hints)
