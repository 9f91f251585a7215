"""The host's entry point: :class:`Notifier` routes an event and delivers it everywhere.

All targets run at once, each under ``dispatch.deadline``. Whatever happens, the host
gets a :class:`DispatchResult` with an outcome per channel and per recipient; a delivery
failure never raises into the host. Only bad input from the host itself (an event that
cannot be described) raises :class:`~dbnotify.events.EventError`, before anything is sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import jinja2

from dbnotify import router
from dbnotify.config import Config, load_config
from dbnotify.events import Event, Notification, describe, describe_for_user
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
    ) -> None:
        self.config = config
        self.plugins = plugins or default_registry()
        self.renderer = renderer or Renderer(config.rendering)

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
        notification = describe(event)
        plan = router.plan(self.config, event, notification.severity, self.plugins)
        for_user = describe_for_user(event, notification)
        delivered = await asyncio.gather(
            *(
                self._deliver(d, for_user if d.target is Target.USER else notification)
                for d in plan.deliveries
            )
        )
        result = DispatchResult(
            event.type, notification.id, (*delivered, *plan.outcomes), plan.reason
        )
        _log(result)
        return result

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
        """Let plugins close what they keep open (pooled connections) on this loop."""
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

    async def _deliver(
        self, delivery: router.Delivery, notification: Notification
    ) -> ChannelResult:
        found = self._channel(delivery.channel)
        labels = delivery.recipients or ("(channel)",)
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
                        settings.config, notification, self.renderer, delivery.recipients
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
