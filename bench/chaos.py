"""Chaos suite: a batch of reads and destructive calls while workers are killed and the broker fails.

    python bench/chaos.py --calls 2000            # every Redis scenario, table + bench/results/chaos.json
    python bench/chaos.py --calls 150 --scenarios redis-collect-noaof,kill9-worker
    python bench/chaos.py --calls 100 --broker all   # Redis, Sentinel and RabbitMQ in one table

Real processes: the broker (``--broker``), the probe MCP server over HTTP, a prefork worker and a
threads worker (gossip on, as ``mcp-orch stack`` runs them). Brokers (``bench/brokers.py``):

- ``redis``: a private redis-server, with AOF or without;
- ``sentinel``: one master, one replica, three sentinels on loopback (``[redis_sentinel]``); the
  master is killed with -9 mid-batch and a sentinel promotes the replica;
- ``rabbitmq``: a private RabbitMQ node (quorum queues) as the broker, a private redis-server for
  results and shared state; a worker is killed with -9, and the node is stopped and started again.
  Skipped, with the reason in the row, where RabbitMQ is not installed.
 Each destructive
call deletes a unique name, and the MCP server counts how often each name was deleted: that count,
not the client's word, says what ran. Per scenario:

- ``calls``, ``outcomes`` (calls that got one), ``lost`` (no outcome: must be 0)
- ``duplicate_destructive``: names deleted more than once (0)
- ``misreported``: deletes that ran but were reported as an error other than ``OutcomeUnknown``, or
  reported as a success without running (0)
- ``workers_dead``: workers not running at the end (0); ``leftover_keys``: queue, unacked and slot
  entries left in Redis once the last deadline has passed and the workers' reclaim ran (0)
- ``recovery_seconds``: from the broker accepting connections again (Redis, RabbitMQ) or from the
  master's kill (Sentinel: detection and promotion included) to the first successful call; empty
  where only a worker is killed
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis
from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.brokers import MASTER_NAME, BrokerUnavailable, PrivateBroker, SentinelGroup
from bench.common import REPO, print_table, write_json
from orchestrator import keys, redis_conn
from orchestrator.client import Orchestrator
from orchestrator.config import load_settings
from orchestrator.errors import OrchestratorError, OutcomeUnknown
from orchestrator.operator.processes import ChildProcess, free_port, port_open, wait_until
from orchestrator.results import ToolResult
from workers.reclaim import RECLAIM_GRACE_SECONDS

SERVER = "probe_http"
QUEUE = keys.queue_name(SERVER)
COLUMNS = ["scenario", "broker", "calls", "outcomes", "lost", "duplicate_destructive", "misreported", "unknown",
           "not_enqueued", "workers_dead", "leftover_keys", "recovery_seconds", "seconds"]


class ChaosRedis:
    """A redis-server on a fixed port and data dir, so that it can be killed and started again."""

    def __init__(self, root: Path, *, aof: bool) -> None:
        self.port = free_port()
        self.dir = root / ("redis-aof" if aof else "redis")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.args = [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                     "--dir", str(self.dir), "--save", "", "--appendonly", "yes" if aof else "no",
                     "--appendfsync", "everysec"]
        self.log = root / f"redis-{self.port}.log"
        self.child: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.child = ChildProcess("redis", self.args, log=self.log)
        wait_until(lambda: port_open(self.port), 10, "redis-server to listen")
        wait_until(self._loaded, 20, "redis-server to load its data")

    def _loaded(self) -> bool:
        try:
            with redis.Redis(port=self.port) as probe:
                return bool(probe.ping())
        except (redis.BusyLoadingError, redis.ConnectionError):
            return False

    def restart(self, down_for: float) -> None:
        """kill -9 (as a crash or an OOM kill would), wait, start again on the same data dir."""
        assert self.child is not None
        self.child.proc.kill()
        self.child.stop()
        time.sleep(down_for)
        self.start()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    redis: ChaosRedis | None = None
    sentinel: SentinelGroup | None = None
    rabbitmq: PrivateBroker | None = None
    workers: dict[str, ChildProcess] = field(default_factory=dict)
    probe: ChildProcess | None = None

    def store(self) -> Redis:
        """The shared-state Redis as the workers reach it (the sentinels' current master, if any)."""
        return redis_conn.connect(load_settings(Path(self.env["MCP_ORCH_CONFIG"])))

    def start_worker(self, name: str, pool: str, concurrency: int) -> ChildProcess:
        args = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", QUEUE, "-P", pool,
                "-c", str(concurrency), "-n", f"{name}@chaos", "-l", "INFO"]
        self.workers[name] = ChildProcess(f"worker-{name}", args, log=self.root / f"worker-{name}.log",
                                          env=self.env, cwd=REPO)
        return self.workers[name]

    def stop(self) -> None:
        for child in [*self.workers.values(), *([self.probe] if self.probe else [])]:
            child.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.sentinel is not None:
            self.sentinel.cleanup()
        if self.rabbitmq is not None:
            self.rabbitmq.cleanup()


