"""The worker: takes due deliveries from the outbox, sends them, records what happened.

Runs as a background task inside a host (:meth:`dbnotify.Notifier.start`) or as its own
process (``dbnotify worker``). Idle, it sleeps until the next retry is due, waking when
another process commits work (where the store can say so: PostgreSQL's NOTIFY) and
once a second to look anyway: next to no CPU.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import attrs

from dbnotify import humanize
from dbnotify.config.load import FALLBACK_NOTICE
from dbnotify.config.model import ChannelSettings
from dbnotify.delivery import Deliverer
from dbnotify.errors import OutboxError, Unreachable
from dbnotify.events import Event, Notification, to_notification
from dbnotify.outbox.defaults import FALLBACK_QUIET, POLL, STOP_GRACE
from dbnotify.outbox.group import GroupCommit
from dbnotify.outbox.grouping import group_notification, heading, hold_for
from dbnotify.outbox.model import (
    Attempt,
    Claimed,
    DeliveryState,
    Enqueue,
    Mute,
    RecipientState,
    iso,
)
from dbnotify.outbox.policy import policy_for
from dbnotify.outbox.store import OutboxStore
from dbnotify.results import Delivery, FailureKind, RecipientResult, Status, Target
from dbnotify.secrets import Secret

log = logging.getLogger(__name__)


def _units(batch: Sequence[Claimed]) -> list[list[Claimed]]:
    """The claimed deliveries as units of work: each on its own, a group's together."""
    units: list[list[Claimed]] = []
    groups: dict[str, list[Claimed]] = {}
    for claimed in batch:
        if claimed.group is None:
            units.append([claimed])
        else:
            groups.setdefault(claimed.group, []).append(claimed)
    return [*units, *groups.values()]


