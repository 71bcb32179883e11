"""Only one beat schedules: a second one waits on RedBeat's Redis lock and takes over when the first dies.

No worker runs here: each scheduled health check stays in ``mcp.lonely``, so the queue's length
counts exactly what the beats sent.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from beat_schedule import build_schedule, configure_beat, entry_name
from orchestrator import keys
from orchestrator.celery_app import make_celery
from orchestrator.config import ConfigError, load_settings
from orchestrator.wire import HEALTH_CHECK
from tests.support.beat import start_beat, wait_for_lock
from tests.support.procs import REPO
from tests.support.redis_proc import RedisServer

pytestmark = pytest.mark.slow

DATABASE = 28
"""This module's Redis database (broker and beat lock)."""
LOCK_TIMEOUT = 3
"""The beats' lock timeout here (seconds): a dead beat's lock lapses this long after its last tick."""

CONFIG = """
broker_url = "{broker}"
beat_lock_timeout = {lock_timeout}
beat_max_interval = 0.5

[servers.lonely]
health_interval_seconds = 1
transport = {{ type = "stdio", command = "python", args = ["-m", "tests.support.servers.probe"], cwd = "{repo}" }}

[servers.off]
enabled = false
transport = {{ type = "stdio", command = "python", args = ["-m", "tests.support.servers.probe"] }}
"""


@pytest.fixture
def beat_config(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[Path, redis.Redis]]:
    """A config with one worker-less server checked every second, on a flushed database of its own."""
    broker = f"{redis_server.url}/{DATABASE}"
    conn = redis.Redis.from_url(broker)
    conn.flushdb()
    path = tmp_path / "orchestrator.toml"
    path.write_text(CONFIG.format(broker=broker, repo=REPO, lock_timeout=LOCK_TIMEOUT))
    yield path, conn
    conn.flushdb()
    conn.close()


def sent_during(conn: redis.Redis, seconds: float) -> int:
    """How many health checks the beats put on mcp.lonely within ``seconds``."""
    before = conn.llen("mcp.lonely")
    time.sleep(seconds)
    return conn.llen("mcp.lonely") - before


def test_the_schedule_has_one_expiring_check_per_enabled_server_on_its_queue(
        beat_config: tuple[Path, redis.Redis]) -> None:
    """build_schedule: a health check per enabled server, routed to its queue, expiring within its interval."""
    settings = load_settings(beat_config[0])
    schedule = build_schedule(settings)
    assert list(schedule) == [entry_name("lonely")]
    entry = schedule[entry_name("lonely")]
    assert entry["task"] == HEALTH_CHECK and entry["kwargs"] == {"server": "lonely"}
    assert entry["options"] == {"queue": "mcp.lonely", "expires": 1.0} and entry["schedule"] == 1.0


def test_a_lock_timeout_shorter_than_two_ticks_is_refused(beat_config: tuple[Path, redis.Redis]) -> None:
    """A lock that could lapse between two ticks would let two beats schedule: the config is refused."""
    settings = load_settings(beat_config[0], beat_lock_timeout=2, beat_max_interval=5)
    with pytest.raises(ConfigError, match="beat_lock_timeout"):
        configure_beat(make_celery(settings), settings)


def test_two_beats_do_not_double_the_schedule_and_the_second_takes_over(
        beat_config: tuple[Path, redis.Redis], tmp_path: Path) -> None:
    """Two beats send checks once per interval; killing the lock holder hands over within the lock timeout."""
    path, conn = beat_config
    first = start_beat("beat-1", config=path, log=tmp_path / "beat-1.log")
    second = None
    try:
        wait_for_lock(conn, first)
        holder = conn.get(keys.REDBEAT_LOCK_KEY)
        second = start_beat("beat-2", config=path, log=tmp_path / "beat-2.log")
        time.sleep(2.0)  # beat-2 is up and waiting on the lock
        assert second.alive()
        assert 2 <= sent_during(conn, 4.0) <= 5, "two beats must not double a 1 s schedule"
        assert conn.get(keys.REDBEAT_LOCK_KEY) == holder
        os.killpg(first.pid, signal.SIGKILL)  # a crash: the lock is not released, it lapses
        killed_at = time.monotonic()
        deadline = killed_at + LOCK_TIMEOUT + 5
        while conn.get(keys.REDBEAT_LOCK_KEY) in (holder, None):
            assert time.monotonic() < deadline, "beat-2 never took the lock over"
            time.sleep(0.1)
        assert time.monotonic() - killed_at < LOCK_TIMEOUT + 3
        assert 2 <= sent_during(conn, 3.0) <= 4, "after the takeover the schedule runs once per interval"
        assert "Acquired lock" in second.output()
    finally:
        for beat in (first, second):
            if beat is not None:
                beat.stop()
