"""Unacknowledged messages of a dead worker are discarded once their deadline has passed.

kombu's Redis transport keeps a delivered message in ``unacked`` until its worker acknowledges it,
and gives it back only after ``visibility_timeout`` (an hour by default). A worker killed with
calls in hand leaves them there long after their callers got their outcome. Every worker's
heartbeat runs ``reclaim_expired``: a message whose deadline (its ``expires`` header) passed more
than ``RECLAIM_GRACE_SECONDS`` ago can no longer run (a worker refuses an expired message, and
the worker that held it gave its MCP call only what was left), so it is removed.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any

import redis

from orchestrator.keys import UNACKED_INDEX_KEY, UNACKED_KEY

log = logging.getLogger("workers.reclaim")

RECLAIM_GRACE_SECONDS = 10.0
"""How long after its deadline an unacknowledged message is discarded (seconds): a live worker has
answered by then (its MCP call ended at the deadline)."""


def message_deadline(raw: bytes | str) -> float | None:
    """The ``expires`` header of a stored message as epoch seconds (None when it has none)."""
    try:
        message = json.loads(raw)[0]
        expires = message["headers"].get("expires")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    if not expires:
        return None
    return datetime.fromisoformat(expires).timestamp() if isinstance(expires, str) else float(expires)


def reclaim_expired(client: redis.Redis, now: float | None = None) -> int:
    """Remove the unacknowledged messages whose deadline passed ``RECLAIM_GRACE_SECONDS`` ago; how many."""
    cutoff = (now or time.time()) - RECLAIM_GRACE_SECONDS
    tags: list[Any] = list(client.zrangebyscore(UNACKED_INDEX_KEY, "-inf", cutoff))
    if not tags:
        return 0
    stale = [tag for tag, raw in zip(tags, client.hmget(UNACKED_KEY, tags), strict=True)
             if raw is None or ((deadline := message_deadline(raw)) is not None and deadline < cutoff)]
    if stale:
        pipe = client.pipeline(transaction=True)
        pipe.hdel(UNACKED_KEY, *stale)
        pipe.zrem(UNACKED_INDEX_KEY, *stale)
        pipe.execute()
        log.info("discarded %d unacknowledged message(s) whose deadline passed (their worker is gone)", len(stale))
    return len(stale)
