"""The wire contract between clients and workers, in one place: task names, how a task is routed
to its server's queue, and the label each message carries for Flower and the logs.

A client sends tasks by these names and never imports a task body; a worker registers its bodies
under them (``workers.tasks``, ``workers.health``). Messages are JSON (invariant 2, docs/ARCHITECTURE.md)
and carry server, tool, params, deadline and ids only, never a secret (invariant 1, docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from typing import Any

from celery.app.amqp import AMQP, task_message

from orchestrator.keys import queue_name

CALL_TOOL = "mcp.call_tool"
"""Task name of one tool call; the client sends it by name, only workers import its body."""
CALL_CHUNK = "mcp.call_chunk"
"""Task name of a chunk of a batch: several calls to one server, each with its own task id and stored result."""
LIST_TOOLS = "mcp.list_tools"
"""Task name of a ``tools/list`` on a server's held session."""
HEALTH_CHECK = "mcp.health_check"
"""Task name of one health check; beat and clients send it by name to ``mcp.<server>``."""
REPR_MAX_CHARS = 1024
"""Longest ``argsrepr``/``kwargsrepr`` a message carries (Celery's own bound)."""


def route_by_server(name: str, args: Any, kwargs: dict[str, Any], options: Any, task: Any = None,
                    **_: Any) -> dict[str, str] | None:
    """Send every MCP task to its server's own queue, whoever builds the signature."""
    if name.startswith("mcp.") and isinstance(kwargs, dict) and "server" in kwargs:
        return {"queue": queue_name(kwargs["server"])}
    return None


def task_label(name: str, kwargs: Any) -> str | None:
    """``<server>.<tool>`` for an MCP task (``<server>.<task>`` when it has no tool), else None."""
    if not name.startswith("mcp.") or not isinstance(kwargs, dict) or not isinstance(kwargs.get("server"), str):
        return None
    tool = kwargs.get("tool")
    action = tool if isinstance(tool, str) and tool else name.removeprefix("mcp.")
    if name == "mcp.list_tools":
        action = "tools/list"
    return f"{kwargs['server']}.{action}"


def bounded_repr(value: Any) -> str:
    """``repr(value)`` cut at ``REPR_MAX_CHARS``: the ``argsrepr``/``kwargsrepr`` header of an MCP task, which
    Flower and the worker's log show as its arguments.

    Celery's default, ``saferepr``, walks the value in pure Python to survive any object (with it, building a
    call's message takes 73-96 us; with ``repr``, 10-11 us); an MCP task's arguments are JSON values (the
    message is JSON, params are checked by ``check_params``), so the built-in ``repr`` is safe."""
    text = repr(value)
    return text if len(text) <= REPR_MAX_CHARS else f"{text[:REPR_MAX_CHARS - 3]}..."


class LabelledAMQP(AMQP):
    """Celery's message builder, giving each MCP task its ``<server>.<tool>`` name in the message
    (the ``shadow`` header the worker reports) and in the ``task-sent`` event alike.

    Both must carry it: the client publishes ``task-sent`` after the message, so a fast worker's
    ``task-received`` can reach Flower first, and Flower lets a late ``task-sent`` overwrite the name.
    An MCP task's argument headers are ``bounded_repr``s unless the sender gave its own.
    """

    def as_task_v2(self, task_id: str, name: str, args: Any = None, kwargs: Any = None,
                   *rest: Any, **options: Any) -> task_message:
        if name.startswith("mcp."):
            if options.get("argsrepr") is None:
                options["argsrepr"] = bounded_repr(tuple(args or ()))
            if options.get("kwargsrepr") is None:
                options["kwargsrepr"] = bounded_repr(kwargs or {})
        message = super().as_task_v2(task_id, name, args, kwargs, *rest, **options)
        label = message.headers.get("shadow") or task_label(name, kwargs)
        if label:
            message.headers["shadow"] = label
            if message.sent_event is not None:
                message.sent_event["name"] = label
        return message
