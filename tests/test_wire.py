"""The argument headers of an MCP task message: plain ``repr``s, bounded, without Celery's ``saferepr`` walk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import celery.app.amqp
import pytest
from celery import Celery

from orchestrator.celery_app import make_celery
from orchestrator.config import Settings
from orchestrator.wire import CALL_TOOL, REPR_MAX_CHARS

DEEP = {"series": {"id": 3, "tags": ["hd", {"quality": {"min": 720}}]}, "monitored": True, "note": "it's"}


@pytest.fixture
def app() -> Iterator[Celery]:
    built = make_celery(Settings(servers={"alpha": {"transport": {"type": "stdio", "command": "python"}}}))
    yield built
    built.close()


def call_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    return {"server": "alpha", "tool": "echo", "params": params, "deadline": 1.5}


def test_an_mcp_task_shows_its_whole_arguments_in_its_headers_and_sent_event(app: Celery) -> None:
    """Flower and the logs see the arguments as ``repr`` prints them, nested levels included (Celery's
    ``saferepr`` stops at three levels, ``{...}``)."""
    message = app.amqp.create_task_message("id-1", CALL_TOOL, (), call_kwargs(DEEP), create_sent_event=True)
    assert message.headers["kwargsrepr"] == repr(call_kwargs(DEEP))
    assert message.headers["argsrepr"] == "()"
    assert message.sent_event is not None and message.sent_event["kwargs"] == repr(call_kwargs(DEEP))


def test_an_mcp_task_message_is_built_without_celerys_saferepr(app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    """``saferepr`` walks the arguments in pure Python on every publish: most of the cost of a message."""
    def refuse(*_: Any, **__: Any) -> str:
        raise AssertionError("saferepr was called")

    monkeypatch.setattr(celery.app.amqp, "saferepr", refuse)
    app.amqp.create_task_message("id-1", CALL_TOOL, (), call_kwargs({"a": 1}), create_sent_event=True)


def test_long_arguments_are_cut_at_the_bound(app: Celery) -> None:
    message = app.amqp.create_task_message("id-1", CALL_TOOL, (), call_kwargs({"text": "x" * 5000}))
    shown = message.headers["kwargsrepr"]
    assert len(shown) == REPR_MAX_CHARS and shown.endswith("...")
    assert shown.startswith(repr(call_kwargs({"text": "x" * 5000}))[:REPR_MAX_CHARS - 3])


def test_a_sender_s_own_argument_headers_and_other_tasks_keep_celerys_way(app: Celery) -> None:
    given = app.amqp.create_task_message("id-1", CALL_TOOL, (), call_kwargs({"a": 1}), kwargsrepr="<hidden>")
    assert given.headers["kwargsrepr"] == "<hidden>"
    other = app.amqp.create_task_message("id-2", "celery.ping", (), {"deep": DEEP})
    assert other.headers["kwargsrepr"] != repr({"deep": DEEP})  # saferepr's depth limit: not ours to change
