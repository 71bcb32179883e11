"""What every ``mcp-orch`` command shares: the settings it runs with and how it prints."""

from __future__ import annotations

import json
import os
from typing import Any

from orchestrator.config import CONFIG_PATH_ENV, ENV_PREFIX, Settings, load_settings


def cli_settings(config: str | None) -> Settings:
    """The configuration; under the bundled defaults, a stack running here supplies the broker."""
    if config is None and not os.environ.get(CONFIG_PATH_ENV) and not os.environ.get(f"{ENV_PREFIX}BROKER_URL"):
        from orchestrator.operator.stack import running_stack_broker

        broker = running_stack_broker()
        if broker:
            return load_settings(broker_url=broker)
    return load_settings(config)


def export_settings(config: str | None, settings: Settings) -> None:
    """Hand the config file and the broker on to a process this one is replaced with (``os.execv``)."""
    if config:
        os.environ[CONFIG_PATH_ENV] = os.path.abspath(config)
    os.environ[f"{ENV_PREFIX}BROKER_URL"] = settings.broker_url


def emit(value: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(value, indent=2, default=str))
    elif isinstance(value, str):
        print(value)
    else:
        print(json.dumps(value, indent=2, default=str))
