"""A throwaway RabbitMQ vhost on the machine's broker (loopback, port 5672), made and removed with
``rabbitmqctl``, and a private node (``bench/brokers.py``); tests skip, naming why, where there is none."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bench.brokers import AMQP_PORT, RABBITMQ_USER, BrokerUnavailable, PrivateBroker, rabbitmq_unavailable, rabbitmqctl


@contextmanager
def vhost() -> Iterator[str]:
    """A fresh vhost the guest user may use; yields its amqp:// URL and deletes the vhost after."""
    reason = rabbitmq_unavailable()
    if reason:
        pytest.skip(reason)
    name = f"mcp-test-{uuid.uuid4().hex[:8]}"
    try:
        rabbitmqctl("add_vhost", name)
        rabbitmqctl("set_permissions", "-p", name, RABBITMQ_USER, ".*", ".*", ".*")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot create a RabbitMQ vhost: {exc}")
    try:
        yield f"amqp://{RABBITMQ_USER}:{RABBITMQ_USER}@127.0.0.1:{AMQP_PORT}/{name}"
    finally:
        rabbitmqctl("delete_vhost", name)


@contextmanager
def private_node() -> Iterator[PrivateBroker]:
    """A started private RabbitMQ node, removed after; skips when this machine cannot run one."""
    try:
        broker = PrivateBroker()
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        try:
            broker.start()
        except BrokerUnavailable as exc:
            pytest.skip(str(exc))
        yield broker
    finally:
        broker.cleanup()


def queue_info(vhost_name: str, queue: str) -> dict[str, str]:
    """``type``, ``durable`` and ``arguments`` of one queue as rabbitmqctl prints them."""
    out = rabbitmqctl("list_queues", "-p", vhost_name, "--no-table-headers", "-q", "name", "type", "durable",
                      "arguments")
    for line in out.splitlines():
        name, kind, durable, arguments = [*line.split("\t"), "", "", ""][:4]
        if name == queue:
            return {"type": kind, "durable": durable, "arguments": arguments}
    raise AssertionError(f"queue {queue!r} is not declared in vhost {vhost_name!r}:\n{out}")
