"""Errors are classified by what happened, whichever MCP server sent them (DESIGN invariant 12).

Third-party servers from PyPI run behind a real worker: ``mcp-server-time`` (built on the MCP SDK
2.x; it answers an unknown tool with JSON-RPC error -32602) and a FastMCP 4 server (the ``fastmcp``
package in ``.venv-fastmcp``; with its error middleware it answers an unknown tool with -32001, the
code the SDK also uses for a client-side timeout). Next to them: a server nobody listens for and one
that refuses the worker's token when the session opens.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis

from orchestrator import AsyncOrchestrator, keys
from orchestrator.client import Orchestrator
from orchestrator.errors import (
    CircuitBreakerOpenError,
    DeadlineExceeded,
    ServerUnavailable,
    ToolReturnedError,
    UpstreamUnavailable,
)
from orchestrator.operator.processes import ChildProcess
from orchestrator.validation import close_tool_matches
from tests.support.ports import free_port
from tests.support.procs import REPO, configured_worker
from tests.support.redis_proc import RedisServer

pytestmark = pytest.mark.slow

BROKER_DB = 26
"""This module's Redis database (broker, results, breakers, catalog)."""
FASTMCP_PYTHON = REPO / ".venv-fastmcp" / "bin" / "python"
HAS_FASTMCP = os.access(FASTMCP_PYTHON, os.X_OK)
needs_fastmcp = pytest.mark.skipif(not HAS_FASTMCP, reason="FastMCP 4 is not installed in .venv-fastmcp: run "
                                   "`make thirdparty` (python -m venv .venv-fastmcp && .venv-fastmcp/bin/pip "
                                   "install fastmcp==4.1.6)")
REFUSED_TOKEN = "CANARY-refused-token-77f1"
LOCAL_TZ = "Pacific/Chatham"
"""Given to mcp-server-time on its command line as ``${LOCAL_TZ}``: a value the config keeps out of the file."""
BAD_TZ = "Nowhere/CANARY-tz-4e2b"
"""Not a timezone: mcp-server-time given it as ``${BAD_TZ}`` exits at start-up, naming it on stderr."""

CONFIG = """
broker_url = "{broker}"
default_timeout = 15

[servers.time]
breaker = {{ failure_threshold = 3, open_seconds = 60 }}
[servers.time.transport]
type = "stdio"
command = "python"
args = ["-m", "mcp_server_time", "--local-timezone", "${{LOCAL_TZ}}"]

[servers.misconfigured]
connect_timeout = 10
[servers.misconfigured.transport]
type = "stdio"
command = "python"
args = ["-m", "mcp_server_time", "--local-timezone", "${{BAD_TZ}}"]

[servers.fast]
breaker = {{ failure_threshold = 3, open_seconds = 60 }}
connect_timeout = 30
[servers.fast.transport]
type = "stdio"
command = "{fastmcp}"
args = ["-m", "tests.support.servers.fastmcp_tools"]
cwd = "{repo}"
env = {{ DEBUG = "True", FASTMCP_SHOW_CLI_BANNER = "false" }}

[servers.nowhere]
connect_timeout = 2
breaker = {{ failure_threshold = 2, open_seconds = 60 }}
transport = {{ type = "http", url = "http://127.0.0.1:{closed_port}/mcp" }}

[servers.refusing]
connect_timeout = 3
[servers.refusing.transport]
type = "http"
url = "http://127.0.0.1:{refusing_port}/mcp"
headers = {{ Authorization = "Bearer ${{REFUSED_TOKEN}}" }}
"""


class _Refuse(BaseHTTPRequestHandler):
    """An HTTP endpoint that refuses every request as a server refusing a bearer token would."""

    def do_POST(self) -> None:
        body = b'{"error": "access denied: invalid bearer token"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_DELETE = do_POST

    def log_message(self, *_: object) -> None:
        return


@dataclass
class ErrorStack:
    client: Orchestrator
    worker: ChildProcess


