"""Brokers other than one Redis, as real processes on loopback, for the chaos suite and the broker tests:
a Redis Sentinel group (one master, one replica, three sentinels, short failure-detection timings) and
a private RabbitMQ node (own port, data and logs, so it may be stopped and restarted)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import redis

from orchestrator.operator.processes import free_port, port_open, wait_until

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000
"""A master silent this long is subjectively down for a sentinel."""
FAILOVER_TIMEOUT_MS = 3000
AMQP_PORT = 5672
"""Where the machine's own RabbitMQ listens (the tests' vhosts live there)."""
RABBITMQ_USER = "guest"


class BrokerUnavailable(RuntimeError):
    """This machine cannot run the broker; the message says why (tests skip on it, the bench reports it)."""


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Block until something accepts connections on ``port``, or raise TimeoutError."""
    wait_until(lambda: port_open(port), timeout, f"port {port} to accept connections", interval=0.05)


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


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl``; its error text in a RuntimeError when it fails."""
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def rabbitmq_unavailable() -> str | None:
    """Why no RabbitMQ can be had here, or None."""
    if shutil.which("rabbitmqctl") is None or shutil.which("rabbitmq-server") is None:
        return "rabbitmq-server is not installed (.ci/run installs it: apt-get install -y rabbitmq-server)"
    try:
        socket.create_connection(("127.0.0.1", AMQP_PORT), timeout=1).close()
    except OSError:
        return f"no RabbitMQ listens on 127.0.0.1:{AMQP_PORT} (start it with rabbitmq-server -detached)"
    return None


class PrivateBroker:
    """A RabbitMQ node of the caller's own (own port, data and logs), so it may be stopped and restarted;
    its quorum queues keep their messages on disk across a restart. Raises ``BrokerUnavailable``."""

    def __init__(self) -> None:
        reason = rabbitmq_unavailable()
        if reason:
            raise BrokerUnavailable(reason)
        self.port, self.dist_port = free_port(), free_port()
        self.node = f"mcptest-{uuid.uuid4().hex[:8]}@localhost"
        self.dir = Path(tempfile.mkdtemp(prefix="test-rabbitmq-"))
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n")
        (self.dir / "plugins").write_text("[].\n")
        shutil.chown(self.dir, "rabbitmq", "rabbitmq")  # the server drops to the rabbitmq user
        for name in ("rabbitmq.conf", "plugins"):
            shutil.chown(self.dir / name, "rabbitmq", "rabbitmq")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://{RABBITMQ_USER}:{RABBITMQ_USER}@127.0.0.1:{self.port}//"

    def start(self) -> None:
        env = {**os.environ, "HOME": "/var/lib/rabbitmq", "RABBITMQ_NODENAME": self.node,
               "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"), "RABBITMQ_DIST_PORT": str(self.dist_port),
               "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"), "RABBITMQ_LOG_BASE": str(self.dir / "log"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "plugins")}
        with open(self.dir / "server.out", "ab") as log:
            self.proc = subprocess.Popen(["rabbitmq-server"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for_port(self.port, timeout=60)
        except TimeoutError as exc:
            raise BrokerUnavailable(
                f"a private RabbitMQ node did not start: {(self.dir / 'server.out').read_text()[-500:]}") from exc

    def messages(self) -> int:
        """Messages still in this node's queues (ready and unacknowledged)."""
        out = rabbitmqctl("-n", self.node, "list_queues", "--no-table-headers", "-q", "messages")
        return sum(int(line) for line in out.split() if line.isdigit())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(["rabbitmqctl", "-n", self.node, "stop"], capture_output=True, timeout=60)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
