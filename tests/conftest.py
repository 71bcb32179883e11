"""Session-wide real parts: one ``redis-server`` started on a free port for the whole run."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import redis

from tests.support.redis_proc import RedisServer

_databases = itertools.cycle(range(1, 32))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server owned by the test session (never the machine's shared one)."""
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of a flushed database on the session's redis-server, flushed again afterwards."""
    url = f"{redis_server.url}/{next(_databases)}"
    conn = redis.Redis.from_url(url)
    conn.flushdb()
    yield url
    try:
        conn.flushdb()
    except redis.ConnectionError:
        pass
    conn.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A redis-py client on the flushed test database."""
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()
