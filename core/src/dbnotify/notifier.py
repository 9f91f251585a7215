"""The host's entry point: :class:`Notifier` routes an event and delivers it everywhere.

All targets run at once, each under ``dispatch.deadline``. Whatever happens, the host
gets a :class:`DispatchResult` with an outcome per channel and per recipient; a delivery
failure never raises into the host. Only bad input from the host itself (an event that
cannot be described) raises :class:`~dbnotify.events.EventError`, before anything is sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import logging
import os
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from dbnotify import router
from dbnotify.config.load import load_config
from dbnotify.config.model import Config
from dbnotify.delivery import Deliverer
from dbnotify.errors import OutboxError
from dbnotify.events import (
    Event,
    Notification,
    Severity,
    to_notification,
    to_user_notification,
)
from dbnotify.outbox.group import GroupCommit
from dbnotify.outbox.grouping import group_key, hold_for, resolved_notification
from dbnotify.outbox.model import Enqueue, HistoryRow, Hold
from dbnotify.outbox.policy import policy_for
from dbnotify.outbox.store import OutboxStore, open_store
from dbnotify.outbox.worker import Worker
from dbnotify.plugins import PluginRegistry, default_registry
from dbnotify.rendering import Renderer
from dbnotify.results import (
    CHANNEL_LABEL,
    ChannelResult,
    Delivery,
    DispatchResult,
    RecipientResult,
    Status,
    Target,
    TestReport,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

STOP_MARGIN = 5.0
"""Seconds past the worker's grace for it to give back what it holds, before it is
cancelled (its leases then run out instead)."""


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from synchronous code, inside a running event loop or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class Notifier:
    """Routes events to channels and reports what happened to each."""

    def __init__(
        self,
        config: Config,
        *,
        plugins: PluginRegistry | None = None,
        renderer: Renderer | None = None,
        outbox: OutboxStore | None = None,
    ) -> None:
        self.config = config
        self.plugins = plugins or default_registry()
        self.renderer = renderer or Renderer(config.rendering)
        if outbox is None and config.outbox is not None:
            outbox = open_store(config.outbox)
        self.outbox = outbox
        """Durable mode when set: :meth:`notify` commits, a worker delivers. Left open by
        :meth:`aclose`: ``notify_sync`` would otherwise reopen the file for every call."""
        self.deliverer = Deliverer(config, self.plugins, self.renderer)
        """What delivers one target now: shared with the outbox's worker."""
        self._user_channels: frozenset[str] | None = None
        self._enqueues: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, GroupCommit[Enqueue, list[int]]
        ] = weakref.WeakKeyDictionary()
        self._worker: Worker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self.clock: Callable[[], float] = time.time
        """Now, for quiet hours and digest times (tests set it)."""

    @classmethod
    def from_config(
        cls,
        source: str | os.PathLike[str] | Mapping[str, Any],
        *,
        plugins: PluginRegistry | None = None,
    ) -> Notifier:
        """Load and validate a TOML file or a dict; raises ConfigError with every problem."""
        registry = plugins or default_registry()
        return cls(load_config(source, registry), plugins=registry)

    async def notify(self, event: Event, *, notification_id: str | None = None) -> DispatchResult:
        """Route and deliver (direct mode), or route and commit to the outbox (durable).

        Durable mode returns once every target is committed, with status ``queued``; it
        raises :class:`~dbnotify.errors.OutboxError` when the outbox cannot take it
        (locked, full, unwritable): the host hears of it, nothing is silently dropped.
        ``notification_id``: the notification's id instead of a random one; unique, as
        the outbox keeps one notification per id (``dbnotify serve`` derives it from an
        ``Idempotency-Key``).
        """
        notification = to_notification(event, notification_id=notification_id)
        if self._user_channels is None:
            self._user_channels = self.deliverer.user_channels()
        plan = router.plan(self.config, event, notification.severity, self._user_channels)
        for_user = to_user_notification(event, notification)
        if self.outbox is not None:
            return await self._enqueue(event, notification, for_user, plan)
        sends = [
            self.deliverer.deliver(d, for_user if d.target is Target.USER else notification)
            for d in plan.deliveries
        ]
        # one target (the common case) is awaited in this task: a task and a gathering
        # future for it were 5 % of a burst's CPU; several targets run at once
        delivered = [await sends[0]] if len(sends) == 1 else await asyncio.gather(*sends)
        result = DispatchResult(
            event.type,
            notification.id,
            (*delivered, *plan.outcomes),
            plan.reason,
            unrouted=plan.unrouted,
        )
        _log(result)
        return result

    async def _resolve(self, success: Notification) -> None:
        """A job that succeeds closes its open problems: each gets a "resolved" message
        where its failures went, grouped as they were (``[grouping] resolved``)."""
        assert self.outbox is not None
        if not success.job_name:
            return
        overrides = self.config.outbox.retry if self.config.outbox is not None else {}
        items = []
        for problem in await self.outbox.resolve(success.job_name):
            rule = self.config.grouping_for(problem.event_type)
            if rule is None or not rule.resolved:
                continue
            resolved = resolved_notification(problem, success)
            items.append(
                Enqueue(
                    resolved,
                    resolved if problem.delivery.target is Target.USER else None,
                    [problem.delivery],
                    policy_for(problem.event_type, overrides),
                    holds=[
                        Hold(group_key(rule, problem.delivery, resolved), rule.wait, rule.interval)
                    ],
                )
            )
        if items:
            await self.outbox.enqueue_many(items)

    async def _enqueue(
        self,
        event: Event,
        notification: Notification,
        for_user: Notification,
        plan: router.Plan,
    ) -> DispatchResult:
        assert self.outbox is not None
        # a store given without [outbox] (a test's MemoryStore): the built-in limits
        overrides = self.config.outbox.retry if self.config.outbox is not None else {}
        policy = policy_for(event.type, overrides)
        loop = asyncio.get_running_loop()
        group = self._enqueues.get(loop)
        if group is None:  # notifications committed together share a transaction
            group = self._enqueues[loop] = GroupCommit(
                self.outbox.enqueue_many, limit=self.outbox.write_group
            )
        now = self.clock()  # digests and quiet hours are times of day
        # loops, not comprehensions: a variable a comprehension reads becomes a cell, made
        # at every call and tracked by the garbage collector while the commit is awaited
        holds = []
        for d in plan.deliveries:
            copy = for_user if d.target is Target.USER else notification
            holds.append(hold_for(self.config, d, copy, now))
        committed: asyncio.Future[list[int]] = loop.create_future()
        group.submit(
            Enqueue(
                notification,
                for_user if any(d.target is Target.USER for d in plan.deliveries) else None,
                plan.deliveries,
                policy,
                plan.outcomes,
                holds,
            ),
            committed,
        )
        ids = await committed
        queued = _queued(self.config, plan.deliveries, ids)
        if self.config.grouping and notification.severity is Severity.SUCCESS:
            await self._resolve(notification)
        if self._worker is not None:
            self._worker.wake.set()
        result = DispatchResult(
            event.type,
            notification.id,
            (*queued, *plan.outcomes),
            plan.reason,
            tuple(ids),
            unrouted=plan.unrouted,
        )
        _log(result)
        return result

    def start(self) -> asyncio.Task[None]:
        """Durable mode: deliver from the outbox in a background task of this loop.

        Stopped by :meth:`aclose`. Several processes may each run one on the same file.
        """
        if self.outbox is None:
            raise RuntimeError("start() needs an [outbox] in the configuration")
        if self._worker_task is None or self._worker_task.done():
            self._worker = Worker(self.outbox, self.deliverer)
            self._worker_task = asyncio.get_running_loop().create_task(self._worker.run())
            self._worker_task.add_done_callback(_report_worker_end)
        return self._worker_task

    async def history(self, **filters: Any) -> list[HistoryRow]:
        """Recipients' latest outcomes, newest first (see :meth:`OutboxStore.history`)."""
        return await self._require_outbox().history(**filters)

    async def last_deliveries(self) -> dict[str, HistoryRow]:
        """Per channel, its most recent successful delivery."""
        return await self._require_outbox().last_delivery()

    async def failures_since(self, since: dt.datetime) -> list[HistoryRow]:
        """Every failed attempt since ``since``, transient ones included."""
        return await self._require_outbox().failures_since(since.timestamp())

    def _require_outbox(self) -> OutboxStore:
        if self.outbox is None:
            raise RuntimeError("history needs an [outbox] in the configuration")
        return self.outbox

    def notify_sync(self, event: Event) -> DispatchResult:
        """:meth:`notify` for hosts without an event loop.

        Each call runs on an event loop of its own, and closes what plugins kept open on
        it. Called from inside a running loop, it blocks that loop until done.
        """

        async def once() -> DispatchResult:
            try:
                return await self.notify(event)
            finally:
                await self.aclose()
                if self.outbox is not None and self.outbox.loop_bound:
                    await self.outbox.aclose()  # its connections end with this loop

        return run_sync(once())

    async def aclose(self) -> None:
        """Stop the background worker, as ``dbnotify worker`` stops on SIGTERM: attempts in
        flight get its grace to end and be recorded, the others go back to the outbox.
        Then let plugins close what they keep open on this loop."""
        task, worker = self._worker_task, self._worker
        if task is not None:
            if worker is not None and not task.done():
                worker.stop()
                await asyncio.wait({task}, timeout=worker.grace + STOP_MARGIN)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OutboxError):  # logged when it ended
                await task
            self._worker_task = None
        await self.deliverer.shutdown()

    async def __aenter__(self) -> Notifier:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def test(self, channel: str, *, send_message: bool = True) -> TestReport:
        """Check one channel stage by stage and, unless told not to, send a test message."""
        return await self.deliverer.test(
            channel, to_notification(Event("test")), send_message=send_message
        )


