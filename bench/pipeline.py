"""dbnotify's whole pipeline under load: Notifier → router → plugin → renderer → SMTP.

All the events are submitted at once (``asyncio.gather`` of one ``notify()`` each), as a
host does when a night's backup jobs finish together and each job's task reports its
own event; dbnotify's email pool (``max_connections``) is what bounds the connections.

Direct mode: the time from the first ``notify()`` until the last one returned.
Durable mode: the worker runs (``notifier.start()``) before the first ``notify()``; the
time until the outbox has nothing pending: the outbox is polled every :data:`POLL`
seconds, then the time its last outcome was recorded is read from its history.

Each run also counts this process's CPU time over the same span (``time.process_time``):
on a loaded loop, a mode's rate follows it, and what one mode costs beyond another shows
there first. A writer process's own CPU is not in it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bench.report import first_reasons
from dbnotify import DispatchResult, Event, Notifier, Status

POLL = 0.1
"""Seconds between looks at the outbox in durable mode: the figure's resolution."""
STALL = 30.0
"""Durable mode gives up when nothing moved in the outbox for this long."""


@dataclasses.dataclass
class PipelineRun:
    events: int
    expected: int
    """Recipient results that should be delivered."""
    delivered: int = 0
    seconds: float = 0.0
    failures: list[str] = dataclasses.field(default_factory=list)
    """One per recipient that failed (its reason), or per exception from notify()."""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    cpu: float = 0.0
    """This process's CPU seconds from the first ``notify()`` to the end of the run
    (durable mode: until polling found nothing pending; idle waits cost next to none)."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_per_event(self) -> float:
        """This process's CPU a notification, in microseconds."""
        return 1e6 * self.cpu / self.events if self.events else float("nan")

    def problems(self) -> list[str]:
        found = []
        if self.failures:
            found.append(f"{len(self.failures)} failed: {first_reasons(self.failures)}")
        if self.delivered != self.expected:
            found.append(f"{self.delivered} of {self.expected} recipients delivered")
        return found


def _tally(run: PipelineRun, results: Sequence[DispatchResult | BaseException]) -> None:
    for result in results:
        if isinstance(result, BaseException):
            run.failures.append(f"notify() raised {type(result).__name__}: {result}")
            continue
        for r in result.recipients:
            if r.status is Status.DELIVERED:
                run.delivered += 1
            elif r.status is not Status.QUEUED:
                run.failures.append(f"{r.status.value}: {r.reason}")


async def direct(config: dict[str, Any], events: Sequence[Event], recipients: int) -> PipelineRun:
    """Every event through a direct-mode Notifier; ``recipients`` per event expected."""
    run = PipelineRun(len(events), len(events) * recipients)
    notifier = Notifier.from_config(config)
    try:
        cpu = time.process_time()
        started = time.perf_counter()
        results = await asyncio.gather(
            *(notifier.notify(e) for e in events), return_exceptions=True
        )
        run.seconds = time.perf_counter() - started
        run.cpu = time.process_time() - cpu
    finally:
        await notifier.aclose()
    _tally(run, results)
    return run


async def _progress(notifier: Notifier) -> dict[str, int]:
    """pending (deliveries), delivered and dead (recipients), from the outbox."""
    assert notifier.outbox is not None
    try:
        counts = await notifier.outbox.counts()
        return {k: int(counts[k]) for k in ("pending", "delivered", "dead")}
    except (AttributeError, KeyError, TypeError):  # the outbox changed: the public API
        limit = 10**7
        return {
            status: len(await notifier.history(status=status, limit=limit))
            for status in ("pending", "delivered", "dead")
        }


async def _last_recorded(notifier: Notifier) -> float | None:
    """When the outbox recorded its latest outcome (time.time()), if it says."""
    rows = await notifier.history(limit=1)
    return float(rows[0].at) if rows else None


async def durable(
    config: Callable[[str], dict[str, Any]],
    events: Sequence[Event],
    recipients: int,
    folder: Path,
) -> PipelineRun:
    """Every event committed to a new outbox in ``folder``; the worker delivers.

    ``config(path)`` is the configuration with ``[outbox] path = path``. The file is
    created before the clock starts (:func:`warm`), as PostgreSQL's schema is.
    """
    path = folder / f"outbox-{os.getpid()}-{time.monotonic_ns()}.sqlite"
    try:
        return await outbox_run(config(str(path)), events, recipients, setup=warm)
    finally:
        await asyncio.to_thread(_remove, path)


async def warm(notifier: Notifier) -> None:
    """The outbox opened (PostgreSQL's pool, SQLite's file) and its tables created: a
    host's start, not its burst (a new SQLite file took 20-100 ms of a 1 s burst)."""
    assert notifier.outbox is not None
    await notifier.outbox.counts()