def start_stack(root: Path, broker: str, *, aof: bool) -> Stack:
    """The broker of ``--broker`` (BrokerUnavailable where it cannot run), the probe server, two workers."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = root / "chaos.toml"
    stack = Stack(root, {"MCP_ORCH_CONFIG": str(config)})
    try:
        if broker == "sentinel":
            stack.sentinel = SentinelGroup()
            stack.sentinel.start()
            sentinels = ", ".join(f'"{address}"' for address in stack.sentinel.sentinels)
            head = f'[redis_sentinel]\nsentinels = [{sentinels}]\nmaster_name = "{MASTER_NAME}"\n'
        else:
            stack.redis = ChaosRedis(root, aof=aof)
            stack.redis.start()
            head = f'broker_url = "{stack.redis.url}"\n'
            if broker == "rabbitmq":
                stack.rabbitmq = PrivateBroker()
                stack.rabbitmq.start()
                head = f'broker_url = "{stack.rabbitmq.url}"\nresult_backend = "{stack.redis.url}"\n'
        config.write_text(f'{head}[servers.{SERVER}.transport]\ntype = "http"\nurl = "http://127.0.0.1:{port}/mcp"\n')
        stack.probe = ChildProcess("probe", [sys.executable, "-m", "tests.support.servers.probe", "--transport",
                                             "http", "--port", str(port)], log=root / "probe.log", cwd=REPO)
        wait_until(lambda: port_open(port), 20, "the probe MCP server to listen")
        stack.start_worker("prefork", "prefork", 2)
        stack.start_worker("threads", "threads", 4)
    except BaseException:
        stack.stop()
        raise
    return stack


def pool_children(worker: ChildProcess) -> list[psutil.Process]:
    with_children = psutil.Process(worker.pid).children()
    return [child for child in with_children if "celery" in " ".join(child.cmdline())]


def leftover_keys(stack: Stack, client: redis.Redis) -> int:
    """Queue entries, unacknowledged messages and concurrency-slot leases left in Redis, plus the
    messages left in RabbitMQ's queues when it is the broker."""
    in_redis = (client.llen(QUEUE) + client.hlen(keys.UNACKED_KEY) + client.zcard(keys.UNACKED_INDEX_KEY)
                + client.zcard(keys.limit_key(SERVER)))
    return in_redis + (stack.rabbitmq.messages() if stack.rabbitmq is not None else 0)


def first_success_after(orchestrator: Orchestrator, since: float, give_up: float = 60.0) -> float | None:
    """Seconds from ``since`` (Redis back) to the first successful call."""
    while time.monotonic() - since < give_up:
        try:
            if orchestrator.call_tool(SERVER, "add", {"a": 1, "b": 1}, timeout=3).ok:
                return round(time.monotonic() - since, 2)
        except (OrchestratorError, redis.RedisError):  # no master yet: redis-py's own error may surface
            time.sleep(0.1)
    return None


