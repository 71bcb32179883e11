"""One tool call end to end: client -> Redis -> real Celery worker -> held MCP session."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from pathlib import Path

import pytest
import redis

from orchestrator.aio.client import AsyncOrchestrator
from orchestrator.client import Orchestrator
from orchestrator.config import load_settings
from orchestrator.errors import DeadlineExceeded, InvalidCall, ServerUnavailable, ToolReturnedError, UnknownServer
from orchestrator.results import ToolResult
from orchestrator.validation import prepare_call
from tests.conftest import CANARY_KEY, CANARY_TOKEN, Stack

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("server", ["probe", "forked", "probe_http"])
def test_call_round_trips_on_every_transport_and_pool(client: Orchestrator, server: str) -> None:
    """A call reaches the MCP server over stdio (threads and prefork pools) and HTTP, and comes back whole."""
    result = client.call_tool(server, "echo", {"text": "hello"})
    assert isinstance(result, ToolResult)
    assert result.ok and not result.is_error
    assert result.data == {"text": "hello", "length": 5}
    assert result.server == server and result.tool == "echo"
    assert result.content[0]["type"] == "text"
    assert result.worker and result.worker.endswith("@test")
    assert result.task_id and result.duration > 0 and result.attempts == 1


@pytest.mark.parametrize("server", ["probe", "forked", "probe_http"])
def test_many_calls_reuse_one_held_session(client: Orchestrator, server: str) -> None:
    """Thirty calls are answered by one MCP server process over one session (one handshake)."""
    first = client.call_tool(server, "whoami").data
    answers = [client.call_tool(server, "whoami").data for _ in range(30)]
    assert {a["pid"] for a in answers} == {first["pid"]}
    assert answers[-1]["handshakes"] == first["handshakes"]
    assert answers[-1]["calls"] >= first["calls"] + 30


def test_concurrent_calls_share_one_session_under_the_threads_pool(stack: Stack) -> None:
    """Twenty concurrent calls from the async client run on the threads pool over a single session."""

    async def burst() -> list[ToolResult]:
        async with AsyncOrchestrator(stack.settings) as aclient:
            return await asyncio.gather(*(aclient.call_tool("probe", "whoami") for _ in range(20)))

    results = asyncio.run(burst())
    assert len({r.data["pid"] for r in results}) == 1
    assert len({r.task_id for r in results}) == 20


def test_worker_reconnects_after_the_mcp_server_process_is_killed(client: Orchestrator) -> None:
    """Killing the stdio MCP server makes the worker open a new session by itself; the next call succeeds."""
    old_pid = client.call_tool("probe", "whoami").data["pid"]
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    failures = 0
    while True:
        try:
            new = client.call_tool("probe", "whoami", timeout=10).data
            break
        except ServerUnavailable:
            failures += 1
            assert time.monotonic() < deadline, "worker never reconnected"
    assert new["pid"] != old_pid
    assert failures == 0, "a read-only call is retried on the re-opened session, so none fails"
    assert client.call_tool("probe", "add", {"a": 2, "b": 3}).data == {"result": 5}


def test_aliases_resolve_to_the_canonical_server(client: Orchestrator) -> None:
    """A call addressed to an alias (any case) runs on the server the alias names."""
    assert client.call_tool("pr", "echo", {"text": "x"}).server == "probe"
    assert client.call_tool("PROBE-ALIAS", "echo", {"text": "x"}).server == "probe"


def test_tool_error_reaches_the_client_as_tool_returned_error(client: Orchestrator) -> None:
    """An MCP isError result is raised as ToolReturnedError carrying server, tool, message and the result."""
    with pytest.raises(ToolReturnedError) as caught:
        client.call_tool("probe", "fail", {"message": "disk on fire"})
    error = caught.value
    assert "disk on fire" in str(error)
    assert error.server == "probe" and error.tool == "fail" and error.task_id
    assert error.result["is_error"] is True


def test_unknown_tool_is_a_tool_error(client: Orchestrator) -> None:
    """A tool the server does not have comes back as ToolReturnedError naming the tool."""
    with pytest.raises(ToolReturnedError, match="nosuch"):
        client.call_tool("probe", "nosuch")


def test_tool_error_can_be_returned_instead_of_raised(client: Orchestrator) -> None:
    """With raise_on_error=False the isError result is returned with ok=False."""
    result = client.call_tool("probe", "fail", {"message": "nope"}, raise_on_error=False)
    assert not result.ok and result.is_error and "nope" in result.error_text


def test_slow_tool_raises_deadline_exceeded_with_server_and_tool(client: Orchestrator) -> None:
    """A call that outlives its timeout is a DeadlineExceeded naming server and tool, soon after the deadline."""
    started, called_at = time.monotonic(), time.time()
    with pytest.raises(DeadlineExceeded) as caught:
        client.call_tool("probe", "sleep", {"seconds": 10}, timeout=1)
    assert time.monotonic() - started < 4
    assert caught.value.server == "probe" and caught.value.tool == "sleep" and caught.value.timeout == 1
    assert called_at + 1 <= caught.value.deadline < called_at + 1.5  # fixed at enqueue: call time + timeout


def test_server_that_never_handshakes_fails_the_call_without_blocking_the_worker(client: Orchestrator) -> None:
    """A stuck MCP server costs its own calls a clear error; the same worker keeps serving others."""
    with pytest.raises((ServerUnavailable, DeadlineExceeded)) as caught:
        client.call_tool("stuck", "anything", timeout=8)
    assert caught.value.server == "stuck"
    assert client.call_tool("probe", "add", {"a": 1, "b": 1}).data == {"result": 2}


def test_list_tools_returns_schemas_and_annotations(client: Orchestrator) -> None:
    """list_tools gives each tool's input schema and its MCP annotations."""
    tools = {tool["name"]: tool for tool in client.list_tools("probe_http")}
    assert {"echo", "add", "fail", "sleep", "whoami", "delete_thing"} <= set(tools)
    assert tools["add"]["inputSchema"]["required"] == ["a", "b"]
    assert tools["delete_thing"]["annotations"]["destructiveHint"] is True
    assert tools["echo"]["annotations"]["readOnlyHint"] is True


