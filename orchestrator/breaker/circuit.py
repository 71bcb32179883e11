"""One circuit breaker per MCP server, its state in Redis, shared by every worker and the client.

Each decision is one atomic Lua script (``breaker/lua/*.lua``, read once at import, registered
once per Redis client): ``admit`` before a call and ``record`` after it, so a call costs at most
two round trips on every path. States::

    closed --(failures trip)--> open --(wait over, next admit; or a health probe reached the upstream)--> half_open
    half_open --(success_threshold trial successes)--> closed
    half_open --(any trial failure)--> open  (the wait grows by open_backoff_multiplier)
    operator: force_open() -> forced_open (refuses all), force_closed() -> disabled (admits all,
    records nothing), reset() -> closed with fresh counters.

Every state change bumps a generation; an outcome recorded under an older generation is
ignored, because the call began before the change. Half-open admits at most
``half_open_max_calls`` trials at once across all workers; a trial slot whose holder never
records is reclaimed after ``trial_lease_seconds``. Time is the caller's clock, in ms, passed
to the scripts, so tests control it.

What counts as a failure is the caller's decision (``record(success=...)``; ``None`` for an outcome
that says nothing about the server, which counts neither way); a success slower than
``slow_call_seconds`` counts as a failure too.

With a ``TrackedReads`` (the client and the workers pass one), the common case costs no round
trip: a closed (or disabled) breaker admits, an open one refuses until ``open_until`` and a
forced-open one refuses, all from this process's copy of the breaker hash, which Redis keeps
exact by invalidating it whenever any script anywhere changes it (``orchestrator/tracking.py``).
A success that would change nothing (closed, same generation, consecutive mode, no failures
counted; or an outcome that counts neither way) writes nothing. Everything else goes through the
scripts, atomic as before: half-open admissions (trial slots), the open wait ending, every failure,
rate-mode outcomes, operator commands, health-probe recovery. A cached answer is as old as the
invalidations still crossing the socket when it is given: one socket hop, the same as the age of a
script's answer when it reaches the caller (docs/ARCHITECTURE.md, "Client-side caching").

If Redis is unreachable, ``on_redis_error`` decides: ``fail_open`` admits the call unguarded,
``fail_closed`` refuses it; outcomes are then dropped. A refused connection is noticed at once,
but an unanswering Redis costs each call its client's socket timeouts times its retries before the
policy applies: give the breaker a client with short timeouts.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import redis
from redis.commands.core import Script

from orchestrator import keys
from orchestrator.breaker.policy import BreakerPolicy
from orchestrator.errors import CircuitBreakerOpenError, UnknownServer
from orchestrator.tracking import TrackedReads

__all__ = ["Admission", "BreakerBoard", "BreakerSnapshot", "BreakerState", "CircuitBreaker"]

logger = logging.getLogger("orchestrator.breaker")

_LUA_DIR = Path(__file__).with_name("lua")
_LUA = {name: (_LUA_DIR / f"{name}.lua").read_text() for name in ("admit", "record", "command")}
_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


class BreakerState(StrEnum):
    """Where a breaker is; ``forced_open`` and ``disabled`` are set only by an operator."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to "may I call now?"; hand it back to ``record`` with the outcome.

    ``generation`` is -1 and ``state`` is "unknown" when Redis could not be asked; the outcome
    of such a call is not recorded.
    ``retry_after`` is seconds until a call may be admitted, None when unknown.
    """

    allowed: bool
    state: str
    generation: int
    retry_after: float | None = None
    trial_id: int = 0
    reason: str = ""

    @property
    def trial(self) -> bool:
        """This call holds one of the half-open trial slots."""
        return self.trial_id > 0


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A read-only view of one breaker, for operators and metrics (times are epoch seconds)."""

    server: str
    state: str
    generation: int
    failures: int
    successes: int
    window_calls: int
    window_failures: int
    opened_at: float | None
    next_trial_at: float | None
    retry_after: float | None
    trials_in_flight: int
    backoff_level: int
    trips: int
    transitions: int

    @property
    def forced_open(self) -> bool:
        """An operator forced the breaker open."""
        return self.state == BreakerState.FORCED_OPEN

    @property
    def disabled(self) -> bool:
        """An operator switched the breaker off: it admits everything and records nothing."""
        return self.state == BreakerState.DISABLED


_scripts: weakref.WeakKeyDictionary[redis.Redis, dict[str, Script]] = weakref.WeakKeyDictionary()


def _scripts_for(client: redis.Redis) -> dict[str, Script]:
    """Register the breaker scripts once per client (``Script`` reloads after SCRIPT FLUSH)."""
    if client not in _scripts:
        _scripts[client] = {name: client.register_script(body) for name, body in _LUA.items()}
    return _scripts[client]


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


