"""``mcp-orch stack --layout distributed`` as an operator meets it: one command, a real subprocess,
nothing mocked (the default, compact layout is tests/operator/test_compact_stack.py).

The stack starts its own Redis, simulators, MCP servers, workers, beat, Flower and the metrics
endpoint; the tests talk to it only through the CLI, Flower's HTTP API and ``/metrics``, then
stop it with SIGTERM and look for any process it left behind.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.common import read_until_ready
from orchestrator.services import MEDIA_SERVICE_NAMES
from tests.support.procs import REPO
from tests.support.proctree import alive as _exists
from tests.support.proctree import descendants

pytestmark = pytest.mark.slow

CANARY_SAB_KEY = "CANARY-sab-key-71c4e0"
"""The SABnzbd API key the stack's simulator and MCP server get; must never reach Flower or a result."""
START_TIMEOUT = 90.0
MCP_ORCH = [sys.executable, "-m", "orchestrator.operator.cli"]


@dataclass
class RunningStack:
    proc: subprocess.Popen[str]
    env: dict[str, str]
    output: list[str] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    login: tuple[str, str] = ("", "")
    log_dir: Path | None = None

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MCP_ORCH, *args], env=self.env, cwd=REPO, capture_output=True, text=True,
                              input=stdin, timeout=timeout)

    def get(self, url: str, *, auth: tuple[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(url)
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")


def operator_env(root: Path) -> dict[str, str]:
    """This environment without any orchestrator setting, upstream URL or secret; state under ``root``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MCP_ORCH_", "FLOWER_")) and not key.endswith(("_URL", "_API_KEY", "_TOKEN"))}
    env.update({"XDG_RUNTIME_DIR": str(root), "PYTHONUNBUFFERED": "1"})
    return env


@contextlib.contextmanager
def launched(root: Path, *args: str) -> Iterator[RunningStack]:
    """``mcp-orch stack ARGS`` in its own session, with a private state dir and a canary SABnzbd key,
    once it reported readiness; killed with everything below it on the way out."""
    env = {**operator_env(root), "SABNZBD_API_KEY": CANARY_SAB_KEY}
    proc = subprocess.Popen([*MCP_ORCH, "stack", "--log-dir", str(root / "logs"), *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    stack = RunningStack(proc, env)
    try:
        stack.output = read_until_ready(proc, START_TIMEOUT)
        text = "\n".join(stack.output)
        stack.urls = dict(re.findall(r"^\s+(flower|metrics)\s+ready\s+(\S+)$", text, re.M))
        user, password = re.search(r"Flower login: (\S+) / (\S+)", text).groups()
        stack.login = (user, password)
        stack.log_dir = Path(re.search(r"logs in (\S+)\)", text).group(1))
        yield stack
    finally:
        if proc.poll() is None:
            for pid in descendants(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.kill()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The distributed layout: a worker per queue, each with its stdio MCP server."""
    with launched(tmp_path_factory.mktemp("operator-stack"), "--layout", "distributed") as stack:
        yield stack


def test_stack_reports_what_runs_where_and_that_everything_is_ready(running: RunningStack) -> None:
    """The stack prints each component with its address, every server ready, Flower and metrics ready."""
    text = "\n".join(running.output)
    for name in ("redis", *(f"worker-{server}" for server in MEDIA_SERVICE_NAMES), "flower", "metrics"):
        assert re.search(rf"^\s+{name}\s+\S", text, re.M), f"{name} missing from:\n{text}"
    for server, tools in (("sabnzbd", 11), ("sonarr", 15), ("radarr", 16), ("plex", 13)):
        assert f"server {server:<10} ready, {tools} tools" in text
    assert set(running.urls) == {"flower", "metrics"}
    assert running.urls["flower"].startswith("http://127.0.0.1:")
    assert "generated once and kept in" in text


def test_a_call_through_the_cli_reaches_the_stack(running: RunningStack) -> None:
    """``mcp-orch call sab sabnzbd_get_queue`` finds the running stack and prints the queue."""
    done = running.cli("call", "sab", "sabnzbd_get_queue", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["server"] == "sabnzbd" and "queue" in result["data"]
    assert CANARY_SAB_KEY not in done.stdout
    slots = len(result["data"]["queue"]["slots"])
    for params in (["--param", "limit=1"], ["--json-params", '{"limit": 1}']):
        limited = running.cli("call", "sab", "get_queue", *params, "--json")  # the unprefixed name resolves
        assert limited.returncode == 0, limited.stderr
        assert len(json.loads(limited.stdout)["data"]["queue"]["slots"]) == 1 < slots


def test_the_readme_python_snippet_runs_as_written_against_the_stack(running: RunningStack, tmp_path: Path) -> None:
    """README's "From Python" script, saved as app.py and run with the stack's Redis URL as it says, prints a
    successful call and the number of series the simulator holds."""
    readme = (REPO / "README.md").read_text()
    snippet = re.search(r"From Python \(AutoArr's side\).*?```python\n(.*?)```", readme, re.S)
    assert snippet, "README lost its Python snippet"
    (tmp_path / "app.py").write_text(snippet.group(1))
    broker = re.search(r"^\s+redis\s+(redis://\S+)", "\n".join(running.output), re.M)
    assert broker, "the stack printed no Redis URL"
    done = subprocess.run([sys.executable, str(tmp_path / "app.py")], cwd=tmp_path, capture_output=True, text=True,
                          env={**running.env, "MCP_ORCH_BROKER_URL": broker.group(1)}, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = running.cli("call", "tv", "sonarr_get_series", "--json")
    assert listed.returncode == 0, listed.stderr
    series = len(json.loads(listed.stdout)["data"]["data"])
    assert done.stdout.startswith(f"True {series} "), done.stdout  # the count of series, not of envelope keys


def test_flower_shows_the_task_by_name_behind_basic_auth_and_without_secrets(running: RunningStack) -> None:
    """Flower's API refuses a request without the login; with it, the call shows as ``sabnzbd.<tool>``
    with server, tool and params as arguments, and no secret anywhere in what Flower returns."""
    assert running.cli("call", "sab", "sabnzbd_get_config").returncode == 0  # SABnzbd echoes its key here
    flower = running.urls["flower"]
    status, _ = running.get(f"{flower}/api/tasks")
    assert status == 401
    status, _ = running.get(f"{flower}/api/tasks", auth=(running.login[0], "wrong-password"))
    assert status == 401
    deadline = time.monotonic() + 20
    while True:
        status, body = running.get(f"{flower}/api/tasks?limit=200", auth=running.login)
        assert status == 200
        tasks = json.loads(body)
        names = {task["name"] for task in tasks.values()}
        if {"sabnzbd.sabnzbd_get_queue", "sabnzbd.sabnzbd_get_config"} <= names:
            break
        assert time.monotonic() < deadline, f"Flower never showed the calls: {sorted(names)}"
        time.sleep(0.5)
    call = next(task for task in tasks.values() if task["name"] == "sabnzbd.sabnzbd_get_config")
    assert "'server': 'sabnzbd'" in call["kwargs"] and "'tool': 'sabnzbd_get_config'" in call["kwargs"]
    assert "'params': {}" in call["kwargs"]
    assert call["state"] == "SUCCESS"
    status, workers = running.get(f"{flower}/api/workers?refresh=1", auth=running.login)
    assert status == 200
    queues = {queue["name"] for info in json.loads(workers).values() for queue in info.get("active_queues") or []}
    assert {"mcp.sabnzbd", "mcp.sonarr", "mcp.radarr", "mcp.plex"} <= queues
    for text in (body, workers):
        assert CANARY_SAB_KEY not in text
        assert running.login[1] not in text


def test_metrics_are_prometheus_text_with_breakers_calls_and_queues(running: RunningStack) -> None:
    """``/metrics`` parses as Prometheus text and counts the CLI's calls per server and tool."""
    assert running.cli("call", "sab", "sabnzbd_get_queue").returncode == 0
    status, text = running.get(running.urls["metrics"])
    assert status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("mcp_orch_redis_up", ())] == 1
    assert samples[("mcp_orch_calls_total", (("server", "sabnzbd"), ("tool", "sabnzbd_get_queue")))] >= 1
    assert samples[("mcp_orch_breaker_state", (("server", "sabnzbd"), ("state", "closed")))] == 1
    assert ("mcp_orch_queue_length", (("queue", "mcp.plex"), ("server", "plex"))) in samples
    assert ("mcp_orch_breaker_transitions_total", (("server", "sonarr"),)) in samples
    count = ("mcp_orch_call_duration_seconds_count", (("server", "sabnzbd"), ("tool", "sabnzbd_get_queue")))
    assert samples[count] >= 1
    assert CANARY_SAB_KEY not in text


def test_batch_prints_a_results_table_and_fails_when_a_call_fails(running: RunningStack, tmp_path: Path) -> None:
    """``mcp-orch batch FILE.json`` runs every call, draws progress on stderr, prints one row per call,
    and exits 1 because one call named a tool the server does not have."""
    batch = tmp_path / "calls.json"
    batch.write_text(json.dumps([
        {"server": "sab", "tool": "sabnzbd_get_queue"},
        {"server": "tv", "tool": "sonarr_get_series_by_id", "params": {"series_id": 1}},
        {"server": "plex", "tool": "plex_get_libraries"},
    ]))
    done = running.cli("batch", str(batch))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3/3" in done.stderr and "[" in done.stderr
    rows = [line for line in done.stdout.splitlines() if re.match(r"^\s+\d+\s", line)]
    assert len(rows) == 3 and all(" ok " in row for row in rows)
    assert "3 ok, 0 failed" in done.stdout

    batch.write_text(json.dumps({"calls": [{"server": "sab", "tool": "sabnzbd_get_queue"},
                                           {"server": "sonarr", "tool": "sonarr_get_series_by_id",
                                            "params": {"series_id": 999999}}], "timeout": 30}))
    done = running.cli("batch", str(batch), "--json", "--no-progress")
    assert done.returncode == 1
    outcomes = json.loads(done.stdout)
    assert [o["ok"] for o in outcomes] == [True, False]
    assert outcomes[1]["error"]["type"].endswith("Error") and outcomes[1]["error"]["server"] == "sonarr"
    assert done.stderr == ""


def test_tools_health_and_breakers_commands_read_the_running_stack(running: RunningStack) -> None:
    """``tools``, ``health`` and ``breakers`` answer from the stack's Redis, as tables and as JSON."""
    tools = running.cli("tools", "plex", "--json")
    assert tools.returncode == 0, tools.stderr
    assert len(json.loads(tools.stdout)["plex"]) == 13
    assert "plex_get_libraries" in running.cli("tools", "library").stdout
    health = running.cli("health", "--json")
    assert set(json.loads(health.stdout)) >= {"sabnzbd", "sonarr", "radarr", "plex"}
    breakers = running.cli("breakers", "--json")
    assert breakers.returncode == 0 and json.loads(breakers.stdout)["sonarr"]["state"] == "closed"


def test_stats_shows_calls_failures_and_latency_per_server(running: RunningStack) -> None:
    """``mcp-orch stats`` reads the workers' counters: calls, failures and latency per server and tool."""
    assert running.cli("call", "sab", "sabnzbd_get_queue").returncode == 0
    done = running.cli("stats", "--tools", "--json")
    assert done.returncode == 0, done.stderr
    rows = {(row["server"], row["tool"]): row for row in json.loads(done.stdout)}
    sab = rows[("sabnzbd", "*")]
    assert sab["calls"] >= 1 and sab["mean_ms"] > 0 and sab["p95_ms"] > 0
    assert rows[("sabnzbd", "sabnzbd_get_queue")]["calls"] >= 1
    table = running.cli("stats", "sab")
    assert table.returncode == 0 and re.search(r"^sabnzbd\s+\*\s+\d+", table.stdout, re.M)


def test_cli_errors_are_one_line_with_a_non_zero_exit(running: RunningStack) -> None:
    """Smoke test of the installed command's error path (every case runs in-process in test_cli.py):
    bad input is refused in one line on stderr, exit 2; it names what was wrong."""
    done = running.cli("call", "nosuch", "x")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "server" in done.stderr, done.stderr


def test_stack_without_redis_server_on_path_is_a_one_line_error_saying_how_to_install_it(tmp_path: Path) -> None:
    """With no broker configured and no ``redis-server`` on PATH, ``mcp-orch stack`` exits 1 with one
    error line that names the install command (and the alternative), no traceback, nothing printed on stdout."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**operator_env(tmp_path), "PATH": str(empty), "TMPDIR": str(tmp_path)}
    done = subprocess.run([*MCP_ORCH, "stack"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        "error: redis-server is not installed. Install it with: sudo apt-get install -y redis-server"
        " (or point MCP_ORCH_BROKER_URL at a running Redis)"], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_sigterm_stops_the_stack_and_leaves_no_process_behind(running: RunningStack) -> None:
    """SIGTERM stops every process the stack started (MCP servers included); none is left."""
    started = descendants(running.proc.pid)
    assert sum("celery" in args and " worker " in args for args in started.values()) == 4
    assert any("flower" in args for args in started.values())
    assert any("media_mcp.sabnzbd" in args for args in started.values())
    groups = {os.getpgid(pid) for pid in started if _exists(pid)}
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(timeout=60) == 0
    left = {pid: args for pid, args in started.items() if _exists(pid)}
    assert not left, f"left behind: {left}"
    for group in groups:
        assert subprocess.run(["pgrep", "-g", str(group)], capture_output=True).returncode == 1, group
    assert running.log_dir is not None
    for log in running.log_dir.glob("*.log"):
        text = log.read_text(errors="replace")
        assert running.login[1] not in text, f"the Flower password is in {log.name}"
        assert CANARY_SAB_KEY not in text, f"the SABnzbd key is in {log.name}"