def test_list_all_tools_covers_every_listed_server(stack: Stack) -> None:
    """list_all_tools lists each enabled server that has workers (here via a config without the others)."""
    settings = stack.settings.model_copy(update={"servers": {
        name: stack.settings.servers[name] for name in ("probe", "forked", "probe_http")}})
    orchestrator = Orchestrator(settings)
    try:
        listing = orchestrator.list_all_tools()
    finally:
        orchestrator.close()
    assert set(listing) == {"probe", "forked", "probe_http"}
    assert all(any(tool["name"] == "echo" for tool in tools) for tools in listing.values())


@pytest.mark.parametrize(("server", "tool", "params", "timeout", "error", "field"), [
    ("nosuch", "echo", {}, None, UnknownServer, "server"),
    ("off", "echo", {}, None, UnknownServer, "server"),
    ("", "echo", {}, None, InvalidCall, "server"),
    (None, "echo", {}, None, InvalidCall, "server"),
    ("idle", "", {}, None, InvalidCall, "tool"),
    ("idle", "   ", {}, None, InvalidCall, "tool"),
    ("idle", None, {}, None, InvalidCall, "tool"),
    ("idle", "echo", ["not", "a", "dict"], None, InvalidCall, "params"),
    ("idle", "echo", "text=hi", None, InvalidCall, "params"),
    ("idle", "echo", {"when": object()}, None, InvalidCall, "params"),
    ("idle", "echo", {"x": float("nan")}, None, InvalidCall, "params"),
    ("idle", "echo", {1: "int key"}, None, InvalidCall, "params"),
    ("idle", "echo", {"blob": "x" * 300_000}, None, InvalidCall, "params"),
    ("idle", "echo", {}, 0, InvalidCall, "timeout"),
    ("idle", "echo", {}, -3, InvalidCall, "timeout"),
    ("idle", "echo", {}, 10_000, InvalidCall, "timeout"),
    ("idle", "echo", {}, "soon", InvalidCall, "timeout"),
])
def test_bad_input_is_refused_before_anything_is_enqueued(stack: Stack, client: Orchestrator, server: object,
                                                          tool: object, params: object, timeout: object,
                                                          error: type[InvalidCall], field: str) -> None:
    """Each kind of bad input raises a typed InvalidCall naming the field, and no message reaches a queue."""
    conn = redis.Redis.from_url(stack.broker_url)
    before = {key: conn.llen(key) for key in (b"mcp.idle", b"mcp.off", b"mcp.default", b"celery")}
    with pytest.raises(error) as caught:
        client.call_tool(server, tool, params, timeout)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}:")
    assert {key: conn.llen(key) for key in before} == before


