"""Command line shared by the four servers: ``python -m media_mcp.<service> --transport stdio|http``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from media_mcp.common.server import MediaServer
from media_mcp.common.settings import Settings, SettingsError
from media_mcp.common.upstream import Auth, Upstream

MCP_PATH = "/mcp"
"""Where the streamable HTTP transport is served."""


@dataclass(frozen=True)
class ServiceSpec:
    """What differs between the four servers at start-up."""

    name: str
    secret_var: str
    auth: Callable[[str], Auth]
    build: Callable[[Upstream], MediaServer]

    @asynccontextmanager
    async def open_server(self, env: Mapping[str, str]) -> AsyncIterator[MediaServer]:
        """The server built from ``env`` (``<SERVICE>_URL``, the secret, ``<SERVICE>_TIMEOUT``), its
        upstream client open until exit: what ``python -m media_mcp.<service>`` serves, and what
        the worker's ``inprocess`` transport speaks to in memory. Raises SettingsError naming the variable."""
        settings = Settings.from_env(self.name, self.secret_var, env)
        async with Upstream(settings, self.auth(settings.secret)) as upstream:
            yield self.build(upstream)


def parse_args(service: str, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m media_mcp.{service}", description=f"Serve the {service} MCP tools."
    )
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP transport only")
    parser.add_argument("--port", type=int, default=8000, help="HTTP transport only")
    return parser.parse_args(argv)


def main(spec: ServiceSpec, argv: Sequence[str] | None = None) -> None:
    """Read settings from the environment (exit with a one-line error if incomplete) and serve."""
    args = parse_args(spec.name, argv)
    try:
        anyio.run(_serve, spec, args)
    except SettingsError as exc:
        sys.exit(f"media_mcp.{spec.name}: {exc}")


async def _serve(spec: ServiceSpec, args: argparse.Namespace) -> None:
    async with spec.open_server(os.environ) as server:
        if args.transport == "stdio":
            await server.run_stdio_async()
        else:
            await server.run_streamable_http_async(host=args.host, port=args.port, streamable_http_path=MCP_PATH)