# Why an admission was refused, by state (half_open: all trial slots are taken).
_REFUSALS: dict[str, str] = {
    BreakerState.OPEN: "circuit open",
    BreakerState.FORCED_OPEN: "forced open by an operator",
}


@dataclass(frozen=True, slots=True)
class _View:
    """The fields of the breaker hash that decide the common case, as this process last read them."""

    state: str
    generation: int
    open_until: int
    failures: int


class CircuitBreaker:
    """The breaker of one MCP server: ``admit()`` before the call, ``record()`` after it.

    ``tracked`` serves the closed, open and forced-open answers and the no-op successes from memory
    (module docstring); without it every decision is a script call."""

    def __init__(self, redis_client: redis.Redis, server: str, policy: BreakerPolicy | None = None, *,
                 clock: Callable[[], float] = time.time, tracked: TrackedReads | None = None) -> None:
        self.server = server
        self.policy = policy or BreakerPolicy()
        self._redis = redis_client
        self._clock = clock
        self._tracked = tracked
        self._scripts = _scripts_for(redis_client)
        self._keys = [keys.breaker_key(server), keys.breaker_trials_key(server),
                      keys.breaker_calls_key(server), keys.breaker_buckets_key(server)]
        self._view_command = ("HMGET", self._keys[0], "state", "gen", "open_until", "failures")
        self._half_open = False  # the last script answer said half-open: ask the script, skip the cache
        self._policy_json = self.policy.script_argument()  # built once: it rides on every record
        self._redis_down = False

    # -- calls ---------------------------------------------------------------------------------
    def admit(self, lease_seconds: float | None = None) -> Admission:
        """May a call go ahead now? In half-open this takes a trial slot: always ``record`` after.

        ``lease_seconds`` (default ``trial_lease_seconds``) is how long the trial slot stays
        taken if no outcome is recorded: pass the call's remaining deadline plus a margin.
        """
        return self._admit(peek=False, lease_seconds=lease_seconds)

    def peek(self) -> Admission:
        """What ``admit`` would answer, without taking a trial slot or changing state."""
        return self._admit(peek=True)

    def recover(self, generation: int) -> str:
        """A health probe reached the upstream: an open breaker still at ``generation`` (the one the
        probe saw before it started) goes half-open at once, so trial calls need not wait out
        ``open_seconds``. Any other state or generation is left alone. Returns the state after."""
        return self._admit(peek=False, recover_generation=generation).state

    def admit_or_raise(self, lease_seconds: float | None = None) -> Admission:
        """``admit``, raising ``CircuitBreakerOpenError`` when refused (for the worker)."""
        return self._raise_if_refused(self.admit(lease_seconds))

    def check_or_raise(self) -> Admission:
        """``peek``, raising ``CircuitBreakerOpenError`` when refused (the client's fast fail)."""
        return self._raise_if_refused(self.peek())

    def record(self, admission: Admission, *, success: bool | None, duration: float = 0.0) -> str:
        """Record the outcome of an admitted call; returns the breaker state afterwards.

        ``success`` is the caller's verdict on the call, None when the outcome says nothing about
        the server (a caller's mistake): then nothing is counted and a trial slot is only freed.
        ``duration`` (seconds) makes a slow success a failure under ``slow_call_seconds``. A refused
        admission, one made while Redis was unreachable, or one from an older generation records nothing.
        """
        if not admission.allowed or admission.generation < 0:
            return admission.state
        verdict = "-" if success is None else str(int(self.policy.counts_as_failure(success, duration)))
        try:
            if self._tracked is not None and verdict != "1" and not admission.trial:
                view = self._view()
                if self._record_changes_nothing(view, admission, verdict):
                    return view.state
            state, generation, applied, from_state = self._scripts["record"](
                keys=self._keys,
                args=[_ms(self._clock()), self.server, keys.BREAKER_EVENTS_CHANNEL, admission.generation,
                      admission.trial_id, verdict, self._policy_json])
        except _REDIS_DOWN as exc:
            self._on_redis_down(exc, "outcome dropped")
            return admission.state
        if applied:
            self._wrote(keys.text(state), keys.text(from_state))
        self._on_redis_up()
        self._log_transition(keys.text(from_state), keys.text(state), generation)
        return keys.text(state)

    # -- operators -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to closed with fresh counters and base open wait (also undoes force_*)."""
        self._command(BreakerState.CLOSED)

    def force_open(self) -> None:
        """Refuse every call until ``reset()`` (operator state ``forced_open``)."""
        self._command(BreakerState.FORCED_OPEN)

    def force_closed(self) -> None:
        """Admit every call and record nothing until ``reset()`` (operator state ``disabled``)."""
        self._command(BreakerState.DISABLED)

    def snapshot(self) -> BreakerSnapshot:
        """Current state and counters, read in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        self._queue_snapshot(pipe)
        return self._build_snapshot(*pipe.execute(), now=self._clock())

    # -- internals -----------------------------------------------------------------------------
    def _admit(self, *, peek: bool, lease_seconds: float | None = None,
               recover_generation: int | None = None) -> Admission:
        policy = self.policy
        mode = 2 if recover_generation is not None else int(peek)
        try:
            if self._tracked is not None and recover_generation is None and not self._half_open:
                cached = self._cached_admission(self._view(), peek)
                if cached is not None:
                    return cached
            allowed, state, generation, retry_ms, trial_id, from_state = self._scripts["admit"](
                keys=self._keys[:2],
                args=[_ms(self._clock()), self.server, keys.BREAKER_EVENTS_CHANNEL,
                      policy.half_open_max_calls, _ms(lease_seconds or policy.trial_lease_seconds), mode,
                      -1 if recover_generation is None else recover_generation])
        except _REDIS_DOWN as exc:
            self._on_redis_down(exc, "admitting calls unguarded" if policy.on_redis_error == "fail_open"
                                else "refusing calls")
            return Admission(allowed=policy.on_redis_error == "fail_open", state="unknown", generation=-1,
                             reason="Redis is unreachable")
        state = keys.text(state)
        self._half_open = state == BreakerState.HALF_OPEN
        if not peek:
            self._wrote(state, keys.text(from_state))
        self._on_redis_up()
        self._log_transition(keys.text(from_state), state, generation)
        return Admission(allowed=bool(allowed), state=state, generation=generation,
                         retry_after=None if retry_ms < 0 else retry_ms / 1000, trial_id=trial_id,
                         reason="" if allowed else _REFUSALS.get(state, "trial slots busy"))

    def _view(self) -> _View:
        """The deciding fields of the breaker hash, from memory unless Redis changed it since the last read."""
        assert self._tracked is not None
        state, generation, open_until, failures = self._tracked.read(self._view_command)
        return _View(state=keys.text(state) if state is not None else BreakerState.CLOSED.value,
                     generation=int(generation or 0), open_until=int(open_until or 0), failures=int(failures or 0))

    def _cached_admission(self, view: _View, peek: bool) -> Admission | None:
        """What ``admit.lua`` would answer without writing anything, or None when it may write (a trial
        slot, the open wait ending) and must decide atomically."""
        if view.state in (BreakerState.CLOSED, BreakerState.DISABLED):
            return Admission(allowed=True, state=view.state, generation=view.generation, retry_after=0.0)
        if view.state == BreakerState.FORCED_OPEN:
            return Admission(allowed=False, state=view.state, generation=view.generation,
                             reason=_REFUSALS[view.state])
        if view.state == BreakerState.OPEN:
            wait_ms = view.open_until - _ms(self._clock())
            if wait_ms > 0:
                return Admission(allowed=False, state=view.state, generation=view.generation,
                                 retry_after=wait_ms / 1000, reason=_REFUSALS[view.state])
            if peek:
                return Admission(allowed=True, state=view.state, generation=view.generation, retry_after=0.0)
        return None

    def _record_changes_nothing(self, view: _View, admission: Admission, verdict: str) -> bool:
        """``record.lua`` would leave the breaker as it is: an outcome of another generation or of a
        state that counts nothing, one that counts neither way while closed, or a success while
        closed in consecutive mode with no failure counted."""
        if view.generation != admission.generation or view.state not in (BreakerState.CLOSED,
                                                                         BreakerState.HALF_OPEN):
            return True
        if view.state != BreakerState.CLOSED:
            return False
        return verdict == "-" or (self.policy.mode == "consecutive" and view.failures == 0)

    def _wrote(self, state: str, from_state: str = "", *, command: bool = False) -> None:
        """A script of this process changed the hash, leaving ``state`` (``from_state``: it changed the state).

        This process's copy is dropped at once (its own push may still be on the way) and read again on
        the tracked connection, unless half-open is involved (never answered from memory, so no other
        process can hold an answer this change makes wrong). That read is a round trip after the write,
        so it is also a barrier: Redis writes every invalidation push of a command in the same
        event-loop pass as that command's reply, so once the read is back every other process's push is
        on its socket, and an admission anywhere that starts after this call returns sees the change.
        Only failures, transitions, rate-mode outcomes and operator commands get here."""
        self._half_open = state == BreakerState.HALF_OPEN
        if self._tracked is None:
            return
        self._tracked.forget(self._keys[0])
        if command or BreakerState.HALF_OPEN not in (state, from_state):
            try:
                self._view()
            except _REDIS_DOWN as exc:  # the change is made; the next admission reads it
                logger.debug("breaker %s: no read after a write: %s", self.server, exc)

    def _raise_if_refused(self, admission: Admission) -> Admission:
        if not admission.allowed:
            when = (f"; retry in {admission.retry_after:.1f}s" if admission.retry_after is not None
                    else "; retry when an operator resets it" if admission.state == BreakerState.FORCED_OPEN
                    else "")
            raise CircuitBreakerOpenError(
                f"circuit breaker for {self.server!r} refuses calls: {admission.reason}{when}",
                server=self.server, retry_after=admission.retry_after)
        return admission

    def _command(self, target: BreakerState) -> None:
        state, generation, from_state = self._scripts["command"](
            keys=self._keys,
            args=[_ms(self._clock()), self.server, keys.BREAKER_EVENTS_CHANNEL, target.value])
        self._wrote(keys.text(state), keys.text(from_state), command=True)
        self._log_transition(keys.text(from_state), keys.text(state), generation)

    def _queue_snapshot(self, pipe: redis.client.Pipeline) -> None:
        pipe.hgetall(self._keys[0])
        pipe.zcount(self._keys[1], _ms(self._clock()) + 1, "+inf")
        pipe.hgetall(self._keys[3])

    def _build_snapshot(self, raw: dict[Any, Any], trials: int, buckets: dict[Any, Any], *,
                        now: float) -> BreakerSnapshot:
        h = {keys.text(k): keys.text(v) for k, v in raw.items()}

        def num(name: str) -> int:
            return int(float(h.get(name, 0)))

        state = h.get("state", BreakerState.CLOSED.value)
        calls, failures = num("win_calls"), num("win_failures")
        if self.policy.mode == "rate" and self.policy.window_type == "time":
            calls, failures = self._time_window_counts(buckets, now)
        opened_at = num("opened_at") / 1000 if "opened_at" in h else None
        next_trial_at = num("open_until") / 1000 if state == BreakerState.OPEN else None
        return BreakerSnapshot(
            server=self.server, state=state, generation=num("gen"), failures=num("failures"),
            successes=num("successes"), window_calls=calls, window_failures=failures, opened_at=opened_at,
            next_trial_at=next_trial_at,
            retry_after=None if next_trial_at is None else max(0.0, next_trial_at - now),
            trials_in_flight=trials if state == BreakerState.HALF_OPEN else 0,
            backoff_level=num("backoff_level"), trips=num("trips"), transitions=num("transitions"))

    def _time_window_counts(self, buckets: dict[Any, Any], now: float) -> tuple[int, int]:
        bucket_ms = _ms(self.policy.window_seconds) // self.policy.window_buckets
        oldest = _ms(now) // bucket_ms - self.policy.window_buckets
        counts = {"n": 0, "f": 0}
        for field, value in buckets.items():
            bucket, kind = keys.text(field).split(":")
            if int(bucket) > oldest:
                counts[kind] += int(value)
        return counts["n"], counts["f"]

    def _log_transition(self, from_state: str, to_state: str, generation: int) -> None:
        if from_state:
            alarming = to_state in (BreakerState.OPEN, BreakerState.FORCED_OPEN)
            level = logging.WARNING if alarming else logging.INFO
            logger.log(level, "breaker %s: %s -> %s (generation %d)", self.server, from_state, to_state,
                       generation)

    def _on_redis_down(self, exc: Exception, consequence: str) -> None:
        # One WARNING per outage, not one per call.
        level = logging.DEBUG if self._redis_down else logging.WARNING
        self._redis_down = True
        logger.log(level, "breaker %s: Redis is unreachable (%s); on_redis_error=%s: %s", self.server,
                   type(exc).__name__, self.policy.on_redis_error, consequence)

    def _on_redis_up(self) -> None:
        if self._redis_down:
            self._redis_down = False
            logger.info("breaker %s: Redis is reachable again", self.server)


class BreakerBoard:
    """The breakers of all configured servers, sharing one Redis client."""

    def __init__(self, redis_client: redis.Redis, policies: Mapping[str, BreakerPolicy], *,
                 clock: Callable[[], float] = time.time, tracked: TrackedReads | None = None) -> None:
        self._redis = redis_client
        self._clock = clock
        self._breakers = {server: CircuitBreaker(redis_client, server, policy, clock=clock, tracked=tracked)
                          for server, policy in policies.items()}

    def breaker(self, server: str) -> CircuitBreaker:
        """The breaker of one configured server."""
        try:
            return self._breakers[server]
        except KeyError:
            raise UnknownServer(f"no breaker is configured for server {server!r}", server=server,
                                field="server") from None

    def snapshots(self) -> dict[str, BreakerSnapshot]:
        """Snapshots of every breaker, read in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for breaker in self._breakers.values():
            breaker._queue_snapshot(pipe)
        results = pipe.execute()
        now = self._clock()
        return {server: breaker._build_snapshot(*results[3 * i:3 * i + 3], now=now)
                for i, (server, breaker) in enumerate(self._breakers.items())}
