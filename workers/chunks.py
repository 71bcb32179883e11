"""A chunk of a batch on the worker: several calls to one server in one task, run concurrently on the
held session, each a call of its own.

Each call goes through the same guards as a single-call task (``workers.tasks.guarded_call``) on one of
the process's call threads and ends with its own outcome stored under its own task id, so the client
waits for it, counts it and settles it exactly as a single call. Calls start in order, at most
``CHUNK_WIDTH`` (or the server's concurrency cap) at once, each on a free call thread; just before a
wave of calls starts, one round trip reads which of them a client revoked (``orchestrator.revocation``),
and those never start. Outcomes are stored many per round trip (``workers.outcomes``).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from orchestrator.revocation import revoked_among
from orchestrator.unreachable import LIBRARY_ERRORS
from workers.runtime import WorkerRuntime

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


def run_chunk(runtime: WorkerRuntime, calls: list[ChunkCall], run: Callable[[ChunkCall, bool], None], *,
              width: int, start_by: float | None, now: Callable[[], float]) -> None:
    """Start ``calls`` in order on the runtime's call threads, at most ``width`` at a time, and return once
    every one has ended. ``run(call, revoked)`` runs one call and stores its outcome; ``revoked`` is true
    for a call a client revoked, or any call once ``start_by`` (the batch deadline) has passed."""
    window = threading.BoundedSemaphore(width)
    pending = deque(calls)
    running: list[Future[None]] = []

    def ended(_: Future[None]) -> None:
        window.release()
        runtime.call_slots.release()

    while pending:
        _take_slot(window, runtime.call_slots, blocking=True)
        wave = [pending.popleft()]
        while pending and _take_slot(window, runtime.call_slots, blocking=False):
            wave.append(pending.popleft())
        revoked = _revoked(runtime, [call["id"] for call in wave])
        late = start_by is not None and now() >= start_by
        for call in wave:
            future = runtime.call_threads.submit(run, call, late or call["id"] in revoked)
            future.add_done_callback(ended)
            running.append(future)
    for future in running:
        future.result()


def _take_slot(window: threading.BoundedSemaphore, call_slots: threading.BoundedSemaphore, *, blocking: bool) -> bool:
    """Room for one more call: in the chunk's window and on a free call thread of the process, so that a call
    starts as soon as it is submitted (its revocation was read just before)."""
    if not window.acquire(blocking):
        return False
    if call_slots.acquire(blocking):
        return True
    window.release()
    return False


def _revoked(runtime: WorkerRuntime, task_ids: list[str]) -> set[str]:
    """The ids a client revoked; none when Redis cannot be asked (each call's own guards meet that)."""
    try:
        return revoked_among(runtime.redis, task_ids)
    except LIBRARY_ERRORS as exc:
        log.warning("could not read revocations of %d calls: %s", len(task_ids), type(exc).__name__)
        return set()
