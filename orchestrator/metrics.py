"""The call counters workers write to Redis (``record_call``, from ``workers.metrics``) and read
back per server and tool (``read_call_stats``): calls, failures by error type, retries and a
duration histogram. ``mcp-orch stats`` prints them; the Prometheus endpoint that exposes them
with the breaker, health and queue gauges is ``orchestrator.operator.metrics_server``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from orchestrator import keys
from orchestrator.keys import call_stats_key

log = logging.getLogger("orchestrator.metrics")

DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the call-duration histogram; a last, implicit bucket is +Inf."""


# -- the worker's side: one pipelined round trip per finished call (or per group of them) ------------------------------


UNLISTED_TOOL = "(unlisted)"
"""The ``tool`` label of calls to a tool the server does not list (typos stay one label value)."""


def bucket_index(seconds: float) -> int:
    """Index of the histogram bucket a duration falls in (``len(DURATION_BUCKETS)`` is +Inf)."""
    for index, bound in enumerate(DURATION_BUCKETS):
        if seconds <= bound:
            return index
    return len(DURATION_BUCKETS)


@dataclass(frozen=True)
class CallCount:
    """One finished call as its counters see it."""

    server: str
    tool: str
    ok: bool
    duration: float
    attempts: int = 1
    error: str | None = None


def record_call(client: redis.Redis, server: str, tool: str, *, ok: bool, duration: float, attempts: int = 1,
                error: str | None = None) -> None:
    """Count one finished call of ``tool`` on ``server`` (one pipelined round trip, no transaction)."""
    record_calls(client, [CallCount(server, tool, ok, duration, attempts, error)])


def record_calls(client: redis.Redis, counts: Iterable[CallCount]) -> None:
    """Count finished calls, all in one pipelined round trip (no transaction): a chunk's calls that ended
    together, or a batch's calls its breaker refused."""
    pipe = client.pipeline(transaction=False)
    for count in counts:
        key, tool = call_stats_key(count.server), count.tool
        pipe.hincrby(key, f"{tool}|calls", 1)
        pipe.hincrbyfloat(key, f"{tool}|duration", max(count.duration, 0.0))
        pipe.hincrby(key, f"{tool}|b{bucket_index(count.duration)}", 1)
        if count.attempts > 1:
            pipe.hincrby(key, f"{tool}|retries", count.attempts - 1)
        if not count.ok:
            pipe.hincrby(key, f"{tool}|failures", 1)
            pipe.hincrby(key, f"{tool}|error:{count.error or 'unknown'}", 1)
    if len(pipe):
        pipe.execute()


def record_refusals(client: redis.Redis, calls: Iterable[tuple[str, str]]) -> None:
    """Count calls (server, tool label) a client refused before enqueue because their breaker is open.

    No worker sees them, so the client counts them, as failures labelled ``CircuitBreakerOpenError``
    (duration 0). A failure to count is logged, never raised: the caller gets its breaker error."""
    try:
        record_calls(client, [CallCount(server, tool, False, 0.0, error="CircuitBreakerOpenError")
                              for server, tool in calls])
    except Exception as exc:  # counting must never change the outcome of a call
        log.warning("could not count a breaker refusal: %s", type(exc).__name__)


# -- reading the counters back ----------------------------------------------------------------


@dataclass
class ToolStats:
    """Counters of one tool on one server, summed over every worker."""

    server: str
    tool: str
    calls: int = 0
    failures: int = 0
    retries: int = 0
    duration_sum: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    errors: dict[str, int] = field(default_factory=dict)

    def merge(self, other: ToolStats) -> None:
        self.calls += other.calls
        self.failures += other.failures
        self.retries += other.retries
        self.duration_sum += other.duration_sum
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        for name, count in other.errors.items():
            self.errors[name] = self.errors.get(name, 0) + count

    @property
    def mean(self) -> float | None:
        """Mean duration in seconds, or None before the first call."""
        return self.duration_sum / self.calls if self.calls else None

    def quantile(self, q: float) -> float | None:
        """Estimated ``q`` quantile of the duration (seconds), interpolated inside its bucket."""
        total = sum(self.buckets)
        if not total:
            return None
        rank, seen = q * total, 0
        for index, count in enumerate(self.buckets):
            if count and seen + count >= rank:
                lower = DURATION_BUCKETS[index - 1] if index else 0.0
                if index == len(DURATION_BUCKETS):
                    return lower  # beyond the last bound: the best we can say
                return lower + (DURATION_BUCKETS[index] - lower) * (rank - seen) / count
            seen += count
        return DURATION_BUCKETS[-1]

    def as_dict(self) -> dict[str, Any]:
        p50, p95 = self.quantile(0.5), self.quantile(0.95)
        return {"server": self.server, "tool": self.tool, "calls": self.calls, "failures": self.failures,
                "retries": self.retries, "errors": dict(self.errors),
                "mean_ms": _ms(self.mean), "p50_ms": _ms(p50), "p95_ms": _ms(p95)}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def parse_call_stats(server: str, raw: Mapping[Any, Any]) -> dict[str, ToolStats]:
    """The per-tool counters of one server from its ``call_stats_key`` hash."""
    tools: dict[str, ToolStats] = {}
    for raw_field, raw_value in raw.items():
        tool, _, counter = keys.text(raw_field).rpartition("|")
        if not tool:
            continue
        stats = tools.setdefault(tool, ToolStats(server, tool))
        value = keys.text(raw_value)
        with contextlib.suppress(ValueError, IndexError):
            if counter == "calls":
                stats.calls = int(value)
            elif counter == "failures":
                stats.failures = int(value)
            elif counter == "retries":
                stats.retries = int(value)
            elif counter == "duration":
                stats.duration_sum = float(value)
            elif counter.startswith("error:"):
                stats.errors[counter.removeprefix("error:")] = int(value)
            elif counter.startswith("b"):
                stats.buckets[int(counter[1:])] = int(value)
    return dict(sorted(tools.items()))


def read_call_stats(client: redis.Redis, servers: Iterable[str]) -> dict[str, dict[str, ToolStats]]:
    """``{server: {tool: ToolStats}}`` for ``servers``, in one round trip."""
    names = list(servers)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(call_stats_key(name))
    return {name: parse_call_stats(name, raw) for name, raw in zip(names, pipe.execute(), strict=True)}


def server_totals(per_tool: Mapping[str, ToolStats], server: str) -> ToolStats:
    """One server's counters summed over its tools (``tool`` is ``*``)."""
    total = ToolStats(server, "*")
    for stats in per_tool.values():
        total.merge(stats)
    return total


def reset_call_stats(client: redis.Redis, servers: Iterable[str]) -> None:
    """Forget the call counters of ``servers``."""
    stats_keys = [call_stats_key(name) for name in servers]
    if stats_keys:
        client.delete(*stats_keys)
