"""The public surface of ``orchestrator`` is designed and pinned."""

from __future__ import annotations

import orchestrator

EXPECTED = [
    "AsyncOrchestrator", "BrokerUnavailable", "CallCancelled", "CallFailed", "CircuitBreakerOpenError",
    "ConfigError", "DeadlineExceeded", "InvalidCall", "NotEnqueued", "Orchestrator", "OrchestratorError", "Outcome",
    "OutcomeUnknown", "ServerConfig", "ServerUnavailable", "Settings", "ToolResult", "ToolReturnedError",
    "UnknownServer", "UpstreamUnavailable", "load_settings",
]


def test_the_public_names_are_exactly_the_designed_ones_in_sorted_order() -> None:
    """Adding or removing a public name is a deliberate change to this list."""
    assert orchestrator.__all__ == EXPECTED == sorted(EXPECTED)


def test_every_public_name_is_importable_from_the_package() -> None:
    """``from orchestrator import X`` works for every exported name."""
    assert all(getattr(orchestrator, name) is not None for name in orchestrator.__all__)
