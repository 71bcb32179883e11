"""What Sonarr and Radarr share: `/api/v3` with `X-Api-Key`, paging, commands, deletes, queue, calendar."""

from __future__ import annotations

from typing import Any

from media_mcp.common.inputs import Date, Page, PageSize
from media_mcp.common.models import Item, Items, as_list
from media_mcp.common.server import READ, MediaServer
from media_mcp.common.upstream import Auth, Upstream

API = "/api/v3"


def auth(api_key: str) -> Auth:
    """Sonarr and Radarr take their key in the ``X-Api-Key`` header."""
    return Auth(headers={"X-Api-Key": api_key, "Content-Type": "application/json"})


def flag(value: bool | None) -> str | None:
    """Query-string booleans are ``true``/``false``; ``None`` is not sent."""
    return None if value is None else str(value).lower()


def paging(page: int | None, page_size: int | None) -> dict[str, Any]:
    return {"page": page, "pageSize": page_size}


async def get_item(upstream: Upstream, path: str, **params: Any) -> Item:
    return Item(data=await upstream.request("GET", f"{API}{path}", params=params))


async def get_items(upstream: Upstream, path: str, **params: Any) -> Items:
    return Items(data=as_list(await upstream.request("GET", f"{API}{path}", params=params)))


async def post(upstream: Upstream, path: str, body: dict[str, Any]) -> Item:
    return Item(data=await upstream.request("POST", f"{API}{path}", body=body))


async def delete(upstream: Upstream, path: str, **params: Any) -> Item:
    """AutoArr reports an empty delete reply as ``{"deleted": true}``."""
    return Item(data=await upstream.request("DELETE", f"{API}{path}", params=params) or {"deleted": True})


def supplied(**fields: Any) -> dict[str, Any]:
    """A request body holding only the fields the caller supplied."""
    return {key: value for key, value in fields.items() if value is not None}


def add_queue_and_calendar(server: MediaServer, upstream: Upstream, service: str, things: str) -> None:
    """Register ``<service>_get_queue`` and ``<service>_get_calendar``, identical for both services."""

    async def get_queue(page: Page = None, page_size: PageSize = None) -> Item:
        return await get_item(upstream, "/queue", **paging(page, page_size))

    async def get_calendar(start_date: Date = None, end_date: Date = None) -> Items:
        return await get_items(upstream, "/calendar", start=start_date, end=end_date)

    server.add_tool(
        get_queue,
        name=f"{service}_get_queue",
        description=f"Downloads in progress for {things}, as a paging envelope with records.",
        annotations=READ,
    )
    server.add_tool(
        get_calendar,
        name=f"{service}_get_calendar",
        description=f"Upcoming {things} between start_date and end_date (YYYY-MM-DD).",
        annotations=READ,
    )
