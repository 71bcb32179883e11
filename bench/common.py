"""Shared plumbing of the benchmarks: a private Redis, real workers, timing tables, JSON output."""

from __future__ import annotations

import json
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
from celery import Celery

from orchestrator.operator.processes import ChildProcess, start_redis_server, wait_until

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def start_redis(log_dir: Path) -> tuple[ChildProcess, str]:
    """A private ``redis-server`` on a free port (never the machine's shared one), answering PING."""
    try:
        child, url = start_redis_server(log_dir)
    except FileNotFoundError as exc:
        sys.exit(str(exc))
    wait_until(lambda: bool(redis.Redis.from_url(url).ping()), 10, "redis PING")
    return child, url


def start_worker(app: Celery, *, name: str, queues: list[str], env: dict[str, str], log_dir: Path,
                 pool: str = "threads", concurrency: int = 8, include: str | None = None) -> ChildProcess:
    args = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", ",".join(queues), "-P", pool,
            "-c", str(concurrency), "-n", f"{name}@bench", "--without-gossip", "--without-mingle", "-l", "WARNING"]
    if include:
        args += ["--include", include]
    child = ChildProcess(name, args, log=log_dir / f"{name}.log", env=env, cwd=REPO)
    wait_until(lambda: bool(app.control.ping(destination=[f"{name}@bench"], timeout=0.5)), 30, f"worker {name}")
    return child


def temp_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="mcp-orch-bench-"))


def timed(fn: Callable[[], object], n: int) -> list[float]:
    """Latencies of ``n`` sequential calls, in milliseconds."""
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(statistics.median(values), 3),
            "p99_ms": round(percentile(values, 0.99), 3), "mean_ms": round(statistics.fmean(values), 3)}


def print_table(title: str, rows: list[dict[str, object]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print(f"\n{title}")
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def write_json(name: str, payload: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def read_until_ready(proc: subprocess.Popen[str], timeout: float) -> list[str]:
    """``mcp-orch stack`` output lines up to and including the ``Try:`` line that ends its readiness report
    (the benchmarks and the operator tests both wait on it)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if line.startswith("Try:"):
            return seen
    raise RuntimeError("the stack did not report readiness:\n" + "\n".join(seen))
