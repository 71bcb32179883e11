"""The turnstile spreads the synchronous start of many calls over loop turns, in order, whatever is cancelled."""

from __future__ import annotations

import asyncio

from orchestrator.aio.turnstile import MIN_PER_TURN, Turnstile


def test_calls_past_a_turns_budget_start_in_later_turns_in_the_order_they_came() -> None:
    """With no budget only the first call and then ``MIN_PER_TURN`` per turn go through; order is kept."""
    async def main() -> tuple[list[int], list[int]]:
        gate, passed, at_first_turn = Turnstile(budget=0.0), [], []

        async def call(index: int) -> None:
            await gate.enter()
            passed.append(index)

        calls = [asyncio.create_task(call(i)) for i in range(50)]
        await asyncio.sleep(0)  # one turn: every call's first step ran
        at_first_turn = list(passed)
        await asyncio.gather(*calls)
        return at_first_turn, passed

    first, passed = asyncio.run(main())
    assert first == [0] and passed == list(range(50))


def test_a_waiting_call_that_is_cancelled_gives_its_place_up_and_the_others_still_start() -> None:
    """Cancelling calls while they wait (before or after being let through) never stalls the rest."""
    async def main() -> list[int]:
        gate, passed = Turnstile(budget=0.0), []

        async def call(index: int) -> None:
            await gate.enter()
            passed.append(index)

        calls = [asyncio.create_task(call(i)) for i in range(40)]
        await asyncio.sleep(0)
        for index in range(1, 40, 3):
            calls[index].cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # a let-through turn has run: cancel some of those too
        for index in range(2, 2 + MIN_PER_TURN):
            calls[index].cancel()
        await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
        return passed

    passed = asyncio.run(main())
    assert passed == sorted(passed) and 39 in passed and len(passed) >= 40 - 14 - MIN_PER_TURN