def _report_worker_end(task: asyncio.Task[None]) -> None:
    """A background worker stops on an outbox it cannot record to: say so, loudly."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("the outbox worker stopped: %s", exc)


def _queued(
    config: Config, deliveries: Sequence[Delivery], ids: Sequence[int]
) -> tuple[ChannelResult, ...]:
    """What :meth:`Notifier.notify` says of deliveries committed to the outbox."""
    return tuple(
        ChannelResult(
            d.channel,
            config.channels[d.channel].type,
            d.target,
            tuple(
                RecipientResult(label, Status.QUEUED, reason=f"queued as delivery #{ident}")
                for label in d.recipients or (CHANNEL_LABEL,)
            ),
        )
        for d, ident in zip(deliveries, ids, strict=True)
    )


def _log(result: DispatchResult) -> None:
    if result.reason:
        log.info(
            "event %s (%s) not sent: %s", result.event_type, result.notification_id, result.reason
        )
    for channel in result.channels:
        for r in channel.recipients:
            level = logging.WARNING if r.status is Status.FAILED else logging.INFO
            if not log.isEnabledFor(level):  # its text is not made for nobody: 3 a message
                continue
            log.log(
                level,
                "event %s (%s) channel %s %s %s: %s%s",
                result.event_type,
                result.notification_id,
                channel.channel,
                channel.target.value,
                r.recipient,
                r.status.value,
                f" ({r.kind.value}: {r.reason})"
                if r.kind
                else (f" ({r.reason})" if r.reason else ""),
            )


__all__ = ["Notifier", "run_sync"]
