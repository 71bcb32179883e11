"""The scheduler of a chunk's calls (``workers.chunks.run_chunk``) on a real session loop thread and a real
redis-server: calls in order and at most ``width`` in flight, each ended once; revoked calls never start;
a wait that never ends is given up on after its timeout plus grace, even one that ignores cancellation.

The calls here are stand-in generators of waits (``workers.steps``), not MCP calls: what is under test is
the scheduling, which the worker tests (tests/test_batch_chunks.py) cover end to end."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from orchestrator.errors import DeadlineExceeded
from orchestrator.keys import revoked_key
from workers.chunks import ChunkCall, EndedCall, run_chunk
from workers.sessions import RUN_GRACE_SECONDS, SessionManager
from workers.steps import OnLoop, Steps


@dataclass
class LoopOnly:
    """What ``run_chunk`` uses of a worker's runtime: the session loop (no session is opened), Redis and the
    process's call slots."""

    redis: redis.Redis
    manager: SessionManager
    call_slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(256))

    def sessions(self) -> SessionManager:
        return self.manager


@pytest.fixture
def runtime(redis_client: redis.Redis) -> Iterator[LoopOnly]:
    manager = SessionManager()
    yield LoopOnly(redis_client, manager)
    manager.close()


def chunk(n: int) -> list[ChunkCall]:
    return [{"id": f"call-{i}", "tool": "t", "params": {}, "deadline": time.time() + 30} for i in range(n)]


def run(runtime: LoopOnly, calls: list[ChunkCall], steps: Any, width: int = 64) -> list[EndedCall]:
    ended: list[EndedCall] = []
    run_chunk(runtime, calls, steps, ended.extend, width=width, start_by=None, now=time.time)  # type: ignore[arg-type]
    return ended


def test_calls_open_in_order_at_most_width_in_flight_and_each_ends_once(runtime: LoopOnly) -> None:
    flight = {"now": 0, "max": 0}
    opened: list[str] = []

    async def hold() -> str:
        flight["now"] += 1
        flight["max"] = max(flight["max"], flight["now"])
        await asyncio.sleep(0.05)
        flight["now"] -= 1
        return "held"

    def steps(call: ChunkCall, revoked: bool) -> Steps[str]:
        opened.append(call["id"])
        first = yield OnLoop(hold(), 5)
        second = yield OnLoop(hold(), 5)  # a call may wait more than once
        return f"{call['id']}: {first}, {second}"

    calls = chunk(20)
    ended = run(runtime, calls, steps, width=4)
    assert opened == [call["id"] for call in calls]
    assert flight["max"] == 4
    assert sorted(e.settled.value for e in ended) == sorted(f"{c['id']}: held, held" for c in calls)
    assert runtime.call_slots.acquire(blocking=False)  # every slot given back: 256 free again
    assert [runtime.call_slots.acquire(blocking=False) for _ in range(255)] == [True] * 255


def test_chunks_running_at_once_keep_the_process_to_its_call_slots_and_all_end(runtime: LoopOnly) -> None:
    """Three chunks of 10 on three task threads, 4 slots in the process: never more than 4 calls in flight,
    and a chunk with none in flight waits for a slot another chunk frees."""
    runtime.call_slots = threading.BoundedSemaphore(4)
    flight = {"now": 0, "max": 0}

    async def hold() -> None:
        flight["now"] += 1
        flight["max"] = max(flight["max"], flight["now"])
        await asyncio.sleep(0.02)
        flight["now"] -= 1

    def steps(call: ChunkCall, revoked: bool) -> Steps[str]:
        yield OnLoop(hold(), 5)
        return call["id"]

    ended: list[list[EndedCall]] = [[], [], []]
    threads = [threading.Thread(target=lambda mine=mine: mine.extend(run(runtime, chunk(10), steps)))
               for mine in ended]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [len(mine) for mine in ended] == [10, 10, 10]
    assert flight["max"] == 4


def test_a_revoked_call_is_opened_as_revoked_and_the_others_are_not(runtime: LoopOnly) -> None:
    runtime.redis.set(revoked_key("call-1"), 1)
    seen: dict[str, bool] = {}

    def steps(call: ChunkCall, revoked: bool) -> Steps[None]:
        seen[call["id"]] = revoked
        if not revoked:
            yield OnLoop(asyncio.sleep(0), 5)

    run(runtime, chunk(3), steps)
    assert seen == {"call-0": False, "call-1": True, "call-2": False}


def test_an_error_of_a_wait_is_thrown_into_its_call(runtime: LoopOnly) -> None:
    async def refuse() -> None:
        raise DeadlineExceeded("refused", server="s")

    def steps(call: ChunkCall, revoked: bool) -> Steps[str]:
        try:
            yield OnLoop(refuse(), 5)
        except DeadlineExceeded as exc:
            return f"caught {exc.message}"
        return "not thrown"

    (ended,) = run(runtime, chunk(1), steps)
    assert ended.settled.value == "caught refused"


def test_a_wait_that_ignores_its_timeout_and_cancellation_is_given_up_after_the_grace(runtime: LoopOnly) -> None:
    """Its call ends DeadlineExceeded one grace after its timeout; the chunk's other call is not held up."""
    async def stubborn() -> None:
        for _ in range(3):
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                continue

    def steps(call: ChunkCall, revoked: bool) -> Steps[str]:
        if call["id"] == "call-0":
            yield OnLoop(stubborn(), 0.2)
        else:
            yield OnLoop(asyncio.sleep(0.05), 5)
        return "ended"

    started = time.monotonic()
    ended = {e.call["id"]: e for e in run(runtime, chunk(2), steps)}
    took = time.monotonic() - started
    assert ended["call-1"].settled.value == "ended"
    error = ended["call-0"].settled.error
    assert isinstance(error, DeadlineExceeded) and "did not finish within 0.20s" in error.message
    assert 0.2 + RUN_GRACE_SECONDS <= took < 0.2 + RUN_GRACE_SECONDS + 2