@pytest.fixture(scope="module")
def error_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ErrorStack]:
    """One threads-pool worker for the four servers, a refusing HTTP endpoint, a client."""
    broker = f"{redis_server.url}/{BROKER_DB}"
    refusing = ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=refusing.serve_forever, daemon=True).start()
    config = CONFIG.format(broker=broker, fastmcp=FASTMCP_PYTHON, repo=REPO, closed_port=free_port(),
                           refusing_port=refusing.server_address[1])
    try:
        env = {"REFUSED_TOKEN": REFUSED_TOKEN, "LOCAL_TZ": LOCAL_TZ, "BAD_TZ": BAD_TZ}
        with configured_worker(broker, config, tmp_path_factory.mktemp("error-classes"), name="errors",
                               env=env) as (_, worker, client):
            yield ErrorStack(client, worker)
    finally:
        refusing.shutdown()


def unknown_tool_calls(stack: ErrorStack, server: str, typo: str) -> list[ToolReturnedError]:
    """Five calls of a misspelt tool; each must fail fast as the caller's error."""
    errors = []
    for _ in range(5):
        started = time.monotonic()
        with pytest.raises(ToolReturnedError) as caught:
            stack.client.call_tool(server, typo, {}, timeout=15)
        assert time.monotonic() - started < 5, "an answer of the server must not wait out the deadline"
        errors.append(caught.value)
    return errors


def test_five_unknown_tool_calls_to_an_sdk2_server_leave_its_breaker_closed_and_name_the_close_match(
        error_stack: ErrorStack) -> None:
    """mcp-server-time answers an unknown tool with JSON-RPC -32602: a caller error, not retried, not counted,
    with a hint from the catalog; a valid call afterwards goes through."""
    assert "get_current_time" in {tool["name"] for tool in error_stack.client.list_tools("time", timeout=30)}
    for error in unknown_tool_calls(error_stack, "time", "get_current_tim"):
        assert type(error) is ToolReturnedError and not error.transient
        assert error.cause == "MCPError -32602" and error.attempts == 1
        assert "close matches on time: get_current_time" in error.message
    snapshot = error_stack.client.breaker_states()["time"]
    assert snapshot.state == "closed" and snapshot.failures == 0
    result = error_stack.client.call_tool("time", "get_current_time", {"timezone": "UTC"})
    assert result.ok and result.data["timezone"] == "UTC"


@needs_fastmcp
def test_five_unknown_tool_calls_to_a_fastmcp_server_are_caller_errors_not_timeouts(error_stack: ErrorStack) -> None:
    """FastMCP's -32001 "Not found" for an unknown tool is its answer, not our timeout: a caller error with a
    hint, the breaker stays closed, and a valid call works."""
    assert "get_weather" in {tool["name"] for tool in error_stack.client.list_tools("fast", timeout=30)}
    for error in unknown_tool_calls(error_stack, "fast", "get_wether"):
        assert not isinstance(error, DeadlineExceeded | UpstreamUnavailable) and not error.transient
        assert error.cause == "MCPError -32001" and "Unknown tool" in error.message
        assert "close matches on fast: get_weather" in error.message
    snapshot = error_stack.client.breaker_states()["fast"]
    assert snapshot.state == "closed" and snapshot.failures == 0
    assert error_stack.client.call_tool("fast", "get_weather", {"city": "Oslo"}).data == {"result": "sunny in Oslo"}


def test_a_server_that_cannot_be_reached_counts_against_its_breaker(error_stack: ErrorStack) -> None:
    """Two calls to a server nobody listens for fail as ServerUnavailable and open its breaker (threshold 2)."""
    for _ in range(2):
        with pytest.raises(ServerUnavailable):
            error_stack.client.call_tool("nowhere", "anything", {}, timeout=10)
    assert error_stack.client.breaker_states()["nowhere"].state == "open"
    with pytest.raises(CircuitBreakerOpenError):
        error_stack.client.call_tool("nowhere", "anything", {}, timeout=10)


def test_a_session_refused_at_open_names_the_real_cause_not_an_exception_group(error_stack: ErrorStack) -> None:
    """A 401 on the handshake reads as the refusal (status and reason), never as "unhandled errors in a
    TaskGroup", and the token is not in the message."""
    with pytest.raises(ServerUnavailable) as caught:
        error_stack.client.call_tool("refusing", "anything", {}, timeout=10)
    message = caught.value.message
    assert "401" in message and "TaskGroup" not in message and "sub-exception" not in message
    assert REFUSED_TOKEN not in message