def run_scenario(stack: Stack, name: str, calls: int, timeout: float,
                 fault: Callable[[Stack, Orchestrator, dict[str, Any]], float | None]) -> dict[str, Any]:
    """One batch with one fault injected while it runs; the counts of the module docstring."""
    orchestrator = Orchestrator(load_settings(Path(stack.env["MCP_ORCH_CONFIG"])))
    started = time.monotonic()
    wait_until(lambda: first_success_after(orchestrator, time.monotonic(), 10) is not None, 60, "the stack to serve")
    batch = [(SERVER, "record_delete", {"name": f"{name}-{i}", "seconds": 0.05}, timeout) if i % 2 else
             (SERVER, "hold", {"seconds": 0.05}, timeout) for i in range(calls)]
    state: dict[str, Any] = {"done": 0}
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(orchestrator.call_tools_parallel(batch, progress=lambda done, _: state.update(done=done)))
        except Exception as exc:  # counted as "lost": the batch returned no outcomes
            box.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    recovery = fault(stack, orchestrator, state)
    runner.join(timeout=timeout * 4 + 60)
    outcomes = box[0] if box and isinstance(box[0], list) else []
    deleted = orchestrator.call_tool(SERVER, "deletions", timeout=10).data
    misreported: list[str] = []
    for index in range(1, calls, 2):
        ran = deleted.get(f"{name}-{index}", 0) >= 1
        outcome = outcomes[index] if index < len(outcomes) else None
        if (ran and isinstance(outcome, OrchestratorError) and not isinstance(outcome, OutcomeUnknown)) or (
                not ran and isinstance(outcome, ToolResult)):
            misreported.append(f"{'ran' if ran else 'did not run'}, reported {type(outcome).__name__}: {outcome}")
    kinds = Counter(type(outcome).__name__ for outcome in outcomes)
    store = stack.store()
    settle_by = time.monotonic() + timeout + RECLAIM_GRACE_SECONDS + 10
    while leftover_keys(stack, store) and time.monotonic() < settle_by:
        time.sleep(0.5)
    row = {"scenario": name, "broker": SCENARIOS[name][0], "calls": calls,
           "outcomes": sum(isinstance(o, ToolResult | OrchestratorError) for o in outcomes),
           "lost": calls - sum(isinstance(o, ToolResult | OrchestratorError) for o in outcomes),
           "duplicate_destructive": sum(1 for key, count in deleted.items() if key.startswith(f"{name}-")
                                        and count > 1),
           "misreported": len(misreported), "misreported_as": misreported, "unknown": kinds.get("OutcomeUnknown", 0),
           "not_enqueued": kinds.get("NotEnqueued", 0),
           "workers_dead": sum(not worker.alive() for worker in stack.workers.values()),
           "leftover_keys": leftover_keys(stack, store), "recovery_seconds": recovery,
           "seconds": round(time.monotonic() - started, 1), "outcome_types": dict(kinds)}
    if box and not isinstance(box[0], list):
        row["error"] = f"{type(box[0]).__name__}: {box[0]}"
    store.close()
    orchestrator.close()
    return row


def when_collecting(state: dict[str, Any], share: float, calls: int, timeout: float = 60) -> None:
    wait_until(lambda: state["done"] >= share * calls, timeout, f"{share:.0%} of the calls to end", interval=0.02)


def kill_prefork_child(stack: Stack, _: Orchestrator, state: dict[str, Any]) -> None:
    when_collecting(state, 0.2, state.get("calls", 1))
    victims = pool_children(stack.workers["prefork"])
    if victims:
        os.kill(victims[0].pid, signal.SIGKILL)


def kill9_worker(stack: Stack, _: Orchestrator, state: dict[str, Any]) -> None:
    when_collecting(state, 0.2, state.get("calls", 1))
    stack.workers["threads"].proc.kill()
    time.sleep(1.0)
    stack.workers["threads"].respawn()


def redis_restart(phase: str) -> Callable[[Stack, Orchestrator, dict[str, Any]], float | None]:
    def fault(stack: Stack, orchestrator: Orchestrator, state: dict[str, Any]) -> float | None:
        assert stack.redis is not None
        if phase == "enqueue":
            store = stack.store()
            wait_until(lambda: store.llen(QUEUE) > 0 or state["done"] > 0, 30,
                       "the batch to be enqueued", interval=0.01)
        else:
            when_collecting(state, 0.3, state.get("calls", 1))
        stack.redis.restart(down_for=1.0)
        return first_success_after(orchestrator, time.monotonic())
    return fault


def sentinel_failover(stack: Stack, orchestrator: Orchestrator, state: dict[str, Any]) -> float | None:
    """kill -9 the master mid-batch; recovery counts from the kill (detection and promotion included)."""
    assert stack.sentinel is not None
    when_collecting(state, 0.2, state.get("calls", 1))
    killed = stack.sentinel.kill_master()
    return first_success_after(orchestrator, killed)


