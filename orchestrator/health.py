"""Server health: the status model, its records in Redis, and the client's health functions.

A ``health_check(server)`` task (``workers.health``) runs on the server's own queue, scheduled
by beat (``beat_schedule.py``) or sent by a client; it does a ``tools/list`` on the worker's
held session (the 2026 protocol has no ping), then calls the server's ``health_tool`` (a cheap
read-only tool that needs the upstream and its credentials), and records the outcome here in
one Lua round trip (``lua/health_record.lua``)::

    unknown --check ok--> healthy --1..K-1 failures--> degraded --K failures--> down
    any --session fine, upstream not (unreachable, refusing the key, 5xx, timing out)--> degraded
    down / degraded --one check ok--> healthy

A server without ``health_tool`` is checked by ``tools/list`` alone, and its record says so
(``probe``): its upstream is not seen.

What a reader sees is the recorded status with three overlays, decided when it is read:

* no worker consumes the queue -> ``down`` ("no worker consumes mcp.x"). Workers announce
  the queues they consume in a heartbeat sorted set (``keys.consumers_key``) every
  ``CONSUMER_HEARTBEAT_SECONDS``; an entry lapses ``CONSUMER_TTL_SECONDS`` after its worker
  stopped beating. This is reliable where kombu's binding keys are not (any client that
  sends to a queue declares them) and instant where ``inspect().active_queues()`` costs a
  broadcast round trip.
* no check for ``STALE_AFTER_INTERVALS`` intervals (beat not running, queue stuck) -> ``unknown``.
* checks pass but the breaker is not closed -> ``degraded``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from pydantic import BaseModel

from orchestrator import keys
from orchestrator.breaker import CircuitBreaker
from orchestrator.celery_app import RESULT_GRACE_SECONDS, abandon
from orchestrator.config import ServerConfig, Settings
from orchestrator.validation import check_timeout, resolve_server
from orchestrator.wire import HEALTH_CHECK

__all__ = [
    "PROBE_TOOLS_LIST",
    "HealthStatus",
    "HealthStore",
    "ServerHealth",
    "breaker_snapshot",
    "check_all_servers",
    "check_server",
    "probe_failure",
    "probe_timeout",
]

log = logging.getLogger("orchestrator.health")

CONSUMER_HEARTBEAT_SECONDS = 5.0
"""How often a worker announces the queues it consumes (seconds)."""
CONSUMER_TTL_SECONDS = 15.0
"""A worker that has not announced itself for this long no longer counts as a consumer (seconds)."""
STALE_AFTER_INTERVALS = 3
"""A record older than this many health intervals (plus the probe timeout) reads as ``unknown``."""
_BREAKER_OK = ("closed", "disabled")
_LUA = (Path(__file__).with_name("lua") / "health_record.lua").read_text()


class HealthStatus(StrEnum):
    """How usable a server is, as last seen by its health checks."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"


PROBE_TOOLS_LIST = "tools/list (no health_tool configured: the upstream is not checked)"
"""The ``probe`` of a server checked by ``tools/list`` alone."""

_TAG = re.compile(r"^\s*(?:Error executing tool \S+: )?\[(\w+)\]")
_PROBE_FAILURES = {
    "upstream_unauthorized": "upstream refuses the credentials",
    "upstream_unavailable": "upstream unavailable",
}


def probe_failure(tool: str, text: str) -> tuple[str, str]:
    """(kind, reason) of a health tool's error, from the tag its text starts with (``media_mcp``'s tags):
    ``upstream_unauthorized`` and ``upstream_unavailable`` (unreachable, 5xx, timed out), else
    ``health_tool_failed``."""
    match = _TAG.match(text)
    kind = match.group(1) if match and match.group(1) in _PROBE_FAILURES else "health_tool_failed"
    return kind, f"{_PROBE_FAILURES.get(kind, f'health tool {tool} failed')}: {text}"


class ServerHealth(BaseModel):
    """One server's health with its diagnostics (times are epoch seconds, latency in ms)."""

    server: str
    status: HealthStatus
    reason: str | None = None
    recorded_status: HealthStatus | None = None
    consecutive_failures: int = 0
    down_after: int
    checks: int = 0
    last_check_at: float | None = None
    last_success_at: float | None = None
    last_failure_at: float | None = None
    changed_at: float | None = None
    last_error: str | None = None
    latency_ms: float | None = None
    server_name: str | None = None
    server_version: str | None = None
    tool_count: int | None = None
    worker: str | None = None
    probe: str | None = None
    """What the last check did: ``tool <health_tool>``, or ``PROBE_TOOLS_LIST`` (upstream not checked)."""
    failure_kind: str | None = None
    """Why the status is not healthy, for machines: no_worker, no_session, upstream_unauthorized,
    upstream_unavailable, upstream_timeout, health_tool_failed, breaker, stale, not_checked."""
    breaker: dict[str, Any] | None = None
    queue: str
    consumers: int
    backlog: int


