"""A Redis Sentinel group on loopback for the tests: one master, one replica, three sentinels, each a
real ``redis-server`` process with its own temp dir and short failure-detection timings."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from orchestrator.operator.processes import wait_until
from tests.support.ports import free_port, wait_for_port

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000
"""A master silent this long is subjectively down for a sentinel."""
FAILOVER_TIMEOUT_MS = 3000


class SentinelGroup:
    """Master + replica + three sentinels (quorum 2); ``kill_master`` is a ``kill -9``."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="test-sentinel-"))
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def sentinels(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.sentinel_ports]

    def _spawn(self, name: str, args: list[str], port: int) -> None:
        workdir = self.dir / name
        workdir.mkdir(exist_ok=True)
        log = open(workdir / "log", "ab")  # noqa: SIM115  (handed to the child, closed with it)
        self.procs[name] = subprocess.Popen([self.binary, *args], stdout=log, stderr=subprocess.STDOUT,
                                            cwd=workdir)
        log.close()
        wait_for_port(port)

    def _redis_args(self, name: str, port: int) -> list[str]:
        return ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.dir / name)]

    def start(self) -> None:
        """Start all five and return once the replica is in sync and every sentinel sees the others."""
        for name in ("master", "replica"):
            (self.dir / name).mkdir(exist_ok=True)
        self._spawn("master", self._redis_args("master", self.master_port), self.master_port)
        self._spawn("replica", [*self._redis_args("replica", self.replica_port),
                                "--replicaof", "127.0.0.1", str(self.master_port)], self.replica_port)
        wait_until(lambda: redis.Redis(port=self.replica_port).info("replication")["master_link_status"] == "up",
                   10, "the replica to sync with the master")
        for index, port in enumerate(self.sentinel_ports):
            name = f"sentinel{index}"
            (self.dir / name).mkdir(exist_ok=True)
            conf = self.dir / name / "sentinel.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {self.dir / name}\n"
                            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2\n"
                            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
                            f"sentinel parallel-syncs {MASTER_NAME} 1\n")
            self._spawn(name, [str(conf), "--sentinel"], port)

        def all_know_each_other() -> bool:
            for port in self.sentinel_ports:
                master = redis.Redis(port=port, decode_responses=True).sentinel_master(MASTER_NAME)
                if int(master["num-other-sentinels"]) < 2 or int(master["num-slaves"]) < 1:
                    return False
            return True

        wait_until(all_know_each_other, 20, "the sentinels to discover each other and the replica")

    def master_port_now(self) -> int:
        """The port of the master the sentinels currently name."""
        _, port = redis.Redis(port=self.sentinel_ports[0]).sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(port)

    def kill_master(self) -> float:
        """``kill -9`` the current master; returns the monotonic time of the kill."""
        port = self.master_port_now()
        name = "master" if port == self.master_port else "replica"
        proc = self.procs[name]
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(timeout=5)
        return killed

    def cleanup(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)
