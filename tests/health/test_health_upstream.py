"""Health checks that prove the whole path to the upstream, and drive the breaker's recovery.

A SABnzbd simulator behind the bundled SABnzbd MCP server, configured three times: ``sabnzbd``
(the bundled probe ``sabnzbd_get_queue``, a breaker that trips on 2 failed calls and would stay
open 60 s), ``sab_oldkey`` (a key the simulator refuses, as after a key rotation; its failed probes
count against its breaker) and ``sab_listonly`` (no ``health_tool``: ``tools/list`` only). One
threads worker and one beat checking every server each second.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import redis

import upstream_sim
from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import Settings, load_settings
from orchestrator.errors import CircuitBreakerOpenError, UpstreamUnavailable
from orchestrator.health import PROBE_TOOLS_LIST, HealthStatus, ServerHealth
from orchestrator.operator.processes import ChildProcess, wait_until
from orchestrator.wire import HEALTH_CHECK
from tests.support.beat import start_beat, wait_for_lock
from tests.support.media import CANARY
from tests.support.procs import REPO, start_worker
from tests.support.redis_proc import RedisServer
from upstream_sim.runner import SimHandle

pytestmark = pytest.mark.slow

DATABASE = 25
"""This module's Redis database."""
INTERVAL = 1.0
"""Health interval of every server here (seconds)."""
SECRET = CANARY["sabnzbd"]
OLD_KEY = "CANARY-rotated-sab-key-41aa"

SERVER = """
[servers.{name}]
health_interval_seconds = {interval}
timeout = 6
{extra}
[servers.{name}.transport]
type = "stdio"
command = "python"
args = ["-m", "media_mcp.sabnzbd", "--transport", "stdio"]
cwd = "{repo}"
env = {{ SABNZBD_URL = "${{SABNZBD_URL}}", SABNZBD_API_KEY = "${{{key_var}}}", SABNZBD_TIMEOUT = "1" }}
"""
PROBE = 'health_tool = "sabnzbd_get_queue"\nhealth_params = { limit = 1 }'


def config_text(broker: str) -> str:
    servers = [
        ("sabnzbd", "SABNZBD_API_KEY", PROBE + "\nbreaker = { failure_threshold = 2, open_seconds = 60, "
                                       "success_threshold = 1 }\nretry = { max_attempts = 1 }"),
        ("sab_oldkey", "OLD_SAB_KEY", PROBE + "\nbreaker = { failure_threshold = 2, open_seconds = 60, "
                                      "count_failed_health_checks = true }"),
        ("sab_listonly", "SABNZBD_API_KEY", ""),
    ]
    body = "".join(SERVER.format(name=name, interval=INTERVAL, extra=extra, repo=REPO, key_var=var)
                   for name, var, extra in servers)
    return f'broker_url = "{broker}"\nbeat_lock_timeout = 4\nbeat_max_interval = 0.5\n{body}'


@dataclass
class UpstreamStack:
    sim: SimHandle
    settings: Settings
    client: Orchestrator
    worker: ChildProcess
    config_path: str

    def health(self, server: str) -> ServerHealth:
        return self.client.health_detail(server)

    def wait_for(self, server: str, status: HealthStatus, timeout: float, contains: str = "") -> ServerHealth:
        """The server's health once it reads ``status`` with ``contains`` in its reason."""
        seen: list[ServerHealth] = []

        def reached() -> bool:
            seen.append(self.health(server))
            return seen[-1].status == status and contains in (seen[-1].reason or "")

        try:
            wait_until(reached, timeout, f"{server} to read {status.value} ({contains!r})")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last: {seen[-1].model_dump() if seen else None}") from None
        return seen[-1]


@pytest.fixture(scope="module")
def upstream_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpstreamStack]:
    root = tmp_path_factory.mktemp("health-upstream")
    broker = f"{redis_server.url}/{DATABASE}"
    conn = redis.Redis.from_url(broker)
    conn.flushdb()
    config_path = root / "orchestrator.toml"
    config_path.write_text(config_text(broker))
    settings = load_settings(config_path)
    sim = upstream_sim.run_in_thread("sabnzbd", SECRET)
    env = {"MCP_ORCH_CONFIG": str(config_path), "SABNZBD_URL": sim.url, "SABNZBD_API_KEY": SECRET,
           "OLD_SAB_KEY": OLD_KEY}
    app = make_celery(settings)
    client = Orchestrator(settings, app=app)
    worker = beat = None
    try:
        worker = start_worker(app, name="upstream", queues=[s.queue for s in settings.servers.values()],
                              pool="threads", concurrency=6, env=env, log=root / "worker.log")
        beat = start_beat("beat", config=config_path, log=root / "beat.log")
        wait_for_lock(conn, beat)
        yield UpstreamStack(sim, settings, client, worker, str(config_path))
    finally:
        for child in (beat, worker):
            if child is not None:
                child.stop()
        client.close()
        sim.stop()
        conn.flushdb()
        conn.close()


@pytest.fixture
def stack(upstream_stack: UpstreamStack) -> Iterator[UpstreamStack]:
    """The module's stack with a well upstream and a closed breaker before and after the test."""
    upstream_stack.sim.faults = {}
    upstream_stack.client.reset_breaker("sabnzbd")
    upstream_stack.wait_for("sabnzbd", HealthStatus.HEALTHY, 15)
    yield upstream_stack
    upstream_stack.sim.faults = {}
    upstream_stack.client.reset_breaker("sabnzbd")


