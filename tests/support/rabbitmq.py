"""A throwaway RabbitMQ vhost on the machine's broker (loopback, port 5672), made and removed with
``rabbitmqctl``; tests skip, naming why, where there is none."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.ports import free_port, wait_for_port

AMQP_PORT = 5672
USER = "guest"


def _rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def skip_reason() -> str | None:
    """Why no RabbitMQ can be had here, or None."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not installed (.ci/run installs rabbitmq-server)"
    try:
        socket.create_connection(("127.0.0.1", AMQP_PORT), timeout=1).close()
    except OSError:
        return f"no RabbitMQ listens on 127.0.0.1:{AMQP_PORT} (start it with rabbitmq-server -detached)"
    return None


@contextmanager
def vhost() -> Iterator[str]:
    """A fresh vhost the guest user may use; yields its amqp:// URL and deletes the vhost after."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    name = f"mcp-test-{uuid.uuid4().hex[:8]}"
    try:
        _rabbitmqctl("add_vhost", name)
        _rabbitmqctl("set_permissions", "-p", name, USER, ".*", ".*", ".*")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot create a RabbitMQ vhost: {exc}")
    try:
        yield f"amqp://{USER}:{USER}@127.0.0.1:{AMQP_PORT}/{name}"
    finally:
        _rabbitmqctl("delete_vhost", name)


def queue_info(vhost_name: str, queue: str) -> dict[str, str]:
    """``type``, ``durable`` and ``arguments`` of one queue as rabbitmqctl prints them."""
    out = _rabbitmqctl("list_queues", "-p", vhost_name, "--no-table-headers", "-q", "name", "type", "durable",
                       "arguments")
    for line in out.splitlines():
        name, kind, durable, arguments = [*line.split("\t"), "", "", ""][:4]
        if name == queue:
            return {"type": kind, "durable": durable, "arguments": arguments}
    raise AssertionError(f"queue {queue!r} is not declared in vhost {vhost_name!r}:\n{out}")


class PrivateBroker:
    """A RabbitMQ node of the test's own (own port, data and logs), so the test may stop and restart it;
    its quorum queues keep their messages on disk across a restart."""

    def __init__(self) -> None:
        reason = skip_reason()
        if reason:
            pytest.skip(reason)
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
        return f"amqp://{USER}:{USER}@127.0.0.1:{self.port}//"

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
        except Exception:
            pytest.skip(f"a private RabbitMQ node did not start: {(self.dir / 'server.out').read_text()[-500:]}")

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
