"""The chaos suite's small form (``bench/chaos.py``): every call gets one outcome under faults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos import run

REPO = Path(__file__).resolve().parents[1]
ZERO = ("lost", "duplicate_destructive", "misreported", "workers_dead", "leftover_keys")


@pytest.mark.slow
def test_under_redis_restarts_and_a_killed_worker_no_call_is_lost_duplicated_or_misreported(tmp_path: Path) -> None:
    """100 calls (half destructive, unique) per scenario: Redis without persistence restarted while the
    batch is enqueued and while it is collected, and a worker killed with -9 and started again. No call
    lacks an outcome, no delete runs twice, none that ran is reported as "did not run", every worker is
    up at the end, Redis keeps no queue or unacked entry, and calls succeed soon after Redis is back."""
    rows = run(100, 6.0, ["redis-enqueue-noaof", "redis-collect-noaof", "kill9-worker"], tmp_path)
    for row in rows:
        counts = {key: row[key] for key in ZERO}
        assert counts == dict.fromkeys(counts, 0), row
        assert row["outcomes"] == row["calls"] == 100
        if row["scenario"].startswith("redis"):
            assert row["recovery_seconds"] is not None and row["recovery_seconds"] < 15, row


@pytest.mark.slow
def test_a_sentinel_master_killed_mid_batch_loses_duplicates_and_misreports_no_call(tmp_path: Path) -> None:
    """60 calls on a master + replica + three sentinels; the master is killed with -9 while results are
    collected. Every call still gets one outcome, no delete runs twice or is misreported, the workers
    ride the failover, and calls succeed again within 15 s of the kill."""
    [row] = run(60, 10.0, ["sentinel-failover"], tmp_path)
    counts = {key: row[key] for key in ZERO}
    assert counts == dict.fromkeys(counts, 0), row
    assert row["outcomes"] == row["calls"] == 60
    assert row["recovery_seconds"] is not None and row["recovery_seconds"] < 15, row


def test_a_scenario_of_another_broker_is_refused_naming_the_known_ones() -> None:
    """``--broker sentinel --scenarios kill9-worker`` is a usage error that lists Sentinel's scenarios."""
    done = subprocess.run([sys.executable, "bench/chaos.py", "--broker", "sentinel", "--scenarios", "kill9-worker"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown for --broker sentinel: kill9-worker (known: sentinel-failover)" in done.stderr
