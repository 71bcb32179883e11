"""A chunk's outcomes stored many at a time (``workers.outcomes``) against a real redis-server: every
client reads them exactly as Celery's own store writes them, a stored SUCCESS is never replaced, and
none is lost when calls end on many threads at once."""

from __future__ import annotations

import json
import threading
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
    writer.put(Ended("ours", value, state, None))
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
    OutcomeWriter(backend).put(Ended("done", ToolReturnedError("late", server="sonarr"), states.FAILURE, None))
    OutcomeWriter(backend).put(Ended("failed", RESULT, states.SUCCESS, None))
    assert backend.get_task_meta("done", cache=False)["status"] == states.SUCCESS
    assert backend.get_task_meta("failed", cache=False)["status"] == states.SUCCESS


def test_outcomes_ending_on_many_threads_at_once_are_all_stored_and_published(
        app: Celery, redis_client: redis.Redis) -> None:
    backend = app.backend
    ids = [f"call-{n}" for n in range(400)]
    listener = redis_client.pubsub()
    listener.subscribe(*(backend.get_key_for_task(task_id) for task_id in ids))
    for _ in ids:
        listener.get_message(timeout=1)  # the subscribe confirmations
    writer = OutcomeWriter(backend)
    start = threading.Barrier(16)

    def end_calls(mine: list[str]) -> None:
        start.wait()
        for task_id in mine:
            writer.put(Ended(task_id, {**RESULT, "task_id": task_id}, states.SUCCESS, None))

    threads = [threading.Thread(target=end_calls, args=(ids[n::16],)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    published = set()
    while (message := listener.get_message(timeout=1)) is not None:
        published.add(message["channel"].decode())
    listener.close()
    assert published == {backend.get_key_for_task(task_id).decode() for task_id in ids}
    stored = backend.client.mget([backend.get_key_for_task(task_id) for task_id in ids])
    assert all(value is not None for value in stored)
    assert {backend.decode_result(value)["result"]["task_id"] for value in stored} == set(ids)


def test_an_outcome_that_ends_while_another_thread_writes_is_written_by_that_thread(app: Celery) -> None:
    """The thread that ends second only queues its outcome; the writing thread must take it on its next turn."""
    backend = app.backend

    class HeldFirstWrite(OutcomeWriter):
        def __init__(self) -> None:
            super().__init__(backend)
            self.writing, self.go_on = threading.Event(), threading.Event()

        def _store_all(self, batch: list[Ended]) -> None:
            if not self.writing.is_set():
                self.writing.set()
                assert self.go_on.wait(5)
            super()._store_all(batch)

    writer = HeldFirstWrite()
    first = threading.Thread(target=writer.put, args=(Ended("first", RESULT, states.SUCCESS, None),))
    first.start()
    assert writer.writing.wait(5)
    writer.put(Ended("second", RESULT, states.SUCCESS, None))  # returns at once: a write is in progress
    assert backend.get_task_meta("second", cache=False)["status"] == states.PENDING
    writer.go_on.set()
    first.join(5)
    assert [backend.get_task_meta(task_id, cache=False)["status"] for task_id in ("first", "second")] == [
        states.SUCCESS, states.SUCCESS]
