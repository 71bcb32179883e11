"""The public surface of ``orchestrator`` is designed and pinned."""

from __future__ import annotations

import pytest

import orchestrator
from orchestrator.config import DEFAULTS_FILE

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


def test_the_sync_client_closes_itself_at_the_end_of_a_with_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """``with Orchestrator(...) as client:`` works like ``async with AsyncOrchestrator()``: the block gets the
    client, which is closed when the block ends, also when it raises (the error goes on)."""
    closed: list[orchestrator.Orchestrator] = []
    close = orchestrator.Orchestrator.close
    monkeypatch.setattr(orchestrator.Orchestrator, "close", lambda self: (closed.append(self), close(self)))
    with orchestrator.Orchestrator(orchestrator.load_settings(DEFAULTS_FILE)) as client:
        assert isinstance(client, orchestrator.Orchestrator)
    assert closed == [client]
    with pytest.raises(KeyError), orchestrator.Orchestrator(orchestrator.load_settings(DEFAULTS_FILE)) as failing:
        raise KeyError("inside the block")
    assert closed == [client, failing]
