"""A dead worker's unacknowledged messages are discarded once their deadline has passed."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import redis

from orchestrator.keys import UNACKED_INDEX_KEY, UNACKED_KEY
from workers.reclaim import RECLAIM_GRACE_SECONDS, reclaim_expired


def hold(client: redis.Redis, tag: str, delivered: float, expires: float | None) -> None:
    """A message as kombu keeps it while a worker holds it: ``[message, exchange, routing_key]``."""
    headers = {"task": "mcp.call_tool", "id": tag}
    if expires is not None:
        headers["expires"] = datetime.fromtimestamp(expires, tz=UTC).isoformat()
    client.hset(UNACKED_KEY, tag, json.dumps([{"headers": headers, "body": ""}, "", "mcp.probe"]))
    client.zadd(UNACKED_INDEX_KEY, {tag: delivered})


def test_only_messages_past_their_deadline_and_the_grace_are_discarded(redis_client: redis.Redis) -> None:
    """Expired long enough: gone from both kombu keys; still running, just expired, or without a deadline: kept."""
    now = time.time()
    hold(redis_client, "expired", now - 120, now - RECLAIM_GRACE_SECONDS - 1)
    hold(redis_client, "just-expired", now - 60, now - 1)
    hold(redis_client, "running", now - 5, now + 30)
    hold(redis_client, "no-deadline", now - 3600, None)
    assert reclaim_expired(redis_client, now) == 1
    assert sorted(redis_client.hkeys(UNACKED_KEY)) == [b"just-expired", b"no-deadline", b"running"]
    assert sorted(redis_client.zrange(UNACKED_INDEX_KEY, 0, -1)) == [b"just-expired", b"no-deadline", b"running"]
    assert reclaim_expired(redis_client, now + 60) == 2  # later the others' deadlines pass too
    assert redis_client.hkeys(UNACKED_KEY) == [b"no-deadline"]


def test_an_index_entry_whose_message_is_gone_is_removed(redis_client: redis.Redis) -> None:
    """An index entry left without its message (acked between the two writes) is cleaned up."""
    redis_client.zadd(UNACKED_INDEX_KEY, {"orphan": time.time() - 600})
    assert reclaim_expired(redis_client) == 1
    assert redis_client.zcard(UNACKED_INDEX_KEY) == 0
