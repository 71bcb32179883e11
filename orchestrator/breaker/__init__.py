"""The circuit breaker family: the Redis-backed breaker (``circuit``), its per-server policy
(``policy``) and the Lua scripts that make each decision atomic (``lua/``).

Each decision is one Lua script: invariant 7 of docs/ARCHITECTURE.md."""

from orchestrator.breaker.circuit import Admission, BreakerBoard, BreakerSnapshot, BreakerState, CircuitBreaker
from orchestrator.breaker.policy import BreakerPolicy

__all__ = ["Admission", "BreakerBoard", "BreakerPolicy", "BreakerSnapshot", "BreakerState", "CircuitBreaker"]
