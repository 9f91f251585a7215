"""Which channels, and which users, an event goes to.

Pure: reads the configuration and the event, returns a :class:`Plan`; sends nothing and
loads nothing. Which channels can deliver to a user's address is the caller's to say
(the :class:`~dbnotify.notifier.Notifier` asks the plugin registry once).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import attrs

from dbnotify.config.model import Config, EventRouting
from dbnotify.events import CATALOGUE, Condition, Event, NotifyUser, Severity
from dbnotify.results import (
    CHANNEL_LABEL,
    NO_CHANNEL,
    USER_LABEL,
    ChannelResult,
    Delivery,
    FailureKind,
    RecipientResult,
    Target,
)


@attrs.frozen
class Plan:
    deliveries: tuple[Delivery, ...]
    outcomes: tuple[ChannelResult, ...] = ()
    """Targets decided without sending: skipped users, unknown channels."""
    reason: str | None = None
    """Set when the event goes nowhere at all, and why."""
    unrouted: bool = False
    """It goes nowhere because no channel is configured for it: a gap in the
    configuration, not one of its rules (disabled, a job's condition, an empty list)."""


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def plan(config: Config, event: Event, severity: Severity, user_channels: Collection[str]) -> Plan:
    """The deliveries of ``event``; ``user_channels`` names the configured channels that
    can deliver to a user's address (their plugin's ``user_delivery``)."""
    spec = CATALOGUE.get(event.type)
    rule = config.routing.events.get(event.type, EventRouting())
    enabled = (
        rule.enabled if rule.enabled is not None else (spec.enabled_by_default if spec else True)
    )
    if not enabled:
        return Plan(
            (),
            reason=(
                f"event {event.type!r} is disabled; set routing.events.{event.type}.enabled = true"
                " to send it"
            ),
        )

    channels = list(rule.channels if rule.channels is not None else config.routing.channels)
    unrouted = rule.channels is None
    nowhere = (
        f"routing.events.{event.type}.channels is empty: this event is sent nowhere"
        if rule.channels is not None
        else (
            f"no channels for event {event.type!r}; set routing.channels, or "
            f"routing.events.{event.type}.channels"
        )
    )
    if spec is not None and spec.per_job and event.job_name:
        job = event.job or config.jobs.get(event.job_name)
        if job is not None:
            if job.channels is not None:
                channels = list(job.channels)
                unrouted = False
                nowhere = (
                    f"jobs.{event.job_name}.channels is empty: this job's events are sent nowhere"
                )
            if job.condition is Condition.SUCCESS_ONLY and severity is not Severity.SUCCESS:
                return Plan((), reason=f"job {event.job_name!r} notifies on success only")
            if job.condition is Condition.FAILURE_ONLY and severity is not Severity.FAILURE:
                return Plan((), reason=f"job {event.job_name!r} notifies on failure only")

    deliveries: list[Delivery] = []
    outcomes: list[ChannelResult] = []
    mode = rule.notify_user if spec is not None and spec.user_event else NotifyUser.NONE
    if mode is not NotifyUser.ONLY:
        for name in _unique(channels):
            if name in config.channels:
                deliveries.append(Delivery(name, Target.CHANNEL))
            else:
                outcomes.append(_unknown_channel(name, config))
    if mode is not NotifyUser.NONE:
        user = _user_delivery(config, event, channels, user_channels)
        if isinstance(user, Delivery):
            deliveries.append(user)
        else:
            outcomes.append(user)
    if not deliveries and not outcomes:
        return Plan((), reason=nowhere, unrouted=unrouted)
    return Plan(tuple(deliveries), tuple(outcomes))


def _unknown_channel(name: str, config: Config) -> ChannelResult:
    return ChannelResult(
        name,
        None,
        Target.CHANNEL,
        (
            RecipientResult.failed(
                CHANNEL_LABEL,
                FailureKind.PERMANENT,
                f"no channel named {name!r} is configured",
                hint=f"define [channels.{name}] or remove it from the routing "
                f"(configured: {', '.join(config.channels) or 'none'})",
            ),
        ),
    )


def _user_delivery(
    config: Config, event: Event, routed: list[str], user_channels: Collection[str]
) -> Delivery | ChannelResult:
    """The user's own copy: one delivery, to the user's address alone."""
    channel = config.routing.user_channel
    if channel is None:
        channel = next(
            (name for name in _unique([*routed, *config.channels]) if name in user_channels),
            None,
        )
    address = event.user_email
    if address is None:
        return ChannelResult(
            channel or NO_CHANNEL,
            None,
            Target.USER,
            (
                RecipientResult.skipped(
                    USER_LABEL, f"event {event.type!r} has no user email address (data key 'email')"
                ),
            ),
        )
    if channel is None:
        return ChannelResult(
            NO_CHANNEL,
            None,
            Target.USER,
            (
                RecipientResult.skipped(
                    address,
                    "no channel can deliver to a user's address; add an email channel "
                    "(routing.user_channel may name it)",
                ),
            ),
        )
    return Delivery(channel, Target.USER, (address,))
