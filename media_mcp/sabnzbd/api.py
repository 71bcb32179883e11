"""Calls to SABnzbd's single `/api` endpoint; its in-band `{"status": false}` replies become tool errors."""

from __future__ import annotations

from typing import Any

from media_mcp.common.errors import BAD_REQUEST, NOT_FOUND, TaggedToolError
from media_mcp.common.upstream import Auth, Upstream


def auth(api_key: str) -> Auth:
    """SABnzbd takes its key and the output format as query parameters."""
    return Auth(params={"apikey": api_key, "output": "json"})


def flag(value: bool) -> int | None:
    """SABnzbd booleans are ``1``; a false flag is simply not sent."""
    return 1 if value else None


async def call(upstream: Upstream, mode: str, **params: Any) -> dict[str, Any]:
    """``GET /api?mode=<mode>&…`` and return the reply, or raise the tagged error SABnzbd reported."""
    payload = await upstream.request("GET", "/api", params={"mode": mode, **params})
    if isinstance(payload, dict) and payload.get("status") is False:
        raise _reported_error(mode, params, payload)
    return payload


async def queued_job_action(upstream: Upstream, name: str, nzo_id: str) -> dict[str, Any]:
    """``mode=queue&name=pause|resume`` for a job the queue holds, else ``[upstream_not_found]``.

    SABnzbd answers ``status: true`` for any id, even one it never had or one already in history,
    so the queue is asked first (``nzo_ids=`` filters it to that job). A job that finishes between
    the two requests is still acknowledged, as SABnzbd itself would.
    """
    listed = await call(upstream, "queue", nzo_ids=nzo_id)
    if not any(slot.get("nzo_id") == nzo_id for slot in listed.get("queue", {}).get("slots", [])):
        raise TaggedToolError(NOT_FOUND, f"sabnzbd mode=queue name={name}: no job {nzo_id!r} in the queue")
    return await call(upstream, "queue", name=name, value=nzo_id)


def _reported_error(mode: str, params: dict[str, Any], payload: dict[str, Any]) -> TaggedToolError:
    """SABnzbd answers HTTP 200 with `{"status": false, "error": …}`, or `nzo_ids: []` for an unknown job."""
    action = f"sabnzbd mode={mode}" + (f" name={params['name']}" if "name" in params else "")
    error = payload.get("error")
    if error is None:
        return TaggedToolError(NOT_FOUND, f"{action}: no job {params.get('value')!r} in the queue")
    tag = NOT_FOUND if "does not exist" in str(error) else BAD_REQUEST
    return TaggedToolError(tag, f"{action}: {error}")
