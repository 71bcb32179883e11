"""The one backoff rule (retries, reconnects, slot waits): doubling, capped, jittered in the upper half."""

from __future__ import annotations

import pytest

from orchestrator.backoff import jittered_backoff

DRAWS = 400
"""Enough draws that the lowest and highest land within 5% of the range's ends (chance of a miss ~1e-9)."""


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)])
def test_the_wait_doubles_per_attempt_up_to_the_cap_and_is_drawn_from_the_upper_half(attempt: int,
                                                                                     ceiling: float) -> None:
    """base 0.5 s, cap 3 s: waits lie in [ceiling/2, ceiling] and cover that range."""
    waits = [jittered_backoff(attempt, 0.5, 3.0) for _ in range(DRAWS)]
    assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
    assert min(waits) < ceiling / 2 * 1.05 and max(waits) > ceiling * 0.95, "the jitter should span the upper half"