def probe_timeout(server: ServerConfig) -> float:
    """How long one health check may take: the server's call timeout, at most its connect timeout."""
    return min(server.timeout, server.connect_timeout)


def breaker_snapshot(client: redis.Redis, server: ServerConfig) -> dict[str, Any] | None:
    """The server's breaker state; None when Redis cannot give it."""
    try:
        return asdict(CircuitBreaker(client, server.name, server.breaker).snapshot())
    except Exception as exc:  # a health record must not fail for want of the breaker's state
        log.debug("no breaker snapshot for %s: %s", server.name, exc)
        return None


def _num(raw: Mapping[str, str], name: str) -> float | None:
    value = raw.get(name)
    return float(value) if value not in (None, "") else None


class HealthStore:
    """Health records and queue consumers in Redis; one round trip per record or read."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._record = client.register_script(_LUA)

    def record(self, server: ServerConfig, *, ok: bool, latency: float | None = None, error: str | None = None,
               worker: str | None = None, server_info: Mapping[str, Any] | None = None,
               tool_count: int | None = None, breaker: Mapping[str, Any] | None = None,
               upstream_failed: bool = False, failure_kind: str | None = None, probe: str | None = None,
               now: float | None = None) -> tuple[HealthStatus, int]:
        """Store one check's outcome; returns the recorded status and the consecutive failures.

        ``upstream_failed``: the MCP session answered but the upstream did not (``degraded``, never
        ``down``); ``failure_kind`` names the failure for machines (``no_session``, ``upstream_unauthorized``...).
        """
        fields: dict[str, Any] = {"worker": worker or "", "latency_ms": "" if latency is None else latency * 1000,
                                  "failure_kind": "" if ok else failure_kind or "no_session"}
        if probe is not None:
            fields["probe"] = probe
        if ok:
            fields["tool_count"] = tool_count if tool_count is not None else ""
            if server_info:
                fields["server_name"] = server_info.get("name") or ""
                fields["server_version"] = server_info.get("version") or ""
        else:
            fields["last_error"] = error or "unknown error"
        if breaker is not None:
            fields["breaker"] = json.dumps(breaker, default=str)
        outcome = "1" if ok else "u" if upstream_failed else "0"
        args: list[Any] = [outcome, repr(now or time.time()), server.down_after_failures]
        for name, value in fields.items():
            args += [name, str(value)]
        status, failures, _previous = self._record(keys=[keys.health_key(server.name)], args=args)
        return HealthStatus(keys.text(status)), int(failures)

    def beat(self, hostname: str, queues: list[str], *, now: float | None = None) -> None:
        """Announce that ``hostname`` consumes ``queues`` (a worker calls this every heartbeat)."""
        now = now or time.time()
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            key = keys.consumers_key(queue)
            pipe.zadd(key, {hostname: now + CONSUMER_TTL_SECONDS})
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.expire(key, int(CONSUMER_TTL_SECONDS * 4))
        pipe.execute()

    def leave(self, hostname: str, queues: list[str]) -> None:
        """Withdraw ``hostname`` from ``queues`` (worker shutdown)."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.zrem(keys.consumers_key(queue), hostname)
        pipe.execute()

    def read(self, server: ServerConfig, *, now: float | None = None) -> ServerHealth:
        """One server's health as a reader should see it (overlays applied)."""
        return self.read_many([server], now=now)[server.name]

    def read_many(self, servers: list[ServerConfig], *, now: float | None = None) -> dict[str, ServerHealth]:
        """Several servers' health in one round trip."""
        now = now or time.time()
        pipe = self.redis.pipeline(transaction=False)
        for server in servers:
            pipe.hgetall(keys.health_key(server.name))
            pipe.zcount(keys.consumers_key(server.queue), now, "+inf")
            pipe.llen(server.queue)
        replies = pipe.execute()
        return {server.name: _build(server, *replies[3 * i:3 * i + 3], now=now) for i, server in enumerate(servers)}


