"""A guarded call written once, run two ways: as a generator of the steps it awaits on the session loop.

A call's guards (deny-list, redelivery, deadline, concurrency slot, breaker, execution marker) are
plain code around the few things that must happen on the session loop (waiting for the session,
the attempts). Written as a generator that yields an ``OnLoop`` for each of those and gets its
result (or its exception) back, the same guards serve a single-call task, which waits for each step
on its own thread (``drive``), and a chunk, whose task thread keeps 64 calls in flight on the loop
without a thread per call (``workers.chunks``). Context managers in the generator span its steps,
so a slot or a breaker admission is released however the call ends.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from workers.sessions import SessionManager

T = TypeVar("T")


@dataclass(frozen=True)
class OnLoop:
    """A coroutine a call waits for on the session loop, and for at most how long (seconds)."""

    awaitable: Coroutine[Any, Any, Any]
    timeout: float


Steps = Generator[OnLoop, Any, T]
"""A guarded call: yields what it awaits on the loop, is sent the result (or thrown the error), returns
its value."""


@dataclass(frozen=True)
class Settled:
    """What a step or a whole call ended with: a value, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None


def resume(steps: Steps[T], sent: Settled) -> OnLoop | Settled:
    """Hand ``sent`` to the call: the next step it awaits, or how the whole call ended."""
    try:
        return steps.send(sent.value) if sent.error is None else steps.throw(sent.error)
    except StopIteration as stop:
        return Settled(value=stop.value)
    except Exception as exc:  # the call's own error (``errors_for_caller`` gives it our type)
        return Settled(error=exc)


def drive(steps: Steps[T], manager: SessionManager) -> T:
    """Run a call on this thread, waiting for each of its steps on the session loop; its value or its error."""
    sent = Settled()
    while isinstance(step := resume(steps, sent), OnLoop):
        try:
            sent = Settled(value=manager.run(step.awaitable, step.timeout))
        except Exception as exc:  # thrown into the call, which turns it into its own outcome
            sent = Settled(error=exc)
    if step.error is not None:
        raise step.error
    return step.value
