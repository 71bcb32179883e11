"""A chunk's outcomes stored many at a time (``workers.outcomes``) against a real redis-server: every
client reads them exactly as Celery's own store writes them, a stored SUCCESS is never replaced, and
many go in one round trip and none is lost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery, states

from orchestrator.celery_app import make_celery
from orchestrator.config import Settings
from orchestrator.errors import ToolReturnedError
from workers.outcomes import Ended, OutcomeWriter

RESULT = {"server": "sonarr", "tool": "sonarr_get_series", "ok": True, "data": {"id": 1}}


@pytest.fixture
def app(redis_url: str) -> Iterator[Celery]:
    app = make_celery(Settings(broker_url=redis_url))
    yield app
    app.close()


def stored(app: Celery, task_id: str) -> dict[str, Any]:
    """The meta stored for ``task_id`` as JSON, but for what differs between two tasks (id, time)."""
    meta = json.loads(app.backend.client.get(app.backend.get_key_for_task(task_id)))
    assert meta.pop("task_id") == task_id and meta.pop("date_done")
    return meta


@pytest.mark.parametrize(("value", "state"), [
    (RESULT, states.SUCCESS),
    (ToolReturnedError("refused", server="sonarr", code=-32602), states.FAILURE),
    (None, states.REVOKED),
], ids=["success", "failure", "revoked"])
def test_an_outcome_written_with_others_reads_back_as_celerys_own_store_writes_it(
        app: Celery, value: Any, state: str) -> None:
    backend = app.backend
    writer = OutcomeWriter(backend)
    writer.write([Ended("ours", value, state, None)])
    if state == states.REVOKED:
        backend.mark_as_revoked("celerys", "revoked before it started")
    else:
        backend.store_result("celerys", value, state)
    assert stored(app, "ours") == stored(app, "celerys")
    ours = backend.get_task_meta("ours", cache=False)
    assert ours["status"] == state
    if state == states.FAILURE:
        error = ours["result"]
        assert isinstance(error, ToolReturnedError) and error.details["code"] == -32602


def test_a_stored_success_is_never_replaced_but_a_stored_failure_is(app: Celery) -> None:
    """As Celery's own store: a call run twice (a redelivered chunk) keeps the result its client may have."""
    backend = app.backend
    backend.store_result("done", RESULT, states.SUCCESS)
    backend.store_result("failed", ToolReturnedError("x", server="sonarr"), states.FAILURE)
    OutcomeWriter(backend).write([Ended("done", ToolReturnedError("late", server="sonarr"), states.FAILURE, None)])
    OutcomeWriter(backend).write([Ended("failed", RESULT, states.SUCCESS, None)])
    assert backend.get_task_meta("done", cache=False)["status"] == states.SUCCESS
    assert backend.get_task_meta("failed", cache=False)["status"] == states.SUCCESS


def test_many_outcomes_written_in_one_round_trip_are_all_stored_and_published(
        app: Celery, redis_client: redis.Redis) -> None:
    backend = app.backend
    ids = [f"call-{n}" for n in range(400)]
    listener = redis_client.pubsub()
    listener.subscribe(*(backend.get_key_for_task(task_id) for task_id in ids))
    for _ in ids:
        listener.get_message(timeout=1)  # the subscribe confirmations
    writer = OutcomeWriter(backend)
    writer.write([Ended("warm-up", RESULT, states.SUCCESS, None)])  # the script is loaded by now
    calls_before = redis_client.info("commandstats")["cmdstat_evalsha"]["calls"]
    writer.write([Ended(task_id, {**RESULT, "task_id": task_id}, states.SUCCESS, None)
                                  for task_id in ids])
    assert redis_client.info("commandstats")["cmdstat_evalsha"]["calls"] - calls_before == 1
    published = set()
    while (message := listener.get_message(timeout=1)) is not None:
        published.add(message["channel"].decode())
    listener.close()
    assert published == {backend.get_key_for_task(task_id).decode() for task_id in ids}
    stored = backend.client.mget([backend.get_key_for_task(task_id) for task_id in ids])
    assert all(value is not None for value in stored)
    assert {backend.decode_result(value)["result"]["task_id"] for value in stored} == set(ids)
