"""Every breaker transition, on a real Redis and on fakeredis (its Lua runs on lupa)."""

from __future__ import annotations

import json
import logging

import pytest
import redis

from orchestrator import keys
from orchestrator.breaker import BreakerBoard, CircuitBreaker
from orchestrator.breaker.policy import BreakerPolicy
from orchestrator.errors import CircuitBreakerOpenError, UnknownServer
from tests.support.breaker_fixtures import Clock

SEED = BreakerPolicy()
QUICK = BreakerPolicy(failure_threshold=2, open_seconds=10, success_threshold=2, half_open_max_calls=2,
                      trial_lease_seconds=5, max_open_seconds=35)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(store: redis.Redis, clock: Clock, policy: BreakerPolicy = QUICK, server: str = "sonarr") -> CircuitBreaker:
    return CircuitBreaker(store, server, policy, clock=clock)


def fail(breaker: CircuitBreaker, times: int = 1) -> str:
    state = ""
    for _ in range(times):
        state = breaker.record(breaker.admit(), success=False, duration=0.01)
    return state


def trip(breaker: CircuitBreaker) -> None:
    fail(breaker, breaker.policy.failure_threshold)
    assert breaker.snapshot().state == "open"


def test_a_fresh_breaker_is_closed_and_admits(store, clock):
    """No state in Redis means closed, generation 0, calls admitted."""
    admission = make(store, clock).admit()
    assert (admission.allowed, admission.state, admission.generation, admission.trial) == (
        True, "closed", 0, False)


def test_the_seed_policy_opens_after_five_consecutive_failures(store, clock):
    """Default policy: the fifth failure in a row opens the breaker."""
    breaker = make(store, clock, SEED)
    assert fail(breaker, 4) == "closed"
    assert fail(breaker) == "open"
    assert breaker.admit().retry_after == 60


def test_a_success_resets_the_consecutive_failure_count(store, clock):
    """Failures must be consecutive: one success in between starts the count again."""
    breaker = make(store, clock)
    fail(breaker)
    breaker.record(breaker.admit(), success=True, duration=0.01)
    assert fail(breaker) == "closed"
    assert breaker.snapshot().failures == 1


def test_an_open_breaker_refuses_with_the_time_left_until_the_wait_is_over(store, clock):
    """Open refuses every call and says how long until a trial is possible."""
    breaker = make(store, clock)
    trip(breaker)
    clock.advance(4)
    admission = breaker.admit()
    assert (admission.allowed, admission.state, admission.retry_after) == (False, "open", 6)
    assert admission.reason == "circuit open"


def test_the_first_admit_after_the_wait_moves_to_half_open_as_a_trial(store, clock):
    """Once the wait is over, admit switches to half-open, bumps the generation, takes a slot."""
    breaker = make(store, clock)
    trip(breaker)
    opened = breaker.snapshot().generation
    clock.advance(10)
    admission = breaker.admit()
    assert (admission.allowed, admission.state, admission.trial) == (True, "half_open", True)
    assert admission.generation == opened + 1


def test_half_open_admits_at_most_half_open_max_calls_trials(store, clock):
    """Two trial slots: the third concurrent admit is refused until a trial records."""
    breaker = make(store, clock)
    trip(breaker)
    clock.advance(10)
    first, second, third = breaker.admit(), breaker.admit(), breaker.admit()
    assert [first.allowed, second.allowed, third.allowed] == [True, True, False]
    assert third.reason == "trial slots busy"
    assert breaker.snapshot().trials_in_flight == 2
    breaker.record(first, success=True, duration=0.01)
    assert breaker.admit().allowed


def test_half_open_closes_after_success_threshold_trial_successes(store, clock):
    """Enough trial successes close the breaker with fresh counters."""
    breaker = make(store, clock)
    trip(breaker)
    clock.advance(10)
    first, second = breaker.admit(), breaker.admit()
    assert breaker.record(first, success=True, duration=0.01) == "half_open"
    assert breaker.record(second, success=True, duration=0.01) == "closed"
    snap = breaker.snapshot()
    assert (snap.state, snap.failures, snap.successes, snap.backoff_level) == ("closed", 0, 0, 0)


