"""A throwaway RabbitMQ vhost on the machine's broker (loopback, port 5672), made and removed with
``rabbitmqctl``; tests skip, naming why, where there is none."""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

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