def fingerprint(settings: ChannelSettings) -> str:
    """Changes whenever the channel's configuration does (secrets included, hashed)."""

    def canonical(value: Any) -> Any:
        if attrs.has(type(value)):
            return {a.name: canonical(getattr(value, a.name)) for a in attrs.fields(type(value))}
        if isinstance(value, Secret):
            return "secret:" + hashlib.sha256(value.reveal().encode()).hexdigest()
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, list | tuple):
            return [canonical(v) for v in value]
        if isinstance(value, dict):
            return {str(k): canonical(v) for k, v in value.items()}
        return value if isinstance(value, str | int | float | bool | type(None)) else repr(value)

    text = json.dumps([settings.type, canonical(settings.config)], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


@attrs.frozen
class _Batch:
    """What every attempt of one claim shares."""

    fingerprints: dict[str, str]
    """Each channel's configuration fingerprint, kept with an attempt that parks it."""
    mutes: Sequence[Mute]
    """The mutes in force, read before the claim."""
    lease_ends: float
    """When (monotonic clock, no later than the outbox's) another worker may take the
    claimed deliveries over."""


@attrs.define(on_setattr=attrs.setters.NO_OP)  # counters kept, not checked, each attempt
class Worker:
    """Delivers what ``store`` holds through ``deliverer`` (the Notifier's own, in a host).

    It speaks only the :class:`OutboxStore` protocol: any backend will do.
    """

    store: OutboxStore
    deliverer: Deliverer
    concurrency: int = attrs.field(
        default=attrs.Factory(lambda self: self.store.worker_concurrency, takes_self=True),
        validator=attrs.validators.ge(1),
    )
    """Attempts in flight at once (a group's message counts each delivery in it), each
    from its claim to its record; by default, what the store asks for."""
    owner: str = attrs.field(
        factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )
    wake: asyncio.Event = attrs.field(factory=asyncio.Event)
    grace: float = attrs.field(default=STOP_GRACE, validator=attrs.validators.ge(0))
    """Seconds :meth:`stop` lets the attempts in flight finish before it gives their
    leases back."""
    attempted: int = 0
    released: int = 0
    """Deliveries whose lease this worker gave back when it stopped (see :meth:`stop`)."""
    _stopping: asyncio.Event = attrs.field(factory=asyncio.Event)
    _progress: asyncio.Event = attrs.field(factory=asyncio.Event)
    """Set when an attempt's record is committed (or its delivery given back untried), when
    the worker breaks, or when :meth:`stop` is called: what :meth:`run` waits for while
    attempts are in flight."""
    _records: GroupCommit[Attempt, DeliveryState] | None = None
    """Attempts that end together are recorded in one transaction."""
    _slots: dict[int, asyncio.Task[None]] = attrs.field(factory=dict)
    """The deliveries claimed and not yet recorded, each holding one of the
    :attr:`concurrency` slots: by id, the task that works on it."""
    _ended: collections.deque[tuple[Claimed, DeliveryState]] = attrs.field(
        factory=collections.deque
    )
    """Attempts recorded since :meth:`run` last looked, in the order they were."""
    _broken: BaseException | None = None
    """What stops :meth:`run`: an outcome that could not be recorded, or an attempt that
    raised."""
    _told: dict[tuple[str, str], float] = attrs.field(factory=dict)
    """When this worker last told a fallback that a channel was parked or gave up a
    delivery (by channel and kind): at most once per :data:`FALLBACK_QUIET`. This
    process's own, not the outbox's: N workers may tell N times an hour (docs/scaling-out.md)
    rather than write to the outbox on every failure of a storm."""
    _slow: dict[str, float] = attrs.field(factory=dict)
    """Channels a service asked to slow down (a 429 with Retry-After): until when
    (monotonic). Their other deliveries wait, given back, rather than fail too. This
    process's own: each worker learns of a 429 from its own attempt (docs/scaling-out.md)."""
    _mutes: tuple[float, list[Mute]] = (float("-inf"), [])
    """The mutes in force, and when they were read (again after :data:`POLL` seconds)."""

    @property
    def lease(self) -> float:
        return self.deliverer.deadline + 30.0

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop claiming; let what is in flight finish within :attr:`grace` seconds and
        give back the leases of what did not, so that another worker takes it at once
        (SIGTERM). :meth:`run` returns when that is done."""
        self._stopping.set()
        self._progress.set()
        self.wake.set()

    async def run(
        self,
        *,
        drain: bool = False,
        only: Sequence[int] | None = None,
        on_attempt: Callable[[Claimed, DeliveryState], None] | None = None,
    ) -> None:
        """Deliver until stopped (:meth:`stop`) or cancelled; with ``drain``, until
        nothing is due; with ``only``, until each of those deliveries has had one
        attempt. With ``drain`` or ``only``, an outbox that fails raises its
        :class:`OutboxError` (nothing would ever be drained); otherwise the worker says
        so and tries again."""
        fingerprints = {
            name: fingerprint(settings) for name, settings in self.deliverer.config.channels.items()
        }
        remaining = set(only) if only is not None else None
        unparked = False
        # a pipeline: attempts run while more are claimed, and each attempt's record is
        # committed with the others that end with it; at most ``concurrency`` deliveries
        # between their claim and their record (the slots)
        slots, ended = self._slots, self._ended
        slots.clear()
        ended.clear()
        self._broken = None
        refill_at = self.concurrency // 2 if self.store.batch_claims else self.concurrency - 1
        # another process's commit wakes an idle worker at once (PostgreSQL's NOTIFY)
        listening = asyncio.get_running_loop().create_task(self.store.listen(self.wake.set))
        try:
            while not self._stopping.is_set():
                if len(slots) <= refill_at:  # see OutboxStore.batch_claims
                    try:
                        if not unparked:  # in the loop: a busy file at start-up is retried too
                            for channel in await self.store.unpark_changed(fingerprints):
                                log.info(
                                    "channel %s: configuration changed, its queue goes again",
                                    channel,
                                )
                            unparked = True
                        mutes = await self._mutes_now()  # read first: a claim is not lost
                        claimed_at = time.monotonic()  # the leases end after lease seconds
                        batch = await self.store.claim(
                            self.owner,
                            limit=self.concurrency - len(slots),
                            lease=self.lease,
                            only=sorted(remaining) if remaining is not None else None,
                        )
                    except OutboxError as exc:
                        if drain or remaining is not None:
                            raise
                        log.error("outbox worker: %s; trying again in %gs", exc, POLL)
                        await asyncio.sleep(POLL)
                        continue
                    loop = asyncio.get_running_loop()
                    shared = _Batch(fingerprints, mutes, claimed_at + self.lease)
                    for unit in _units(batch):  # a group's deliveries go as one message
                        task = loop.create_task(self._send(unit, shared))
                        for claimed in unit:
                            slots[claimed.id] = task
                if slots and not ended and self._broken is None:
                    self._progress.clear()
                    if not self._stopping.is_set():
                        await self._progress.wait()
                if self._broken is not None:
                    raise self._broken
                self._hand_on(on_attempt, remaining)
                if remaining is not None and not remaining:
                    return
                if slots:
                    continue
                if drain and (await self.store.counts())["due"] == 0:
                    return
                if remaining is not None:
                    # the rest is leased by another worker, or parked: nothing more to do here
                    return
                await self._idle()
            await self._finish(on_attempt)
        finally:
            listening.cancel()
            try:
                await listening
            except asyncio.CancelledError:
                pass
            except Exception:  # waking early is a nicety: polling goes on without it
                log.exception("outbox worker: listening for new work failed")
            await self._abandon()  # cancelled: what is in flight is; leases run out

    async def _finish(self, on_attempt: Callable[[Claimed, DeliveryState], None] | None) -> None:
        """Stopped: the attempts in flight get :attr:`grace` seconds to end and be
        recorded; the leases of the others go back to the outbox."""
        deadline = time.monotonic() + self.grace
        while True:
            self._hand_on(on_attempt, None)
            left = deadline - time.monotonic()
            if not self._slots or self._broken is not None or left <= 0:
                break
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), left)
        late = await self._abandon()
        if late:
            self.released = await self.store.release(self.owner, late)
        if self.released:
            log.warning(
                "worker %s: gave back %s not finished within %gs; another worker takes them",
                self.owner,
                humanize.count(self.released, "delivery", "deliveries"),
                self.grace,
            )
        if self._broken is not None:  # said once the leases are given back
            raise self._broken

    def _hand_on(
        self,
        on_attempt: Callable[[Claimed, DeliveryState], None] | None,
        remaining: set[int] | None,
    ) -> None:
        """Each attempt recorded since the last look, to ``on_attempt``, and off
        ``remaining``."""
        ended = self._ended
        while ended:
            claimed, state = ended.popleft()
            if on_attempt is not None:
                on_attempt(claimed, state)
            if remaining is not None:
                remaining.discard(claimed.id)

    async def _abandon(self) -> list[int]:
        """Cancel the work on every delivery still in a slot; their ids."""
        late = list(self._slots)
        tasks = set(self._slots.values())
        self._slots.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return late

    async def _idle(self) -> None:
        next_due = await self.store.next_due()
        wait = POLL if next_due is None else min(POLL, max(0.0, next_due - time.time()))
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=wait)

    async def _tell_fallback(
        self, claimed: Claimed, results: Sequence[RecipientResult], fallback: str
    ) -> None:
        """Say on ``fallback`` that the channel was parked, or gave a delivery up, so that
        a broken SMTP password does not silence every alert. Queued like any notification
        (a ``system_error``); once per channel and kind per :data:`FALLBACK_QUIET`."""
        channel = claimed.delivery.channel
        config = self.deliverer.config
        assert config.outbox is not None  # see _fallback_of
        if any(r.status is Status.FAILED and r.parks_channel for r in results):
            parked = (await self.store.parked()).get(channel)
            if parked is None:
                return
            kind, reason = "parked", parked.reason
            details = (
                f"parked since {iso(parked.since)}: nothing more is sent through it until its "
                f"configuration changes, or `dbnotify retry --channel {channel}`"
            )
        else:
            failed = {r.recipient for r in results if r.status is Status.FAILED}
            dead = [
                row
                for row in await self.store.history(delivery_ids=[claimed.id])
                if row.status == RecipientState.DEAD and row.recipient in failed
            ]
            if not dead:
                return
            kind = "dead"
            reason = (dead[0].reason or "failed") + (
                f" (server said: {dead[0].reply})" if dead[0].reply else ""
            )
            details = (
                f"delivery #{claimed.id} ({claimed.notification.event_type}) to "
                f"{', '.join(row.recipient for row in dead)} was given up; "
                f"`dbnotify retry {claimed.id}` sends it again"
            )
        now = time.monotonic()
        if now - self._told.get((channel, kind), float("-inf")) < FALLBACK_QUIET:
            return
        self._told[(channel, kind)] = now
        event = Event(
            FALLBACK_NOTICE,
            {"component": f"notification channel '{channel}'", "error": reason, "details": details},
        )
        notice = to_notification(event)
        told = Delivery(fallback, Target.CHANNEL)
        await self.store.enqueue_many(
            [
                Enqueue(
                    notice,
                    None,
                    [told],
                    policy_for(event.type, config.outbox.retry),
                    holds=[hold_for(config, told, notice, time.time())],  # grouped as any
                )
            ]
        )
        self.wake.set()
        log.warning("channel %s %s (%s); told channel %s", channel, kind, reason, fallback)

    async def _mutes_now(self) -> list[Mute]:
        read_at, mutes = self._mutes
        now = time.monotonic()
        if now - read_at >= POLL:
            mutes = await self.store.mutes()
            self._mutes = (now, mutes)
        return mutes

    def _send(self, unit: list[Claimed], shared: _Batch) -> Coroutine[Any, Any, None]:
        """What the task of one delivery, or of a group's, runs: a group's members that no
        mute holds go as one message (:func:`~dbnotify.outbox.grouping.group_notification`),
        each recorded with its result. A coroutine picked here rather than one that awaits
        another: the task passes through each of its coroutines at every wait."""
        wait = self._slow.get(unit[0].delivery.channel, 0.0) - time.monotonic()
        if wait > 0:  # the service asked for a pause: these wait for it, untried
            return self._hold_back(unit, wait)
        if len(unit) > 1:
            return self._send_group(unit, shared)
        return self._send_one(unit[0], shared)

    async def _hold_back(self, unit: list[Claimed], wait: float) -> None:
        """Given back untried, due again once ``wait`` seconds are over."""
        try:
            await self.store.release(self.owner, [c.id for c in unit], after=wait)
        except Exception as exc:  # noqa: BLE001 - said by run()
            self._break(exc)
            return
        for claimed in unit:
            self._slots.pop(claimed.id, None)
        self._progress.set()

    async def _send_one(self, claimed: Claimed, shared: _Batch) -> None:
        """Deliver ``claimed`` (unless a mute holds it) and hand the outcome to the group
        commit; the task ends there, and :meth:`_recorded` frees the slot."""
        # no comprehension here reads this coroutine's variables: each would be a cell,
        # made at every call and tracked by the garbage collector while the attempt lasts
        try:
            self.attempted += 1
            delivery = claimed.delivery
            mute = _muting(shared.mutes, delivery.channel, claimed.notification)
            if mute is not None:  # the mute's reason is the outcome: in history, not sent
                results: Sequence[RecipientResult] = _muted(mute, delivery, claimed.retry_only)
            elif delivery.channel not in self.deliverer.config.channels:
                results = _unconfigured(delivery, claimed.retry_only)
            else:
                outcome = await self.deliverer.deliver(
                    delivery,
                    claimed.notification,
                    retry_only=claimed.retry_only,
                )
                results = outcome.recipients
            self._record(claimed, results, shared)
        except Exception as exc:  # noqa: BLE001 - a bug: said by run(), which stops
            self._break(exc)

    async def _send_group(self, unit: list[Claimed], shared: _Batch) -> None:
        """A group's deliveries: the muted ones each skipped, the others as one message."""
        try:
            channel = unit[0].delivery.channel
            free = [c for c in unit if _muting(shared.mutes, channel, c.notification) is None]
            if len(free) <= 1:
                for claimed in unit:
                    await self._send_one(claimed, shared)
                return
            for claimed in unit:
                if claimed not in free:
                    await self._send_one(claimed, shared)
            self.attempted += len(free)
            lead = free[0]
            message = group_notification([c.notification for c in free], heading(lead.group))
            if channel not in self.deliverer.config.channels:
                results: Sequence[RecipientResult] = _unconfigured(lead.delivery, lead.retry_only)
            else:
                sent = await self.deliverer.deliver(
                    lead.delivery, message, retry_only=lead.retry_only
                )
                results = sent.recipients
            note = (
                f"sent in a group of {len(free)} as one message "
                f"(group of delivery #{min(c.id for c in free)})"
            )
            each = [
                attrs.evolve(r, reason=r.reason or note) if r.status is Status.DELIVERED else r
                for r in results
            ]
            for claimed in free:
                self._record(claimed, each, shared)
        except Exception as exc:  # noqa: BLE001 - a bug: said by run(), which stops
            self._break(exc)

    def _record(self, claimed: Claimed, results: Sequence[RecipientResult], shared: _Batch) -> None:
        """Hand one attempt's results to the group commit; :meth:`_recorded` goes on once
        they are committed."""
        if self._records is None:
            self._records = GroupCommit(self.store.record_many, limit=self.store.write_group)
        attempt = Attempt(claimed, results, shared.fingerprints.get(claimed.delivery.channel, ""))
        self._records.submit(attempt, _Recording(self, attempt, shared))

    def _recorded(self, attempt: Attempt, state: DeliveryState) -> None:
        """``attempt`` is committed as ``state``: slow the channel down if the service asked,
        tell the fallback of a broken channel, say so when another worker took the
        delivery over, and free the slot."""
        claimed, results = attempt.claimed, attempt.results
        delivery = claimed.delivery
        # one pass over the results: a loop, not three comprehensions, each attempt
        wait, delivered, failed = 0.0, False, False
        for r in results:
            if r.status is Status.DELIVERED:
                delivered = True
            elif r.status is Status.FAILED:
                failed = True
            if r.retry_after is not None and r.retry_after > wait:
                wait = r.retry_after
        if wait > 0:  # a 429: the whole channel slows down, not one delivery
            until = time.monotonic() + wait
            if until > self._slow.get(delivery.channel, 0.0):
                self._slow[delivery.channel] = until
                log.info(
                    "channel %s: the service asked to wait %gs; its deliveries wait too",
                    delivery.channel,
                    wait,
                )
        if state is DeliveryState.TAKEN_OVER:
            log.warning(
                "delivery #%d: this worker held it past its lease and another worker has "
                "taken it over; this attempt's outcome is not recorded, the other's stands "
                "(the recipients may get it twice)",
                claimed.id,
            )
        fallback = None
        if delivered:  # working again
            if self._told:
                self._told.pop((delivery.channel, "parked"), None)
                self._told.pop((delivery.channel, "dead"), None)
        elif failed and state is not DeliveryState.TAKEN_OVER:
            fallback = self._fallback_of(delivery)
        if fallback is None:
            self._end(claimed, state)
            return
        telling = asyncio.get_running_loop().create_task(
            self._tell(claimed, results, state, fallback)
        )
        if claimed.id in self._slots:  # the slot is held until it is told
            self._slots[claimed.id] = telling

    def _fallback_of(self, delivery: Delivery) -> str | None:
        """The channel that hears of ``delivery``'s channel failing, if any (with an
        outbox to queue the notice in)."""
        config = self.deliverer.config
        if config.outbox is None:
            return None
        return config.routing.fallback_for(delivery.channel)

    async def _tell(
        self,
        claimed: Claimed,
        results: Sequence[RecipientResult],
        state: DeliveryState,
        fallback: str,
    ) -> None:
        try:
            await self._tell_fallback(claimed, results, fallback)
        except OutboxError as exc:  # the attempt stands; only the notice is lost
            log.error("channel %s: could not tell its fallback: %s", claimed.delivery.channel, exc)
        except Exception as exc:  # noqa: BLE001 - a bug: said by run(), which stops
            self._break(exc)
            return
        self._end(claimed, state)

    def _unrecorded(self, attempt: Attempt, shared: _Batch, exc: BaseException) -> None:
        """``attempt`` could not be committed: tried again while its lease lasts when the
        outbox is out of reach, else the worker stops (see :meth:`_not_recorded`)."""
        claimed = attempt.claimed
        if isinstance(exc, Unreachable):
            again = asyncio.get_running_loop().create_task(
                self._commit_again(attempt, shared.lease_ends, exc)
            )
            if claimed.id in self._slots:
                self._slots[claimed.id] = again
            return
        self._break(_not_recorded(claimed, exc))

    async def _commit_again(self, attempt: Attempt, lease_ends: float, exc: Unreachable) -> None:
        """``attempt`` could not be recorded, the outbox out of reach (a server
        restarting, a connection broken): try again for as long as the lease lasts. Until
        then no other worker takes the delivery over, and after it the fencing number
        refuses a late record. Any other failure, or one that outlasts the lease, stops
        the worker."""
        assert self._records is not None
        while True:
            if time.monotonic() + POLL >= lease_ends:
                self._break(_not_recorded(attempt.claimed, exc))
                return
            log.error(
                "delivery #%d: its outcome could not be recorded: %s; trying again in "
                "%gs, for as long as its lease lasts (%s more)",
                attempt.claimed.id,
                exc,
                POLL,
                humanize.duration(1000 * (lease_ends - time.monotonic())),
            )
            await asyncio.sleep(POLL)
            committed: asyncio.Future[DeliveryState] = asyncio.get_running_loop().create_future()
            self._records.submit(attempt, committed)
            try:
                state = await committed
            except Unreachable as again:
                exc = again
            except OutboxError as other:
                self._break(_not_recorded(attempt.claimed, other))
                return
            else:
                self._recorded(attempt, state)
                return

    def _end(self, claimed: Claimed, state: DeliveryState) -> None:
        """``claimed``'s attempt is over: its slot is free, and :meth:`run` hears of it."""
        self._slots.pop(claimed.id, None)
        self._ended.append((claimed, state))
        self._progress.set()

    def _break(self, exc: BaseException) -> None:
        """Stop :meth:`run` with ``exc`` (the first, if several)."""
        if self._broken is None:
            self._broken = exc
        self._progress.set()


@attrs.frozen
class _Recording:
    """What the group commit settles for one attempt: the worker goes on at once, in the
    commit's own task (no future, no task woken: a loop callback less an attempt)."""

    worker: Worker
    attempt: Attempt
    shared: _Batch

    def done(self) -> bool:
        return False  # the worker always wants to hear

    def set_result(self, state: DeliveryState, /) -> None:
        try:
            self.worker._recorded(self.attempt, state)
        except Exception as exc:  # noqa: BLE001 - a bug: said by run(), which stops
            self.worker._break(exc)

    def set_exception(self, exception: BaseException, /) -> None:
        self.worker._unrecorded(self.attempt, self.shared, exception)


def _not_recorded(claimed: Claimed, exc: BaseException) -> OutboxError:
    """Sent, but not recorded: carrying on would send it again each time its lease ran
    out, for as long as the outbox stays broken; the worker stops instead, and says so."""
    error = OutboxError(
        f"delivery #{claimed.id} was attempted but its outcome could not be "
        f"recorded: {exc}; the worker stops rather than send it again and again "
        "(a worker started once the outbox is fixed tries it once more)"
    )
    error.__cause__ = exc
    return error


def _muting(mutes: Sequence[Mute], channel: str, notification: Notification) -> Mute | None:
    """The first of ``mutes`` that holds ``notification`` on ``channel``."""
    for mute in mutes:
        if mute.matches(channel, notification):
            return mute
    return None


def _muted(
    mute: Mute, delivery: Delivery, retry_only: tuple[str, ...] | None
) -> list[RecipientResult]:
    """What a delivery that ``mute`` holds meets: skipped, with the mute's reason."""
    reason = mute.skip_reason
    return [RecipientResult.skipped(label, reason) for label in delivery.labels(retry_only)]


def _unconfigured(delivery: Delivery, retry_only: tuple[str, ...] | None) -> list[RecipientResult]:
    """What a delivery of a channel removed from the configuration meets: a permanent
    failure for each of its recipients, with the fix."""
    return [
        RecipientResult.failed(
            label,
            FailureKind.PERMANENT,
            f"channel {delivery.channel!r} is no longer configured",
            hint="add it back, or let the notification go",
        )
        for label in delivery.labels(retry_only)
    ]
