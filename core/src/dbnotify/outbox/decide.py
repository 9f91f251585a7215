"""What an attempt's results mean for what comes next: the outbox's retry rules.

Pure functions of their arguments, shared by every backend, so that SQLite, memory and
any later store retry, give up and park alike, and the rules can be tested without one:

- delivered, skipped, and permanent failures are final (permanent: ``dead`` at once);
- a transient failure is retried, unless that was the last attempt allowed or the next
  one would come at or after the event's max_age: then ``dead``, saying why;
- a failure that is the channel's own (bad credentials) parks the channel, and its
  recipient waits (``pending``) until the configuration changes or an operator retries;
- the wait before the next attempt is never shorter than a service's Retry-After.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from dbnotify import humanize
from dbnotify.outbox.model import Claimed, DeliveryState, Hold, Problem, RecipientState, iso
from dbnotify.results import CHANNEL_LABEL, FailureKind, RecipientResult, Status

EXPIRED = "expired: older than this event's max_age before it could be delivered"
"""The reason of a recipient still pending when its delivery's max_age ran out."""


def gave_up_after(attempts: int, reason: str | None) -> str:
    return f"gave up after {humanize.count(attempts, 'attempt')}: {reason}"


def gave_up_at_max_age(reason: str | None) -> str:
    return f"gave up: the next attempt would be past this event's max_age: {reason}"


@attrs.frozen
class Decision:
    """What to record after one attempt of a delivery."""

    states: Mapping[str, RecipientState]
    """Each result's recipient, by name."""
    reasons: Mapping[str, str]
    """Reasons that replace a result's own (why a recipient gave up)."""
    state: DeliveryState
    attempts: int
    """Attempts made, this one included."""
    next_at: float | None
    """When to try again; ``None`` when the delivery is done."""
    park: str | None
    """Why to park the channel, or ``None`` to leave it alone."""
    drop_placeholder: bool = False
    """The attempt named its recipients: a ``(channel)`` row an earlier attempt left
    (failed before any recipient was known, e.g. by the deadline) no longer stands for
    anyone and goes, so that a delivered notification does not stay listed as pending."""

    def reason(self, result: RecipientResult) -> str | None:
        """The reason to record for ``result``."""
        return self.reasons.get(result.recipient, result.reason)


def held_until(hold: Hold, now: float, open_at: float | None, last: float | None) -> float:
    """When a delivery held for its group is due: with the group's open deliveries
    (``open_at``: the soonest of those not tried nor leased), else after ``wait``, and not
    before ``interval`` after the group's last message (``last``)."""
    if open_at is not None:
        return open_at
    return max(now + hold.wait, (last + hold.interval) if last is not None else now)


def repeat_reason(
    problem: Problem, now: float, *, waiting: bool, last: float | None, count: int, since: float
) -> str | None:
    """Why a job's failure is counted, not sent: its problem's last message (``last``,
    since the problem opened) is within ``repeat`` and no message of it waits to go;
    ``None``: it goes. ``count``: the problem's failures, this one included."""
    if waiting or last is None or now - last >= problem.repeat:
        return None
    return counted(problem.job, last, problem.repeat, count, since)


def counted(job: str, last: float, repeat: float, count: int, since: float) -> str:
    """The reason of a failure counted, not sent: its job's problem was told lately."""
    return (
        f"counted, not sent: job '{job}' failed again within repeat "
        f"({humanize.duration(repeat * 1000)}) of the message at {iso(last)}; "
        f"{humanize.count(count, 'failure')} since {iso(since)}"
    )


def final(result: RecipientResult) -> RecipientState:
    """The state of a result that is not retried (delivered, skipped, or dead)."""
    if result.status is Status.DELIVERED:
        return RecipientState.DELIVERED
    if result.status is Status.SKIPPED:
        return RecipientState.SKIPPED
    return RecipientState.DEAD


def decide(
    claimed: Claimed, results: Sequence[RecipientResult], now: float, delay: float
) -> Decision:
    """The outcome of attempt ``claimed.attempts + 1``, which ended at ``now``.

    ``delay`` is the backoff drawn for this attempt (``claimed.policy.delay(attempt)``,
    jittered): the caller draws it, so that this stays a function of its arguments.
    """
    attempt = claimed.attempts + 1
    asked = [r.retry_after for r in results if r.retry_after is not None]
    if asked:  # the service said how long to wait (HTTP 429): never sooner
        delay = max(delay, *asked)
    next_at = now + delay
    states: dict[str, RecipientState] = {}
    reasons: dict[str, str] = {}
    park: RecipientResult | None = None
    for r in results:
        if r.status is Status.FAILED and r.parks_channel:
            park = r
            states[r.recipient] = RecipientState.PENDING
        elif r.status is Status.FAILED and r.kind is FailureKind.TRANSIENT:
            if attempt >= claimed.policy.attempts:
                states[r.recipient] = RecipientState.DEAD
                reasons[r.recipient] = gave_up_after(attempt, r.reason)
            elif next_at >= claimed.expires_at:
                states[r.recipient] = RecipientState.DEAD
                reasons[r.recipient] = gave_up_at_max_age(r.reason)
            else:
                states[r.recipient] = RecipientState.PENDING
        else:
            states[r.recipient] = final(r)
    pending = RecipientState.PENDING in states.values()
    return Decision(
        states=states,
        reasons=reasons,
        state=DeliveryState.PENDING if pending else DeliveryState.DONE,
        attempts=attempt,
        next_at=next_at if pending else None,
        park=(park.reason or "failed") if park is not None else None,
        drop_placeholder=bool(results) and all(r.recipient != CHANNEL_LABEL for r in results),
    )


def retry_only(known: Mapping[str, RecipientState]) -> tuple[str, ...] | None:
    """Whom the next attempt goes to, from the recipients' states so far (in order):
    after a first attempt, only those still pending, never the delivered ones; ``None``
    (everyone) before it, or when the failure came before any recipient was known."""
    retry = tuple(address for address, state in known.items() if state == RecipientState.PENDING)
    if known and retry and CHANNEL_LABEL not in retry:
        return retry
    return None
