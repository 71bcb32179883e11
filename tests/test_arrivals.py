"""A batch's outcomes collected on one pub/sub connection of its own (``orchestrator.arrivals``), against a
real redis-server: a result stored before the batch listened is not missed, each call ends once, and a
connection Redis drops loses nothing stored meanwhile."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import Celery, states

from orchestrator.arrivals import Arrivals
from orchestrator.celery_app import make_celery
from orchestrator.config import Settings

RESULT = {"ok": True, "data": {"id": 1}}


@pytest.fixture
def app(redis_url: str) -> Iterator[Celery]:
    app = make_celery(Settings(broker_url=redis_url))
    yield app
    app.close()


def drain(arrivals: Arrivals) -> list[str]:
    ended = []
    while (arrived := arrivals.next(0.5)) is not None:
        ended.append(arrived[0])
    return ended


def test_a_result_stored_before_the_batch_listened_is_not_missed(app: Celery) -> None:
    app.backend.store_result("early", RESULT, states.SUCCESS)
    arrivals = Arrivals(app.backend, ["early", "late"])
    arrivals.listen()
    app.backend.store_result("late", RESULT, states.SUCCESS)
    assert drain(arrivals) == ["early", "late"]
    arrivals.close()


def test_each_call_ends_once_and_a_state_that_is_not_an_outcome_is_not_one(app: Celery) -> None:
    arrivals = Arrivals(app.backend, ["a", "b"])
    arrivals.listen()
    app.backend.store_result("a", None, states.STARTED)
    app.backend.store_result("b", RESULT, states.SUCCESS)
    app.backend.store_result("b", RESULT, states.SUCCESS)  # stored twice (a redelivered chunk): one outcome
    app.backend.store_result("other", RESULT, states.SUCCESS)  # another batch's call
    app.backend.store_result("a", RESULT, states.SUCCESS)
    assert drain(arrivals) == ["b", "a"]
    arrivals.close()


def test_a_connection_redis_drops_is_listened_again_and_loses_nothing_stored_meanwhile(
        app: Celery, redis_client: redis.Redis) -> None:
    arrivals = Arrivals(app.backend, ["before", "while-away", "after"])
    arrivals.listen()
    app.backend.store_result("before", RESULT, states.SUCCESS)
    assert arrivals.next(2) is not None
    redis_client.client_kill_filter(_type="pubsub")
    app.backend.store_result("while-away", RESULT, states.SUCCESS)  # published to nobody
    with pytest.raises(redis.ConnectionError):
        while arrivals.next(0.5) is None:
            pass
    arrivals.close()  # as the batch does before listening again
    app.backend.store_result("after", RESULT, states.SUCCESS)
    assert sorted(drain(arrivals)) == ["after", "while-away"]
    arrivals.close()
