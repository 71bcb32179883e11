"""The one place where redis-py, kombu and socket errors become this project's ``BrokerUnavailable``.

Like httpx's transport boundary: every public method of the client, the batch and the facade runs
inside ``translated``, so a caller never sees a raw library exception when Redis is down or
restarting. ``LIBRARY_ERRORS`` lists what counts as "Redis could not be reached".
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
from celery.exceptions import BackendError
from kombu.exceptions import OperationalError

from orchestrator.errors import BrokerUnavailable, OrchestratorError

LIBRARY_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OperationalError, BackendError, ConnectionError)
"""Errors raised by redis-py (the result backend, breakers, catalog), kombu (publishing) and sockets
(refused, reset, broken pipe). Not every OSError: the facade raises the builtin TimeoutError on purpose."""

T = TypeVar("T")


def is_unreachable(exc: BaseException) -> bool:
    """A library error, or Celery's "retry limit exceeded while trying to reconnect to the result store"
    (a RuntimeError raised from one; the result listener starts afresh on the next wait)."""
    return isinstance(exc, LIBRARY_ERRORS) or (isinstance(exc, RuntimeError)
                                               and isinstance(exc.__cause__, LIBRARY_ERRORS))


def address(url: str) -> str:
    """``host:port/db`` of a Redis URL (the first sentinel of a ``sentinel://...;sentinel://...`` list),
    never its password."""
    parts = urlsplit(url.split(";", 1)[0])
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


def unreachable_role(exc: BaseException, broker_url: str, backend_url: str) -> str:
    """Which Redis the error is about: the broker (publishing), the result backend, or both when they are one."""
    broker, backend = address(broker_url), address(backend_url)
    if broker == backend:
        return f"Redis broker and result backend at {broker}"
    if isinstance(exc, OperationalError):
        return f"Redis broker at {broker}"
    host = backend.split("/", 1)[0]
    return f"Redis result backend at {backend}" if host in str(exc) else f"Redis at {broker} or {backend}"


def broker_unavailable(exc: BaseException, broker_url: str, backend_url: str, *,
                       error: type[BrokerUnavailable] = BrokerUnavailable, doing: str = "",
                       **context: Any) -> BrokerUnavailable:
    """The typed, transient error for a library error ``exc``; its message names what was unreachable."""
    role = unreachable_role(exc, broker_url, backend_url)
    reason = str(exc).split(" connecting to ")[0] or type(exc).__name__
    what = f" {doing}" if doing else ""
    return error(f"{role} unreachable{what}: {type(exc).__name__}: {reason}", unreachable=role,
                 cause=type(exc).__name__, **context)


@contextmanager
def translated(broker_url: str, backend_url: str, **context: Any) -> Iterator[None]:
    """Run a block whose library errors leave as ``BrokerUnavailable`` (our own errors pass unchanged)."""
    try:
        yield
    except OrchestratorError:
        raise
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        raise broker_unavailable(exc, broker_url, backend_url, **context) from None


def guard_public_methods(urls: Callable[[Any], tuple[str, str]]) -> Callable[[type[T]], type[T]]:
    """Class decorator: every public method (sync or async) of the class runs inside ``translated``;
    ``urls(instance)`` gives the broker and backend URLs to name in the error."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(method):
            @functools.wraps(method)
            async def guarded_async(self: Any, *args: Any, **kwargs: Any) -> Any:
                with translated(*urls(self)):
                    return await method(self, *args, **kwargs)
            return guarded_async

        @functools.wraps(method)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            with translated(*urls(self)):
                return method(self, *args, **kwargs)
        return guarded

    def decorate(cls: type[T]) -> type[T]:
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(member):
                setattr(cls, name, wrap(member))
        return cls

    return decorate
