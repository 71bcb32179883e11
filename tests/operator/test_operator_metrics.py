"""Metrics and Flower naming against a real Redis: the counters workers write, the text Prometheus reads."""

from __future__ import annotations

import json
import time

import pytest
import redis
from celery.events.state import State
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry

from orchestrator import keys
from orchestrator.breaker import BreakerBoard
from orchestrator.celery_app import make_celery
from orchestrator.config import Settings, load_settings
from orchestrator.health import HealthStore
from orchestrator.metrics import DURATION_BUCKETS, read_call_stats, record_call, server_totals
from orchestrator.operator.cli import main
from orchestrator.operator.flower import flower_login
from orchestrator.operator.metrics_server import exposition
from orchestrator.wire import CALL_TOOL, LIST_TOOLS, task_label

CONFIG = """
broker_url = "{url}"
[servers.alpha.transport]
type = "stdio"
command = "python"
[servers.beta.transport]
type = "http"
url = "http://127.0.0.1:1/mcp"
"""


@pytest.fixture
def settings(redis_url: str, tmp_path) -> Settings:
    path = tmp_path / "orch.toml"
    path.write_text(CONFIG.format(url=redis_url))
    return load_settings(path)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_recorded_calls_come_back_per_server_and_tool(redis_client: redis.Redis) -> None:
    """Calls, failures by error type, retries and a duration histogram are summed per tool and server."""
    record_call(redis_client, "alpha", "echo", ok=True, duration=0.004)
    record_call(redis_client, "alpha", "echo", ok=True, duration=0.2, attempts=3)
    record_call(redis_client, "alpha", "add", ok=False, duration=70.0, error="ServerUnavailable")
    stats = read_call_stats(redis_client, ["alpha", "beta"])
    echo, add = stats["alpha"]["echo"], stats["alpha"]["add"]
    assert (echo.calls, echo.failures, echo.retries) == (2, 0, 2)
    assert echo.duration_sum == pytest.approx(0.204)
    assert (add.calls, add.failures, add.errors) == (1, 1, {"ServerUnavailable": 1})
    assert add.buckets[-1] == 1, "a 70 s call lands in the +Inf bucket"
    assert stats["beta"] == {}
    total = server_totals(stats["alpha"], "alpha")
    assert (total.calls, total.failures, total.retries) == (3, 1, 2)
    assert 0 < total.quantile(0.5) <= DURATION_BUCKETS[5]


def test_exposition_has_breakers_queues_and_call_histograms(settings: Settings, redis_client: redis.Redis) -> None:
    """The text parses as Prometheus exposition with breaker state, transitions, queue lengths and calls."""
    record_call(redis_client, "alpha", "echo", ok=True, duration=0.03)
    redis_client.rpush("mcp.beta", "m1", "m2")
    BreakerBoard(redis_client, {"beta": settings.servers["beta"].breaker}).breaker("beta").force_open()
    values = samples(exposition(settings, redis_client))
    assert values[("mcp_orch_redis_up", ())] == 1
    assert values[("mcp_orch_breaker_state", (("server", "beta"), ("state", "forced_open")))] == 1
    assert values[("mcp_orch_breaker_state", (("server", "alpha"), ("state", "closed")))] == 1
    assert ("mcp_orch_breaker_transitions_total", (("server", "beta"),)) in values
    assert values[("mcp_orch_queue_length", (("queue", "mcp.beta"), ("server", "beta")))] == 2
    assert values[("mcp_orch_queue_length", (("queue", "mcp.alpha"), ("server", "alpha")))] == 0
    labels = (("server", "alpha"), ("tool", "echo"))
    assert values[("mcp_orch_calls_total", labels)] == 1
    assert values[("mcp_orch_call_duration_seconds_bucket", (("le", "0.05"), *labels))] == 1
    assert values[("mcp_orch_call_duration_seconds_bucket", (("le", "0.025"), *labels))] == 0
    assert values[("mcp_orch_call_duration_seconds_sum", labels)] == pytest.approx(0.03)
    assert ("mcp_orch_health_status", (("server", "alpha"), ("status", "unknown"))) in values


def test_exposition_has_retries_per_tool_and_health_latency_per_server(settings: Settings,
                                                                       redis_client: redis.Redis) -> None:
    """A call that took 3 attempts counts 2 retries (the extra attempts) for its server and tool, a call
    that took 1 counts none; a recorded health check's latency is the server's health latency in seconds."""
    record_call(redis_client, "alpha", "echo", ok=True, duration=0.2, attempts=3)
    record_call(redis_client, "alpha", "echo", ok=True, duration=0.01)
    record_call(redis_client, "alpha", "add", ok=True, duration=0.01, attempts=1)
    HealthStore(redis_client).record(settings.servers["beta"], ok=True, latency=0.125, worker="beta@test")
    values = samples(exposition(settings, redis_client))
    assert values[("mcp_orch_call_retries_total", (("server", "alpha"), ("tool", "echo")))] == 2
    assert values[("mcp_orch_call_retries_total", (("server", "alpha"), ("tool", "add")))] == 0
    assert values[("mcp_orch_calls_total", (("server", "alpha"), ("tool", "echo")))] == 2
    assert values[("mcp_orch_health_latency_seconds", (("server", "beta"),))] == pytest.approx(0.125)
    assert ("mcp_orch_health_latency_seconds", (("server", "alpha"),)) not in values, "alpha was never checked"


