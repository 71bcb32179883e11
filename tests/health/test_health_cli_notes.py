"""What ``mcp-orch health`` adds to a server's line: the "upstream not checked" note qualifies a passing
``tools/list``-only check, and never a server whose check could not even open a session."""

from __future__ import annotations

import pytest

from orchestrator.client import Orchestrator
from orchestrator.health import PROBE_TOOLS_LIST, HealthStatus
from orchestrator.operator.cli import main
from tests.conftest import Stack

pytestmark = pytest.mark.slow

NOTE = "upstream not checked"


def test_the_listing_only_note_is_on_a_passing_check_and_not_on_a_server_without_a_session(
        stack: Stack, client: Orchestrator, capsys: pytest.CaptureFixture[str]) -> None:
    """``probe`` (no health tool) passes its tools/list: healthy, with the note. ``stuck`` (its server never
    answers the handshake) has no session: not healthy, its reason says so (the handshake had not ended, not
    "last error: None"), and no note claims a listing."""
    assert client.health_check("probe").status is HealthStatus.HEALTHY
    stuck = client.health_check("stuck")
    assert stuck.status is not HealthStatus.HEALTHY and stuck.probe == PROBE_TOOLS_LIST
    main(["--config", str(stack.config_path), "health", "probe"])
    assert NOTE in capsys.readouterr().out
    assert main(["--config", str(stack.config_path), "health", "stuck"]) == 1
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("stuck") and "no MCP session" in line and NOTE not in line, line
    assert "handshake had not ended" in line and "None" not in line, line  # why, not "last error: None"
