"""A notification as the outbox keeps it: JSON text, the same for every backend.

The rendered content is committed, not the event, so that every attempt sends the same
message (same id, hence the same Message-ID; same timestamp and texts) even if the
catalogue or the configuration changed meanwhile. The format is part of the stored
schema: files written by older releases must still decode.
"""

from __future__ import annotations

import datetime as dt
import json

from dbnotify.events import Field, Notification, Severity


def encode(notification: Notification) -> str:
    return json.dumps(
        {
            "id": notification.id,
            "event_type": notification.event_type,
            "severity": notification.severity.value,
            "title": notification.title,
            "message": notification.message,
            "fields": [[f.label, f.value] for f in notification.fields],
            "timestamp": notification.timestamp.isoformat(),
            "job_name": notification.job_name,
        }
    )


def decode(text: str) -> Notification:
    data = json.loads(text)
    return Notification(
        id=data["id"],
        event_type=data["event_type"],
        severity=Severity(data["severity"]),
        title=data["title"],
        message=data["message"],
        fields=tuple(Field(label, value) for label, value in data["fields"]),
        timestamp=dt.datetime.fromisoformat(data["timestamp"]),
        job_name=data["job_name"],
    )
