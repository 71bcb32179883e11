"""The compose variants for other brokers, checked statically (Docker cannot run here): each override
parses, adds services of third-party images only, and gives every orchestrator service environment
that loads into settings naming the variant's own services."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from orchestrator.config import CONFIG_PATH_ENV, Settings, load_settings
from tests.operator.test_compose import COMPOSE, REPO, VARIANTS, env_example, interpolate

ORCHESTRATOR_SERVICES = ("worker-sabnzbd", "worker-sonarr", "worker-radarr", "worker-plex", "beat", "flower",
                         "metrics")


def merged(variant: str) -> dict[str, dict[str, Any]]:
    """The services as ``docker compose -f docker-compose.yml -f <variant>`` merges them (maps merge
    key by key, lists and scalars of the override win), interpolated with .env.example."""
    base = yaml.safe_load(COMPOSE.read_text())["services"]
    override = yaml.safe_load(VARIANTS[variant].read_text())["services"]
    services = {name: dict(service) for name, service in base.items()}
    for name, service in override.items():
        target = services.setdefault(name, {})
        for key, value in service.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **value}
            else:
                target[key] = value
    return interpolate(services, env_example())


def settings_of(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in service["environment"].items():
        if key != CONFIG_PATH_ENV:
            monkeypatch.setenv(key, str(value))
    return load_settings(REPO / "deploy" / "compose.toml")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_variant_adds_only_third_party_services_with_a_healthcheck(variant: str) -> None:
    base = set(yaml.safe_load(COMPOSE.read_text())["services"])
    override = yaml.safe_load(VARIANTS[variant].read_text())
    for name, service in override["services"].items():
        if name not in base:
            assert "image" in service and "build" not in service, name
            assert "healthcheck" in service, f"{name}: orchestrator services wait for it to be healthy"
    for name in ORCHESTRATOR_SERVICES:
        assert name in override["services"], f"{variant}: {name} keeps the base file's broker"


def test_the_sentinel_variant_points_every_process_at_its_three_sentinels(monkeypatch: pytest.MonkeyPatch) -> None:
    services = merged("sentinel")
    for name in ORCHESTRATOR_SERVICES:
        settings = settings_of(services[name], monkeypatch)
        sentinel = settings.redis_sentinel
        assert sentinel is not None, name
        assert settings.broker.startswith("sentinel://") and settings.backend_url.startswith("sentinel://")
        for address in sentinel.sentinels:
            host, port = address.split(":")
            assert host in services and port == "26379", address
            command = " ".join(services[host]["command"])
            assert f"sentinel monitor {sentinel.master_name} redis 6379 2" in command
        assert sentinel.resolved_password() == env_example()["REDIS_PASSWORD"]
        monkeypatch.delenv("MCP_ORCH_FLOWER__PASSWORD", raising=False)
    replica = " ".join(services["redis-replica"]["command"])
    assert "--replicaof redis 6379" in replica and "--masterauth" in replica
    assert "--masterauth" in " ".join(services["redis"]["command"]), "a demoted master must rejoin"


def test_the_rabbitmq_variant_brokers_through_rabbitmq_and_keeps_redis_for_results(
        monkeypatch: pytest.MonkeyPatch) -> None:
    services = merged("rabbitmq")
    rabbit = services["rabbitmq"]
    for name in ORCHESTRATOR_SERVICES:
        settings = settings_of(services[name], monkeypatch)
        assert settings.broker_is_amqp, name
        match = re.match(r"^amqp://([^:]+):([^@]+)@rabbitmq:5672//$", settings.broker)
        assert match, settings.broker
        assert match.groups() == (rabbit["environment"]["RABBITMQ_DEFAULT_USER"],
                                  rabbit["environment"]["RABBITMQ_DEFAULT_PASS"])
        assert settings.state_url == f"redis://:{env_example()['REDIS_PASSWORD']}@redis:6379/0"
        assert services[name]["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
    assert any(volume.endswith(":/var/lib/rabbitmq") for volume in rabbit["volumes"])
