"""Each catalogue event as an email: the very HTML the email channel would send (its
``preview`` hook, as ``dbnotify render --format eml`` uses), rendered by the running
notifier's renderer from example data; the renderer's own HTML when no email plugin is
installed."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import attrs

from dbnotify.events import CATALOGUE, Event, to_notification
from dbnotify.serve.service import Service

EXAMPLE_DATA: dict[str, object] = {
    "job_name": "nightly-pg",
    "source_name": "postgres-main",
    "target_database": "staging",
    "duration_ms": 150_000,
    "size_bytes": 1_610_612_736,
    "file_name": "dbackup-config.json.enc",
    "encrypted": True,
    "component": "scheduler",
    "error": "pg_dump: error: connection to server on socket failed",
    "details": "3 jobs waiting for more than 15 minutes",
    "user_name": "alice",
    "email": "alice@example.com",
    "ip_address": "192.0.2.10",
    "user_agent": "Firefox 133",
    "created_by": "admin",
}
"""A value for each key the catalogue's events take (each event uses its own keys)."""

EXAMPLE_CHANNEL = {
    "host": "localhost",
    "security": "none",
    "from": "DBackup <dbackup@example.com>",
    "to": "ops@example.com",
}
"""The email channel a preview uses when the file configures none."""


@attrs.frozen
class Preview:
    event_type: str
    title: str
    subject: str
    sender: str
    to: str
    channel: str
    """Which channel's settings made the message (or that it is an example)."""
    html: str = attrs.field(repr=False)


def example_event(event_type: str) -> Event:
    spec = CATALOGUE[event_type]
    keys = spec.required + spec.optional
    return Event(event_type, {k: EXAMPLE_DATA[k] for k in keys if k in EXAMPLE_DATA})


def preview(service: Service, event_type: str) -> Preview:
    """``event_type`` (a catalogue event) as the first email channel would send it.
    Raises ``KeyError`` for an event outside the catalogue, and what the renderer
    raises for a broken custom template."""
    notification = to_notification(example_event(event_type))
    renderer = service.notifier.renderer
    title = CATALOGUE[event_type].title
    plugin = service.plugins.get("email")
    if plugin is not None:
        channels = [c for c in service.config.channels.values() if c.type == "email"]
        config = channels[0].config if channels else plugin.validate_config(EXAMPLE_CHANNEL)
        shown = f"channel {channels[0].name}" if channels else "an example channel"
        text = plugin.preview(config, notification, renderer)
        if text is not None:
            message = email.message_from_string(text, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            body = message.get_body(("html",))
            if body is not None:
                return Preview(
                    event_type,
                    title,
                    str(message["Subject"] or ""),
                    str(message["From"] or ""),
                    str(message["To"] or ""),
                    shown,
                    str(body.get_content()),
                )
    return Preview(
        event_type,
        title,
        renderer.subject(notification),
        "",
        "",
        "the renderer (no email channel installed)",
        renderer.html(notification),
    )
