"""The shared circuit breaker where it acts: the client before enqueue, the worker before each call."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from orchestrator.client import Orchestrator
from orchestrator.errors import CircuitBreakerOpenError, InvalidCall, ToolReturnedError, UpstreamUnavailable
from orchestrator.operator.processes import wait_until
from orchestrator.results import ToolResult
from orchestrator.wire import CALL_TOOL
from tests.conftest import Stack
from tests.support.procs import REPO

pytestmark = pytest.mark.slow


BREAKERS = ("probe", "flaky", "flaky_attempts")


@pytest.fixture
def client(stack: Stack) -> Iterator[Orchestrator]:
    orchestrator = stack.client()
    for server in BREAKERS:
        orchestrator.reset_breaker(server)
    yield orchestrator
    for server in BREAKERS:
        orchestrator.reset_breaker(server)
    orchestrator.close()


def test_open_breaker_refuses_before_enqueue(stack: Stack, client: Orchestrator) -> None:
    """With the breaker forced open the client raises CircuitBreakerOpenError and enqueues nothing."""
    client.force_breaker("probe", "open")
    conn = redis.Redis.from_url(stack.broker_url)
    before = conn.llen("mcp.probe")
    with pytest.raises(CircuitBreakerOpenError) as caught:
        client.call_tool("probe", "echo", {"text": "x"})
    assert caught.value.server == "probe"
    assert conn.llen("mcp.probe") == before


def test_worker_checks_the_breaker_again_before_calling(client: Orchestrator) -> None:
    """A message that reaches the worker while the breaker is open is refused there, not run."""
    client.force_breaker("probe", "open")
    deadline = time.time() + 10
    handle = client.app.send_task(CALL_TOOL, kwargs={"server": "probe", "tool": "whoami", "params": {},
                                                     "deadline": deadline}, queue="mcp.probe",
                                  expires=datetime.fromtimestamp(deadline, tz=UTC))
    with pytest.raises(CircuitBreakerOpenError):
        handle.get(timeout=10)


def test_upstream_failures_trip_the_breaker_and_a_success_after_the_wait_closes_it(client: Orchestrator) -> None:
    """Upstream-unavailable errors open the breaker within its threshold; after the open wait a trial closes it."""
    for _ in range(3):  # failure_threshold = 3 failed calls
        with pytest.raises(UpstreamUnavailable):
            client.call_tool("flaky", "upstream_down")
    assert client.breaker_states()["flaky"].state == "open"
    with pytest.raises(CircuitBreakerOpenError) as refused:
        client.call_tool("flaky", "echo", {"text": "x"})
    assert 0 < refused.value.retry_after <= 1.5
    wait_until(lambda: client.breaker_states()["flaky"].retry_after in (None, 0), 5, "the open wait to pass")
    assert client.call_tool("flaky", "echo", {"text": "trial"}).ok
    assert client.breaker_states()["flaky"].state == "closed"


def test_the_breaker_opens_after_failure_threshold_calls_however_often_each_was_retried(client: Orchestrator) -> None:
    """A read-only tool retried 3 times per call counts once per call: with failure_threshold = 3 the breaker
    stays closed after 2 failed calls (6 attempts) and opens on the 3rd call."""
    for failed_calls in (1, 2):
        with pytest.raises(UpstreamUnavailable) as caught:
            client.call_tool("flaky", "upstream_down")
        assert caught.value.result["attempts"] == 3
        snapshot = client.breaker_states()["flaky"]
        assert snapshot.state == "closed" and snapshot.failures == failed_calls
    with pytest.raises(UpstreamUnavailable):
        client.call_tool("flaky", "upstream_down")
    assert client.breaker_states()["flaky"].state == "open"


def test_a_server_set_to_count_attempts_opens_within_one_retried_call(client: Orchestrator) -> None:
    """With ``breaker.count = "attempts"`` each of the 3 attempts of one call is a failure: one call opens it."""
    with pytest.raises(UpstreamUnavailable) as caught:
        client.call_tool("flaky_attempts", "upstream_down")
    assert caught.value.result["attempts"] == 3
    assert client.breaker_states()["flaky_attempts"].state == "open"


def test_chunks_of_calls_to_a_server_counting_attempts_admit_and_record_every_attempt(client: Orchestrator) -> None:
    """In chunks, each attempt's admission and record run off the session loop (on a thread) and still count:
    64 echoes leave the breaker closed with no failure, 20 upstream outages open it."""
    echoes = client.call_tools_parallel([("flaky_attempts", "echo", {"text": str(i)}) for i in range(64)])
    assert [o.data["text"] for o in echoes if isinstance(o, ToolResult)] == [str(i) for i in range(64)]
    snapshot = client.breaker_states()["flaky_attempts"]
    assert snapshot.state == "closed" and snapshot.failures == 0
    outages = client.call_tools_parallel([("flaky_attempts", "upstream_down", {})] * 20)
    assert all(isinstance(o, UpstreamUnavailable | CircuitBreakerOpenError) for o in outages), outages
    assert client.breaker_states()["flaky_attempts"].state == "open"


def test_tool_errors_caused_by_arguments_do_not_count(client: Orchestrator) -> None:
    """Ten calls failing on their own input leave the breaker closed with no failure counted."""
    for _ in range(10):
        with pytest.raises(ToolReturnedError):
            client.call_tool("flaky", "fail", {"message": "bad input"})
    snapshot = client.breaker_states()["flaky"]
    assert snapshot.state == "closed" and snapshot.failures == 0


def test_retries_happen_for_safe_tools_only(client: Orchestrator) -> None:
    """A read-only tool is retried on an upstream outage; a destructive one runs exactly once."""
    with pytest.raises(UpstreamUnavailable) as safe:
        client.call_tool("probe", "upstream_down")
    with pytest.raises(UpstreamUnavailable) as unsafe:
        client.call_tool("probe", "unsafe_upstream_down")
    assert safe.value.result["attempts"] == 3
    assert unsafe.value.result["attempts"] == 1


def test_a_timed_out_attempt_of_a_safe_tool_is_retried_within_the_deadline(client: Orchestrator) -> None:
    """With ``attempt_timeout_seconds = 1`` a hung read-only call is given up after 1 s and tried again on the
    held session, which answers; a destructive tool is never cut short (it would not be retried)."""
    started = time.monotonic()
    result = client.call_tool("flaky", "hang_once", {"key": uuid.uuid4().hex, "seconds": 8}, timeout=6)
    assert result.ok and result.attempts == 2 and time.monotonic() - started < 5
    slow_delete = client.call_tool("flaky", "record_delete", {"name": uuid.uuid4().hex, "seconds": 1.5}, timeout=6)
    assert slow_delete.ok and slow_delete.attempts == 1


def test_an_open_breaker_fails_only_its_own_servers_calls_in_a_batch(client: Orchestrator) -> None:
    """In a batch, calls to a server with an open breaker fail fast while the others succeed."""
    client.force_breaker("flaky", "open")
    outcomes = client.call_tools_parallel([("flaky", "echo", {"text": "a"}), ("probe", "add", {"a": 1, "b": 1}),
                                           ("flaky", "echo", {"text": "b"})])
    assert isinstance(outcomes[0], CircuitBreakerOpenError) and isinstance(outcomes[2], CircuitBreakerOpenError)
    assert isinstance(outcomes[1], ToolResult) and outcomes[1].data == {"result": 2}


def test_a_denied_tool_is_refused_at_the_client_and_at_the_worker(client: Orchestrator) -> None:
    """deny_tools refuses the call before enqueue, and a message sent around the client is refused too."""
    with pytest.raises(InvalidCall) as caught:
        client.call_tool("flaky", "delete_thing", {"name": "x"})
    assert caught.value.field == "tool"
    deadline = time.time() + 10
    handle = client.app.send_task(CALL_TOOL, kwargs={"server": "flaky", "tool": "delete_thing",
                                                     "params": {"name": "x"}, "deadline": deadline},
                                  queue="mcp.flaky")
    with pytest.raises(InvalidCall, match="denied"):
        handle.get(timeout=10)


def test_operators_read_reset_and_force_breakers_from_the_cli(stack: Stack, client: Orchestrator) -> None:
    """mcp-orch breakers shows every breaker and forces / resets one, as JSON for scripts."""
    def cli(*args: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "orchestrator.operator.cli", "--config", str(stack.config_path),
                              "breakers", *args, "--json"], cwd=REPO, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    assert cli("open", "pr")["probe"]["state"] == "forced_open"
    assert cli("show")["probe"]["state"] == "forced_open"
    assert cli("reset", "probe")["probe"]["state"] == "closed"
    assert cli("disable", "probe")["probe"]["state"] == "disabled"
    assert cli("closed", "probe")["probe"]["state"] == "closed", "'closed' closes; 'disable' is its own word"
    assert set(cli("show")) == set(stack.settings.servers)
