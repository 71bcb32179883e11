"""Revoking calls of a batch so that a worker holding them in a chunk does not start them.

Celery's revoke broadcast only reaches a worker's main process (``celery.worker.state.revoked``): a
prefork pool child running a chunk never sees it, and the broadcast is not ordered with anything the
worker does. So a client that gives up on calls also marks each one in Redis (``keys.revoked_key``),
before broadcasting; a chunk's worker reads the marks of the calls it is about to start in one round
trip, right before starting them. A mark written before that read always stops the call; a call
already started runs on, as a started single-call task does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import redis
from celery import Celery

from orchestrator.keys import revoked_key

REVOKED_MARK_MARGIN_SECONDS = 60
"""A revocation mark outlives the last deadline of the calls it names by this much (seconds)."""


def revoke_calls(app: Celery, client: redis.Redis | None, task_ids: Sequence[str], until: float) -> None:
    """Mark ``task_ids`` revoked in Redis (kept until ``until``, epoch seconds, plus a margin), then
    broadcast Celery's revoke for the single-call tasks and the queued messages."""
    if not task_ids:
        return
    if client is not None:
        ttl = max(math.ceil(until - time.time()), 0) + REVOKED_MARK_MARGIN_SECONDS
        pipe = client.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.set(revoked_key(task_id), 1, ex=ttl)
        pipe.execute()
    app.control.revoke(list(task_ids))


def revoked_among(client: redis.Redis, task_ids: Sequence[str]) -> set[str]:
    """The ids among ``task_ids`` a client revoked (one round trip)."""
    if not task_ids:
        return set()
    marks = client.mget([revoked_key(task_id) for task_id in task_ids])
    return {task_id for task_id, mark in zip(task_ids, marks, strict=True) if mark is not None}
