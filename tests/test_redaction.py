"""Secrets are scrubbed from text and log records that leave a process."""

from __future__ import annotations

import json
import logging

import pytest

from orchestrator.config import HttpTransport, StdioTransport
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


def test_only_values_the_configuration_marks_secret_are_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """``${VAR}`` values (in env, headers, url and args) and entries named like keys or tokens are secrets;
    a harmless literal such as ``"True"`` or ``"false"`` is not, whatever its length."""
    monkeypatch.setenv("SVC_TOKEN", "tok-from-env-5151")
    monkeypatch.setenv("ARG_KEY", "arg-key-6262")
    stdio = StdioTransport(command="x", args=["--key", "${ARG_KEY}"],
                           env={"DEBUG": "True", "BANNER": "false", "API_KEY": "literal-key-7373",
                                "SERVICE_TOKEN": "${SVC_TOKEN}"})
    assert sorted(stdio.secret_values()) == ["arg-key-6262", "literal-key-7373", "tok-from-env-5151"]
    assert stdio.resolved_args() == ["--key", "arg-key-6262"]
    http = HttpTransport(url="http://mcp:8000/mcp", headers={"Authorization": "Bearer abc", "X-Mode": "fast"})
    assert http.secret_values() == ["Bearer abc"]


def test_json_values_holding_a_secret_are_replaced_whole_and_stay_json() -> None:
    """A string value holding a secret becomes ``***``; a text block holding a JSON document is scrubbed inside
    and stays parseable; strings without a secret are untouched."""
    redactor = Redactor(["s3cr3t-9090"])
    scrubbed = redactor.scrub_json({"note": "my key is s3cr3t-9090", "title": "True Detective", "dst": False,
                                    "content": [{"type": "text", "text": '{"k": "s3cr3t-9090", "is_dst": false}'}]})
    assert scrubbed["note"] == "***" and scrubbed["title"] == "True Detective" and scrubbed["dst"] is False
    assert json.loads(scrubbed["content"][0]["text"]) == {"k": "***", "is_dst": False}


@pytest.mark.parametrize("secret", ['pa"ss\\word', "clé-ünïcode", "tab\there", "plain-9090"])
def test_a_secret_is_scrubbed_from_json_whatever_characters_json_would_escape_in_it(secret: str) -> None:
    """The quick look over the serialised value must not miss a secret JSON escapes (a quote, a backslash,
    a control character) or one outside ASCII; a value with nothing to scrub comes back as it was."""
    redactor = Redactor([secret])
    value = {"results": [{"title": "x", "note": f"key={secret}"}], "url": "http://h/api"}
    assert redactor.scrub_json(value)["results"][0]["note"] == "***"
    clean = {"results": [{"title": "x", "note": "nothing here"}], "n": 3}
    assert redactor.scrub_json(clean) == clean


def test_url_credentials_in_json_are_masked_with_no_secret_configured() -> None:
    """The quick look also finds credentials in a URL when no secret is configured at all."""
    scrubbed = Redactor([]).scrub_json({"links": ["https://user:pw@host/x", "https://host/y"]})
    assert scrubbed == {"links": ["https://***@host/x", "https://host/y"]}


@pytest.mark.parametrize(("text", "scrubbed"), [
    ("redis://:hunter2@redis:6379/0", "redis://***@redis:6379/0"),  # a password with no user name
    ("amqp://guest:guest@rabbit//", "amqp://***@rabbit//"),
    ("svn+ssh://me:pw@host/x", "svn+ssh://***@host/x"),
    ("see https://host/a@b", "see https://host/a@b"),  # an @ in the path is not a credential
])
def test_every_form_of_url_credentials_is_masked(text: str, scrubbed: str) -> None:
    assert Redactor([]).scrub(text) == scrubbed