def test_a_trial_failure_reopens_with_a_longer_wait(store, clock):
    """A failed trial re-opens at once, and the open wait doubles."""
    breaker = make(store, clock)
    trip(breaker)
    clock.advance(10)
    assert breaker.record(breaker.admit(), success=False, duration=0.01) == "open"
    assert breaker.admit().retry_after == 20
    assert breaker.snapshot().trips == 2


def test_the_open_wait_is_capped_and_back_to_base_after_closing(store, clock):
    """Waits grow 10, 20, then cap at 35; after closing the next trip waits 10 again."""
    breaker = make(store, clock)
    trip(breaker)
    for expected_next in (20, 35, 35):
        clock.advance(breaker.admit().retry_after)
        breaker.record(breaker.admit(), success=False, duration=0.01)
        assert breaker.admit().retry_after == expected_next
    clock.advance(35)
    for admission in (breaker.admit(), breaker.admit()):
        breaker.record(admission, success=True, duration=0.01)
    trip(breaker)
    assert breaker.admit().retry_after == 10


def test_an_expired_trial_lease_frees_its_slot(store, clock):
    """A trial holder that died without recording loses its slot after trial_lease_seconds."""
    breaker = make(store, clock, QUICK.model_copy(update={"half_open_max_calls": 1}))
    trip(breaker)
    clock.advance(10)
    assert breaker.admit().allowed
    clock.advance(4.999)
    refused = breaker.admit()
    assert not refused.allowed and refused.retry_after == pytest.approx(0.001)
    clock.advance(0.001)
    assert breaker.admit().trial


def test_an_outcome_from_an_older_generation_is_ignored(store, clock):
    """A call admitted while closed that fails after the breaker re-closed does not count."""
    breaker = make(store, clock)
    slow_call = breaker.admit()
    trip(breaker)
    clock.advance(10)
    for admission in (breaker.admit(), breaker.admit()):
        breaker.record(admission, success=True, duration=0.01)
    assert breaker.record(slow_call, success=False, duration=30) == "closed"
    assert breaker.snapshot().failures == 0


def test_a_late_trial_failure_from_a_previous_half_open_is_ignored(store, clock):
    """A trial of a half-open period that already ended cannot re-open the breaker."""
    breaker = make(store, clock)
    trip(breaker)
    clock.advance(10)
    first, second = breaker.admit(), breaker.admit()
    breaker.record(first, success=False, duration=0.01)
    generation = breaker.snapshot().generation
    assert breaker.record(second, success=False, duration=0.01) == "open"
    assert breaker.snapshot().generation == generation


def test_recording_a_refused_admission_is_a_no_op(store, clock):
    """Only admitted calls have outcomes; a refusal records nothing."""
    breaker = make(store, clock)
    trip(breaker)
    before = breaker.snapshot()
    refused = breaker.admit()
    assert breaker.record(refused, success=False, duration=0.01) == "open"
    assert breaker.snapshot() == before


def test_a_slow_success_counts_as_a_failure(store, clock):
    """With slow_call_seconds set, a success slower than it counts against the server."""
    breaker = make(store, clock, QUICK.model_copy(update={"slow_call_seconds": 1.0}))
    breaker.record(breaker.admit(), success=True, duration=1.5)
    assert breaker.snapshot().failures == 1
    breaker.record(breaker.admit(), success=True, duration=0.5)
    assert breaker.snapshot().failures == 0


def test_force_open_refuses_everything_until_reset(store, clock):
    """forced_open ignores the clock; reset() brings back a clean closed breaker."""
    breaker = make(store, clock)
    breaker.force_open()
    clock.advance(10_000)
    refused = breaker.admit()
    assert (refused.allowed, refused.state, refused.retry_after) == (False, "forced_open", None)
    assert breaker.snapshot().forced_open
    breaker.reset()
    assert breaker.admit().state == "closed"


