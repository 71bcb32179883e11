"""Storing the outcomes of a chunk's calls as they end: the calls that ended in one turn of the chunk's
scheduler (``workers.chunks``) go in one round trip.

One Lua script (``lua/store_outcomes.lua``) does SET and PUBLISH per call, as Celery's Redis backend
stores a task's result, never over a SUCCESS already stored, as Celery checks too; one pipeline counts
them. While a write is under way the session loop goes on, so calls that end meanwhile are taken in the
next turn: a busy chunk stores many outcomes per round trip instead of paying three per call (Celery's
GET, its MULTI/SETEX/PUBLISH/EXEC, the counters).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import states
from celery.exceptions import TaskRevokedError
from redis.commands.core import Script

import orchestrator
from orchestrator.metrics import CallCount
from workers.metrics import count_calls

log = logging.getLogger("workers.outcomes")

_STORE = (Path(orchestrator.__file__).with_name("lua") / "store_outcomes.lua").read_text()

REVOKED_REASON = "revoked before it started"


@dataclass(frozen=True)
class Ended:
    """One call of a chunk that ended: its stored value (the result's JSON, its error, or None when it
    was revoked before it started) and state, and its counters (None: not counted, it never ran)."""

    task_id: str
    value: Any
    state: str
    count: CallCount | None


class OutcomeWriter:
    """Stores the outcomes of one chunk's calls, many per round trip (``write``)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._script: Script = backend.client.register_script(_STORE)  # the result backend is Redis (config)

    def write(self, batch: list[Ended]) -> None:
        """Store and count ``batch``; if the one round trip fails, each outcome through Celery's own store."""
        try:
            self._store_all(batch)
        except Exception as exc:  # boundary: fall back to Celery's own store, with its retries, call by call
            log.debug("storing %d outcomes at once failed (%s); storing them one by one", len(batch),
                      type(exc).__name__)
            for ended in batch:
                store_outcome(self._backend, ended.task_id, ended.value, ended.state)
        counts = [ended.count for ended in batch if ended.count is not None]
        if counts:
            count_calls(counts)

    def _store_all(self, batch: list[Ended]) -> None:
        backend, args = self._backend, []
        for ended in batch:
            expires = backend.failure_expires if ended.state == states.FAILURE else backend.expires
            args += [int(expires or 0), backend.encode(_meta(backend, ended))]
        self._script(keys=[backend.get_key_for_task(ended.task_id) for ended in batch], args=args)


def _meta(backend: Any, ended: Ended) -> dict[str, Any]:
    """The meta Celery would store for this outcome (``Backend.store_result``), so every client reads it as
    a task's own result."""
    value = TaskRevokedError(REVOKED_REASON) if ended.state == states.REVOKED else ended.value
    meta: dict[str, Any] = backend._get_result_meta(result=backend.encode_result(value, ended.state),
                                                    state=ended.state, traceback=None, request=None)
    meta["task_id"] = ended.task_id
    return meta


def store_outcome(backend: Any, task_id: str, value: Any, state: str) -> None:
    """Store one call's outcome under its own task id through Celery's backend: a result, a failure, or
    revoked before it started. A store that fails is logged: the client settles that call (``settle``)."""
    try:
        if state == states.REVOKED:
            backend.mark_as_revoked(task_id, REVOKED_REASON)
        else:
            backend.store_result(task_id, value, state)
    except Exception as exc:  # boundary: the outcome of the other calls must still be stored
        log.warning("could not store the outcome of call %s: %s", task_id, type(exc).__name__)
