"""What every ``mcp-orch`` command shares: the settings it runs with and how it prints."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from kombu.utils.url import maybe_sanitize_url

from orchestrator.config import CONFIG_PATH_ENV, ENV_PREFIX, Settings, config_path, load_settings
from orchestrator.operator import stack_state


@dataclass(frozen=True)
class BrokerChoice:
    """The settings a command runs with, and where their broker came from (said to the operator)."""

    settings: Settings
    source: str
    fallback: bool = False

    def describe(self) -> str:
        """``Redis <url, password hidden> (<source>)``, or the Sentinel master name and sentinels."""
        sentinel = self.settings.redis_sentinel
        if sentinel is not None:
            return f"Redis Sentinel {sentinel.master_name!r} via {', '.join(sentinel.sentinels)} ({self.source})"
        if self.settings.broker_is_amqp:
            return (f"RabbitMQ {maybe_sanitize_url(self.settings.broker_url)} with Redis "
                    f"{maybe_sanitize_url(self.settings.state_url)} ({self.source})")
        return f"Redis {maybe_sanitize_url(self.settings.broker_url)} ({self.source})"


def choose_broker(config: str | None) -> BrokerChoice:
    """The configuration; under the bundled defaults, the stack running from this checkout supplies the
    broker. Falling back to the configured default broker (no such stack) is marked as a fallback."""
    if config is not None or os.environ.get(CONFIG_PATH_ENV):
        return BrokerChoice(load_settings(config), f"configured in {config_path(config)}")
    if os.environ.get(f"{ENV_PREFIX}BROKER_URL"):
        return BrokerChoice(load_settings(), f"from {ENV_PREFIX}BROKER_URL")
    lookup = stack_state.find(config_path(None))
    if lookup.running is not None:
        return BrokerChoice(load_settings(broker_url=lookup.running.broker_url),
                            f"the stack running from this checkout, pid {lookup.running.pid}")
    gone = f"; removed the state of a stack that is gone (pid {lookup.stale.pid})" if lookup.stale else ""
    return BrokerChoice(load_settings(), f"no stack is running from this checkout: the default broker{gone}",
                        fallback=True)


def cli_settings(args: argparse.Namespace, *, header: bool = False) -> Settings:
    """The settings of a command. With ``header`` (health, stats) the first output line names the Redis
    used; otherwise a note on stderr does, with ``--verbose`` or when falling back to the default."""
    choice = choose_broker(args.config)
    if header:
        print(choice.describe(), file=sys.stderr if getattr(args, "json", False) else sys.stdout)
    elif getattr(args, "verbose", False) or choice.fallback:
        print(f"note: using {choice.describe()}", file=sys.stderr)
    return choice.settings


def export_settings(config: str | None, settings: Settings) -> None:
    """Hand the config file and the broker on to a process this one is replaced with (``os.execv``)."""
    if config:
        os.environ[CONFIG_PATH_ENV] = os.path.abspath(config)
    if settings.redis_sentinel is None or settings.broker_is_amqp:  # with Sentinel the config names the master
        os.environ[f"{ENV_PREFIX}BROKER_URL"] = settings.broker_url


def emit(value: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(value, indent=2, default=str))
    elif isinstance(value, str):
        print(value)
    else:
        print(json.dumps(value, indent=2, default=str))


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of blanks as single spaces: a server's error text may span
    lines (a pydantic report), and the CLI's errors and table cells are one line each."""
    return " ".join(text.split())
