"""A chunk of a batch on the worker: several calls to one server in one task, run concurrently on the
held session, each a call of its own.

Each call goes through the same guards as a single-call task (``workers.tasks.guarded_steps``) and ends
with its own outcome stored under its own task id, so the client waits for it, counts it and settles it
exactly as a single call. The chunk's task thread schedules its calls: it opens them in order, at most
``CHUNK_WIDTH`` (or the server's concurrency cap) at once and at most ``CALLS_IN_FLIGHT`` in the
process (``WorkerRuntime.call_slots``), runs the guards, hands each call's waits to the session loop as
coroutines (``workers.steps``), and resumes a call when its wait ends; no call holds a thread. Just
before a wave of calls opens, one round trip reads which of them a client revoked
(``orchestrator.revocation``), and those never start. The outcomes of the calls that ended in one
turn are stored in one round trip (``workers.outcomes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from orchestrator.revocation import revoked_among
from orchestrator.unreachable import LIBRARY_ERRORS
from workers.runtime import WorkerRuntime
from workers.sessions import RUN_GRACE_SECONDS, SessionManager
from workers.steps import OnLoop, Settled, Steps, resume

log = logging.getLogger("workers.chunks")

CHUNK_WIDTH = 64
"""Calls of one chunk in flight at once on its worker; the others wait their turn (not yet started). As
wide as the largest adaptive chunk: the more requests a held session has in flight, the less CPU each
costs the worker and the MCP server (measured: bench/bench_batch.py, 16 -> 64 cut both)."""

ChunkCall = dict[str, Any]
"""One call of a chunk as the message carries it: ``id``, ``tool``, ``params``, ``deadline``."""


def chunk_width(cap: int | None) -> int:
    """How many of a chunk's calls run at once: ``CHUNK_WIDTH``, or the server's cap when tighter."""
    return min(CHUNK_WIDTH, cap) if cap else CHUNK_WIDTH


@dataclass(frozen=True)
class EndedCall:
    """A chunk's call that ended: how (its value, None when revoked before it started, or its error), and
    how long it took from when it was opened (seconds)."""

    call: ChunkCall
    settled: Settled
    duration: float


@dataclass(eq=False)
class _Running:
    """A call in flight: its steps, when it was opened, and its current wait on the loop: which one (``step``,
    so that a wake-up of a wait given up on is told from the current one), its timeout, when it overran, and
    its task (set on the loop)."""

    call: ChunkCall
    steps: Steps[Any]
    opened: float = field(default_factory=time.perf_counter)
    step: int = 0
    timeout: float = 0.0
    overrun_at: float = math.inf
    task: asyncio.Task[None] | None = None


Woken = queue.SimpleQueue[tuple[_Running, int, Settled]]
"""Where the session loop hands back each wait that ended: its call, which wait, and how it ended."""


def run_chunk(runtime: WorkerRuntime, calls: list[ChunkCall], steps: Callable[[ChunkCall, bool], Steps[Any]],
              ended: Callable[[list[EndedCall]], None], *, width: int, start_by: float | None,
              now: Callable[[], float]) -> None:
    """Run ``calls`` in order, at most ``width`` in flight, and return once every one has ended and been
    handed to ``ended`` (the calls that ended in one turn at once). ``steps(call, revoked)`` is the call's
    guarded steps; ``revoked`` is true for a call a client revoked, or any call once ``start_by`` (the
    batch deadline) has passed. The waits of one turn go to the loop in one hand-over."""
    manager, slots = runtime.sessions(), runtime.call_slots
    pending = deque(calls)
    running: set[_Running] = set()
    woken: Woken = queue.SimpleQueue()
    try:
        while pending or running:
            resumed: list[tuple[_Running, Settled]] = []
            wanted = min(width - len(running), len(pending))
            wave = [pending.popleft() for _ in range(_take(slots, wanted, wait=not running))]
            if wave:
                revoked = _revoked(runtime, [call["id"] for call in wave])
                late = start_by is not None and now() >= start_by
                for call in wave:
                    run = _Running(call, steps(call, late or call["id"] in revoked))
                    running.add(run)
                    resumed.append((run, Settled()))
            resumed += _woken(woken, running, manager, block=not wave)  # no call opened: wait for one to end
            done: list[EndedCall] = []
            while resumed:
                waits: list[tuple[_Running, OnLoop]] = []
                for run, sent in resumed:
                    step = resume(run.steps, sent)
                    if isinstance(step, OnLoop):
                        waits.append((run, step))
                    else:
                        running.discard(run)
                        slots.release()
                        done.append(EndedCall(run.call, step, time.perf_counter() - run.opened))
                resumed = _hand_to_loop(manager, waits, woken)
            if done:
                ended(done)
    finally:
        for _ in running:  # only when the scheduler itself failed: the process's slots stay whole
            slots.release()


def _take(slots: threading.BoundedSemaphore, wanted: int, *, wait: bool) -> int:
    """Take up to ``wanted`` of the process's call slots; waits for the first only when ``wait`` (the chunk
    has no call in flight, so none of its own can free one)."""
    taken = 0
    while taken < wanted and slots.acquire(blocking=wait and taken == 0):
        taken += 1
    return taken


def _hand_to_loop(manager: SessionManager, waits: list[tuple[_Running, OnLoop]],
                  woken: Woken) -> list[tuple[_Running, Settled]]:
    """Start ``waits`` on the session loop, all in one hand-over; those the loop cannot take (it closed: the
    worker is stopping) come back with the error, to be thrown into their calls as ``drive`` does."""
    if not waits:
        return []
    for run, step in waits:
        run.step += 1
        run.timeout, run.overrun_at = step.timeout, time.monotonic() + step.timeout + RUN_GRACE_SECONDS
    try:
        manager.call_soon(_start, [(run, run.step, step.awaitable) for run, step in waits], woken)
    except Exception as exc:  # boundary: each call ends with its own error
        for _, step in waits:
            step.awaitable.close()
        return [(run, Settled(error=exc)) for run, _ in waits]
    return []


def _start(waits: list[tuple[_Running, int, Coroutine[Any, Any, Any]]], woken: Woken) -> None:
    """On the loop: a task per wait."""
    loop = asyncio.get_running_loop()
    for run, step, awaitable in waits:
        run.task = loop.create_task(_settle(run, step, awaitable, woken))


async def _settle(run: _Running, step: int, awaitable: Coroutine[Any, Any, Any], woken: Woken) -> None:
    """On the loop: await one wait and hand back how it ended (a cancelled one: it overran)."""
    try:
        sent = Settled(value=await awaitable)
    except asyncio.CancelledError:
        sent = Settled(error=SessionManager.overran(run.timeout))
    except Exception as exc:  # thrown into the call, which turns it into its own outcome
        sent = Settled(error=exc)
    woken.put((run, step, sent))


def _cancel(run: _Running) -> None:
    """On the loop: cancel the task of a wait the scheduler gave up on."""
    if run.task is not None:
        run.task.cancel()


def _woken(woken: Woken, running: set[_Running], manager: SessionManager, *,
           block: bool) -> list[tuple[_Running, Settled]]:
    """The calls whose wait on the loop ended, with how: at least one if ``block``, then all that ended
    meanwhile. A wait still running ``RUN_GRACE_SECONDS`` after its timeout is given up on at once (its task
    is cancelled, its late wake-up ignored) and its call resumed with ``DeadlineExceeded``."""
    found: list[tuple[_Running, Settled]] = []
    while block and running and not found:
        soonest = min(run.overrun_at for run in running)
        try:
            found += _current([woken.get(timeout=max(soonest - time.monotonic(), 0.0))])
        except queue.Empty:
            found += _given_up(running, manager)
    late: list[tuple[_Running, int, Settled]] = []
    while True:
        try:
            late.append(woken.get_nowait())
        except queue.Empty:
            return found + _current(late)


def _current(items: list[tuple[_Running, int, Settled]]) -> list[tuple[_Running, Settled]]:
    """The wake-ups of the waits still awaited (a wait given up on has a newer step number by then)."""
    return [(run, sent) for run, step, sent in items if step == run.step]


def _given_up(running: set[_Running], manager: SessionManager) -> list[tuple[_Running, Settled]]:
    """The calls whose wait overran, each resumed with ``DeadlineExceeded``; their tasks are cancelled."""
    overran = [run for run in running if run.overrun_at <= time.monotonic()]
    for run in overran:
        run.step, run.overrun_at = run.step + 1, math.inf
        with contextlib.suppress(Exception):  # a closed loop has no task left to cancel
            manager.call_soon(_cancel, run)
    return [(run, Settled(error=SessionManager.overran(run.timeout))) for run in overran]


def _revoked(runtime: WorkerRuntime, task_ids: list[str]) -> set[str]:
    """The ids a client revoked; none when Redis cannot be asked (each call's own guards meet that)."""
    try:
        return revoked_among(runtime.redis, task_ids)
    except LIBRARY_ERRORS as exc:
        log.warning("could not read revocations of %d calls: %s", len(task_ids), type(exc).__name__)
        return set()
