"""Every CLI error is one line on stderr with a non-zero exit: bad configuration, closed pipes, Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from orchestrator.operator import cli
from tests.conftest import Stack
from tests.support.procs import REPO


def test_a_broker_url_that_is_not_a_redis_url_is_one_line_naming_the_variable_and_not_the_value() -> None:
    """MCP_ORCH_BROKER_URL=notaurl: exit 2, one stderr line naming broker_url and its variable, no traceback."""
    env = {**os.environ, "MCP_ORCH_BROKER_URL": "notaurl-with-s3cret"}
    env.pop("MCP_ORCH_CONFIG", None)
    out = subprocess.run([sys.executable, "-m", "orchestrator.operator.cli", "health"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "broker_url (from MCP_ORCH_BROKER_URL)" in lines[0] and "redis://" in lines[0]
    assert "s3cret" not in out.stderr and "Traceback" not in out.stderr


def test_a_closed_output_pipe_ends_the_command_quietly(redis_url: str, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Output into a pipe whose reader is gone (``| head``) ends with exit 141 and no traceback."""
    monkeypatch.setenv("MCP_ORCH_BROKER_URL", redis_url)
    monkeypatch.delenv("MCP_ORCH_CONFIG", raising=False)
    read_end, write_end = os.pipe()
    os.close(read_end)
    broken = io.TextIOWrapper(io.FileIO(write_end, "w"), write_through=True)
    monkeypatch.setattr(sys, "stdout", broken)
    try:
        assert cli.main(["breakers", "--json"]) == 141
    finally:
        monkeypatch.undo()
        broken.close()
    assert "Traceback" not in capsys.readouterr().err


def test_ctrl_c_during_a_call_is_one_line_and_exit_130(redis_url: str) -> None:
    """SIGINT while ``mcp-orch call`` waits (no worker on the queue): ``error: interrupted``, exit 130, and the
    call is revoked and taken out of its queue."""
    env = {**os.environ, "MCP_ORCH_BROKER_URL": redis_url}
    env.pop("MCP_ORCH_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.operator.cli", "call", "sabnzbd", "sabnzbd_get_queue",
                             "--wait-for-worker"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        queue = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 30
        while not queue.llen("mcp.sabnzbd") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert queue.llen("mcp.sabnzbd") == 1, "the call was never enqueued"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["error: interrupted"]
    assert queue.llen("mcp.sabnzbd") == 0, "the interrupted call was left to run on a later worker"


@pytest.mark.parametrize(("chunk_size", "messages"), [("1", 5), ("0", 2)])  # a task per call; chunks of 4 + 1
def test_ctrl_c_during_a_batch_withdraws_what_has_not_started_and_says_so(redis_url: str, tmp_path,
                                                                          chunk_size: str, messages: int) -> None:
    """SIGINT while ``mcp-orch batch`` waits (no worker on the queue): exit 130, one line counting what ended
    and what was withdrawn, and the queue holds none of the batch's messages afterwards (they never run)."""
    env = {**os.environ, "MCP_ORCH_BROKER_URL": redis_url, "MCP_ORCH_BATCH_CHUNK_SIZE": chunk_size}
    env.pop("MCP_ORCH_CONFIG", None)
    batch = tmp_path / "calls.json"
    batch.write_text(json.dumps([{"server": "sabnzbd", "tool": "sabnzbd_get_queue"} for _ in range(5)]))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.operator.cli", "batch", str(batch), "--no-progress"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    queue = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 30
        while queue.llen("mcp.sabnzbd") < messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert queue.llen("mcp.sabnzbd") == messages, "the batch was never enqueued"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err.strip().splitlines() == [
        "error: interrupted: 0 of 5 calls had ended; 5 were taken out of their queue before running; 0 had been "
        "picked up by a worker and were revoked (one already running finishes there)"], err
    assert queue.llen("mcp.sabnzbd") == 0


def test_a_call_to_a_queue_no_live_worker_consumes_fails_at_once_and_leaves_nothing_queued(redis_url: str) -> None:
    """No worker heartbeat for mcp.sabnzbd: ``mcp-orch call`` fails within seconds (not at its 30 s deadline) with
    one line saying no live worker consumes the queue, and the call is no longer queued."""
    env = {**os.environ, "MCP_ORCH_BROKER_URL": redis_url}
    env.pop("MCP_ORCH_CONFIG", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "orchestrator.operator.cli", "call", "sabnzbd", "sabnzbd_get_queue"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 20
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "ServerUnavailable: no live worker consumes mcp.sabnzbd" in lines[0], done.stderr
    assert "mcp-orch worker --servers sabnzbd" in lines[0]
    assert redis.Redis.from_url(redis_url).llen("mcp.sabnzbd") == 0


@pytest.mark.slow
def test_a_tool_error_that_spans_lines_is_printed_on_one_line(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """A server's error text with line breaks (mcp-server-fetch answers a bad URL with pydantic's three-line
    report) is one stderr line, exit 1, nothing of the text lost."""
    message = "1 validation error for fetchArguments\nurl\n  Input should be a valid URL"
    assert cli.main(["--config", str(stack.config_path), "call", "probe", "fail", "-p", f"message={message}"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: ToolReturnedError: Error executing tool fail: 1 validation error for fetchArguments url Input should "
        "be a valid URL"], err
