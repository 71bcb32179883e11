"""``mcp-orch stack`` in its default, compact layout, as an operator meets it: a real subprocess,
nothing mocked. One worker process holds every session with the bundled servers in-process;
beat, metrics and the simulators are threads of the stack process; Flower is its own process.
(The distributed layout is tests/operator/test_operator_stack.py.)
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator import keys
from tests.operator.test_operator_stack import CANARY_SAB_KEY, RunningStack, launched
from tests.support.proctree import alive, descendants

pytestmark = pytest.mark.slow

BUNDLED = ("sabnzbd", "sonarr", "radarr", "plex")
SAMPLE = {"integer": 1, "number": 1, "string": "1", "boolean": True}
"""A value of each JSON type for a required parameter: enough for every bundled tool to run."""


@pytest.fixture(scope="module")
def compact(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with launched(tmp_path_factory.mktemp("compact-stack")) as stack:
        yield stack


def broker_url(stack: RunningStack) -> str:
    return next(line.split()[1] for line in stack.output if line.strip().startswith("redis "))


def sample_params(schema: dict[str, Any]) -> dict[str, Any]:
    """Each required parameter of ``schema`` with a value of its type."""
    params = {}
    for name in schema.get("required", []):
        spec = schema["properties"][name]
        kinds = [spec.get("type")] + [option.get("type") for option in spec.get("anyOf", [])]
        params[name] = spec["enum"][0] if "enum" in spec else SAMPLE[next(k for k in kinds if k in SAMPLE)]
    return params


def test_the_compact_stack_runs_one_worker_and_no_process_per_server(compact: RunningStack) -> None:
    """The report lists one worker on every queue, beat and metrics inside the stack, every server
    ready; below the stack run only Redis, that one worker and Flower: no MCP server process, no
    simulator process, no separate beat or metrics."""
    text = "\n".join(compact.output)
    for server in BUNDLED:
        assert re.search(rf"server {server:<10} ready, \d+ tools", text), text
    assert "mcp.sabnzbd,mcp.sonarr,mcp.radarr,mcp.plex" in text and "a thread of the stack" in text
    assert re.search(r"every server answered through its queue \d+\.\d s after start", text), text
    assert set(compact.urls) == {"flower", "metrics"}
    below = descendants(compact.proc.pid).values()
    assert sum(" worker " in args for args in below) == 1
    assert sum("redis-server" in args for args in below) == 1
    assert sum("flower" in args for args in below) == 1
    assert len(below) == 3, below
    assert not [args for args in below if "media_mcp" in args or "upstream_sim" in args or " beat" in args]


def run_batch(stack: RunningStack, calls: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    path.write_text(json.dumps({"calls": calls, "timeout": 60}))
    done = stack.cli("batch", str(path), "--json", "--no-progress", timeout=120)
    assert CANARY_SAB_KEY not in done.stdout
    return json.loads(done.stdout)


def test_every_bundled_tool_answers_through_the_queue(compact: RunningStack, tmp_path: Path) -> None:
    """Each bundled tool the stack reported (required parameters filled in by type) answers through the
    queue: one batch of the read-only tools, then one of the tools that change state, each call getting
    a result or the tool's own error, never an unavailable server or a timeout; every read-only tool
    that requires no parameter succeeds (or asks for one of two optional ones); no secret in any of it."""
    listed = compact.cli("tools", "--json")
    assert listed.returncode == 0, listed.stderr
    tools = json.loads(listed.stdout)
    reported = dict(re.findall(r"server (\w+)\s+ready, (\d+) tools", "\n".join(compact.output)))
    assert {server: str(len(tools[server])) for server in BUNDLED} == reported
    calls: dict[bool, list[dict[str, Any]]] = {True: [], False: []}  # read-only?
    for server in BUNDLED:
        for tool in tools[server]:
            read_only = bool(tool.get("annotations", {}).get("readOnlyHint"))
            calls[read_only].append({"server": server, "tool": tool["name"],
                                     "params": sample_params(tool["inputSchema"])})
    assert calls[True] and calls[False]
    answered = {"ToolReturnedError", "UpstreamUnavailable"}  # the tool ran and answered
    for read_only in (True, False):
        outcomes = run_batch(compact, calls[read_only], tmp_path / f"read-only-{read_only}.json")
        for call, outcome in zip(calls[read_only], outcomes, strict=True):
            assert outcome["ok"] or outcome["error"]["type"] in answered, (call, outcome)
            if read_only and not call["params"]:  # nothing to get wrong, unless the tool wants one of two
                assert outcome["ok"] or outcome["error"]["message"].startswith("[invalid_arguments]"), (call, outcome)


def test_beat_runs_inside_the_stack_holding_the_redbeat_lock(compact: RunningStack) -> None:
    """The one beat (a thread of the stack process) holds RedBeat's lock and has every server's
    health check in its schedule."""
    client = redis.Redis.from_url(broker_url(compact))
    try:
        assert client.exists(keys.REDBEAT_LOCK_KEY)
        entries = {key.decode() for key in client.scan_iter(match=f"{keys.REDBEAT_PREFIX}health-check:*")}
    finally:
        client.close()
    assert {entry.rsplit(":", 1)[1] for entry in entries} == set(BUNDLED)


def test_sigterm_stops_the_compact_stack_and_leaves_nothing_behind(compact: RunningStack) -> None:
    """SIGTERM stops the worker, Flower and Redis and ends the stack's threads; no process is left
    and no log holds the SABnzbd key or the Flower password."""
    started = descendants(compact.proc.pid)
    compact.proc.send_signal(signal.SIGTERM)
    assert compact.proc.wait(timeout=60) == 0
    assert not [pid for pid in started if alive(pid)]
    assert compact.log_dir is not None
    for log in compact.log_dir.glob("*.log"):
        text = log.read_text(errors="replace")
        assert CANARY_SAB_KEY not in text, f"the SABnzbd key is in {log.name}"
        assert compact.login[1] not in text, f"the Flower password is in {log.name}"


def test_the_compact_layout_refuses_distributed_only_flags(tmp_path: Path) -> None:
    """``--single-worker`` or ``--pool`` without ``--layout distributed`` is a one-line error naming them."""
    from tests.operator.test_operator_stack import MCP_ORCH, REPO, operator_env

    done = subprocess.run([*MCP_ORCH, "stack", "--single-worker"], env=operator_env(tmp_path), cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: --single-worker and --pool apply to --layout distributed (the compact layout always runs one "
        "threads-pool worker)"]