async def outbox_run(
    config: dict[str, Any],
    events: Sequence[Event],
    recipients: int,
    *,
    worker: bool = True,
    setup: Callable[[Notifier], Awaitable[None]] | None = None,
) -> PipelineRun:
    """Every event committed to ``config``'s outbox (an empty one), and delivered: by the
    Notifier's own worker (``worker``), or by others (worker processes already running).
    ``setup`` runs before the clock starts (the store's tables created, say)."""
    run = PipelineRun(len(events), len(events) * recipients)
    notifier = Notifier.from_config(config)
    try:
        if setup is not None:
            await setup(notifier)
        if worker:
            notifier.start()
        since = dt.datetime.now(dt.UTC)
        started_wall = time.time()
        cpu = time.process_time()
        started = time.perf_counter()
        results = await asyncio.gather(
            *(notifier.notify(e) for e in events), return_exceptions=True
        )
        run.details["committed_s"] = time.perf_counter() - started
        queued = sum(
            1
            for r in results
            if not isinstance(r, BaseException)
            for x in r.recipients
            if x.status is Status.QUEUED
        )
        run.details["queued"] = queued
        progress = await _progress(notifier)
        moved, last_move = progress["delivered"] + progress["dead"], time.perf_counter()
        while progress["pending"] > 0:
            await asyncio.sleep(POLL)
            progress = await _progress(notifier)
            now = time.perf_counter()
            if progress["delivered"] + progress["dead"] != moved:
                moved, last_move = progress["delivered"] + progress["dead"], now
            elif now - last_move > STALL:
                run.failures.append(
                    f"{progress['pending']} deliveries still pending after nothing moved "
                    f"for {STALL:g}s"
                )
                break
        run.seconds = time.perf_counter() - started
        run.cpu = time.process_time() - cpu
        run.details["polled_s"] = run.seconds
        # the outbox's own time of its last record is exact; the poll only bounds it
        last = await _last_recorded(notifier)
        if last is not None and 0 < last - started_wall <= run.seconds:
            run.seconds = last - started_wall
        _tally(run, results)
        run.delivered = progress["delivered"]
        if progress["dead"]:
            dead = await notifier.history(status="dead", limit=progress["dead"])
            run.failures += [f"dead: {row.reason}" for row in dead]
        retried = await notifier.failures_since(since)
        if retried:
            run.failures += [f"failed attempt (retried): {row.reason}" for row in retried]
    finally:
        await notifier.aclose()
        if notifier.outbox is not None:  # left open by aclose(), for notify_sync: its owner's
            await notifier.outbox.aclose()
    return run


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def filesystem(folder: Path) -> str:
    """The type of the filesystem that holds ``folder`` (``ext4``, ``tmpfs``)."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return kind
    target = str(folder.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3:
            point = parts[1]
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) > len(best):
                best, kind = point, parts[2]
    return kind


@dataclasses.dataclass
class MemoryMark:
    """The process's memory after ``submitted`` notifications were committed."""

    submitted: int
    rss_mib: float
    """Resident set size now (not the peak), from /proc/self/statm."""
    blocks: int
    """Python's own heap: ``sys.getallocatedblocks()``, after a full collection (cheap,
    unlike tracemalloc, which would slow the burst several times)."""
    delivered: int


def rss_mib() -> float:
    """The resident set size of this process now, in MiB (nan where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    except (OSError, ValueError, IndexError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _mark(submitted: int, delivered: int) -> MemoryMark:
    gc.collect()
    return MemoryMark(submitted, rss_mib(), sys.getallocatedblocks(), delivered)


async def burst(
    config: Callable[[str], dict[str, Any]],
    make_event: Callable[[int], Event],
    count: int,
    recipients: int,
    folder: Path,
    marks: Sequence[int],
    *,
    in_flight: int = 500,
) -> tuple[PipelineRun, list[MemoryMark]]:
    """``count`` notifications into a new SQLite outbox in ``folder`` while its worker
    delivers, as fast as ``notify()`` commits them (``in_flight`` calls at a time: the
    host's side stays the same size, so what grows is dbnotify's); the memory after each
    of ``marks`` notifications, and once all are delivered.

    Results are tallied as they come and dropped, as a host would."""
    path = folder / f"burst-{os.getpid()}-{time.monotonic_ns()}.sqlite"
    run = PipelineRun(count, count * recipients)
    found: list[MemoryMark] = []
    notifier = Notifier.from_config(config(str(path)))
    try:
        notifier.start()
        started = time.perf_counter()
        numbers = iter(range(count))
        submitted = 0
        waiting = sorted(marks)
        checked = asyncio.Event()

        async def submitter() -> None:
            nonlocal submitted
            for number in numbers:
                try:
                    result = await notifier.notify(make_event(number))
                except Exception as exc:  # noqa: BLE001 - counted: the figure is invalid
                    run.failures.append(f"notify() raised {type(exc).__name__}: {exc}")
                else:
                    _tally(run, [result])
                submitted += 1
                if waiting and submitted >= waiting[0]:
                    checked.set()

        async def marker() -> None:
            while waiting:
                await checked.wait()
                checked.clear()
                while waiting and submitted >= waiting[0]:
                    progress = await _progress(notifier)
                    found.append(_mark(waiting.pop(0), progress["delivered"]))

        mark_task = asyncio.create_task(marker())
        await asyncio.gather(*(submitter() for _ in range(in_flight)))
        await mark_task
        run.details["committed_s"] = time.perf_counter() - started
        progress = await _progress(notifier)
        moved, last_move = progress["delivered"] + progress["dead"], time.perf_counter()
        while progress["pending"] > 0:
            await asyncio.sleep(0.5)
            progress = await _progress(notifier)
            now = time.perf_counter()
            if progress["delivered"] + progress["dead"] != moved:
                moved, last_move = progress["delivered"] + progress["dead"], now
            elif now - last_move > STALL:
                run.failures.append(f"{progress['pending']} deliveries still pending")
                break
        run.seconds = time.perf_counter() - started
        run.delivered = progress["delivered"]
        found.append(_mark(count, progress["delivered"]))
        if progress["dead"]:
            run.failures.append(f"{progress['dead']} recipients dead")
    finally:
        await notifier.aclose()
        if notifier.outbox is not None:
            await notifier.outbox.aclose()
        await asyncio.to_thread(_remove, path)
    return run, found
