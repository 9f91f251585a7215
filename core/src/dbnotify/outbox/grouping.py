"""Storm control: many notifications of one kind become one message.

When DBackup's storage goes down every job fails at once; ``[grouping]`` holds a group's
first notification for ``wait`` to gather the others, and the worker sends them as one
(:func:`group_notification`), per channel. This module is pure: the key that makes a
group (:func:`group_key`) and the message a group reads as. Holding and claiming is the
outbox's (a delivery's ``group``), sending the worker's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

from dbnotify import humanize
from dbnotify.config.model import Config, GroupBy, GroupingRule
from dbnotify.events import Field, Notification, Severity
from dbnotify.ids import new_id
from dbnotify.outbox.model import Hold, OpenProblem, Problem, iso
from dbnotify.results import Delivery
from dbnotify.windows import excepted, next_digest, quiet_until

RESOLVED = "resolved"
"""The event type of a "resolved" message (:func:`resolved_notification`)."""

PHRASES = {
    "backup_failure": ("backup failed", "backups failed"),
    "backup_success": ("backup succeeded", "backups succeeded"),
    "restore_failure": ("restore failed", "restores failed"),
    "restore_complete": ("restore completed", "restores completed"),
    "system_error": ("system error", "system errors"),
    "config_backup": ("configuration backup", "configuration backups"),
    "user_login": ("user login", "user logins"),
    "user_created": ("user created", "users created"),
    "resolved": ("problem resolved", "problems resolved"),
}
"""How a count of the catalogue's events reads (``200 backups failed``); another type
reads ``Its Title (200 times)``."""


def _base(delivery: Delivery) -> list[str]:
    """Always part of a group's key: the channel and whom it goes to (one message goes
    through one channel)."""
    parts = [f"channel={delivery.channel}", f"target={delivery.target.value}"]
    if delivery.recipients:
        parts.append("to=" + ",".join(delivery.recipients))
    return parts


def _key(delivery: Delivery) -> str:
    """:func:`_base` as text: made only for a delivery that is held (most are not)."""
    return "|".join(_base(delivery))


def hold_for(
    config: Config, delivery: Delivery, notification: Notification, now: float
) -> Hold | None:
    """Whether, and how, a delivery waits to go with others: a digest it belongs to
    (until the digest's time), else its channel's quiet hours (until they end), else
    its event type's grouping rule; ``None``: due now, on its own."""
    for name, digest in config.digest.items():
        if notification.event_type in digest.events and delivery.channel in digest.channels:
            return Hold(f"digest={name}|{_key(delivery)}", next_digest(digest, now) - now, 0.0)
    settings = config.channels.get(delivery.channel)
    quiet = settings.quiet_hours if settings is not None else None
    if quiet is not None and not excepted(
        quiet, notification.event_type, notification.severity.value
    ):
        end = quiet_until(quiet, now)
        if end is not None:
            return Hold(f"quiet|{_key(delivery)}", end - now, 0.0)
    rule = config.grouping_for(notification.event_type)
    if rule is None:
        rate = settings.rate_limit if settings is not None else None
        if rate is None:  # the common case: due now, on its own
            return None
        return Hold(f"rate|{_key(delivery)}", rate.per, 0.0, under=rate.count)
    problem = None
    if notification.severity is Severity.FAILURE and notification.job_name:
        problem = Problem(
            f"{_key(delivery)}|job={notification.job_name}|type={notification.event_type}",
            notification.job_name,
            notification.event_type,
            rule.repeat,
        )
    return Hold(group_key(rule, delivery, notification), rule.wait, rule.interval, problem)


def resolved_notification(problem: OpenProblem, success: Notification) -> Notification:
    """What says that a failing job succeeded: sent where its failures went."""
    since = iso(problem.since)
    return Notification(
        id=new_id(),
        event_type=RESOLVED,
        severity=Severity.SUCCESS,
        title="Resolved",  # the job follows in the subject, as for every job event
        message=(
            f"Job '{problem.job}' succeeded after {humanize.count(problem.count, 'failure')} "
            f"since {since}."
        ),
        fields=(
            Field("Job", problem.job),
            Field("Failures", str(problem.count)),
            Field("Failing since", since),
        ),
        timestamp=success.timestamp,
        job_name=problem.job,
    )


def heading(group: str | None) -> str:
    """What a group's message says it is, from its key: a digest, or what was held
    during quiet hours; nothing for a storm's group."""
    if group is None:
        return ""
    if group.startswith("digest="):
        return f"Digest {group.split('|', 1)[0].removeprefix('digest=')}: "
    if group.startswith("quiet|"):
        return "While quiet: "
    if group.startswith("rate|"):
        return "Over the rate limit: "
    return ""


def group_key(rule: GroupingRule, delivery: Delivery, notification: Notification) -> str:
    """What makes a group: the channel and whom it goes to, then what ``by`` names."""
    parts = _base(delivery)
    for dimension in rule.by:
        if dimension is GroupBy.TYPE:
            parts.append(f"type={notification.event_type}")
        elif dimension is GroupBy.JOB:
            parts.append(f"job={notification.job_name or ''}")
        elif dimension is GroupBy.SEVERITY:
            parts.append(f"severity={notification.severity.value}")
    return "|".join(parts)


def _count(notifications: Sequence[Notification]) -> str:
    types = {n.event_type for n in notifications}
    n = len(notifications)
    if len(types) == 1:
        (kind,) = types
        if kind in PHRASES:
            one, many = PHRASES[kind]
            return f"{n} {one if n == 1 else many}"
        return f"{notifications[0].title} ({humanize.count(n, 'time')})"
    return f"{n} notifications"


def _member(notification: Notification) -> tuple[str, str]:
    """One member as a row: who (the job, else the title) and what (time, then error or
    message)."""
    error = next((f.value for f in notification.fields if f.label == "Error"), None)
    who = notification.job_name or notification.title
    return who, f"{_when(notification)}: {error or notification.message}"


def group_notification(members: Sequence[Notification], label: str = "") -> Notification:
    """The one message of a group: the count in the title (after ``label``: "Digest
    daily: "), when, how many per job when a job is there more than once, and every
    member as a field (job, then time and error), failures first. The HTML table shows
    the first rows and counts the rest; the text part lists every one. Its id is made
    from the members', so that a retry of the same group sends the same Message-ID."""
    by_time = sorted(members, key=lambda n: (n.timestamp, n.job_name or "", n.id))
    first, last = by_time[0], by_time[-1]
    ordered = sorted(by_time, key=lambda n: -_rank(n.severity))  # stable: by time within
    count = _count(ordered)
    jobs: dict[str, int] = {}
    for n in ordered:
        if n.job_name:
            jobs[n.job_name] = jobs.get(n.job_name, 0) + 1
    start, end = _when(first), _when(last)
    span = f"at {start}" if start == end else f"between {start} and {end}"
    per_job = (
        "\nPer job: " + ", ".join(f"{job} {n}" for job, n in jobs.items()) + "."
        if any(n > 1 for n in jobs.values())
        else ""
    )
    digest = hashlib.sha256(",".join(sorted(n.id for n in ordered)).encode()).hexdigest()
    return Notification(
        id="g" + digest[:31],
        event_type=first.event_type if len({n.event_type for n in ordered}) == 1 else "group",
        severity=max((n.severity for n in ordered), key=_rank),
        title=label + (count if label else count[:1].upper() + count[1:]),
        message=f"{span[:1].upper() + span[1:]}.{per_job}",
        fields=tuple(Field(*_member(n)) for n in ordered),
        timestamp=last.timestamp,
        job_name=first.job_name if len(jobs) == 1 and len(ordered) == sum(jobs.values()) else None,
    )


def _when(notification: Notification) -> str:
    return notification.timestamp.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rank(severity: object) -> int:
    order = ("success", "info", "warning", "failure")
    value = getattr(severity, "value", "")
    return order.index(value) if value in order else 0