def test_force_closed_admits_everything_and_records_nothing(store, clock):
    """force_closed() is the disabled state: failures are neither counted nor able to trip."""
    breaker = make(store, clock)
    breaker.force_closed()
    assert fail(breaker, 10) == "disabled"
    snap = breaker.snapshot()
    assert (snap.disabled, snap.failures, snap.state) == (True, 0, "disabled")


def test_reset_clears_counters_backoff_and_bumps_the_generation(store, clock):
    """reset() from open: closed, no failures, base wait, outcomes of earlier calls ignored."""
    breaker = make(store, clock)
    in_flight = breaker.admit()
    trip(breaker)
    breaker.reset()
    snap = breaker.snapshot()
    assert (snap.state, snap.failures, snap.backoff_level) == ("closed", 0, 0)
    breaker.record(in_flight, success=False, duration=0.01)
    assert breaker.snapshot().failures == 0


def test_peek_takes_no_trial_slot_and_changes_no_state(store, clock):
    """The client's fast-fail check leaves the trial slots to the workers."""
    breaker = make(store, clock, QUICK.model_copy(update={"half_open_max_calls": 1}))
    trip(breaker)
    clock.advance(10)
    assert breaker.peek().allowed
    assert breaker.snapshot().state == "open"
    assert breaker.admit().trial
    assert not breaker.peek().allowed


def test_check_or_raise_raises_with_server_and_retry_after(store, clock):
    """An open breaker turns into CircuitBreakerOpenError carrying server and retry_after."""
    breaker = make(store, clock)
    assert breaker.check_or_raise().allowed
    trip(breaker)
    with pytest.raises(CircuitBreakerOpenError) as raised:
        breaker.check_or_raise()
    assert (raised.value.server, raised.value.retry_after) == ("sonarr", 10)
    assert str(raised.value).endswith("; retry in 10.0s"), "the error says when to retry"
    with pytest.raises(CircuitBreakerOpenError, match="circuit open"):
        breaker.admit_or_raise()
    breaker.force_open()
    with pytest.raises(CircuitBreakerOpenError, match=r"retry when an operator resets it$"):
        breaker.check_or_raise()


def test_every_transition_is_published_on_the_events_channel(store, clock):
    """Subscribers see server, from, to, generation and time of each change, in order."""
    pubsub = store.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.BREAKER_EVENTS_CHANNEL)
    assert pubsub.get_message(timeout=2) is None  # consumes the subscribe confirmation
    breaker = make(store, clock)
    trip(breaker)
    clock.advance(10)
    for admission in (breaker.admit(), breaker.admit()):
        breaker.record(admission, success=True, duration=0.01)
    events = []
    for _ in range(3):
        message = pubsub.get_message(timeout=2)
        assert message is not None
        events.append(json.loads(message["data"]))
    pubsub.close()
    assert [(e["from"], e["to"], e["generation"]) for e in events] == [
        ("closed", "open", 1), ("open", "half_open", 2), ("half_open", "closed", 3)]
    assert events[0]["server"] == "sonarr" and events[0]["at"] == 1_700_000_000_000


def test_transitions_are_logged_by_the_breaker_logger(store, clock, caplog):
    """Opening logs a WARNING, recovering logs INFO, both under orchestrator.breaker."""
    caplog.set_level(logging.INFO, logger="orchestrator.breaker")
    breaker = make(store, clock)
    trip(breaker)
    clock.advance(10)
    breaker.admit()
    records = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert records == [
        ("orchestrator.breaker", "WARNING", "breaker sonarr: closed -> open (generation 1)"),
        ("orchestrator.breaker", "INFO", "breaker sonarr: open -> half_open (generation 2)")]


def test_the_transition_counter_counts_every_state_change(store, clock):
    """The hash keeps a per-server transition count for metrics."""
    breaker = make(store, clock)
    trip(breaker)
    clock.advance(10)
    breaker.admit()
    breaker.force_open()
    assert breaker.snapshot().transitions == 3


