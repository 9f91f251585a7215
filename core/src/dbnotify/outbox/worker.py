"""The worker: takes due deliveries from the outbox, sends them, records what happened.

Runs as a background task inside a host (:meth:`dbnotify.Notifier.start`) or as its own
process (``dbnotify worker``). Idle, it sleeps until the next retry is due, waking when
another process commits work (where the store can say so: PostgreSQL's NOTIFY) and
once a second to look anyway: next to no CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from dbnotify import humanize
from dbnotify.config.model import ChannelSettings
from dbnotify.delivery import Deliverer
from dbnotify.errors import OutboxError
from dbnotify.outbox.defaults import CONCURRENCY, POLL, STOP_GRACE
from dbnotify.outbox.group import GroupCommit
from dbnotify.outbox.model import Attempt, Claimed, DeliveryState
from dbnotify.outbox.store import OutboxStore, Unreachable
from dbnotify.results import FailureKind, RecipientResult
from dbnotify.secrets import Secret

log = logging.getLogger(__name__)


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


@attrs.define
class Worker:
    """Delivers what ``store`` holds through ``deliverer`` (the Notifier's own, in a host).

    It speaks only the :class:`OutboxStore` protocol: any backend will do.
    """

    store: OutboxStore
    deliverer: Deliverer
    concurrency: int = attrs.field(default=CONCURRENCY, validator=attrs.validators.ge(1))
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
    _records: GroupCommit[Attempt, DeliveryState] | None = None
    """Attempts that end together are recorded in one transaction."""

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
        # committed with the others that end with it; at most ``concurrency`` in flight
        in_flight: dict[asyncio.Task[DeliveryState], Claimed] = {}
        stopping = asyncio.get_running_loop().create_task(self._stopping.wait())
        # another process's commit wakes an idle worker at once (PostgreSQL's NOTIFY)
        listening = asyncio.get_running_loop().create_task(self.store.listen(self.wake.set))
        try:
            while not self._stopping.is_set():
                if len(in_flight) <= self.concurrency // 2:  # refill in batches, not one by one
                    try:
                        if not unparked:  # in the loop: a busy file at start-up is retried too
                            for channel in await self.store.unpark_changed(fingerprints):
                                log.info(
                                    "channel %s: configuration changed, its queue goes again",
                                    channel,
                                )
                            unparked = True
                        claimed_at = time.monotonic()  # the leases end after lease seconds
                        batch = await self.store.claim(
                            self.owner,
                            limit=self.concurrency - len(in_flight),
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
                    for claimed in batch:
                        attempt = self._attempt(claimed, fingerprints, claimed_at + self.lease)
                        in_flight[loop.create_task(attempt)] = claimed
                if in_flight:
                    done, _ = await asyncio.wait(
                        [*in_flight, stopping], return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        if task is stopping:
                            continue
                        claimed = in_flight.pop(task)  # type: ignore[arg-type]
                        state = task.result()  # an outcome that could not be recorded raises
                        if on_attempt is not None:
                            on_attempt(claimed, state)  # type: ignore[arg-type]
                        if remaining is not None:
                            remaining.discard(claimed.id)
                    if remaining is not None and not remaining:
                        return
                    continue
                if remaining is not None and not remaining:
                    return
                if drain and (await self.store.counts())["due"] == 0:
                    return
                if remaining is not None:
                    # the rest is leased by another worker, or parked: nothing more to do here
                    return
                await self._idle()
            await self._finish(in_flight, on_attempt)
        finally:
            stopping.cancel()
            listening.cancel()
            try:
                await listening
            except asyncio.CancelledError:
                pass
            except Exception:  # waking early is a nicety: polling goes on without it
                log.exception("outbox worker: listening for new work failed")
            for task in in_flight:  # cancelled: what is in flight is abandoned; leases run out
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _finish(
        self,
        in_flight: dict[asyncio.Task[DeliveryState], Claimed],
        on_attempt: Callable[[Claimed, DeliveryState], None] | None,
    ) -> None:
        """Stopped: the attempts in flight get :attr:`grace` seconds to end and be
        recorded; the leases of the others go back to the outbox."""
        if not in_flight:
            return
        done, late = await asyncio.wait(in_flight, timeout=self.grace)
        unrecorded: BaseException | None = None
        for task in done:
            claimed = in_flight.pop(task)
            if task.cancelled():
                continue
            if (exc := task.exception()) is not None:
                unrecorded = unrecorded or exc  # said once the leases are given back
            elif on_attempt is not None:
                on_attempt(claimed, task.result())
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        ids = [in_flight.pop(task).id for task in late]
        self.released = await self.store.release(self.owner, ids)
        if self.released:
            log.warning(
                "worker %s: gave back %s not finished within %gs; another worker takes them",
                self.owner,
                humanize.count(self.released, "delivery", "deliveries"),
                self.grace,
            )
        if unrecorded is not None:
            raise unrecorded

    async def _idle(self) -> None:
        next_due = await self.store.next_due()
        wait = POLL if next_due is None else min(POLL, max(0.0, next_due - time.time()))
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=wait)

    async def _attempt(
        self, claimed: Claimed, fingerprints: dict[str, str], lease_ends: float
    ) -> DeliveryState:
        """Deliver ``claimed`` and record the outcome; ``lease_ends``: when (monotonic
        clock, no later than the outbox's) another worker may take it over."""
        self.attempted += 1
        delivery = claimed.delivery
        if delivery.channel not in self.deliverer.config.channels:
            results: Sequence[RecipientResult] = [
                RecipientResult.failed(
                    label,
                    FailureKind.PERMANENT,
                    f"channel {delivery.channel!r} is no longer configured",
                    hint="add it back, or let the notification go",
                )
                for label in delivery.labels(claimed.retry_only)
            ]
        else:
            outcome = await self.deliverer.deliver(
                delivery,
                claimed.notification,
                retry_only=claimed.retry_only,
            )
            results = outcome.recipients
        if self._records is None:
            self._records = GroupCommit(self.store.record_many)
        attempt = Attempt(claimed, results, fingerprints.get(delivery.channel, ""))
        try:
            state = await self._record(attempt, lease_ends)
        except OutboxError as exc:
            # sent, but not recorded: carrying on would send it again each time its lease
            # ran out, for as long as the outbox stays broken; stop instead, and say so
            raise OutboxError(
                f"delivery #{claimed.id} was attempted but its outcome could not be "
                f"recorded: {exc}; the worker stops rather than send it again and again "
                "(a worker started once the outbox is fixed tries it once more)"
            ) from exc
        if state is DeliveryState.TAKEN_OVER:
            log.warning(
                "delivery #%d: this worker held it past its lease and another worker has "
                "taken it over; this attempt's outcome is not recorded, the other's stands "
                "(the recipients may get it twice)",
                claimed.id,
            )
        return state

    async def _record(self, attempt: Attempt, lease_ends: float) -> DeliveryState:
        """Record ``attempt``; while the outbox cannot be reached (a server restarting, a
        connection broken), try again for as long as the lease lasts: until then no
        other worker takes the delivery over, and after it the fencing number refuses a
        late record. Any other failure, or one that outlasts the lease, is raised."""
        assert self._records is not None
        while True:
            try:
                return await self._records.submit(attempt)
            except Unreachable as exc:
                if time.monotonic() + POLL >= lease_ends:
                    raise
                log.error(
                    "delivery #%d: its outcome could not be recorded: %s; trying again in "
                    "%gs, for as long as its lease lasts (%s more)",
                    attempt.claimed.id,
                    exc,
                    POLL,
                    humanize.duration(1000 * (lease_ends - time.monotonic())),
                )
                await asyncio.sleep(POLL)
