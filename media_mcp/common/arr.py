"""What Sonarr and Radarr share: `/api/v3` with `X-Api-Key`, paging, commands, deletes, AutoArr's aliases,
and the tools both servers have (queue, calendar, quality profiles, root folders)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import Field

from media_mcp.common.errors import INVALID_ARGUMENTS, TaggedToolError
from media_mcp.common.inputs import Date, Page, PageSize
from media_mcp.common.models import Item, Items, as_list
from media_mcp.common.server import READ, MediaServer
from media_mcp.common.upstream import Auth, Upstream

API = "/api/v3"
RECORDS_PAGE = 250
"""Records asked for per page when a tool gathers every page of a paging endpoint."""

Term = Annotated[str | None, Field(min_length=1, description="Title to look up, or tvdb:<id> / tmdb:<id>.")]
QueryAlias = Annotated[str | None, Field(min_length=1, description="AutoArr's name for term; give one of the two.")]
PageSizeAlias = Annotated[int | None, Field(ge=1, description="AutoArr's name for page_size; give one of the two.")]

T = TypeVar("T")


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


async def command(upstream: Upstream, name: str, **fields: Any) -> Item:
    """Queue a command (``POST /command``); the reply is the command resource, ``queued`` at first."""
    return await post(upstream, "/command", {"name": name, **fields})


async def all_records(upstream: Upstream, path: str, **params: Any) -> Items:
    """The records of every page of a paging endpoint, as one list (for callers that want a plain list)."""
    records: list[dict[str, Any]] = []
    number = 1
    while True:
        envelope = await upstream.request("GET", f"{API}{path}", params={**params, **paging(number, RECORDS_PAGE)})
        batch = as_list(envelope.get("records") if isinstance(envelope, dict) else None)
        records.extend(batch)
        if len(batch) < RECORDS_PAGE or len(records) >= envelope.get("totalRecords", 0):
            return Items(data=records)
        number += 1


def either(name: str, value: T | None, alias: str, alias_value: T | None) -> T | None:
    """The value given as ``name`` or as AutoArr's ``alias`` for it; two different values are refused."""
    if value is not None and alias_value is not None and value != alias_value:
        raise TaggedToolError(INVALID_ARGUMENTS, f"{name}={value!r} and its alias {alias}={alias_value!r} differ")
    return value if value is not None else alias_value


def required_either(name: str, value: T | None, alias: str, alias_value: T | None) -> T:
    """Like ``either``, and one of the two must be given (the input schema cannot require one of two names)."""
    chosen = either(name, value, alias, alias_value)
    if chosen is None:
        raise TaggedToolError(INVALID_ARGUMENTS, f"{name} (or its alias {alias}) is required")
    return chosen


def supplied(**fields: Any) -> dict[str, Any]:
    """A request body holding only the fields the caller supplied."""
    return {key: value for key, value in fields.items() if value is not None}


def add_shared_tools(server: MediaServer, upstream: Upstream, service: str, things: str) -> None:
    """Register the tools identical for both services: queue, calendar, quality profiles and root folders."""

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

    async def get_quality_profiles() -> Items:
        return await get_items(upstream, "/qualityprofile")

    async def get_root_folders() -> Items:
        return await get_items(upstream, "/rootfolder")

    server.add_tool(
        get_quality_profiles,
        name=f"{service}_get_quality_profiles",
        description="Quality profiles (id, name, cutoff, allowed qualities); an id is what adding an item needs.",
        annotations=READ,
    )
    server.add_tool(
        get_root_folders,
        name=f"{service}_get_root_folders",
        description=f"Root folders for {things} (path, free space, unmapped folders); adding an item needs a path.",
        annotations=READ,
    )
