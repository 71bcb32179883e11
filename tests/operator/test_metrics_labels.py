"""Metric labels stay bounded whatever names callers send."""

from __future__ import annotations

import uuid

import pytest
import redis

from orchestrator.client import Orchestrator
from orchestrator.errors import ToolReturnedError
from orchestrator.metrics import UNLISTED_TOOL, read_call_stats
from orchestrator.operator.processes import wait_until
from orchestrator.results import ToolResult
from tests.conftest import Stack
from workers.metrics import task_outcome

pytestmark = pytest.mark.slow


def test_calls_to_tools_the_server_does_not_list_are_counted_under_one_label(stack: Stack,
                                                                            client: Orchestrator) -> None:
    """Three misspelled tool names add to one ``(unlisted)`` counter on the worker, never a label each."""
    client.call_tool("probe", "echo", {"text": "warm"})  # the worker's session has listed its tools
    typos = [f"ech{uuid.uuid4().hex[:6]}" for _ in range(3)]
    conn = redis.Redis.from_url(stack.broker_url)
    before = read_call_stats(conn, ["probe"])["probe"]
    unlisted_before = before[UNLISTED_TOOL].calls if UNLISTED_TOOL in before else 0
    for typo in typos:
        with pytest.raises(ToolReturnedError):
            client.call_tool("probe", typo, {})

    def counted() -> bool:  # the worker counts after it stored the result: the client may be first
        stats = read_call_stats(conn, ["probe"])["probe"]
        return UNLISTED_TOOL in stats and stats[UNLISTED_TOOL].calls >= unlisted_before + 3

    wait_until(counted, 10, "the worker to count the three calls")
    after = read_call_stats(conn, ["probe"])["probe"]
    assert not set(typos) & set(after), "a misspelled name became a label"
    assert after[UNLISTED_TOOL].calls == unlisted_before + 3
    assert after[UNLISTED_TOOL].failures >= 3
    assert "echo" in after


def test_upstream_unavailable_results_are_counted_under_their_own_error_label() -> None:
    """A tool result tagged ``[upstream_unavailable]`` is counted as UpstreamUnavailable, other tool errors as
    ToolReturnedError: the two read differently on a dashboard (the upstream is down vs the call was wrong)."""
    def result(text: str) -> dict[str, object]:
        return ToolResult(server="sabnzbd", tool="sabnzbd_get_queue", ok=False, is_error=True,
                          content=[{"type": "text", "text": text}]).model_dump(mode="json")

    assert task_outcome(result("[upstream_unavailable] SABnzbd: connection refused"), "SUCCESS") == (
        False, 1, "UpstreamUnavailable")
    assert task_outcome(result("[upstream_not_found] no job nzo_x"), "SUCCESS") == (False, 1, "ToolReturnedError")