def rabbitmq_restart(stack: Stack, orchestrator: Orchestrator, state: dict[str, Any]) -> float | None:
    """Stop the RabbitMQ node mid-batch and start it again on the same data dir."""
    assert stack.rabbitmq is not None
    when_collecting(state, 0.3, state.get("calls", 1))
    stack.rabbitmq.stop()
    time.sleep(1.0)
    stack.rabbitmq.start()
    return first_success_after(orchestrator, time.monotonic())


Fault = Callable[[Stack, Orchestrator, dict[str, Any]], float | None]
SCENARIOS: dict[str, tuple[str, bool, Fault]] = {
    "kill-prefork-child": ("redis", False, kill_prefork_child),
    "kill9-worker": ("redis", False, kill9_worker),
    "redis-enqueue-noaof": ("redis", False, redis_restart("enqueue")),
    "redis-collect-noaof": ("redis", False, redis_restart("collect")),
    "redis-enqueue-aof": ("redis", True, redis_restart("enqueue")),
    "redis-collect-aof": ("redis", True, redis_restart("collect")),
    "sentinel-failover": ("sentinel", False, sentinel_failover),
    "rabbitmq-worker-kill": ("rabbitmq", False, kill9_worker),
    "rabbitmq-broker-restart": ("rabbitmq", False, rabbitmq_restart),
}
"""Scenario -> (broker, Redis with AOF, fault); scenarios sharing a broker and AOF share one stack."""
BROKERS = ("redis", "sentinel", "rabbitmq")


def run(calls: int, timeout: float, names: list[str], root: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for broker, aof in (("redis", False), ("redis", True), ("sentinel", False), ("rabbitmq", False)):
        chosen = [name for name in names if SCENARIOS[name][:2] == (broker, aof)]
        if not chosen:
            continue
        try:
            stack = start_stack(root / f"{broker}-{'aof' if aof else 'noaof'}", broker, aof=aof)
        except BrokerUnavailable as exc:
            rows.extend({**dict.fromkeys(COLUMNS), "scenario": name, "broker": broker, "calls": calls,
                         "skipped": str(exc)} for name in chosen)
            print(f"skipped {', '.join(chosen)}: {exc}")
            continue
        try:
            for name in chosen:
                fault = SCENARIOS[name][2]

                def with_calls(s: Stack, o: Orchestrator, state: dict[str, Any], fault: Any = fault) -> Any:
                    state["calls"] = calls
                    return fault(s, o, state)

                rows.append(run_scenario(stack, name, calls, timeout, with_calls))
                print_table("chaos", rows[-1:], COLUMNS)
        finally:
            stack.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per batch (half of them destructive)")
    parser.add_argument("--timeout", type=float, default=30.0, help="each call's deadline (seconds)")
    parser.add_argument("--broker", choices=[*BROKERS, "all"], default="redis",
                        help="whose scenarios run (default redis); --scenarios picks among them")
    parser.add_argument("--scenarios", default=None, help="comma-separated: " + ", ".join(SCENARIOS))
    parser.add_argument("--json", type=Path, default=None, help="where to write the JSON (default bench/results)")
    args = parser.parse_args()
    brokers = BROKERS if args.broker == "all" else (args.broker,)
    known = [name for name, (broker, _, _) in SCENARIOS.items() if broker in brokers]
    names = [name.strip() for name in (args.scenarios or ",".join(known)).split(",") if name.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"--scenarios: unknown for --broker {args.broker}: {', '.join(unknown)} "
                     f"(known: {', '.join(known)})")
    root = Path(tempfile.mkdtemp(prefix="mcp-orch-chaos-"))
    rows = run(args.calls, args.timeout, names, root)
    columns = COLUMNS + (["skipped"] if any(row.get("skipped") for row in rows) else [])
    print_table(f"chaos: {args.calls} calls per scenario (logs in {root})", rows, columns)
    payload = {"calls": args.calls, "timeout": args.timeout, "scenarios": rows}
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2))
    else:
        print(f"JSON: {write_json('chaos', payload)}")


if __name__ == "__main__":
    main()
