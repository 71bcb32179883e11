"""A chunk of a batch on the worker: several calls to one server in one task, run concurrently on the
held session, each a call of its own.

Each call goes through the same guards as a single-call task (``workers.tasks.guarded_steps``) and ends
with its own outcome stored under its own task id, so the client waits for it, counts it and settles it
exactly as a single call. The chunk's task thread schedules its calls: it opens them in order, at most
``CHUNK_WIDTH`` (or the server's concurrency cap) at once, runs the guards, hands each call's waits to
the session loop as coroutines (``workers.steps``), and resumes a call when its wait ends; no call
holds a thread. Just before a wave of calls opens, one round trip reads which of them a client revoked
(``orchestrator.revocation``), and those never start. The outcomes of the calls that ended in one
turn are stored in one round trip (``workers.outcomes``).
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
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
    """A call in flight: its steps, when it was opened, and when its current wait on the loop overran."""

    call: ChunkCall
    steps: Steps[Any]
    opened: float = field(default_factory=time.perf_counter)
    timeout: float = 0.0
    overrun_at: float = 0.0
    future: Future[Any] | None = None


def run_chunk(runtime: WorkerRuntime, calls: list[ChunkCall], steps: Callable[[ChunkCall, bool], Steps[Any]],
              ended: Callable[[list[EndedCall]], None], *, width: int, start_by: float | None,
              now: Callable[[], float]) -> None:
    """Run ``calls`` in order, at most ``width`` in flight, and return once every one has ended and been
    handed to ``ended`` (the calls that ended in one turn at once). ``steps(call, revoked)`` is the call's
    guarded steps; ``revoked`` is true for a call a client revoked, or any call once ``start_by`` (the
    batch deadline) has passed."""
    manager = runtime.sessions()
    pending = deque(calls)
    running: set[_Running] = set()
    woken: queue.SimpleQueue[_Running] = queue.SimpleQueue()
    while pending or running:
        done: list[EndedCall] = []
        opened: list[tuple[_Running, Settled]] = []
        if pending and len(running) < width:
            wave = [pending.popleft() for _ in range(min(width - len(running), len(pending)))]
            revoked = _revoked(runtime, [call["id"] for call in wave])
            late = start_by is not None and now() >= start_by
            for call in wave:
                run = _Running(call, steps(call, late or call["id"] in revoked))
                running.add(run)
                opened.append((run, Settled()))
        idle = not opened and (not pending or len(running) >= width)
        resumed = [(run, Settled.of(run.future, run.timeout)) for run in _woken(woken, running, block=idle)
                   if run.future is not None]
        for run, sent in opened + resumed:
            if (end := _step(run, sent, manager, woken)) is not None:
                running.discard(run)
                done.append(end)
        if done:
            ended(done)


def _step(run: _Running, sent: Settled, manager: SessionManager,
          woken: queue.SimpleQueue[_Running]) -> EndedCall | None:
    """Resume ``run`` with ``sent``: its next wait goes to the session loop, or it ended (returned). A wait the
    loop cannot take (it closed: the worker is stopping) is thrown back into the call, as ``drive`` does."""
    while isinstance(step := resume(run.steps, sent), OnLoop):
        try:
            run.future = manager.submit(step.awaitable)
        except Exception as exc:  # boundary: the call ends with its own error
            step.awaitable.close()
            sent = Settled(error=exc)
            continue
        run.timeout, run.overrun_at = step.timeout, time.monotonic() + step.timeout + RUN_GRACE_SECONDS
        run.future.add_done_callback(lambda _: woken.put(run))
        return None
    return EndedCall(run.call, step, time.perf_counter() - run.opened)


def _woken(woken: queue.SimpleQueue[_Running], running: set[_Running], *, block: bool) -> list[_Running]:
    """The calls whose wait on the loop ended: at least one if ``block`` (a wait that overran its timeout is
    cancelled, which wakes its call), then all that ended meanwhile."""
    found: list[_Running] = []
    while block and running and not found:
        soonest = min(run.overrun_at for run in running)
        try:
            found.append(woken.get(timeout=max(soonest - time.monotonic(), 0.0)))
        except queue.Empty:
            for run in running:
                if run.future is not None and run.overrun_at <= time.monotonic():
                    run.future.cancel()
    while True:
        try:
            found.append(woken.get_nowait())
        except queue.Empty:
            return found


def _revoked(runtime: WorkerRuntime, task_ids: list[str]) -> set[str]:
    """The ids a client revoked; none when Redis cannot be asked (each call's own guards meet that)."""
    try:
        return revoked_among(runtime.redis, task_ids)
    except LIBRARY_ERRORS as exc:
        log.warning("could not read revocations of %d calls: %s", len(task_ids), type(exc).__name__)
        return set()
