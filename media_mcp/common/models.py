"""Result envelopes shared by Sonarr, Radarr and Plex: AutoArr wraps their payloads as ``{success, data}``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Item(BaseModel):
    """One upstream object."""

    success: bool = True
    data: dict[str, Any]


class Items(BaseModel):
    """A list of upstream objects."""

    success: bool = True
    data: list[dict[str, Any]]


def as_list(payload: Any) -> list[dict[str, Any]]:
    """AutoArr's list rule: nothing becomes ``[]`` and a single object becomes a one-item list."""
    if not payload:
        return []
    if isinstance(payload, dict):
        return [payload]
    return list(payload)