def test_a_well_upstream_reads_healthy_through_its_probe_tool(stack: UpstreamStack) -> None:
    """The bundled SABnzbd probe (``sabnzbd_get_queue`` with the API key) passes and the record names it."""
    health = stack.health("sabnzbd")
    assert health.status == HealthStatus.HEALTHY and health.probe == "tool sabnzbd_get_queue"
    assert health.reason is None and health.tool_count


def test_a_refused_key_reads_degraded_naming_the_credentials_and_trips_a_breaker_set_to_count_probes(
        stack: UpstreamStack) -> None:
    """A key the upstream answers 403 to: degraded, "refuses the credentials", HTTP 403, never down (the session
    is fine); its failed probes count as failed calls because that server is configured so."""
    health = stack.wait_for("sab_oldkey", HealthStatus.DEGRADED, 10, "refuses the credentials")
    assert "403" in health.reason and health.failure_kind == "upstream_unauthorized"
    assert OLD_KEY not in health.model_dump_json() and SECRET not in health.model_dump_json()
    wait_until(lambda: stack.client.breaker_states()["sab_oldkey"].state == "open", 10, "failed probes to trip it")
    time.sleep(INTERVAL * 3.5)  # K (3) consecutive failed checks would mark a session failure down
    assert stack.health("sab_oldkey").recorded_status == HealthStatus.DEGRADED


def test_an_upstream_answering_503_reads_degraded_with_that_reason_within_an_interval(stack: UpstreamStack) -> None:
    """With the simulator answering 503 the next check reads degraded, "upstream unavailable", HTTP 503; the
    breaker of a server not set to count probes stays closed; the check without a probe tool stays healthy
    and says the upstream is not checked."""
    stack.sim.faults = {"down": True}
    started = time.monotonic()
    health = stack.wait_for("sabnzbd", HealthStatus.DEGRADED, INTERVAL * 2 + 6, "upstream unavailable")
    assert time.monotonic() - started < INTERVAL * 2 + 6
    assert "503" in health.reason and health.failure_kind == "upstream_unavailable"
    assert stack.client.breaker_states()["sabnzbd"].state == "closed"
    fallback = stack.health("sab_listonly")
    assert fallback.status == HealthStatus.HEALTHY and fallback.probe == PROBE_TOOLS_LIST


def test_a_hanging_upstream_reads_degraded_as_timing_out(stack: UpstreamStack) -> None:
    """An upstream that answers after 3 s (the MCP server gives it 1 s) reads degraded with a timeout reason."""
    stack.sim.faults = {"latency_ms": 3000}
    health = stack.wait_for("sabnzbd", HealthStatus.DEGRADED, INTERVAL * 2 + 10, "timed out")
    assert health.failure_kind == "upstream_unavailable"


def test_the_health_task_result_and_the_cli_show_state_and_reason(stack: UpstreamStack) -> None:
    """What Flower shows (the task's result) and ``mcp-orch health`` carry the state and the reason."""
    deadline = time.time() + 10
    handle = stack.client.app.send_task(HEALTH_CHECK, kwargs={"server": "sab_oldkey", "deadline": deadline},
                                        queue="mcp.sab_oldkey", expires=datetime.fromtimestamp(deadline, tz=UTC))
    result = handle.get(timeout=15)
    assert result["status"] == "degraded" and "refuses the credentials" in result["reason"]
    assert result["probe"] == "tool sabnzbd_get_queue"
    cli = [sys.executable, "-m", "orchestrator.operator.cli", "--config", stack.config_path, "health"]
    shown = subprocess.run([*cli, "sab_oldkey"], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert shown.returncode == 1 and "degraded" in shown.stdout and "refuses the credentials" in shown.stdout
    fallback = subprocess.run([*cli, "sab_listonly"], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert "healthy" in fallback.stdout and "upstream not checked" in fallback.stdout


def test_a_probe_reaching_the_upstream_again_half_opens_the_breaker_within_one_interval(stack: UpstreamStack) -> None:
    """After an outage opened the breaker (open_seconds = 60), calls resume within one health interval (plus
    the probe) of the upstream's return: the probe moves it to half-open and the trial call closes it."""
    stack.sim.faults = {"down": True}
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            stack.client.call_tool("sabnzbd", "sabnzbd_get_queue", {"limit": 1})
    assert stack.client.breaker_states()["sabnzbd"].state == "open"
    with pytest.raises(CircuitBreakerOpenError):
        stack.client.call_tool("sabnzbd", "sabnzbd_get_queue", {"limit": 1})
    stack.sim.faults = {}
    back = time.monotonic()
    wait_until(lambda: stack.client.breaker_states()["sabnzbd"].state == "half_open", INTERVAL + 5,
               "a health probe to half-open the breaker")
    assert stack.client.call_tool("sabnzbd", "sabnzbd_get_queue", {"limit": 1}).ok
    assert time.monotonic() - back < INTERVAL + 5
    assert stack.client.breaker_states()["sabnzbd"].state == "closed"