def test_the_breaker_keeps_working_after_script_flush(store, clock):
    """SCRIPT FLUSH (or a Redis restart) makes the scripts reload, state decisions continue."""
    breaker = make(store, clock)
    fail(breaker)
    store.script_flush()
    assert fail(breaker) == "open"
    store.script_flush()
    assert not breaker.admit().allowed


def test_breakers_of_different_servers_are_independent(store, clock):
    """Tripping sonarr leaves radarr closed; the board snapshots both in one go."""
    board = BreakerBoard(store, {"sonarr": QUICK, "radarr": QUICK}, clock=clock)
    trip(board.breaker("sonarr"))
    assert board.breaker("radarr").admit().allowed
    assert {server: snap.state for server, snap in board.snapshots().items()} == {
        "sonarr": "open", "radarr": "closed"}


def test_the_board_refuses_a_server_without_a_breaker(store, clock):
    """An unknown server name is an UnknownServer error naming the field."""
    board = BreakerBoard(store, {"sonarr": QUICK}, clock=clock)
    with pytest.raises(UnknownServer) as raised:
        board.breaker("lidarr")
    assert (raised.value.server, raised.value.field) == ("lidarr", "server")


def test_breaker_state_lives_under_its_documented_key(store, clock):
    """The hash is mcpo:breaker:<server>, so operators can find it."""
    trip(make(store, clock))
    assert store.hget("mcpo:breaker:sonarr", "state") == b"open"


def test_a_client_decoding_responses_works_the_same(redis_url, clock):
    """decode_responses=True clients get the same answers."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    breaker = make(client, clock)
    trip(breaker)
    assert breaker.admit().state == "open"
    client.close()


def test_a_health_probe_half_opens_an_open_breaker_at_once_and_the_trial_closes_it(store, clock):
    """recover(generation) moves an open breaker to half-open before open_until, without taking a trial slot;
    the next call is admitted as a trial and its successes close the breaker."""
    breaker = make(store, clock)
    trip(breaker)
    opened = breaker.snapshot()
    assert opened.retry_after == 10
    assert breaker.recover(opened.generation) == "half_open"
    recovered = breaker.snapshot()
    assert recovered.generation == opened.generation + 1 and recovered.trials_in_flight == 0
    for _ in range(QUICK.success_threshold):
        admission = breaker.admit()
        assert admission.allowed and admission.trial
        breaker.record(admission, success=True)
    assert breaker.snapshot().state == "closed"


def test_a_health_probe_from_an_older_generation_or_a_closed_breaker_changes_nothing(store, clock):
    """A probe that began before the breaker changed (another generation) does not move it, nor does one that
    passes while the breaker is closed or forced open."""
    breaker = make(store, clock)
    assert breaker.recover(0) == "closed" and breaker.snapshot().generation == 0
    trip(breaker)
    stale = breaker.snapshot().generation - 1
    assert breaker.recover(stale) == "open" and breaker.snapshot().state == "open"
    breaker.force_open()
    assert breaker.recover(breaker.snapshot().generation) == "forced_open"


def test_an_outcome_that_says_nothing_about_the_server_neither_counts_nor_resets(store, clock):
    """``success=None`` (a caller's mistake) keeps the consecutive failures as they were, and in half-open only
    frees its trial slot: it neither closes nor re-opens the breaker."""
    breaker = make(store, clock)
    fail(breaker)
    breaker.record(breaker.admit(), success=None)
    assert breaker.snapshot().failures == 1
    assert fail(breaker) == "open"
    clock.advance(10)
    trial = breaker.admit()
    assert trial.trial and breaker.snapshot().trials_in_flight == 1
    assert breaker.record(trial, success=None) == "half_open"
    snapshot = breaker.snapshot()
    assert snapshot.trials_in_flight == 0 and snapshot.successes == 0
