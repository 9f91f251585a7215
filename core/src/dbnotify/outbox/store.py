"""The outbox store interface: what the worker, the Notifier and the CLI ask of a backend.

A store keeps notifications until each delivery is final, and their history. It decides
nothing itself: what an attempt means comes from :mod:`dbnotify.outbox.decide`, so that
every backend retries, gives up and parks alike. Backends:
:class:`~dbnotify.outbox.sqlite.SQLiteStore` (one file, several processes) and
:class:`~dbnotify.outbox.memory.MemoryStore` (tests); :func:`open_store` picks the one
``[outbox]`` names. A new backend implements this protocol and joins
``core/tests/test_core_outbox_store.py``; nothing else changes.

Every method is a coroutine; a backend that blocks (sqlite3) runs its work in a thread.
Failures to store or read are :class:`~dbnotify.errors.OutboxError`, worded by
:mod:`dbnotify.outbox.wording`. ``now`` (seconds since the epoch, ``time.time()`` when
``None``) lets tests run a schedule exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol, runtime_checkable

from dbnotify.config.model import OutboxSettings, Writer
from dbnotify.errors import OutboxError
from dbnotify.outbox.model import (
    Attempt,
    Claimed,
    Counts,
    DeliveryState,
    Enqueue,
    HistoryRow,
    Mute,
    MuteScope,
    OpenProblem,
    Parked,
    RecipientState,
)


@runtime_checkable
class OutboxStore(Protocol):
    """An outbox backend. Safe to share between tasks, and between processes where the
    backend says so (a SQLite file, a database server)."""

    loop_bound: bool
    """Its connections belong to the event loop that opened them (a connection pool):
    ``notify_sync`` closes it at the end of each call, whose loop then ends. ``False``:
    it stays open across calls (a file)."""

    batch_claims: bool
    """The worker claims more once half its slots are free, in one batch: a claim costs
    the host's loop a transaction's work (a thread's, a database round trip's). ``False``:
    as soon as one is, since the store works in a process of its own and a claim costs
    the loop a message (:mod:`dbnotify.outbox.sqlite.writer`)."""

    worker_concurrency: int
    """Attempts a worker keeps in flight unless told otherwise (``dbnotify worker
    --concurrency``): :data:`~dbnotify.outbox.defaults.CONCURRENCY` (64), or
    :data:`~dbnotify.outbox.defaults.POSTGRES_CONCURRENCY` (128) where a record waits for
    a database server. It also bounds what a crash can send twice."""

    write_group: int
    """The most writes (notifications, attempts) one group commit puts in a transaction:
    :data:`~dbnotify.outbox.defaults.WRITE_GROUP` (500) where each transaction costs the
    host's loop its work (a thread's, a database driver's), so that a burst takes few of
    them; 64 for a process of its own, so that
    the worker's first claims and records are not queued behind a burst's enqueue of
    hundreds (:mod:`dbnotify.outbox.group`)."""

    async def enqueue_many(
        self, items: Sequence[Enqueue], *, now: float | None = None
    ) -> list[list[int]]:
        """Commit the notifications, each with its deliveries and outcomes, in one
        transaction; returns each one's delivery ids. A job's failure whose problem
        (:class:`~dbnotify.outbox.model.Problem`) was told within its ``repeat`` is
        stored as skipped ("counted, not sent") instead. A delivery is due now, unless it
        is held for its group (:class:`~dbnotify.outbox.model.Hold`): then it is due with its
        group's open deliveries, or after ``wait`` for a new group, and not before
        ``interval`` after the group's last message. Returns once committed
        durably: a crash of the process or the machine after it loses nothing. All or
        nothing: on :class:`OutboxError` none of them is stored."""
        ...

    async def claim(
        self,
        owner: str,
        *,
        limit: int,
        lease: float,
        only: Collection[int] | None = None,
        now: float | None = None,
    ) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries to ``owner`` for ``lease`` seconds, soonest
        due first, none of a parked channel (``only``: among these ids). No delivery is
        leased to two owners at once, across processes too; one whose lease ran out (its
        worker died) is due again. Each claim adds one to the delivery's fencing number
        (:attr:`~dbnotify.outbox.model.Claimed.fence`). First, deliveries past their
        max_age become dead with :data:`~dbnotify.outbox.decide.EXPIRED`. A lease need
        not survive a power cut. A due delivery of a group brings the group's other
        pending deliveries with it, due or not (up to
        :data:`~dbnotify.outbox.defaults.GROUP_LIMIT`), so that they go as one message."""
        ...

    async def record_many(
        self,
        attempts: Sequence[Attempt],
        *,
        now: float | None = None,
        delay: float | None = None,
    ) -> list[DeliveryState]:
        """Store each attempt's results and what :func:`~dbnotify.outbox.decide.decide`
        makes of them (recipient states, next attempt, parking), and end its lease; one
        transaction, returns once durable. ``delay``: the backoff for every attempt here
        (tests); ``None`` draws each from its policy. A delivery purged meanwhile stays
        gone (``done``); one claimed again since this attempt's claim (its
        :attr:`~dbnotify.outbox.model.Claimed.fence` moved on) is left as the newer
        worker has it (``taken over``)."""
        ...

    async def release(self, owner: str, ids: Sequence[int], *, after: float = 0.0) -> int:
        """Give back the leases ``owner`` holds on ``ids`` without an attempt (a worker
        that stops with attempts unfinished), so that another worker takes them now
        rather than when the lease runs out; ``after``: not before this many seconds (a
        service asked to slow down). Returns how many were given back."""
        ...

    async def unpark_changed(self, fingerprints: Mapping[str, str]) -> list[str]:
        """Unpark the channels whose configuration fingerprint is not the one they were
        parked with (a channel no longer configured included); returns their names."""
        ...

    async def parked(self) -> dict[str, Parked]:
        """The parked channels, by name, in name order."""
        ...

    async def retry(
        self,
        *,
        delivery_id: int | None = None,
        dead: bool = False,
        channel: str | None = None,
        now: float | None = None,
    ) -> int:
        """Make deliveries due now again: the one ``delivery_id``, those with a dead
        recipient (``dead``), those of ``channel``; only what still waits or has a dead
        recipient, never what was delivered. Dead recipients go back to pending, attempts
        start from zero, and so does the max_age clock. Unparks their channels, and
        ``channel``. Returns how many deliveries were put back."""
        ...

    async def purge(self, older_than: float, *, now: float | None = None) -> int:
        """Forget notifications created more than ``older_than`` seconds ago whose
        deliveries are all done, history included; returns how many."""
        ...

    async def counts(self, *, now: float | None = None) -> Counts:
        """How many deliveries are pending and due now; recipients dead and delivered."""
        ...

    async def next_due(self) -> float | None:
        """When the next delivery of an unparked channel is due (a leased one: not before
        its lease runs out); ``None`` when nothing is pending."""
        ...

    async def history(
        self,
        *,
        event_type: str | None = None,
        channel: str | None = None,
        recipient: str | None = None,
        status: RecipientState | None = None,
        since: float | None = None,
        until: float | None = None,
        notification_id: str | None = None,
        delivery_ids: Sequence[int] | None = None,
        limit: int = 1000,
    ) -> list[HistoryRow]:
        """Each recipient's latest outcome, newest first (then the higher delivery id),
        ``since <= at < until``; a delivery not yet tried shows as ``pending`` with its
        one recipient, or :data:`~dbnotify.results.CHANNEL_LABEL`."""
        ...

    async def last_delivery(self) -> dict[str, HistoryRow]:
        """Per channel, its most recent successful delivery."""
        ...

    async def failures_since(self, since: float) -> list[HistoryRow]:
        """Every failed attempt at or after ``since``, transient ones included, newest
        first; status ``failed``, with the recipient's hint and attempts so far."""
        ...

    async def mute(
        self,
        scope: MuteScope,
        value: str,
        *,
        duration: float,
        reason: str = "",
        now: float | None = None,
    ) -> Mute:
        """Start a mute of ``scope`` ``value`` for ``duration`` seconds (from the store's
        clock); returns it, with its id."""
        ...

    async def mutes(self, *, now: float | None = None) -> list[Mute]:
        """The mutes in force now, oldest first."""
        ...

    async def unmute(self, mute_id: int, *, now: float | None = None) -> Mute | None:
        """End the mute ``mute_id`` now; ``None`` when no such mute is in force."""
        ...

    async def resolve(self, job: str, *, now: float | None = None) -> list[OpenProblem]:
        """Close the open problems of ``job`` (it succeeded) and return them, so that a
        "resolved" message goes where their failures went."""
        ...

    async def listen(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever another process may have committed work, until
        cancelled, so that an idle worker starts at once rather than at its next poll.
        A backend with no such signal (a file) returns at once: the worker polls."""
        ...

    async def aclose(self) -> None:
        """Close what the store holds open (connections, threads); it opens again on next
        use, from whatever event loop that runs on. Its owner calls it (a command, when
        done); a host's ``Notifier`` keeps its store open across ``notify_sync`` calls,
        each on a loop of its own, so a backend whose connections belong to a loop must
        open new ones when it is used from another."""
        ...


def open_store(settings: OutboxSettings, *, default_writer: Writer = Writer.THREAD) -> OutboxStore:
    """The store ``[outbox]`` names: the PostgreSQL database at ``url``, or the SQLite
    file at ``path``, its work in a thread or a child process as ``writer`` says, else as
    ``default_writer`` does. Opens nothing yet: the first operation does (creating or
    upgrading the tables).

    ``default_writer``: :attr:`Writer.PROCESS` for a program that lives to deliver
    (``dbnotify serve``, ``dbnotify worker``), whose interpreter is dbnotify's own and
    whose bursts the child takes off its loop; a library's host keeps the thread, as it
    may embed Python with no interpreter to start, or call ``notify_sync`` (a child a
    call)."""
    # imported here: only the chosen backend's driver loads (psycopg is an extra)
    if settings.url is not None:
        try:
            from dbnotify.outbox.postgres import PostgresStore
        except ImportError as exc:
            raise OutboxError(
                f"[outbox] url needs psycopg, which is not installed ({exc.name}); "
                "pip install 'dbnotify[postgresql]'"
            ) from None
        return PostgresStore(settings)
    assert settings.path is not None  # load_config requires path or url
    if (settings.writer or default_writer) is Writer.PROCESS:
        from dbnotify.outbox.sqlite.writer import WriterStore

        return WriterStore(settings.path, busy_timeout=settings.busy_timeout)
    from dbnotify.outbox.sqlite import SQLiteStore

    return SQLiteStore(settings.path, busy_timeout=settings.busy_timeout)
