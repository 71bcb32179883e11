"""Fault knobs and request statistics of one simulator, shared by its HTTP server and its Python handle."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Faults:
    """What the simulator does wrong, applied to every request except ``/__sim__/*``.

    ``latency_ms`` delays every request; ``slow`` maps a path prefix to extra delay in ms for
    matching requests only; ``error_rate`` is the fraction answered ``error_status`` (500 or
    503); ``down`` answers 503 to everything.
    """

    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    down: bool = False
    slow: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be within [0, 1], got {self.error_rate}")
        if self.error_status not in (500, 502, 503, 504):
            raise ValueError(f"error_status must be 500, 502, 503 or 504, got {self.error_status}")
        if any(ms < 0 for ms in self.slow.values()):
            raise ValueError(f"slow delays must be >= 0 ms, got {self.slow}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        """Build from JSON, refusing unknown knobs by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault knobs {unknown}; known: {sorted(known)}")
        return cls(**data)

    def merged(self, changes: dict[str, Any]) -> Faults:
        """These faults with ``changes`` applied (a partial update, as POST/PUT on ``/__sim__/faults``)."""
        return Faults.from_dict({**asdict(self), **changes})

    def delay_ms(self, path: str) -> float:
        return self.latency_ms + sum(ms for prefix, ms in self.slow.items() if path.startswith(prefix))

    def failure_status(self) -> int | None:
        """The status to answer instead of serving, if any."""
        if self.down:
            return 503
        if self.error_rate and random.random() < self.error_rate:
            return self.error_status
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Stats:
    """Requests seen per path and the most requests ever in flight at once (to prove concurrency caps)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._in_flight = 0
        self._max_in_flight = 0

    def enter(self, path: str) -> None:
        with self._lock:
            self._requests[path] += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._max_in_flight = self._in_flight

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self._requests),
                "total": sum(self._requests.values()),
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
            }
