"""The broker settings: one ``[redis_sentinel]`` table moves every Redis client behind Sentinel; an
``amqp://`` broker keeps Redis for results and state; bad combinations are refused by name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import redis
from kombu.transport import redis as kombu_redis
from redbeat.schedulers import get_redis
from redis.sentinel import SentinelConnectionPool

import beat_schedule
from orchestrator import redis_conn
from orchestrator.celery_app import RABBITMQ_DELIVERY_LIMIT, make_celery
from orchestrator.config import ConfigError, Settings, load_settings
from orchestrator.operator.cli_support import BrokerChoice
from orchestrator.unreachable import broker_unavailable
from tests.support.source import parse_module

REPO = Path(__file__).resolve().parents[2]
SENTINEL = {"sentinels": ["10.0.0.1:26379", "10.0.0.2:26380"], "master_name": "mymaster",
            "password": "${TEST_REDIS_PW}", "sentinel_password": "${TEST_SENTINEL_PW}", "db": 2}
SERVER = {"probe": {"transport": {"type": "stdio", "command": "python"}}}


@pytest.fixture
def passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_REDIS_PW", "master-secret-1")
    monkeypatch.setenv("TEST_SENTINEL_PW", "sentinel-secret-2")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orchestrator.toml"
    path.write_text(text)
    return path


def test_the_redis_sentinel_table_gives_celery_a_sentinel_broker_and_backend_with_the_master_name(
        passwords: None) -> None:
    settings = Settings(redis_sentinel=SENTINEL)
    app = make_celery(settings)
    assert settings.broker == settings.backend_url == (
        "sentinel://:master-secret-1@10.0.0.1:26379/2;sentinel://:master-secret-1@10.0.0.2:26380/2")
    assert isinstance(app.connection_for_write().transport, kombu_redis.SentinelTransport)
    for options in (app.conf.broker_transport_options, app.conf.result_backend_transport_options):
        assert options["master_name"] == "mymaster"
        assert options["sentinel_kwargs"]["password"] == "sentinel-secret-2"
    assert {"master-secret-1", "sentinel-secret-2"} <= set(settings.secret_values())


def test_the_projects_own_redis_client_asks_the_sentinels_for_the_master(passwords: None) -> None:
    client = redis_conn.connect(Settings(redis_sentinel=SENTINEL), socket_timeout=5)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 2 and pool.connection_kwargs["password"] == "master-secret-1"
    assert [(s.connection_pool.connection_kwargs["port"], s.connection_pool.connection_kwargs["password"])
            for s in pool.sentinel_manager.sentinels] == [(26379, "sentinel-secret-2"), (26380, "sentinel-secret-2")]


def test_beats_redbeat_client_asks_the_sentinels_and_retries_a_refused_connection(passwords: None) -> None:
    """RedBeat does not retry its lock's commands; redis-py does, so a failover does not stop beat."""
    settings = Settings(redis_sentinel=SENTINEL)
    app = beat_schedule.configure_beat(make_celery(settings), settings)
    client = get_redis(app)
    assert isinstance(client.connection_pool, SentinelConnectionPool)
    assert client.connection_pool.service_name == "mymaster"
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["decode_responses"] and kwargs["retry"].get_retries() >= 5
    assert "master-secret-1" not in app.conf.redbeat_redis_url


def test_a_broker_url_next_to_redis_sentinel_is_refused_naming_both(tmp_path: Path) -> None:
    path = write(tmp_path, 'broker_url = "redis://10.0.0.9:6379/0"\n'
                           '[redis_sentinel]\nsentinels = ["10.0.0.1:26379"]\nmaster_name = "m"\n')
    with pytest.raises(ConfigError, match=r"broker_url: leave out when redis_sentinel is set"):
        load_settings(path)


def test_a_sentinel_url_as_broker_url_points_at_the_redis_sentinel_table() -> None:
    with pytest.raises(ValueError, match=r"broker_url[\s\S]*set \[redis_sentinel\]"):
        Settings(broker_url="sentinel://10.0.0.1:26379")


def test_a_sentinel_address_without_a_port_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.1' is not host:port"):
        Settings(redis_sentinel={"sentinels": ["10.0.0.1"], "master_name": "m"})


def test_an_amqp_broker_needs_a_redis_for_results_and_state() -> None:
    with pytest.raises(ValueError, match=r"amqp:// broker_url needs result_backend"):
        Settings(broker_url="amqp://guest:guest@127.0.0.1:5672//")
    with pytest.raises(ValueError, match=r"result_backend[\s\S]*must be a URL with one of the schemes redis://"):
        Settings(broker_url="amqp://127.0.0.1//", result_backend="amqp://127.0.0.1//")


def test_with_an_amqp_broker_the_projects_redis_is_the_result_backend_and_queues_are_quorum_queues() -> None:
    settings = Settings(broker_url="amqp://127.0.0.1//", result_backend="redis://10.0.0.5:6379/3", servers=SERVER)
    assert redis_conn.connect(settings).connection_pool.connection_kwargs["host"] == "10.0.0.5"
    queue = make_celery(settings).conf.task_queues[0]
    assert queue.durable
    assert queue.queue_arguments == {"x-queue-type": "quorum", "x-delivery-limit": RABBITMQ_DELIVERY_LIMIT}
    assert make_celery(Settings(servers=SERVER)).conf.task_queues[0].queue_arguments is None


def test_an_amqp_broker_and_sentinel_results_go_together(passwords: None) -> None:
    settings = Settings(broker_url="amqp://127.0.0.1//", redis_sentinel=SENTINEL)
    assert settings.broker == "amqp://127.0.0.1//"
    assert settings.backend_url.startswith("sentinel://")


def test_every_redis_client_of_the_project_is_built_by_redis_conn() -> None:
    """One function builds them, so one setting moves all of them behind Sentinel."""
    offenders = []
    for path in [*REPO.glob("orchestrator/**/*.py"), *REPO.glob("workers/*.py"), REPO / "beat_schedule.py"]:
        if path.name == "redis_conn.py":
            continue
        for node in ast.walk(parse_module(path)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
                if name in {"from_url", "Redis", "StrictRedis", "Sentinel"}:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"Redis clients built outside orchestrator/redis_conn.py: {offenders}"


def test_the_cli_names_the_sentinels_or_rabbitmq_it_uses_without_a_password(passwords: None) -> None:
    sentinel = BrokerChoice(Settings(redis_sentinel=SENTINEL), "configured").describe()
    assert sentinel == "Redis Sentinel 'mymaster' via 10.0.0.1:26379, 10.0.0.2:26380 (configured)"
    rabbit = BrokerChoice(Settings(broker_url="amqp://u:rabbit-secret@mq:5672//",
                                   result_backend="redis://:redis-secret@r:6379/0"), "configured").describe()
    assert rabbit.startswith("RabbitMQ amqp://u:**@mq:5672// with Redis redis://:**@r:6379/0")
    assert "secret" not in sentinel + rabbit


def test_an_unreachable_sentinel_group_is_named_without_any_password(passwords: None) -> None:
    settings = Settings(redis_sentinel=SENTINEL)
    error = broker_unavailable(redis.ConnectionError("Error 111 connecting to 10.0.0.1:26379."), settings.broker,
                               settings.backend_url)
    assert "10.0.0.1:26379/2" in str(error)
    assert "secret" not in str(error)
