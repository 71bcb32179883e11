"""Scrub configured secrets out of any text that leaves a process (errors, logs, results)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

MASK = "***"


class Redactor:
    """Replaces every known secret value, and credentials in URLs, with ``***``.

    Which values are secrets is the configuration's decision (``ServerConfig.secret_values``): values
    of variables named in ``${VAR}`` references and of keys, tokens and passwords by name, never a
    value just because it is long enough.
    """

    # Credentials in a URL: whatever stands between "://" and the "@" before the host. The literal
    # start lets the regex engine skip ahead to each "://"; a scheme pattern tried from every position
    # backtracks over every run of letters, quadratic in a long text block.
    _URL_USERINFO = re.compile(r"://[^/@\s]+@")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        unique = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._secrets = tuple(unique)
        self._pattern = re.compile("|".join(re.escape(s) for s in unique)) if unique else None
        # A secret JSON writes as it stands can be looked for in a whole serialised value at once.
        self._findable_in_json = all(json.dumps(s, ensure_ascii=False)[1:-1] == s for s in unique)

    def scrub(self, text: str) -> str:
        """Free text (a message, a log line): each secret replaced where it stands."""
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return self._URL_USERINFO.sub(f"://{MASK}@", text)

    def scrub_json(self, value: Any) -> Any:
        """A JSON value with every string that holds a secret replaced whole by ``***``, so the value stays
        valid JSON: a string that is itself a JSON object or array (an MCP text block) is scrubbed inside
        and serialised again. Credentials in URLs are masked in place.

        Most values hold nothing to scrub: one search over the value serialised (in C) says so, and the
        value is returned as it is; only a value where a secret or a URL credential may stand is walked."""
        if self._findable_in_json:
            try:
                serialised = json.dumps(value, ensure_ascii=False)
            except (TypeError, ValueError):
                serialised = None
            if serialised is not None and not self._may_hold_secret(serialised):
                return value
        return self._scrub_value(value)

    def _may_hold_secret(self, text: str) -> bool:
        """Substring tests (C speed), then the URL pattern."""
        return any(secret in text for secret in self._secrets) or self._URL_USERINFO.search(text) is not None

    def _scrub_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._scrub_string(value)
        if isinstance(value, list):
            return [self._scrub_value(item) for item in value]
        if isinstance(value, dict):
            return {key: self._scrub_value(item) for key, item in value.items()}
        return value

    def _scrub_string(self, text: str) -> str:
        if self._pattern is None or not self._pattern.search(text):
            return self.scrub(text)
        document = _json_document(text)
        return MASK if document is None else json.dumps(self._scrub_value(document))


def _json_document(text: str) -> Any:
    """``text`` parsed when it is a JSON object or array, else None."""
    if text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs the formatted message of every record it sees."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.redactor.scrub(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redactor.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        return True


def install_log_redaction(redactor: Redactor) -> None:
    """Attach the filter to every handler of the root logger (where all records end up)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(redactor))
