"""The chaos suite's small form (``bench/chaos.py``): every call gets one outcome under faults."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import run

pytestmark = pytest.mark.slow


def test_under_redis_restarts_and_a_killed_worker_no_call_is_lost_duplicated_or_misreported(tmp_path: Path) -> None:
    """100 calls (half destructive, unique) per scenario: Redis without persistence restarted while the
    batch is enqueued and while it is collected, and a worker killed with -9 and started again. No call
    lacks an outcome, no delete runs twice, none that ran is reported as "did not run", every worker is
    up at the end, Redis keeps no queue or unacked entry, and calls succeed soon after Redis is back."""
    rows = run(100, 6.0, ["redis-enqueue-noaof", "redis-collect-noaof", "kill9-worker"], tmp_path)
    for row in rows:
        counts = {key: row[key] for key in ("lost", "duplicate_destructive", "misreported", "workers_dead",
                                            "leftover_keys")}
        assert counts == dict.fromkeys(counts, 0), row
        assert row["outcomes"] == row["calls"] == 100
        if row["scenario"].startswith("redis"):
            assert row["recovery_seconds"] is not None and row["recovery_seconds"] < 15, row