def test_params_larger_than_the_configured_limit_are_refused_naming_the_size_and_the_limit(stack: Stack) -> None:
    """max_params_bytes bounds the encoded params: one byte over is refused, exactly the limit is accepted."""
    settings = stack.settings.model_copy(update={"max_params_bytes": 1000})
    orchestrator = Orchestrator(settings)
    try:
        conn = redis.Redis.from_url(stack.broker_url)
        before = conn.llen("mcp.idle")
        padding = 1000 - len('{"text": ""}')
        with pytest.raises(InvalidCall) as caught:
            orchestrator.call_tool("idle", "echo", {"text": "x" * (padding + 1)}, timeout=1)
        assert caught.value.field == "params"
        assert "1,001 bytes" in str(caught.value) and "1,000 bytes" in str(caught.value)
        assert conn.llen("mcp.idle") == before
        prepared = prepare_call(settings, "idle", "echo", {"text": "x" * padding})
        assert prepared.params == {"text": "x" * padding}
    finally:
        orchestrator.close()


CLIENT_WITH_SECRETS = """
broker_url = "{broker}"
[servers.idle.transport]
type = "stdio"
command = "python"
env = {{ PROBE_API_KEY = "{key}", PROBE_TOKEN = "${{PROBE_TOKEN}}" }}
"""


def test_no_configured_secret_appears_in_the_task_message(stack: Stack, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A client whose configuration holds secrets (one written in the file, one from its environment)
    still sends a message that carries names, params and deadline only."""
    monkeypatch.setenv("PROBE_TOKEN", CANARY_TOKEN)
    path = tmp_path / "client.toml"
    path.write_text(CLIENT_WITH_SECRETS.format(broker=stack.broker_url, key=CANARY_KEY))
    client = Orchestrator(load_settings(path))
    assert {CANARY_KEY, CANARY_TOKEN} <= set(client.settings.secret_values())  # the client could leak both
    conn = redis.Redis.from_url(stack.broker_url)
    with pytest.raises(DeadlineExceeded):
        client.call_tool("idle", "echo", {"text": "hi"}, timeout=0.5)  # nothing consumes mcp.idle
    client.close()
    messages = [json.loads(raw) for raw in conn.lrange("mcp.idle", 0, -1)]
    assert messages, "the call should be waiting in its server's queue"
    for message in messages:
        body = base64.b64decode(message["body"]) if message["properties"]["body_encoding"] == "base64" \
            else message["body"].encode()
        whole = json.dumps(message).encode() + body
        assert b'"echo"' in body
        assert CANARY_KEY.encode() not in whole and CANARY_TOKEN.encode() not in whole
    conn.delete("mcp.idle")


def test_a_call_no_worker_answers_leaves_no_result_subscription_behind(stack: Stack, client: Orchestrator) -> None:
    """A long-running client (AutoArr's API) must not keep listening for results it gave up on."""
    conn = redis.Redis.from_url(stack.broker_url)
    with pytest.raises(DeadlineExceeded) as caught:
        client.call_tool("idle", "echo", {"text": "hi"}, timeout=0.5)  # nothing consumes mcp.idle
    channel = f"celery-task-meta-{caught.value.task_id}"
    assert conn.execute_command("PUBSUB", "NUMSUB", channel) == [channel.encode(), 0]
    conn.delete("mcp.idle")


def test_secrets_echoed_by_a_tool_are_scrubbed_from_result_and_error(stack: Stack, client: Orchestrator) -> None:
    """A tool that echoes its API key has it masked in the stored result and in the error text."""
    result = client.call_tool("probe", "leak_key")
    assert CANARY_KEY not in json.dumps(result.model_dump())
    assert "***" in result.data["note"]
    stored = redis.Redis.from_url(stack.broker_url).get(f"celery-task-meta-{result.task_id}")
    assert stored is not None and CANARY_KEY.encode() not in stored
    with pytest.raises(ToolReturnedError) as caught:
        client.call_tool("probe", "leak_key_error")
    assert CANARY_KEY not in str(caught.value) and CANARY_KEY not in json.dumps(caught.value.details)
    log_text = "".join(worker.output() for worker in stack.workers.values())
    assert CANARY_KEY not in log_text and CANARY_TOKEN not in log_text
