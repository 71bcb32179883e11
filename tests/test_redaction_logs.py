"""The log filter and its installation: every record that leaves a process is scrubbed, none is dropped."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from orchestrator.redaction import RedactingFilter, Redactor, install_log_redaction

SECRETS = ["tok-998877", "$ecret-55"]
"""A secret sorting after the mask ``***`` and one sorting before it."""


def record(msg: str, args: tuple[object, ...] | None = None,
           exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("x", logging.ERROR, __file__, 1, msg, args, exc_info)


@pytest.mark.parametrize("secret", SECRETS)
def test_a_secret_written_into_the_message_itself_is_masked_and_the_record_kept(secret: str) -> None:
    """No arguments, the secret in the format string: masked whatever it sorts like; the filter keeps the record."""
    entry = record(f"login with {secret} failed")
    assert RedactingFilter(Redactor(SECRETS)).filter(entry) is True
    assert entry.getMessage() == "login with *** failed"


def test_an_exception_logged_with_the_record_loses_the_secret_raised_or_not() -> None:
    """A traceback's text is scrubbed, also for an exception object that was never raised (no traceback)."""
    try:
        raise ValueError("bad key tok-998877")
    except ValueError as raised:
        entries = [record("call failed", exc=raised), record("call failed", exc=ValueError("bad key $ecret-55"))]
    formatter = logging.Formatter()
    for entry in entries:
        RedactingFilter(Redactor(SECRETS)).filter(entry)
        text = formatter.format(entry)
        assert "bad key ***" in text and not any(secret in text for secret in SECRETS)


@pytest.fixture
def root_handler() -> Iterator[tuple[logging.Handler, io.StringIO]]:
    """A handler on the root logger for the test, removed afterwards."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler, stream
    root.removeHandler(handler)


def test_installing_redaction_filters_every_root_handler_once(root_handler: tuple[logging.Handler, io.StringIO]
                                                              ) -> None:
    """Installed twice, a root handler has one filter, and what it writes has the secret masked."""
    handler, stream = root_handler
    install_log_redaction(Redactor(SECRETS))
    install_log_redaction(Redactor(SECRETS))
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    logging.getLogger("test.redaction").warning("token %s", "tok-998877")
    assert stream.getvalue() == "token ***\n"
