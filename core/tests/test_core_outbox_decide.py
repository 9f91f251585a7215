"""The retry rules on their own: what an attempt's results mean, with no store at all."""

from __future__ import annotations

import pytest

from dbnotify import Event
from dbnotify.events import to_notification
from dbnotify.outbox.decide import EXPIRED, decide, final, retry_only
from dbnotify.outbox.model import Claimed, DeliveryState, RecipientState
from dbnotify.outbox.policy import RetryPolicy
from dbnotify.results import CHANNEL_LABEL, Delivery, FailureKind, RecipientResult, Target

T0 = 1_750_000_000.0
NOTIFICATION = to_notification(Event("backup_failure", {"job_name": "j", "error": "e"}))
PENDING, DELIVERED, SKIPPED, DEAD = (
    RecipientState.PENDING,
    RecipientState.DELIVERED,
    RecipientState.SKIPPED,
    RecipientState.DEAD,
)


def claimed(attempts: int = 0, *, allowed: int = 3, expires_at: float = T0 + 600) -> Claimed:
    """A delivery after ``attempts`` attempts, ``allowed`` in all, expiring at ``expires_at``."""
    return Claimed(
        id=1,
        notification=NOTIFICATION,
        delivery=Delivery("mail", Target.CHANNEL),
        retry_only=None,
        attempts=attempts,
        policy=RetryPolicy(attempts=allowed, first_delay=10, max_delay=60, max_age=600),
        expires_at=expires_at,
    )


def ok(who: str) -> RecipientResult:
    return RecipientResult.delivered(who)


def later(who: str, *, retry_after: float | None = None) -> RecipientResult:
    return RecipientResult.failed(who, FailureKind.TRANSIENT, "busy", retry_after=retry_after)


def never(who: str) -> RecipientResult:
    return RecipientResult.failed(who, FailureKind.PERMANENT, "no such user")


def test_delivered_skipped_and_permanent_are_final() -> None:
    skipped = RecipientResult.skipped("b", "not for this one")
    decision = decide(claimed(), [ok("a"), skipped, never("c")], T0, 10)
    assert decision.states == {"a": DELIVERED, "b": SKIPPED, "c": DEAD}
    assert decision.reasons == {}  # a permanent failure keeps its own reason
    assert decision.reason(never("c")) == "no such user"
    assert (decision.state, decision.next_at, decision.park) == (DeliveryState.DONE, None, None)
    assert decision.attempts == 1


def test_a_transient_failure_waits_the_delay_drawn() -> None:
    decision = decide(claimed(1), [ok("a"), later("b")], T0, 12.5)
    assert decision.states == {"a": DELIVERED, "b": PENDING}
    assert (decision.state, decision.next_at, decision.attempts) == (
        DeliveryState.PENDING,
        T0 + 12.5,
        2,
    )


def test_the_last_attempt_allowed_gives_up_with_the_count_and_the_last_reason() -> None:
    decision = decide(claimed(2, allowed=3), [later("a")], T0, 10)
    assert decision.states == {"a": DEAD}
    assert decision.reasons == {"a": "gave up after 3 attempts: busy"}
    assert decision.reason(later("a")) == "gave up after 3 attempts: busy"
    assert (decision.state, decision.next_at) == (DeliveryState.DONE, None)


@pytest.mark.parametrize(("delay", "dead"), [(99.0, False), (100.0, True), (101.0, True)])
def test_no_attempt_at_or_after_max_age(delay: float, dead: bool) -> None:
    decision = decide(claimed(expires_at=T0 + 100), [later("a")], T0, delay)
    assert (decision.states["a"] is DEAD) is dead
    if dead:
        assert decision.reasons["a"] == (
            "gave up: the next attempt would be past this event's max_age: busy"
        )


def test_retry_after_is_never_shortened_and_never_lengthens_a_longer_delay() -> None:
    asked = decide(claimed(), [later("a", retry_after=45), later("b", retry_after=30)], T0, 10)
    assert asked.next_at == T0 + 45
    shorter = decide(claimed(), [later("a", retry_after=5)], T0, 10)
    assert shorter.next_at == T0 + 10
    # Retry-After counts toward max_age too
    too_late = decide(claimed(expires_at=T0 + 60), [later("a", retry_after=90)], T0, 10)
    assert too_late.states == {"a": DEAD}


def test_the_channels_own_failure_parks_it_and_its_recipient_waits() -> None:
    login = RecipientResult.failed(
        "a", FailureKind.PERMANENT, "Invalid login credentials", parks_channel=True
    )
    decision = decide(claimed(2, allowed=3), [login, ok("b")], T0, 10)
    # not dead, although it was the last attempt: it goes once the configuration is fixed
    assert decision.states == {"a": PENDING, "b": DELIVERED}
    assert (decision.state, decision.park) == (DeliveryState.PENDING, "Invalid login credentials")


def test_a_parking_failure_without_a_reason_still_parks() -> None:
    silent = RecipientResult.failed(CHANNEL_LABEL, FailureKind.TRANSIENT, "", parks_channel=True)
    assert decide(claimed(), [silent], T0, 10).park == "failed"


def test_deciding_is_pure() -> None:
    before = claimed(1)
    results = [later("a"), ok("b")]
    assert decide(before, results, T0, 10) == decide(before, results, T0, 10)
    assert before == claimed(1)


def test_final_states() -> None:
    assert final(ok("a")) is DELIVERED
    assert final(RecipientResult.skipped("a", "why")) is SKIPPED
    assert final(never("a")) is DEAD
    assert final(later("a")) is DEAD  # decided without sending: nothing retries it


def test_retry_only_names_the_pending_recipients_in_order() -> None:
    assert retry_only({}) is None  # never tried: everyone
    assert retry_only({"a": DELIVERED, "b": PENDING, "c": DEAD, "d": PENDING}) == ("b", "d")
    assert retry_only({"a": DELIVERED}) is None
    # the failure came before any recipient was known: everyone again
    assert retry_only({CHANNEL_LABEL: PENDING}) is None


def test_the_expiry_reason() -> None:
    assert EXPIRED == "expired: older than this event's max_age before it could be delivered"
