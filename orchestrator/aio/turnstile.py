"""Spread the synchronous start of many calls, and any long job, over event-loop turns.

A coroutine runs until its first real wait in the loop turn it is started in, so
``asyncio.gather`` of 10,000 ``call_tool`` coroutines validates, prepares and queues all 10,000
calls in one turn (about 2 s during which nothing else on the loop runs). The turnstile lets
calls through while this turn's share of time (``TURN_BUDGET_SECONDS``) lasts; later ones wait
in order and are let through a few per turn, as many as fitted in the last turn's budget.
``TurnBudget`` does the same for one coroutine's long loop (a batch's 10,000 validations).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

TURN_BUDGET_SECONDS = 0.003
"""Time per loop turn the calls starting in it may take before the rest wait for later turns."""
MIN_PER_TURN = 8
"""Calls let through per turn at least, however slow the last turn was."""


class Turnstile:
    """Admits calls to their synchronous start a turn's budget at a time, first come first served."""

    def __init__(self, budget: float = TURN_BUDGET_SECONDS) -> None:
        self._budget = budget
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._opened: float | None = None
        """``perf_counter`` when the first call of this turn went through; None before any did."""
        self._passed = 0

    async def enter(self) -> bool:
        """Return when this call may start; True when it had to wait for a later turn."""
        if not self._waiting and (self._opened is None or time.perf_counter() - self._opened < self._budget):
            self._pass()
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # let through, then cancelled: hand its place on
                self._let_through(1)
            raise
        self._pass()
        return True

    def _pass(self) -> None:
        if self._opened is None:
            self._opened = time.perf_counter()
            self._passed = 0
            asyncio.get_running_loop().call_soon(self._next_turn)
        self._passed += 1

    def _next_turn(self) -> None:
        """(next loop turn) Let through as many waiting calls as fitted in the last turn's budget."""
        spent = time.perf_counter() - (self._opened or 0.0)
        self._opened = None
        self._let_through(max(MIN_PER_TURN, int(self._passed * self._budget / max(spent, 1e-6))))

    def _let_through(self, count: int) -> None:
        while count and self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():  # a cancelled waiter gave its place up already
                turn.set_result(None)
                count -= 1


class TurnBudget:
    """One coroutine's long loop, a turn's share of time at a time: ``await budget.pace()`` after each
    step yields to the loop once this turn's steps took ``budget`` seconds."""

    def __init__(self, budget: float = TURN_BUDGET_SECONDS) -> None:
        self._budget = budget
        self._since = time.perf_counter()
        self.yielded = False
        """Whether the loop went on in a later turn at least once."""

    async def pace(self) -> None:
        if time.perf_counter() - self._since >= self._budget:
            await asyncio.sleep(0)
            self.yielded = True
            self._since = time.perf_counter()
