"""The periodic schedule, run by exactly one beat: ``mcp-orch beat`` (``celery -A beat_schedule beat``).

Every enabled server gets a ``health_check(server)`` every ``health_interval_seconds``, routed
to the server's own queue (so it proves the queue, a worker and the held session) and expiring
after one interval (a stuck queue does not pile up checks).

The scheduler is RedBeat: the schedule lives in Redis and a Redis lock (``keys.REDBEAT_LOCK_KEY``)
lets one beat schedule at a time. A second beat started by mistake waits on the lock and takes
over ``beat_lock_timeout`` seconds after the first one dies; every tick (at most
``beat_max_interval`` apart) renews the lock.
"""

from __future__ import annotations

from typing import Any

import redbeat  # noqa: F401  (connects RedBeat's lock handler to beat_init)
from celery import Celery
from redbeat.schedulers import REDBEAT_REDIS_KEY

from orchestrator import keys, redis_conn
from orchestrator.celery_app import make_celery
from orchestrator.config import ConfigError, Settings, load_settings
from orchestrator.wire import HEALTH_CHECK

SCHEDULER = "redbeat.RedBeatScheduler"
"""The beat scheduler class (Redis-backed, with a lock so that only one beat schedules)."""
REDIS_RETRY_SECONDS = 10
"""How long RedBeat retries a failing Redis command before beat gives up on the tick (seconds)."""


def entry_name(server: str) -> str:
    """Name of a server's health-check entry in the schedule."""
    return f"health-check:{server}"


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """One health-check entry per enabled server, on its own queue, expiring within its interval."""
    return {
        entry_name(name): {
            "task": HEALTH_CHECK,
            "schedule": server.health_interval_seconds,
            "kwargs": {"server": name},
            "options": {"queue": server.queue, "expires": server.health_interval_seconds},
        }
        for name, server in settings.enabled_servers().items()
    }


def configure_beat(app: Celery, settings: Settings) -> Celery:
    """Give ``app`` the health schedule and RedBeat with a lock short enough for quick failover."""
    if settings.beat_lock_timeout < 2 * settings.beat_max_interval:
        raise ConfigError(f"beat_lock_timeout ({settings.beat_lock_timeout}s) must be at least twice "
                          f"beat_max_interval ({settings.beat_max_interval:g}s): each tick renews the lock")
    app.conf.update(
        beat_schedule=build_schedule(settings),
        beat_scheduler=SCHEDULER,
        beat_max_loop_interval=settings.beat_max_interval,
        redbeat_redis_url=redis_conn.display_url(settings),  # shown in beat's banner; the client is ours
        redbeat_redis_options={},
        redbeat_key_prefix=keys.REDBEAT_PREFIX,
        redbeat_lock_key=keys.REDBEAT_LOCK_KEY,
        redbeat_lock_timeout=settings.beat_lock_timeout,
    )
    setattr(app, REDBEAT_REDIS_KEY, redis_conn.redbeat_client(settings, REDIS_RETRY_SECONDS))
    return app


settings = load_settings()
app = configure_beat(make_celery(settings, main="mcp_orchestrator_beat"), settings)
