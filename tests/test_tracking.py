"""The tracked cache (``orchestrator/tracking.py``) on a real redis-server: exact because Redis says when to forget."""

from __future__ import annotations

import math
from collections.abc import Iterator
from uuid import uuid4

import pytest
import redis

from orchestrator.batch import redis_epoch
from orchestrator.catalog import Catalog
from orchestrator.config import Settings
from orchestrator.tracking import TrackedReads
from orchestrator.validation import prepare_call


@pytest.fixture
def tracked(redis_client: redis.Redis) -> Iterator[TrackedReads]:
    reads = TrackedReads(redis_client, liveness_seconds=math.inf)  # no liveness PING in the counts
    yield reads
    reads.close()


@pytest.fixture
def other(redis_url: str) -> Iterator[redis.Redis]:
    """Another client, as another process would have."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def calls_of(client: redis.Redis, command: str) -> int:
    """How many times the server ran ``command`` (INFO commandstats)."""
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_a_repeated_read_is_answered_without_a_round_trip(tracked: TrackedReads, other: redis.Redis) -> None:
    """The second read of an unchanged key does not reach Redis."""
    other.set("k", "1")
    assert tracked.read(("GET", "k")) == b"1"
    before = calls_of(other, "get")
    assert [tracked.read(("GET", "k")) for _ in range(5)] == [b"1"] * 5
    assert calls_of(other, "get") == before


def test_a_change_by_another_client_is_seen_by_the_next_read(tracked: TrackedReads, other: redis.Redis) -> None:
    """Another client's write invalidates the cached reply: once the writer has had one more reply
    (Redis wrote the push in the same pass as the write's reply), the next read answers the new value."""
    other.set("k", "1")
    assert tracked.read(("GET", "k")) == b"1"
    other.set("k", "2")
    other.ping()
    assert tracked.read(("GET", "k")) == b"2"
    other.hset("h", mapping={"a": "1", "b": "2"})
    assert tracked.read(("HMGET", "h", "a", "b")) == [b"1", b"2"]
    other.hset("h", "b", "3")
    other.ping()
    assert tracked.read(("HMGET", "h", "a", "b")) == [b"1", b"3"]


def test_a_flushed_database_empties_the_cache(tracked: TrackedReads, other: redis.Redis) -> None:
    """FLUSHDB sends a flush-everything invalidation: cached replies are dropped."""
    other.set("k", "1")
    assert tracked.read(("GET", "k")) == b"1"
    other.flushdb()
    other.ping()
    assert tracked.read(("GET", "k")) is None


def test_a_lost_connection_empties_the_cache(tracked: TrackedReads, other: redis.Redis) -> None:
    """Invalidations sent while the tracked connection is gone are lost, so the cache goes with it: a
    change made meanwhile is read after reconnecting, never the old reply."""
    other.set("k", "1")
    assert tracked.read(("GET", "k")) == b"1"
    other.client_kill_filter(skipme=True, _type="normal")
    other.set("k", "2")
    assert tracked.read(("GET", "k")) == b"2"
    other.set("k", "3")
    other.ping()
    assert tracked.read(("GET", "k")) == b"3"  # tracking is on again on the new connection


def test_the_catalog_sees_a_new_listing_written_by_another_client(redis_client: redis.Redis, tracked: TrackedReads,
                                                                  other: redis.Redis) -> None:
    """A worker that refreshes the catalog invalidates every client's cached entries."""
    settings = Settings(servers={"sonarr": {"transport": {"type": "stdio", "command": "python"}}})
    reader, writer = Catalog(redis_client, tracked=tracked), Catalog(other)
    call = prepare_call(settings, "sonarr", "get_series", {})
    assert reader.resolve(call) == (call, False)
    writer.replace("sonarr", [{"name": "sonarr_get_series", "inputSchema": {"type": "object"}}], source="test")
    other.ping()
    resolved, listed = reader.resolve(call)
    assert (resolved.tool, listed) == ("sonarr_get_series", True)


def test_the_epoch_is_read_once_and_follows_a_flush(redis_client: redis.Redis, tracked: TrackedReads,
                                                    other: redis.Redis) -> None:
    """The data epoch costs no round trip once read; Redis losing its data gives a new one."""
    first = redis_epoch(redis_client, tracked)
    before = calls_of(other, "get")
    assert redis_epoch(redis_client, tracked) == first
    assert calls_of(other, "get") == before
    other.flushdb()
    other.ping()
    second = redis_epoch(redis_client, tracked)
    assert second is not None and second != first


def test_a_quiet_connection_is_proved_alive_before_answering_from_memory(redis_url: str,
                                                                          other: redis.Redis) -> None:
    """A socket that stays silent may belong to a Redis that vanished without closing it: after
    ``liveness_seconds`` of silence a read PINGs the tracked connection before trusting the cache.
    Seen on the tracked connection itself (its name in CLIENT LIST), not in server-wide counters that
    other clients of the shared test server also move."""
    name = f"tracked-{uuid4().hex}"
    named = redis.Redis.from_url(redis_url, client_name=name)
    reads = TrackedReads(named, liveness_seconds=0)

    def last_command() -> str:
        [tracked] = [client for client in other.client_list() if client["name"] == name]
        return tracked["cmd"]

    try:
        other.set("k", "1")
        assert reads.read(("GET", "k")) == b"1"
        assert last_command() == "get"
        assert reads.read(("GET", "k")) == b"1"  # from memory, after a PING
        assert last_command() == "ping"
    finally:
        reads.close()
        named.close()
