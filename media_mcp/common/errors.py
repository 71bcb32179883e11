"""Tagged tool errors: every failure a caller sees starts with one stable, machine-readable tag.

The tags are the whole vocabulary; callers classify a failed call by the tag alone:

* ``[upstream_unauthorized]``  the upstream refused the API key or token (401/403)
* ``[upstream_not_found]``     the upstream has no such item (404, SABnzbd "does not exist")
* ``[upstream_unavailable]``   5xx, connection refused, timeout, unreadable reply
* ``[upstream_bad_request]``   any other 4xx, or an upstream error reply about the request
* ``[invalid_arguments]``      the call was refused before reaching the upstream
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError

UNAUTHORIZED = "upstream_unauthorized"
NOT_FOUND = "upstream_not_found"
UNAVAILABLE = "upstream_unavailable"
BAD_REQUEST = "upstream_bad_request"
INVALID_ARGUMENTS = "invalid_arguments"

TAGS = (UNAUTHORIZED, NOT_FOUND, UNAVAILABLE, BAD_REQUEST, INVALID_ARGUMENTS)


class TaggedToolError(ToolError):
    """A tool failure whose text starts with ``[tag]`` (a ``ToolError``, so the SDK reports ``is_error``)."""

    def __init__(self, tag: str, message: str) -> None:
        if tag not in TAGS:
            raise ValueError(f"tag must be one of {TAGS}, not {tag!r}")
        self.tag = tag
        super().__init__(f"[{tag}] {message}")


def status_error(service: str, method: str, path: str, status: int, detail: str) -> TaggedToolError:
    """Map a non-success HTTP status from the upstream to its tagged error."""
    where = f"{service} {method} {path}"
    if status in (401, 403):
        return TaggedToolError(UNAUTHORIZED, f"{where}: unauthorized (HTTP {status}), wrong API key? {detail}")
    if status == 404:
        return TaggedToolError(NOT_FOUND, f"{where}: not found (HTTP 404) {detail}")
    if status >= 500:
        return TaggedToolError(UNAVAILABLE, f"{where}: upstream error (HTTP {status}) {detail}")
    return TaggedToolError(BAD_REQUEST, f"{where}: request rejected (HTTP {status}) {detail}")
