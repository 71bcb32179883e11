"""What the breaker tests share: a hand-moved clock and the store fixture (real Redis and fakeredis)."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
import redis


class Clock:
    """A clock the test moves by hand (epoch seconds)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["redis", "fakeredis"])
def store(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """The same suite against a real Redis and against fakeredis."""
    if request.param == "redis":
        yield request.getfixturevalue("redis_client")
    else:
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        yield client
        client.close()
