"""Simulated time: wall-clock epoch seconds that tests can move forward instead of sleeping."""

from __future__ import annotations

import threading
import time


class Clock:
    """``now()`` is real time plus whatever ``advance()`` added."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Jump forward, as if ``seconds`` had passed."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        with self._lock:
            self._offset += seconds
