"""Secrets are scrubbed from text and log records that leave a process."""

from __future__ import annotations

import logging

from orchestrator.redaction import RedactingFilter, Redactor


def test_known_secrets_are_masked_longest_first() -> None:
    """Every configured secret is replaced, a longer one containing a shorter one masked whole."""
    redactor = Redactor(["abcd1234", "abcd1234-extended"])
    assert redactor.scrub("key abcd1234-extended and abcd1234") == "key *** and ***"


def test_url_credentials_are_masked_even_when_unknown() -> None:
    """user:password@ in any URL is masked."""
    assert Redactor().scrub("redis://admin:s3cret@redis:6379/0") == "redis://***@redis:6379/0"


def test_the_log_filter_scrubs_messages_and_arguments() -> None:
    """A record's formatted message and its exception text lose the secret."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token is %s", ("tok-998877",), None)
    RedactingFilter(Redactor(["tok-998877"])).filter(record)
    assert record.getMessage() == "token is ***"
