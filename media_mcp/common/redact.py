"""Remove secrets from anything a tool returns: upstreams echo their own keys (SABnzbd does)."""

from __future__ import annotations

from typing import Any

MASK = "***"
SECRET_KEY_PARTS = ("apikey", "api_key", "nzb_key", "userkey", "password", "token")
"""A key containing one of these (any case) has its value masked wherever it appears, whatever the value."""


def redact(value: Any, secret: str) -> Any:
    """Return ``value`` with secret-named keys masked and every occurrence of ``secret`` replaced."""
    if isinstance(value, dict):
        return {key: MASK if _is_secret_key(key, item) else redact(item, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item, secret) for item in value]
    if isinstance(value, str):
        return redact_text(value, secret)
    return value


def redact_text(text: str, secret: str) -> str:
    """Replace every occurrence of ``secret`` in ``text``."""
    return text.replace(secret, MASK) if secret else text


def _is_secret_key(key: Any, item: Any) -> bool:
    """Mask non-empty scalar values under secret-named keys (an empty password stays visibly empty)."""
    if not isinstance(key, str) or item in ("", None):
        return False
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)
