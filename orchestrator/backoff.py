"""Exponential backoff with jitter: one rule for every wait that repeats (retries, reconnects, slots)."""

from __future__ import annotations

import random


def jittered_backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1, 2, ...): ``base`` doubling per attempt,
    capped at ``cap``, drawn from the upper half so that waiters spread out but never spin."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)