def test_a_stdio_server_that_exits_at_start_up_is_named_with_what_it_said_on_stderr(error_stack: ErrorStack) -> None:
    """mcp-server-time with an unknown timezone exits before the handshake, saying why on stderr: the error
    quotes that line ("not a known IANA timezone name"), not only the SDK's "Connection closed", and the
    value from the worker's environment is masked in it."""
    with pytest.raises(ServerUnavailable) as caught:
        error_stack.client.call_tool("misconfigured", "get_current_time", {"timezone": "UTC"}, timeout=10)
    message = caught.value.message
    assert "its stderr said: Error: invalid --local-timezone" in message, message
    assert "not a known IANA timezone name" in message and BAD_TZ not in message, message


def test_harmless_env_values_of_one_server_never_mask_another_servers_result(error_stack: ErrorStack) -> None:
    """``DEBUG = "True"`` and ``FASTMCP_SHOW_CLI_BANNER = "false"`` in the FastMCP server's env are not secrets:
    mcp-server-time's answer keeps ``is_dst: false`` and its text block stays JSON."""
    result = error_stack.client.call_tool("time", "get_current_time", {"timezone": "UTC"})
    assert result.data["is_dst"] is False and "***" not in json.dumps(result.model_dump())
    assert json.loads(result.content[0]["text"])["is_dst"] is False


def test_a_variable_in_stdio_args_reaches_the_server_and_is_masked_in_what_comes_back(
        error_stack: ErrorStack) -> None:
    """``--local-timezone ${LOCAL_TZ}`` starts mcp-server-time with the worker's value; the tool descriptions
    that name it come back with the whole string masked, never the value."""
    tools = error_stack.client.list_tools("time", timeout=30, refresh=True)
    assert LOCAL_TZ not in json.dumps(tools)
    schema = next(tool for tool in tools if tool["name"] == "get_current_time")["inputSchema"]
    assert schema["properties"]["timezone"]["description"] == "***"


def test_the_async_client_names_the_close_match_of_a_tool_the_server_refused(error_stack: ErrorStack) -> None:
    """Through ``AsyncOrchestrator`` the server's JSON-RPC refusal of an unknown tool is the same caller error
    with the catalog's hint."""

    async def call() -> ToolReturnedError:
        async with AsyncOrchestrator(error_stack.client.settings) as client:
            with pytest.raises(ToolReturnedError) as caught:
                await client.call_tool("time", "get_current_tim", {}, timeout=15)
            return caught.value

    error = asyncio.run(call())
    assert error.cause == "MCPError -32602" and "close matches on time: get_current_time" in error.message


def test_a_refused_tool_name_gets_its_close_match_even_when_the_catalog_is_written_after_the_error(
        error_stack: ErrorStack) -> None:
    """A server's catalog is written beside the first call its session serves, so it may land after that call's
    error: a client that finds no catalog lists the tools through a worker before naming the close matches."""
    error_stack.client.call_tool("time", "get_current_time", {"timezone": "UTC"})  # the session is open
    conn = redis.Redis.from_url(error_stack.client.settings.broker_url)
    conn.delete(keys.tools_key("time"), keys.tools_meta_key("time"))  # as before the session-open write lands
    conn.close()

    async def call() -> ToolReturnedError:
        async with AsyncOrchestrator(error_stack.client.settings) as client:
            with pytest.raises(ToolReturnedError) as caught:
                await client.call_tool("time", "get_current_tim", {}, timeout=15)
            return caught.value

    assert "close matches on time: get_current_time" in asyncio.run(call()).message


def test_a_hint_names_the_prefixed_tool_a_catalog_lists_after_an_unresolved_name_was_sent() -> None:
    """An unprefixed name sent before the catalog listed its prefixed form gets that form as its hint, not
    nothing."""
    assert close_tool_matches("sabnzbd", "get_queue", {"sabnzbd": ["sabnzbd_get_queue"]}) == \
        "sabnzbd lists it as sabnzbd_get_queue"
    assert close_tool_matches("sabnzbd", "sabnzbd_get_queue", {"sabnzbd": ["sabnzbd_get_queue"]}) == ""
