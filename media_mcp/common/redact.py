"""Remove secrets from anything a tool returns: upstreams echo their own keys and notification credentials.

Masking replaces whole string values (never a part of the JSON text), so a result stays valid JSON.
A value is masked when its key names a secret, when it is a URL carrying credentials
(``scheme://user:pass@host``), or where the configured secret itself occurs in it.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
SECRET_KEY_PARTS = (
    "apikey",
    "api_key",
    "nzb_key",
    "userkey",
    "password",
    "pwd",
    "token",
    "secret",
    "apprise_urls",
    "apprise_target_",
    "nscript_parameters",
)
"""A key containing one of these (any case) has a non-empty string value masked wherever it appears.

SABnzbd's notification settings carry credentials under these names: ``prowl_apikey``,
``pushbullet_apikey``, ``pushover_token``/``pushover_userkey``, ``email_pwd``, ``apprise_urls``
and the per-event ``apprise_target_<event>`` URLs (service tokens sit in their paths, e.g.
``discord://id/token``), and ``nscript_parameters`` (passed to the user's notification script).
The ``apprise_target_<event>_enable`` flags are ints, so they stay visible.
"""
URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s@]+@", re.IGNORECASE)
"""A URL with a userinfo part (``user:pass@`` or ``token@``), anywhere in a string."""


def redact(value: Any, secret: str) -> Any:
    """Return ``value`` with secret-named keys, URLs carrying credentials and ``secret`` masked."""
    if isinstance(value, dict):
        return {key: MASK if _is_secret_key(key, item) else redact(item, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item, secret) for item in value]
    if isinstance(value, str):
        return MASK if URL_CREDENTIALS.search(value) else redact_text(value, secret)
    return value


def redact_text(text: str, secret: str) -> str:
    """Replace every occurrence of ``secret`` in ``text``."""
    return text.replace(secret, MASK) if secret else text


def _is_secret_key(key: Any, item: Any) -> bool:
    """Mask non-empty strings under secret-named keys (an empty password stays visibly empty, a flag stays a flag)."""
    if not isinstance(key, str) or not isinstance(item, str) or not item:
        return False
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)
