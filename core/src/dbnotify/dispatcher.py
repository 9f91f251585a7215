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
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import jinja2

from dbnotify import router
from dbnotify.config import Config, load_config
from dbnotify.events import Event, Notification, describe, describe_for_user
from dbnotify.outbox import Outbox, policy_for
from dbnotify.outbox.group import GroupCommit
from dbnotify.outbox.store import Enqueue, HistoryRow
from dbnotify.outbox.worker import Worker
from dbnotify.plugins import ChannelPlugin, PluginRegistry, default_registry
from dbnotify.rendering import Renderer
from dbnotify.rendering.renderer import template_problem
from dbnotify.results import (
    ChannelResult,
    DispatchResult,
    FailureKind,
    RecipientResult,
    Status,
    Target,
    TestReport,
    TestStage,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        outbox: Outbox | None = None,
    ) -> None:
        self.config = config
        self.plugins = plugins or default_registry()
        self.renderer = renderer or Renderer(config.rendering)
        if outbox is None and config.outbox is not None:
            outbox = Outbox(config.outbox.path, busy_timeout=config.outbox.busy_timeout)
        self.outbox = outbox
        """Durable mode when set: :meth:`notify` commits, a worker delivers."""
        self._enqueues: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, GroupCommit[Enqueue, list[int]]
        ] = weakref.WeakKeyDictionary()
        self._worker: Worker | None = None
        self._worker_task: asyncio.Task[None] | None = None

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

    async def notify(self, event: Event) -> DispatchResult:
        """Route and deliver (direct mode), or route and commit to the outbox (durable).

        Durable mode returns once every target is committed, with status ``queued``; it
        raises :class:`~dbnotify.outbox.OutboxError` when the outbox cannot take it
        (locked, full, unwritable): the host hears of it, nothing is silently dropped.
        """
        notification = describe(event)
        plan = router.plan(self.config, event, notification.severity, self.plugins)
        for_user = describe_for_user(event, notification)
        if self.outbox is not None:
            return await self._enqueue(event, notification, for_user, plan)
        delivered = await asyncio.gather(
            *(
                self.deliver(d, for_user if d.target is Target.USER else notification)
                for d in plan.deliveries
            )
        )
        result = DispatchResult(
            event.type, notification.id, (*delivered, *plan.outcomes), plan.reason
        )
        _log(result)
        return result

    async def _enqueue(
        self,
        event: Event,
        notification: Notification,
        for_user: Notification,
        plan: router.Plan,
    ) -> DispatchResult:
        assert self.outbox is not None
        assert self.config.outbox is not None
        policy = policy_for(event.type, self.config.outbox.retry)
        loop = asyncio.get_running_loop()
        group = self._enqueues.get(loop)
        if group is None:  # notifications committed together share a transaction
            group = self._enqueues[loop] = GroupCommit(self.outbox.enqueue_many)
        ids = await group.submit(
            Enqueue(
                notification,
                for_user if any(d.target is Target.USER for d in plan.deliveries) else None,
                [(d.channel, d.target, d.recipients) for d in plan.deliveries],
                policy,
                [(c.channel, c.target, c.recipients) for c in plan.outcomes],
            )
        )
        queued = tuple(
            ChannelResult(
                d.channel,
                self.config.channels[d.channel].type,
                d.target,
                tuple(
                    RecipientResult(label, Status.QUEUED, reason=f"queued as delivery #{ident}")
                    for label in d.recipients or ("(channel)",)
                ),
            )
            for d, ident in zip(plan.deliveries, ids, strict=True)
        )
        if self._worker is not None:
            self._worker.wake.set()
        result = DispatchResult(
            event.type, notification.id, (*queued, *plan.outcomes), plan.reason, tuple(ids)
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
            self._worker = Worker(self, self.outbox)
            self._worker_task = asyncio.get_running_loop().create_task(self._worker.run())
        return self._worker_task

    async def history(self, **filters: Any) -> list[HistoryRow]:
        """Recipients' latest outcomes, newest first (see :meth:`Outbox.history`)."""
        return await asyncio.to_thread(self._require_outbox().history, **filters)

    async def last_deliveries(self) -> dict[str, HistoryRow]:
        """Per channel, its most recent successful delivery."""
        return await asyncio.to_thread(self._require_outbox().last_delivery)

    async def failures_since(self, since: dt.datetime) -> list[HistoryRow]:
        """Every failed attempt since ``since``, transient ones included."""
        return await asyncio.to_thread(self._require_outbox().failures_since, since.timestamp())

    def _require_outbox(self) -> Outbox:
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

        return run_sync(once())

    async def aclose(self) -> None:
        """Stop the background worker; let plugins close what they keep open on this loop."""
        if self._worker_task is not None:
            self._worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker_task
            self._worker_task = None
        for channel_type in {c.type for c in self.config.channels.values()}:
            plugin = self.plugins.get(channel_type)
            if plugin is not None:
                try:
                    await plugin.shutdown()
                except Exception:
                    log.exception("plugin %r failed to shut down", plugin.type)

    async def __aenter__(self) -> Notifier:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def test(self, channel: str, *, send_message: bool = True) -> TestReport:
        """Check one channel stage by stage and, unless told not to, send a test message."""
        found = self._channel(channel)
        if isinstance(found, str):
            return TestReport((TestStage("configuration", False, found),))
        settings, plugin = found
        notification = describe(Event("test"))
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.dispatch.deadline):
                return await plugin.test(settings.config, notification, self.renderer, send_message)
        except TimeoutError:
            return TestReport(
                (
                    TestStage(
                        "deadline",
                        False,
                        f"the test did not finish within {self.config.dispatch.deadline:g}s",
                        time.monotonic() - started,
                        hint="raise dispatch.deadline, or check the "
                        "server: it accepts the connection but answers too slowly",
                    ),
                )
            )
        except jinja2.TemplateError as exc:
            return TestReport(
                (
                    TestStage(
                        "render",
                        False,
                        f"rendering failed: {template_problem(exc)}",
                        time.monotonic() - started,
                        hint="check the templates in rendering.templates_dir",
                    ),
                )
            )
        except Exception as exc:
            log.exception("channel %r: plugin %r raised during test", channel, plugin.type)
            return TestReport(
                (
                    TestStage(
                        "plugin",
                        False,
                        f"the {plugin.type} plugin raised {type(exc).__name__}: {exc}",
                        time.monotonic() - started,
                        hint=f"this is a bug in {plugin.distribution}; please report it",
                    ),
                )
            )

    def _channel(self, name: str) -> tuple[Any, ChannelPlugin] | str:
        settings = self.config.channels.get(name)
        if settings is None:
            return (
                f"no channel named {name!r} is configured "
                f"(configured: {', '.join(self.config.channels) or 'none'})"
            )
        plugin = self.plugins.get(settings.type)
        if plugin is None:
            return self.plugins.explain_missing(settings.type)
        return settings, plugin

    async def deliver(
        self,
        delivery: router.Delivery,
        notification: Notification,
        *,
        retry_only: tuple[str, ...] | None = None,
    ) -> ChannelResult:
        """One target, now, under the deadline; never raises (used by the worker too)."""
        found = self._channel(delivery.channel)
        labels = retry_only or delivery.recipients or ("(channel)",)
        if isinstance(found, str):
            return ChannelResult(
                delivery.channel,
                None,
                delivery.target,
                tuple(RecipientResult.failed(r, FailureKind.PERMANENT, found) for r in labels),
            )
        settings, plugin = found
        deadline = self.config.dispatch.deadline
        started = time.monotonic()
        outcome: tuple[RecipientResult, ...]
        try:
            async with asyncio.timeout(deadline):
                outcome = tuple(
                    await plugin.send(
                        settings.config,
                        notification,
                        self.renderer,
                        delivery.recipients,
                        retry_only,
                    )
                )
            if not outcome:
                outcome = tuple(
                    RecipientResult.failed(
                        r,
                        FailureKind.PERMANENT,
                        f"the {plugin.type} plugin reported no result",
                        hint=f"this is a bug in {plugin.distribution}; please report it",
                    )
                    for r in labels
                )
        except jinja2.TemplateError as exc:
            outcome = tuple(
                RecipientResult.failed(
                    r,
                    FailureKind.PERMANENT,
                    f"rendering failed: {template_problem(exc)}",
                    hint="check the templates in rendering.templates_dir",
                )
                for r in labels
            )
        except TimeoutError:
            outcome = tuple(
                RecipientResult.failed(
                    r,
                    FailureKind.TRANSIENT,
                    f"not delivered within {deadline:g}s",
                    hint="the server is slow or unreachable; raise dispatch.deadline if it is "
                    "merely slow",
                )
                for r in labels
            )
        except Exception as exc:
            log.exception("channel %r: plugin %r raised", delivery.channel, plugin.type)
            outcome = tuple(
                RecipientResult.failed(
                    r,
                    FailureKind.PERMANENT,
                    f"the {plugin.type} plugin raised {type(exc).__name__}: {exc}",
                    hint=f"this is a bug in {plugin.distribution}; please report it",
                )
                for r in labels
            )
        return ChannelResult(
            delivery.channel, settings.type, delivery.target, outcome, time.monotonic() - started
        )


def _log(result: DispatchResult) -> None:
    if result.reason:
        log.info(
            "event %s (%s) not sent: %s", result.event_type, result.notification_id, result.reason
        )
    for channel in result.channels:
        for r in channel.recipients:
            level = logging.WARNING if r.status is Status.FAILED else logging.INFO
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


__all__ = ["Notifier", "Target", "run_sync"]
