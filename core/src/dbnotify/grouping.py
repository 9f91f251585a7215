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
from dbnotify.config.model import GroupBy, GroupingRule
from dbnotify.events import Field, Notification
from dbnotify.results import Delivery

SHOWN = 20
"""Members shown as fields (the HTML table); the rest are counted ("and N more"). The
message, which every text part carries, lists every one."""

PHRASES = {
    "backup_failure": ("backup failed", "backups failed"),
    "backup_success": ("backup succeeded", "backups succeeded"),
    "restore_failure": ("restore failed", "restores failed"),
    "restore_complete": ("restore completed", "restores completed"),
    "system_error": ("system error", "system errors"),
    "config_backup": ("configuration backup", "configuration backups"),
    "user_login": ("user login", "user logins"),
    "user_created": ("user created", "users created"),
}
"""How a count of the catalogue's events reads (``200 backups failed``); another type
reads ``Its Title (200 times)``."""


def group_key(rule: GroupingRule, delivery: Delivery, notification: Notification) -> str:
    """What makes a group: always the channel and whom it goes to (one message goes
    through one channel), then what ``by`` names."""
    parts = [f"channel={delivery.channel}", f"target={delivery.target.value}"]
    if delivery.recipients:
        parts.append("to=" + ",".join(delivery.recipients))
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
    when = notification.timestamp.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    who = notification.job_name or notification.title
    return who, f"{when}: {error or notification.message}"


def group_notification(members: Sequence[Notification]) -> Notification:
    """The one message of a group: the count in the title, every member in the message
    (so the text part lists them all), the first :data:`SHOWN` as fields (the HTML
    table) and the rest counted. Its id is made from the members', so that a retry of
    the same group sends the same Message-ID."""
    ordered = sorted(members, key=lambda n: (n.timestamp, n.id))
    first, last = ordered[0], ordered[-1]
    count = _count(ordered)
    rows = [_member(n) for n in ordered]
    span = (
        f"at {_member(first)[1].split(': ')[0]}"
        if first.timestamp == last.timestamp
        else f"between {_member(first)[1].split(': ')[0]} and {_member(last)[1].split(': ')[0]}"
    )
    message = f"{count} {span}:\n" + "\n".join(f"- {who} ({what})" for who, what in rows)
    fields = [Field(who, what) for who, what in rows[:SHOWN]]
    if len(rows) > SHOWN:
        fields.append(
            Field(
                "And",
                f"{len(rows) - SHOWN} more (the text part and dbnotify history list every one)",
            )
        )
    digest = hashlib.sha256(",".join(sorted(n.id for n in ordered)).encode()).hexdigest()
    severities = [n.severity for n in ordered]
    return Notification(
        id="g" + digest[:31],
        event_type=first.event_type if len({n.event_type for n in ordered}) == 1 else "group",
        severity=max(severities, key=_rank),
        title=count[:1].upper() + count[1:],
        message=message,
        fields=tuple(fields),
        timestamp=last.timestamp,
        job_name=first.job_name if len({n.job_name for n in ordered}) == 1 else None,
    )


def _rank(severity: object) -> int:
    order = ("success", "info", "warning", "failure")
    value = getattr(severity, "value", "")
    return order.index(value) if value in order else 0
