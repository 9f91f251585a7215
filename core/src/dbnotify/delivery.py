"""The delivery seam: one :class:`~dbnotify.results.Delivery` through its channel's
plugin, now, under the deadline.

Shared by the :class:`~dbnotify.notifier.Notifier` (direct mode, and ``test``) and the
outbox's worker (durable mode), so that a delivery is made, bounded and explained the
same way wherever it runs. Whatever the plugin does, the caller gets a
:class:`~dbnotify.results.ChannelResult`: a plugin that raises, hangs, returns nothing
or trips over an operator's template is a failed result with a reason and a hint.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from typing import Any

import attrs
import jinja2

from dbnotify.config.model import ChannelSettings, Config
from dbnotify.events import Notification
from dbnotify.plugins import ChannelPlugin, PluginRegistry
from dbnotify.rendering import Renderer, template_problem
from dbnotify.results import (
    ChannelResult,
    Delivery,
    FailureKind,
    RecipientResult,
    TestReport,
    TestStage,
)
from dbnotify.secrets import Masker, Secret, forms

log = logging.getLogger(__name__)

RENDER_HINT = "check the templates in rendering.templates_dir"


def _bug_hint(plugin: ChannelPlugin) -> str:
    return f"this is a bug in {plugin.distribution}; please report it"


@attrs.frozen
class Deliverer:
    """Sends deliveries of ``config``'s channels through ``plugins``, rendered by ``renderer``."""

    config: Config
    plugins: PluginRegistry
    renderer: Renderer

    @property
    def deadline(self) -> float:
        """Seconds one delivery (or one test) may take: ``dispatch.deadline``."""
        return self.config.dispatch.deadline

    def channel(self, name: str) -> tuple[ChannelSettings, ChannelPlugin] | str:
        """The channel's settings and plugin, or why it cannot be used."""
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

    def user_channels(self) -> frozenset[str]:
        """The configured channels whose plugin can deliver to a user's address."""
        return frozenset(
            name
            for name, settings in self.config.channels.items()
            if (plugin := self.plugins.get(settings.type)) is not None and plugin.info.user_delivery
        )

    async def deliver(
        self,
        delivery: Delivery,
        notification: Notification,
        *,
        retry_only: tuple[str, ...] | None = None,
    ) -> ChannelResult:
        """One target, now, under the deadline; never raises."""
        found = self.channel(delivery.channel)
        labels = delivery.labels(retry_only)
        if isinstance(found, str):
            return ChannelResult(
                delivery.channel,
                None,
                delivery.target,
                tuple(RecipientResult.failed(r, FailureKind.PERMANENT, found) for r in labels),
            )
        settings, plugin = found
        started = time.monotonic()
        outcome: tuple[RecipientResult, ...]
        try:
            async with asyncio.timeout(self.deadline):
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
                outcome = self._failed(
                    labels,
                    FailureKind.PERMANENT,
                    f"the {plugin.type} plugin reported no result",
                    _bug_hint(plugin),
                )
        except jinja2.TemplateError as exc:
            outcome = self._failed(
                labels,
                FailureKind.PERMANENT,
                f"rendering failed: {template_problem(exc)}",
                RENDER_HINT,
            )
        except TimeoutError:
            outcome = self._failed(
                labels,
                FailureKind.TRANSIENT,
                f"not delivered within {self.deadline:g}s",
                "the server is slow or unreachable; raise dispatch.deadline if it is merely slow",
            )
        except Exception as exc:  # noqa: BLE001 - a plugin's bug is a result; _raised logs it
            outcome = self._failed(
                labels,
                FailureKind.PERMANENT,
                _raised(delivery.channel, settings, plugin, exc),
                _bug_hint(plugin),
            )
        return ChannelResult(
            delivery.channel, settings.type, delivery.target, outcome, time.monotonic() - started
        )

    @staticmethod
    def _failed(
        labels: tuple[str, ...], kind: FailureKind, reason: str, hint: str
    ) -> tuple[RecipientResult, ...]:
        return tuple(RecipientResult.failed(r, kind, reason, hint=hint) for r in labels)

    async def test(
        self, channel: str, notification: Notification, *, send_message: bool = True
    ) -> TestReport:
        """Check one channel stage by stage and, if asked, send it ``notification``."""
        found = self.channel(channel)
        if isinstance(found, str):
            return TestReport((TestStage("configuration", False, found),))
        settings, plugin = found
        started = time.monotonic()

        def failed(stage: str, detail: str, hint: str) -> TestReport:
            return TestReport(
                (TestStage(stage, False, detail, time.monotonic() - started, hint=hint),)
            )

        try:
            async with asyncio.timeout(self.deadline):
                return await plugin.test(settings.config, notification, self.renderer, send_message)
        except TimeoutError:
            return failed(
                "deadline",
                f"the test did not finish within {self.deadline:g}s",
                "raise dispatch.deadline, or check the server: it accepts the connection but "
                "answers too slowly",
            )
        except jinja2.TemplateError as exc:
            return failed("render", f"rendering failed: {template_problem(exc)}", RENDER_HINT)
        except Exception as exc:  # noqa: BLE001 - a plugin's bug is a result; _raised logs it
            return failed("plugin", _raised(channel, settings, plugin, exc), _bug_hint(plugin))

    async def shutdown(self) -> None:
        """Let each plugin in use close what it keeps open on this loop; never raises."""
        for channel_type in {c.type for c in self.config.channels.values()}:
            plugin = self.plugins.get(channel_type)
            if plugin is None:
                continue
            try:
                await plugin.shutdown()
            except Exception:
                log.exception("plugin %r failed to shut down", plugin.type)


def _secrets_of(value: Any, found: list[str]) -> list[str]:
    """Every secret a channel's configuration holds, however deep (attrs classes,
    lists, tables)."""
    if isinstance(value, Secret):
        found.append(value.reveal())
    elif attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            _secrets_of(getattr(value, field.name), found)
    elif isinstance(value, list | tuple):
        for item in value:
            _secrets_of(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _secrets_of(item, found)
    return found


def _raised(channel: str, settings: ChannelSettings, plugin: ChannelPlugin, exc: Exception) -> str:
    """What a plugin's exception says, as a result's reason and in the log: its text may
    hold the channel's secrets (a URL with its token, a password echoed), so every form
    of them is masked, in the reason and in the traceback alike."""
    mask = Masker(f for s in _secrets_of(settings.config, []) for f in forms(s))
    reason = mask(f"the {plugin.type} plugin raised {type(exc).__name__}: {exc}")
    log.error("channel %r: %s (run with -v for the traceback)", channel, reason)
    log.info("%s", mask("".join(traceback.format_exception(exc)).rstrip()))  # -v
    return reason