def test_exposition_says_why_a_server_is_not_healthy(settings: Settings, redis_client: redis.Redis) -> None:
    """An upstream refusing the key (recorded by a health probe) shows as its failure kind; a queue nobody
    consumes shows as no_worker."""
    redis_client.zadd(keys.consumers_key("mcp.beta"), {"w@test": time.time() + 60})
    HealthStore(redis_client).record(settings.servers["beta"], ok=False, upstream_failed=True,
                                     failure_kind="upstream_unauthorized", error="upstream refuses the credentials")
    values = samples(exposition(settings, redis_client))
    assert values[("mcp_orch_health_status", (("server", "beta"), ("status", "degraded")))] == 1
    assert values[("mcp_orch_health_failure", (("kind", "upstream_unauthorized"), ("server", "beta")))] == 1
    assert values[("mcp_orch_health_failure", (("kind", "no_worker"), ("server", "alpha")))] == 1


def test_an_unreachable_redis_is_reported_not_raised(settings: Settings) -> None:
    """When Redis is down the exporter still answers, with ``mcp_orch_redis_up 0``."""
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    assert samples(exposition(settings, down)) == {("mcp_orch_redis_up", ()): 0}


def test_stats_and_metrics_commands_print_for_scripts(settings: Settings, redis_client: redis.Redis, tmp_path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """``mcp-orch stats --json`` and ``mcp-orch metrics --once`` read the same counters."""
    path = tmp_path / "orch.toml"
    path.write_text(CONFIG.format(url=settings.broker_url))
    record_call(redis_client, "alpha", "echo", ok=False, duration=0.01, error="ToolReturnedError")
    assert main(["--config", str(path), "stats", "--json"]) == 0
    rows = {row["server"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["alpha"]["calls"] == 1 and rows["alpha"]["failures"] == 1 and rows["beta"]["calls"] == 0
    assert main(["--config", str(path), "metrics", "--once"]) == 0
    values = samples(capsys.readouterr().out)
    assert values[("mcp_orch_call_errors_total", (("error", "ToolReturnedError"), ("server", "alpha"),
                                                   ("tool", "echo")))] == 1
    assert main(["--config", str(path), "stats", "--reset", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["calls"] == 0


def test_published_mcp_tasks_carry_a_readable_name(settings: Settings, redis_client: redis.Redis) -> None:
    """A call is published with the shadow name ``<server>.<tool>``: what Flower and worker logs show."""
    app = make_celery(settings)
    try:
        app.send_task(CALL_TOOL, kwargs={"server": "alpha", "tool": "echo", "params": {"text": "hi"},
                                         "deadline": 1.0}, queue="mcp.alpha")
        app.send_task(LIST_TOOLS, kwargs={"server": "alpha", "deadline": 1.0}, queue="mcp.alpha")
    finally:
        app.close()
    headers = [json.loads(raw)["headers"] for raw in redis_client.lrange("mcp.alpha", 0, -1)]
    assert sorted(h["shadow"] for h in headers) == ["alpha.echo", "alpha.tools/list"]
    call = next(h for h in headers if h["task"] == CALL_TOOL)
    assert "'server': 'alpha'" in call["kwargsrepr"] and "'params': {'text': 'hi'}" in call["kwargsrepr"]
    assert task_label("celery.chord_unlock", {"server": "x"}) is None


def test_flower_keeps_the_readable_name_whichever_event_arrives_first(settings: Settings) -> None:
    """The client's ``task-sent`` may reach Flower after the worker's ``task-received``; Flower then
    merges the late event's name over the earlier one, so both events must carry ``<server>.<tool>``."""
    app = make_celery(settings)
    try:
        message = app.amqp.create_task_message(
            "id-1", CALL_TOOL, (), {"server": "alpha", "tool": "echo", "params": {}, "deadline": 1.0},
            create_sent_event=True)
    finally:
        app.close()
    assert message.headers["shadow"] == "alpha.echo"
    received = {"type": "task-received", "uuid": "id-1", "name": message.headers["shadow"], "hostname": "w1",
                "timestamp": time.time(), "local_received": time.time(), "clock": 2}
    sent = {**message.sent_event, "type": "task-sent", "hostname": "client", "timestamp": time.time() - 0.01,
            "local_received": time.time(), "clock": 3}
    for order in ((received, sent), (sent, received)):
        state = State()
        for event in order:
            state.event(dict(event))
        assert state.tasks["id-1"].name == "alpha.echo"


def test_flower_login_comes_from_config_or_is_generated(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """A configured password is used as is; without one the stack generates one and ``flower`` refuses."""
    generated = flower_login(settings, generate=True)
    assert generated is not None and generated.generated and len(generated.password) >= 16
    assert flower_login(settings, generate=False) is None
    monkeypatch.setenv("MCP_ORCH_FLOWER__PASSWORD", "s3cret-password")
    configured = flower_login(load_settings(broker_url=settings.broker_url), generate=True)
    assert configured is not None and not configured.generated and configured.password == "s3cret-password"
