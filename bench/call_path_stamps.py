"""Time stamps along one tool call's path, client and worker, for ``bench/profile_call_path.py``.

Each stamp is (CLOCK_MONOTONIC ns, label, thread, thread CPU ns): ``time.perf_counter_ns`` is the
system-wide monotonic clock on Linux, so the client's and the worker's stamps compare on one machine;
the CPU time tells a span's own work from its waits (for the GIL, a core, a reply) when both its ends
are on one thread. The
stamps are put in by wrapping functions of Celery, kombu, the MCP SDK and this project at their
import sites (nothing in the project knows about them); a wrapper costs about a microsecond.
``install_client`` wraps the client side in this process; ``bench.stamps_worker`` (a worker's
``--include``) wraps the worker side and dumps its stamps when the worker exits.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

Stamp = tuple[int, str, int, int]
"""(CLOCK_MONOTONIC ns, label, thread id, the thread's CPU time in ns)."""
STAMPS: list[Stamp] = []


def stamp(label: str) -> None:
    STAMPS.append((time.perf_counter_ns(), label, threading.get_ident(), time.thread_time_ns()))


def wrap(owner: Any, name: str, label: str | Callable[..., str]) -> None:
    """Stamp ``label>`` when ``owner.name`` is entered and ``label<`` when it returns or raises (awaited, for a
    coroutine function; run to its end, for a generator function); a callable ``label`` names each call from its
    arguments."""
    original = inspect.getattr_static(owner, name)
    target = original.__func__ if isinstance(original, staticmethod) else original
    named = label if callable(label) else (lambda *_, **__: label)

    if inspect.iscoroutinefunction(target):
        @functools.wraps(target)
        async def stamped_async(*args: Any, **kwargs: Any) -> Any:
            stamp(f"{named(*args, **kwargs)}>")
            try:
                return await target(*args, **kwargs)
            finally:
                stamp(f"{named(*args, **kwargs)}<")
        replacement: Any = stamped_async
    elif inspect.isgeneratorfunction(target):  # a call's guarded steps (``workers.steps``): entered when run
        @functools.wraps(target)
        def stamped_steps(*args: Any, **kwargs: Any) -> Any:
            stamp(f"{named(*args, **kwargs)}>")
            try:
                return (yield from target(*args, **kwargs))
            finally:
                stamp(f"{named(*args, **kwargs)}<")
        replacement = stamped_steps
    else:
        @functools.wraps(target)
        def stamped(*args: Any, **kwargs: Any) -> Any:
            stamp(f"{named(*args, **kwargs)}>")
            try:
                return target(*args, **kwargs)
            finally:
                stamp(f"{named(*args, **kwargs)}<")
        replacement = stamped
    setattr(owner, name, staticmethod(replacement) if isinstance(original, staticmethod) else replacement)


def install_kombu_publish(side: str) -> None:
    """Stamp each publish: a task message (``<side>.publish_task``, to the default exchange) or an event
    (``<side>.publish_event``, to the events exchange)."""
    from kombu.messaging import Producer

    def kind(_producer: Any, *args: Any, **_: Any) -> str:
        exchange = args[9]  # body, priority, content type, encoding, headers, properties, key, mandatory, immediate
        return f"{side}.publish_event" if exchange else f"{side}.publish_task"

    wrap(Producer, "_publish", kind)


def install_mcp(side: str) -> None:
    """Stamp the MCP SDK's ``Client.call_tool`` (request out, response in and parsed)."""
    from mcp import Client

    wrap(Client, "call_tool", f"{side}.mcp")


def install_client() -> None:
    """Stamp the client side: validation, admission, epoch, send (subscribe, publish), wait, decode."""
    import celery.backends.redis as celery_redis

    import orchestrator.client as client_module
    from orchestrator.client import Orchestrator

    wrap(client_module, "prepare_call", "C.prepare")
    wrap(Orchestrator, "_admit", "C.admit")
    wrap(client_module, "redis_epoch", "C.epoch")
    wrap(Orchestrator, "_send", "C.send")
    wrap(Orchestrator, "_unless_no_worker", "C.wait")
    wrap(celery_redis.RedisBackend, "on_task_call", "C.subscribe")
    wrap(celery_redis, "_socket_readable", "C.poll")
    wrap(celery_redis.ResultConsumer, "_drain_one", "C.drain")
    wrap(celery_redis.ResultConsumer, "on_state_change", "C.state")
    install_kombu_publish("C")
    install_mcp("C")


def install_worker() -> None:
    """Stamp the worker side: delivery, hand-off, tracer, guards, session hop, MCP, result store, metrics, ack."""
    from celery.backends.redis import RedisBackend
    from celery.concurrency.thread import TaskPool
    from celery.events.dispatcher import EventDispatcher
    from celery.signals import task_postrun, task_prerun, task_received
    from kombu.transport import redis as kombu_redis

    import workers.execution as execution
    import workers.metrics as metrics
    import workers.tasks as tasks
    from orchestrator.breaker import CircuitBreaker
    from workers.runtime import ExecutionMarkers
    from workers.sessions import HeldSession, SessionManager

    wrap(kombu_redis.Channel, "_brpop_read", "W.brpop")
    wrap(kombu_redis.QoS, "append", "W.unacked")
    wrap(kombu_redis.QoS, "ack", "W.ack")
    wrap(TaskPool, "on_apply", "W.pool")
    wrap(EventDispatcher, "flush", "W.events")
    wrap(tasks, "guarded_steps", "W.guarded")
    wrap(tasks, "call_steps", "W.run_call")
    wrap(tasks, "scrub_json", "W.scrub")
    wrap(CircuitBreaker, "admit_or_raise", "W.admit")
    wrap(CircuitBreaker, "record", "W.record")
    wrap(SessionManager, "session", "W.session")
    wrap(execution, "tool_annotations", "W.annotations")
    wrap(ExecutionMarkers, "claim", "W.marker")
    wrap(SessionManager, "run", "W.hop")
    wrap(HeldSession, "call_tool", "L.held")
    wrap(execution, "to_tool_result", "W.to_result")
    wrap(RedisBackend, "store_result", "W.store")
    wrap(RedisBackend, "_get_task_meta_for", "W.store_get")
    wrap(RedisBackend, "_set", "W.store_set")
    wrap(metrics, "count_calls", "W.metrics")
    install_kombu_publish("W")
    install_mcp("L")
    task_received.connect(lambda **_: stamp("W.received"), weak=False)
    task_prerun.connect(lambda **_: stamp("W.prerun"), weak=False)
    task_postrun.connect(lambda **_: stamp("W.postrun"), weak=False)