def _build(server: ServerConfig, raw_bytes: Mapping[Any, Any], consumers: int, backlog: int, *,
           now: float) -> ServerHealth:
    raw = {keys.text(k): keys.text(v) for k, v in raw_bytes.items()}
    recorded = HealthStatus(raw["status"]) if raw.get("status") else None
    breaker = json.loads(raw["breaker"]) if raw.get("breaker") else None
    last_check = _num(raw, "last_check_at")
    status, reason, kind = recorded or HealthStatus.UNKNOWN, None, None
    if recorded in (HealthStatus.DEGRADED, HealthStatus.DOWN):
        reason, kind = raw.get("last_error"), raw.get("failure_kind") or "no_session"
    stale_after = STALE_AFTER_INTERVALS * server.health_interval_seconds + probe_timeout(server)
    if not consumers:
        status, reason, kind = HealthStatus.DOWN, f"no worker consumes {server.queue}", "no_worker"
    elif recorded is None:
        reason, kind = "not checked yet", "not_checked"
    elif last_check is not None and now - last_check > stale_after:
        status, kind = HealthStatus.UNKNOWN, "stale"
        reason = f"no health check for {now - last_check:.0f}s (is beat running? is {server.queue} stuck?)"
    elif recorded == HealthStatus.HEALTHY and breaker and breaker.get("state") not in _BREAKER_OK:
        status, reason, kind = HealthStatus.DEGRADED, f"breaker {breaker.get('state')}", "breaker"
    tools = _num(raw, "tool_count")
    return ServerHealth(
        server=server.name, status=status, reason=reason, recorded_status=recorded,
        consecutive_failures=int(raw.get("consecutive_failures") or 0),
        down_after=int(raw.get("down_after") or server.down_after_failures), checks=int(raw.get("checks") or 0),
        last_check_at=last_check, last_success_at=_num(raw, "last_success_at"),
        last_failure_at=_num(raw, "last_failure_at"), changed_at=_num(raw, "changed_at"),
        last_error=raw.get("last_error") or None, latency_ms=_num(raw, "latency_ms"),
        server_name=raw.get("server_name") or None, server_version=raw.get("server_version") or None,
        tool_count=int(tools) if tools is not None else None, worker=raw.get("worker") or None,
        probe=raw.get("probe") or None, failure_kind=kind, breaker=breaker,
        queue=server.queue, consumers=int(consumers), backlog=int(backlog))


# -- client side ---------------------------------------------------------------------------------

def _send(app: Celery, settings: Settings, server: ServerConfig,
          timeout: float | None) -> tuple[AsyncResult, float, float]:
    """Enqueue one check, its timeout checked (the probe timeout when None): its handle, deadline and seconds."""
    seconds = probe_timeout(server) if timeout is None else check_timeout(timeout, server, settings, "health_check")
    deadline = time.time() + seconds
    handle = app.send_task(HEALTH_CHECK, kwargs={"server": server.name, "deadline": deadline}, queue=server.queue,
                           expires=datetime.fromtimestamp(deadline, tz=UTC))
    return handle, deadline, seconds


def _await(app: Celery, store: HealthStore, server: ServerConfig, handle: AsyncResult, deadline: float,
           seconds: float) -> ServerHealth:
    """Wait for one check; a check nobody ran in time is recorded as a failure."""
    try:
        handle.get(timeout=max(deadline - time.time(), 0.0) + RESULT_GRACE_SECONDS, propagate=True,
                   disable_sync_subtasks=False)
    except CeleryTimeout:
        abandon(app, handle)
        store.record(server, ok=False, failure_kind="no_worker",
                     error=f"DeadlineExceeded: no worker ran the health check within {seconds:g}s")
    except Exception as exc:  # the task itself failed (e.g. the worker does not know the server)
        store.record(server, ok=False, error=f"{type(exc).__name__}: {exc}")
    return store.read(server)


def check_server(app: Celery, store: HealthStore, settings: Settings, server: str,
                 timeout: float | None = None) -> ServerHealth:
    """A fresh health check through ``server``'s queue, waited for at most ``timeout`` seconds."""
    config = resolve_server(settings, server)
    return _await(app, store, config, *_send(app, settings, config, timeout))


def check_all_servers(app: Celery, store: HealthStore, settings: Settings,
                      timeout: float | None = None) -> dict[str, ServerHealth]:
    """Fresh health checks of every enabled server, sent at once and awaited in parallel."""
    pending = [(config, *_send(app, settings, config, timeout)) for config in settings.enabled_servers().values()]
    if not pending:
        return {}
    with ThreadPoolExecutor(max_workers=min(len(pending), 16), thread_name_prefix="mcp-health") as pool:
        futures = {config.name: pool.submit(_await, app, store, config, handle, deadline, seconds)
                   for config, handle, deadline, seconds in pending}
        return {name: future.result() for name, future in futures.items()}


def health_status(store: HealthStore, settings: Settings) -> dict[str, str]:
    """Status of every enabled server, from Redis (one round trip, no worker involved)."""
    return {name: health.status.value
            for name, health in store.read_many(list(settings.enabled_servers().values())).items()}


def health_detail(store: HealthStore, settings: Settings, server: str) -> ServerHealth:
    """One server's health with every diagnostic, from Redis."""
    return store.read(resolve_server(settings, server))
