"""The Lua state machine agrees with a small pure-Python model, step by step (hypothesis)."""

from __future__ import annotations

import math
from collections import deque

import pytest
import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from orchestrator.breaker import Admission, CircuitBreaker
from orchestrator.breaker.policy import BreakerPolicy
from orchestrator.tracking import TrackedReads

POLICIES = {
    "consecutive": BreakerPolicy(failure_threshold=3, open_seconds=2, success_threshold=2, half_open_max_calls=2,
                                 open_backoff_multiplier=2, max_open_seconds=5, trial_lease_seconds=3,
                                 slow_call_seconds=1),
    "rate-count": BreakerPolicy(mode="rate", window_size=5, minimum_calls=3, failure_rate_threshold=0.6,
                                open_seconds=1, success_threshold=1, half_open_max_calls=1, trial_lease_seconds=2),
    "rate-time": BreakerPolicy(mode="rate", window_type="time", window_seconds=4, window_buckets=4,
                               minimum_calls=3, failure_rate_threshold=0.5, open_seconds=1.5, success_threshold=2,
                               open_backoff_multiplier=3, max_open_seconds=20, half_open_max_calls=3),
}
RUNS = settings(max_examples=20, stateful_step_count=60, deadline=None)
T0 = 1_700_000_000_000


class Model:
    """The breaker as the design states it, in plain Python, times in ms."""

    def __init__(self, policy: BreakerPolicy) -> None:
        self.p = policy
        self.state, self.gen, self.level, self.trial_seq, self.open_until = "closed", 0, 0, 0, 0
        self._clear()

    def _clear(self) -> None:
        self.failures = self.successes = 0
        self.calls: deque[bool] = deque(maxlen=self.p.window_size)
        self.events: list[tuple[int, bool]] = []
        self.trials: dict[int, int] = {}

    def _move(self, state: str) -> None:
        self.state, self.gen = state, self.gen + 1
        self._clear()

    def _trip(self, now: int) -> None:
        self.level += 1
        p = self.p
        wait = min(round(p.open_seconds * 1000) * p.open_backoff_multiplier ** (self.level - 1),
                   round(p.max_open_seconds * 1000))
        self.open_until = now + math.floor(wait)
        self._move("open")

    def bucket_ms(self) -> int:
        return round(self.p.window_seconds * 1000) // self.p.window_buckets

    def window(self, now: int) -> tuple[int, int]:
        if self.p.window_type == "count":
            return len(self.calls), sum(self.calls)
        oldest = now // self.bucket_ms() - self.p.window_buckets
        live = [failed for at, failed in self.events if at // self.bucket_ms() > oldest]
        return len(live), sum(live)

    def admit(self, now: int, peek: bool) -> tuple[bool, str, int, int, int]:
        if self.state in ("closed", "disabled"):
            return True, self.state, self.gen, 0, 0
        if self.state == "forced_open":
            return False, self.state, self.gen, -1, 0
        if self.state == "open":
            if now < self.open_until:
                return False, "open", self.gen, self.open_until - now, 0
            if peek:
                return True, "open", self.gen, 0, 0
            self._move("half_open")
        self.trials = {tid: until for tid, until in self.trials.items() if until > now}
        if len(self.trials) >= self.p.half_open_max_calls:
            return False, self.state, self.gen, min(self.trials.values()) - now, 0
        if peek:
            return True, self.state, self.gen, 0, 0
        self.trial_seq += 1
        self.trials[self.trial_seq] = now + round(self.p.trial_lease_seconds * 1000)
        return True, self.state, self.gen, 0, self.trial_seq

    def record(self, now: int, admission: Admission, failed: bool) -> str:
        if not admission.allowed or admission.generation != self.gen or self.state not in ("closed", "half_open"):
            return self.state
        if self.state == "half_open":
            self.trials.pop(admission.trial_id, None)
            if failed:
                self._trip(now)
            else:
                self.successes += 1
                if self.successes >= self.p.success_threshold:
                    self.level = 0
                    self._move("closed")
            return self.state
        if self.p.mode == "consecutive":
            self.failures = self.failures + 1 if failed else 0
            if self.failures >= self.p.failure_threshold:
                self._trip(now)
            return self.state
        self.calls.append(failed)
        self.events.append((now, failed))
        calls, failures = self.window(now)
        if calls >= self.p.minimum_calls and failures / calls >= self.p.failure_rate_threshold:
            self._trip(now)
        return self.state

    def command(self, state: str) -> None:
        self.level = 0
        self._move(state)


class BreakerMachine(RuleBasedStateMachine):
    """Drives the Redis breaker and the model with the same calls and clock; answers must match.

    With ``operator_client``, the breaker answers from its tracked cache and the operator commands
    come from another client (another process's breaker), so only Redis's invalidations tell it."""

    client: redis.Redis
    policy: BreakerPolicy
    operator_client: redis.Redis | None = None

    def __init__(self) -> None:
        super().__init__()
        self.client.flushdb()
        self.now = T0
        clock = lambda: self.now / 1000  # noqa: E731
        self.tracked = ([] if self.operator_client is None else
                        [TrackedReads(self.client), TrackedReads(self.operator_client)])
        self.breaker = CircuitBreaker(self.client, "sonarr", self.policy, clock=clock,
                                      tracked=self.tracked[0] if self.tracked else None)
        self.operator_breaker = (self.breaker if self.operator_client is None else
                                 CircuitBreaker(self.operator_client, "sonarr", self.policy, clock=clock,
                                                tracked=self.tracked[1]))
        self.model = Model(self.policy)
        self.in_flight: list[Admission] = []

    def teardown(self) -> None:
        for tracked in self.tracked:
            tracked.close()

    @rule(ms=st.integers(0, 4000))
    def advance_the_clock(self, ms: int) -> None:
        self.now += ms

    @rule(peek=st.booleans())
    def admit(self, peek: bool) -> None:
        admission = self.breaker.peek() if peek else self.breaker.admit()
        got = (admission.allowed, admission.state, admission.generation,
               -1 if admission.retry_after is None else round(admission.retry_after * 1000), admission.trial_id)
        assert got == self.model.admit(self.now, peek)
        if admission.allowed and not peek:
            self.in_flight.append(admission)

    @rule(outcomes=st.lists(st.sampled_from([False, False, True]), min_size=1, max_size=6))
    def call_in_turn(self, outcomes: list[bool]) -> None:
        for success in outcomes:
            self.admit(peek=False)
            if self.in_flight:
                self.record(pick=-1, success=success, duration=0.1)

    @precondition(lambda self: self.in_flight)
    @rule(pick=st.integers(0, 1000), success=st.booleans(), duration=st.sampled_from([0.1, 2.0]))
    def record(self, pick: int, success: bool, duration: float) -> None:
        admission = self.in_flight.pop(pick % len(self.in_flight))
        expected = self.model.record(self.now, admission, self.policy.counts_as_failure(success, duration))
        assert self.breaker.record(admission, success=success, duration=duration) == expected

    @precondition(lambda self: self.now % 7 == 0)  # rare, so the automatic states get explored
    @rule(command=st.sampled_from(["reset", "force_open", "force_closed"]))
    def operator(self, command: str) -> None:
        getattr(self.operator_breaker, command)()
        self.model.command({"reset": "closed", "force_open": "forced_open", "force_closed": "disabled"}[command])

    @invariant()
    def snapshot_matches_the_model(self) -> None:
        snap, model = self.breaker.snapshot(), self.model
        live_trials = sum(until > self.now for until in model.trials.values())
        assert (snap.state, snap.generation, snap.failures, snap.successes, snap.backoff_level) == (
            model.state, model.gen, model.failures, model.successes, model.level)
        assert (snap.window_calls, snap.window_failures) == model.window(self.now)
        assert snap.trials_in_flight == (live_trials if model.state == "half_open" else 0)


@pytest.mark.parametrize("policy_name", POLICIES)
def test_the_lua_breaker_behaves_like_the_reference_model(store, policy_name):
    """Hundreds of random admits, records, clock moves and operator commands: same answers."""
    machine = type("Machine", (BreakerMachine,), {"client": store, "policy": POLICIES[policy_name]})
    run_state_machine_as_test(machine, settings=RUNS)


@pytest.mark.parametrize("policy_name", POLICIES)
def test_the_cached_breaker_behaves_like_the_reference_model(redis_url, policy_name):
    """The same on real Redis with the tracked cache answering the common case and an operator in another
    client: every answer still matches the model, so no cached answer is ever stale."""
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    machine = type("Machine", (BreakerMachine,), {"client": clients[0], "operator_client": clients[1],
                                                  "policy": POLICIES[policy_name]})
    try:
        run_state_machine_as_test(machine, settings=RUNS)
    finally:
        for client in clients:
            client.close()
